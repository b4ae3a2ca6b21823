"""Benchmark v2: build on a small design list (real placements), JSON-only scoring with parse failures counted
apart, the trivial baselines and the oracle, the comparison and the CLI."""
from __future__ import annotations

import json
import random
import re

import pytest

from engine.bench.formats import (
    LETTERS,
    Record,
    change_words,
    fmt_knob,
    grade,
    make_record,
    parse_json_answer,
    schema_for,
)
from engine.bench.v2 import (
    BuildV2Config,
    CopyBaseline,
    MajorityBaseline,
    RandomBaseline,
    RulesBaseline,
    RunV2Config,
    build_v2,
    compare_v2,
    load_v2,
    markdown_v2,
    parse_design,
    run_v2,
)
from engine.cli import main
from engine.errors import EngineError

DESIGNS = ("g150-t2.2-m2",)  # a held-out test family


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    out = tmp_path_factory.mktemp("bench") / "problems.jsonl"
    cfg = BuildV2Config(designs=DESIGNS, out=str(out), root=str(root), margin_x=1.0, overflow_symptom=False,
                        counts={"direction": 6, "choose": 4, "percent": 4, "diagnose": 2, "act": 1})
    summary = build_v2(cfg)
    return cfg, summary, load_v2(out)


def test_build_on_a_design_list(built):
    cfg, summary, recs = built
    assert summary["problems"] == len(recs) >= 10 and summary["not_held_out"] == []
    assert len({r.id for r in recs}) == len(recs) and len({r.prompt for r in recs}) == len(recs)
    assert {"direction", "percent", "act"} <= {r.kind for r in recs}
    for r in recs:
        assert r.truth["holdout"] == "test" and r.split == "bench"
        assert grade(r, r.gold, lambda rec, s: (1.0, {})).score == 1.0  # the gold answer passes its own schema
    for r in (r for r in recs if r.kind == "choose"):  # letters rebalanced: prompt, options and gold still agree
        assert r.gold["choice"] == min(r.truth["means"], key=r.truth["means"].get)
        segs = dict(re.findall(r"([ABCD]): ([^;]+?)(?=; [ABCD]: |\. Which)", r.prompt))
        for x, settings in r.truth["options"].items():
            if segs[x] != "no change":
                knob, _, change = segs[x].partition(" ")
                change, word = change.rsplit(" ", 1)
                assert change.endswith(f"-> {fmt_knob(settings[knob])}"), (segs[x], settings)
                old, new = (float(v) for v in change.split(" -> "))
                assert word == ("(raised)" if new > old else "(lowered)")
    act = next(r for r in recs if r.kind == "act")
    assert len(act.truth["sweep"]) >= 30 and act.truth["best_cost"] is not None
    directions = [r.gold["direction"] for r in recs if r.kind == "direction"]
    assert max(directions.count(x) for x in set(directions)) - min(directions.count(x) for x in set(directions)) <= 1


def test_baselines_and_oracle_score_as_expected(built, tmp_path):
    cfg, _summary, recs = built
    res = {}
    for model in ("copy", "majority", "random", "rules", "oracle"):
        res[model] = run_v2(RunV2Config(model=model, problems=cfg.out, root=cfg.root,
                                        out=str(tmp_path / f"{model}.json"), random_repeats=3))
    for r in res.values():
        s = r["summary"]["overall"]
        assert s["n"] == len(recs) and s["parse_failures"] == 0 and s["schema_failures"] == 0
        assert 0.0 <= s["ci95"][0] <= s["score"] <= s["ci95"][1] <= 1.0
    assert res["oracle"]["family"] == "oracle" and res["oracle"]["summary"]["overall"]["score"] >= 0.85
    # copy-reference says "no clear effect": it scores exactly the share of such labels among direction problems
    d = [r for r in recs if r.kind == "direction"]
    share = sum(r.gold["direction"] == "no-clear-effect" for r in d) / len(d)
    assert res["copy"]["summary"]["by_kind"]["direction"]["score"] == pytest.approx(share, abs=1e-3)
    cmp = compare_v2(list(res.values()))
    assert "oracle-plain" not in cmp["ranking"] and cmp["families"]["oracle-plain"] == "oracle"
    table = markdown_v2(list(res.values()))
    assert "oracle (upper bound, not ranked)" in table


