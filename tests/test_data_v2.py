"""Training data v2 on two tiny generated families (one train, one test): real placements, 3 seeds per setting.

Every answer must be derivable from its own prompt (the numbers it rests on are printed there), every split must
hold whole families, a rerun must reuse the journal, and the verifier must agree with fresh placements."""
from __future__ import annotations

import json
import re

import pytest

from engine.bench.formats import DIRECTIONS, LETTERS, REGION_GRID, Record, fmt_num, schema_errors
from engine.errors import EngineError
from engine.train.data_v2 import DataV2Config, generate, load_records, split_of, verify, verify_committed

FAMILIES = ("g150-t1.3-m0", "g150-t2.2-m2")  # train and test families


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    out = tmp_path_factory.mktemp("data")
    cfg = DataV2Config(out_dir=str(out), root=str(root), families=FAMILIES, write_card=False)
    card = generate(cfg)
    records = [r for s in ("train", "val", "test") if (out / f"{s}.jsonl").exists()
               for r in load_records(out / f"{s}.jsonl")]
    return cfg, card, records


def _map_from_prompt(prompt: str) -> list[list[int]]:
    m = re.search(r"rows north to south\): ([0-9 /]+)\.", prompt)
    assert m, prompt
    return [[int(v) for v in row.split()] for row in m.group(1).split("/")]


def test_records_are_complete_and_answers_follow_from_their_prompts(data):
    _cfg, card, records = data
    assert card["total"] == len(records) > 100
    kinds = {r.kind for r in records}
    assert {"direction", "percent", "choose", "diagnose"} <= kinds
    for r in records:
        gold = json.loads(r.answer)
        assert schema_errors(gold, r.schema) == [], (r.id, gold)
        assert r.system and r.prompt and r.uses and r.family in FAMILIES
        assert not re.search(r"\d{8}-\d{6}", r.prompt), "a run id (a per-run lookup) leaked into the prompt"
        t = r.truth
        if r.kind == "percent":
            assert fmt_num(t["ref_mean"]) in r.prompt  # the reference value the percentage is relative to
            assert gold["percent"] == round((t["new_mean"] - t["ref_mean"]) / abs(t["ref_mean"]) * 100, 1)
        elif r.kind == "direction":
            assert f"+/-{t['band'] * 100:.1f}%" in r.prompt  # the band the label is judged against
            delta = (t["new_mean"] - t["ref_mean"]) / abs(t["ref_mean"])
            want = "rise" if delta > t["band"] else "fall" if delta < -t["band"] else "no-clear-effect"
            assert gold["direction"] == want and gold["direction"] in DIRECTIONS
        elif r.kind == "choose":
            assert all(f"{x}: " in r.prompt for x in LETTERS)
            assert gold["choice"] == min(t["means"], key=t["means"].get)
            assert t["margin"] >= t["band"]  # the best option is clear of the seed noise
        elif r.kind == "diagnose":
            grid = _map_from_prompt(r.prompt)
            flat = [(v, REGION_GRID[i][j]) for i, row in enumerate(grid) for j, v in enumerate(row)]
            top = max(v for v, _ in flat)
            assert gold["region"] in [reg for v, reg in flat if v == top]  # read off the map in the prompt
            assert "Options: " in r.prompt and gold["knob"] in r.prompt.split("Options: ")[1]
            assert gold["knob"] == min(t["means"], key=t["means"].get)


def test_splits_hold_whole_families_and_labels_are_balanced(data):
    _cfg, card, records = data
    fam_split = {}
    for r in records:
        assert r.split == split_of(r.family)
        assert fam_split.setdefault(r.family, r.split) == r.split
    assert set(fam_split.values()) == {"train", "test"}
    train_designs = {r.design for r in records if r.split == "train"}
    assert train_designs.isdisjoint({r.design for r in records if r.split == "test"})
    for split in ("train", "test"):
        labels = [json.loads(r.answer)["direction"] for r in records if r.kind == "direction" and r.split == split]
        if labels:
            none = labels.count("no-clear-effect")
            assert none <= max(labels.count("rise"), labels.count("fall"))  # no-clear-effect never dominates
    letters = [json.loads(r.answer)["choice"] for r in records if r.kind == "choose"]
    assert max(letters.count(x) for x in LETTERS) - min(letters.count(x) for x in LETTERS) <= 1
    assert card["noise_band_median"]["placement__hpwl"] > 0


def test_rerun_reuses_the_journal_and_verifier_agrees(data, tmp_path):
    cfg, card, records = data
    again = generate(DataV2Config(out_dir=str(tmp_path), root=cfg.root, families=FAMILIES, write_card=False))
    assert again["new_runs"] == 0 and again["total"] == card["total"]
    rep = verify(records, 4, seed=1)
    assert rep["checked"] == 4 and rep["fresh_runs"] > 0
    assert rep["agreement"] >= 0.75, rep["disagreements"]


def test_verifier_on_a_committed_data_folder(data, tmp_path):
    """`cda bench verify-data`: a data folder (gzipped splits + card.json) is verified without regenerating it, and
    the result lands in its card."""
    import gzip

    _, card, records = data
    folder = tmp_path / "set"
    folder.mkdir()
    for split in ("train", "val"):
        with gzip.open(folder / f"{split}.jsonl.gz", "wt") as f:
            for r in records:
                if r.split == split or (split == "train" and r.split == "test"):
                    f.write(json.dumps(r.to_dict()) + "\n")
    (folder / "card.json").write_text(json.dumps({"total": len(records)}))
    rep = verify_committed(folder, 4, seed=1)
    assert rep["checked"] == 4 and rep["agree"] == sum(a for a, _ in rep["per_kind"].values())
    assert json.loads((folder / "card.json").read_text())["verify"]["checked"] == 4
    with pytest.raises(EngineError, match="no train/val records"):
        verify_committed(tmp_path / "empty", 4)


def test_record_roundtrip():
    r = Record(id="x", kind="choose", family="f", design="d", prompt="p", schema={}, answer='{"choice": "B"}')
    assert Record.from_dict(json.loads(json.dumps(r.to_dict()))).gold == {"choice": "B"}