def _balanced_choose(n_per_letter: int = 3) -> list[Record]:
    recs = []
    for i in range(n_per_letter * 4):
        letter = LETTERS[i % 4]
        recs.append(make_record("choose", "fam", "d", f"question {i}: A: a; B: b; C: c; D: d. Which?",
                                schema_for("choose"), {"choice": letter}, {"means": {}}, [], "choose/0"))
    return recs


def test_majority_and_random_on_balanced_choose_are_chance(tmp_path):
    recs = _balanced_choose()
    maj = MajorityBaseline(recs, train_path=tmp_path / "missing.jsonl")
    assert maj.source == "problem set"
    score = sum(grade(r, maj.answer(r)).score for r in recs) / len(recs)
    assert score == pytest.approx(0.25)
    rnd = RandomBaseline()
    scores = [grade(r, rnd.answer(r, random.Random(k))).score for k in range(200) for r in recs]
    assert 0.18 < sum(scores) / len(scores) < 0.32


def test_majority_reads_the_committed_training_split_by_default():
    """On a fresh clone (no local data set) the majority labels come from the committed training split, never from
    the problems it is scored on."""
    recs = _balanced_choose()
    maj = MajorityBaseline(recs)
    assert maj.source == "assets/training/data_v2/train.jsonl.gz"
    assert set(maj.top) >= {"direction", "choose", "percent"}


def test_parse_failures_are_counted_apart(built, tmp_path):
    cfg, _s, recs = built

    class Prose:
        name, family = "prose", "model"

        def answer(self, record, rng=None):
            return "The HPWL will probably rise a bit." if record.kind != "choose" else '{"choice": "E"}'

    res = run_v2(RunV2Config(model="prose", problems=cfg.out, root=cfg.root, out=str(tmp_path / "p.json")),
                 answerer=Prose())
    s = res["summary"]["overall"]
    n_choose = sum(r.kind == "choose" for r in recs)
    assert s["score"] == 0.0 and s["parse_failures"] == len(recs) - n_choose and s["schema_failures"] == n_choose


def test_json_only_parsing_and_rules():
    assert parse_json_answer('```json\n{"direction": "rise"}\n```') == {"direction": "rise"}
    assert parse_json_answer('{"percent": 3.5}<|im_end|>') == {"percent": 3.5}
    assert parse_json_answer("I think {\"direction\": \"rise\"}") is None  # prose around JSON: a parse failure
    assert parse_json_answer("[1, 2]") is None
    rec = make_record("direction", "f", "d", "Design: x. Change floorplan.utilization 0.7 -> 0.55, all else equal: "
                      "does the HPWL rise, fall, or show no clear effect (within the noise)?",
                      schema_for("direction"), {"direction": "rise"}, {"metric": "placement__hpwl"}, [], "t")
    assert RulesBaseline().answer(rec) == {"direction": "rise"}  # a smaller utilisation spreads cells: longer wires
    assert CopyBaseline().answer(rec) == {"direction": "no-clear-effect"}
    assert grade(rec, '{"direction": "up"}').status == "schema_failure"


def test_change_words_say_the_way_and_migrate_old_sets():
    q = ("Options: A: floorplan.utilization 0.5 -> 0.6; B: no change; C: place.target_density 1 -> 0.7; "
         "D: place.density_weight_init 100 -> 1e-3. Which gives 12.5 -> 3?")
    want = ("Options: A: floorplan.utilization 0.5 -> 0.6 (raised); B: no change; C: place.target_density 1 -> 0.7 "
            "(lowered); D: place.density_weight_init 100 -> 1e-3 (lowered). Which gives 12.5 -> 3?")
    assert change_words(q) == want and change_words(want) == want  # idempotent; a bare "12.5 -> 3" is no knob
    assert change_words("place.gamma_base 4 -> 4") == "place.gamma_base 4 -> 4"
    rec = make_record("direction", "f", "d", "Change place.gamma_base 4 -> 12, all else equal: does the HPWL rise?",
                      schema_for("direction"), {"direction": "rise"}, {}, [], "t")
    old = rec.to_dict() | {"prompt": "Change place.gamma_base 4 -> 12, all else equal: does the HPWL rise?"}
    assert "4 -> 12 (raised)," in Record.from_dict(old).prompt  # a set written before the words reads with them


def test_design_specs_and_errors(tmp_path):
    d = parse_design("g400-t1.6-m2-s7")
    assert (d.n_cells, d.tail, d.n_macros, d.seed, d.family) == (400, 1.6, 2, 7, "g400-t1.6-m2")
    assert parse_design("uart").kind == "example"
    with pytest.raises(EngineError):
        parse_design("no-such-design-anywhere")
    with pytest.raises(EngineError, match="does not exist"):
        load_v2(tmp_path / "missing.jsonl")
    with pytest.raises(EngineError, match="unknown mode"):
        run_v2(RunV2Config(model="rules", mode="wild"), records=_balanced_choose(1))


def test_cli_build_run_compare(built, tmp_path, capsys):
    cfg, summary, _recs = built
    out = tmp_path / "p.jsonl"
    assert main(["bench", "build", "--designs", ",".join(DESIGNS), "--root", cfg.root, "--out", str(out), "-q",
                 "--margin", "1", "--counts", "direction=3,choose=0,percent=2,diagnose=0,act=0"]) == 0
    assert "problems" in capsys.readouterr().out and len(load_v2(out)) == 5
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["bench", "run", "--model", "rules", "--problems", str(out), "--root", cfg.root, "--out", str(a),
                 "-q"]) == 0
    assert main(["bench", "run", "--model", "copy", "--problems", str(out), "--root", cfg.root, "--out", str(b),
                 "-q"]) == 0
    capsys.readouterr()
    assert main(["bench", "compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "5 problems in common" in text and "ranking" in text
    assert json.loads(a.read_text())["version"] == 2


def test_rules_read_the_last_option_before_the_full_stop():
    """The last option ends the sentence ("... 4 -> 12. Which"): its value is 12, not "12." (the rules baseline
    once failed on every such choose problem and was under-reported)."""
    prompt = ("Design: x. Reference (floorplan.utilization=0.5, other knobs default): HPWL 8494 um. Options (one "
              "change to the reference each): A: floorplan.utilization 0.5 -> 0.6; B: no change; C: "
              "place.gamma_base 4 -> 1.5; D: place.target_density 1 -> 0.82. Which option gives the lowest HPWL? "
              "(Seed noise is +/-1.0%; one option is clearly best.)")
    for text in (prompt, change_words(prompt)):
        rec = make_record("choose", "f", "d", text, schema_for("choose"), {"choice": "A"},
                          {"metric": "placement__hpwl"}, [], "t")
        assert RulesBaseline().answer(rec)["choice"] in LETTERS


def test_adapter_digest_names_the_weights_behind_a_row(tmp_path):
    """A LoRA row and the GGUF exported from the same weights carry the same digest (so the runtime-agreement
    figure pairs them); another adapter, or a baseline, does not."""
    from engine.bench.v2 import adapter_digest

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, payload in ((a, b"weights-a"), (b, b"weights-b")):
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(payload)
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text(json.dumps({"adapter_dir": str(a)}))
    assert adapter_digest(f"lora:{a}") == adapter_digest(f"gguf:{export / 'model.gguf'}") is not None
    assert adapter_digest(f"lora:{b}") != adapter_digest(f"lora:{a}")
    assert adapter_digest("rules") is None and adapter_digest(f"gguf:{tmp_path / 'plain.gguf'}") is None
