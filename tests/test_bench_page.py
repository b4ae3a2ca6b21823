"""The Benchmarks page under AppTest: two result sets side by side, per kind and problem by problem."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from engine.bench.problems import load_problems
from engine.bench.runner import RulesBaseline
from engine.bench.score import score_answer, summarize

PAGE = Path(__file__).resolve().parent.parent / "pages" / "11_benchmarks.py"


def _result_set(label: str, model: str, mode: str, answers: dict, problems) -> dict:
    rows = []
    for p in problems:
        sc = score_answer(p, answers[p.id], measurer=None)
        rows.append({"id": p.id, "kind": p.kind, "question": p.question, "answer": answers[p.id], "answer_text": "",
                     "truth": p.truth["answer"], "score": sc.score, "solved": sc.solved, "detail": sc.detail,
                     "latency_s": 0.01, "error": None, "notes": {}, "retrieval_hit": None, "passages": []})
    return {"label": label, "model": model, "mode": mode, "models_used": [model], "n_problems": len(rows),
            "summary": summarize(rows), "results": rows}


def test_page_shows_two_result_sets_side_by_side(tmp_path, monkeypatch):
    problems = [p for p in load_problems() if p.kind != "act"][:24]
    rules = RulesBaseline()
    a = _result_set("rules-baseline", "rules", "baseline", {p.id: rules.answer(p).answer for p in problems}, problems)
    b = _result_set("truth-check", "truth", "specialist", {p.id: copy.deepcopy(p.truth["answer"]) for p in problems},
                    problems)
    (tmp_path / "rules-baseline.json").write_text(json.dumps(a))
    (tmp_path / "truth-check.json").write_text(json.dumps(b))
    (tmp_path / "not-results.json").write_text("{}")  # ignored
    monkeypatch.setenv("CDA_BENCH_RESULTS", str(tmp_path))

    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Benchmarks"
    assert sorted(at.multiselect[0].value) == ["rules-baseline.json", "truth-check.json"]
    scores = at.dataframe[0].value
    assert {"kind", "rules-baseline", "truth-check"} <= set(scores.columns)
    overall = scores[scores["kind"] == "overall"].iloc[0]
    assert overall["truth-check"].startswith("1.000")
    # problem by problem: both answers, both scores and the truth on one row
    table = at.dataframe[-1].value
    assert {"id", "truth", "rules-baseline answer", "truth-check answer", "rules-baseline score",
            "truth-check score"} <= set(table.columns)
    assert len(table) == len(problems)
    solved_only = {m.label: int(m.value) for m in at.metric}
    assert solved_only["truth-check not rules-baseline"] > 0
    # only the problems where they differ
    at.toggle[0].set_value(True).run()
    assert not at.exception
    assert 0 < len(at.dataframe[-1].value) < len(problems)


def test_page_with_fewer_than_two_sets_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_BENCH_RESULTS", str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert any("cda bench run" in i.value for i in at.info)


def test_page_shows_v2_results_with_the_oracle_marked(tmp_path, monkeypatch):
    from engine.bench.formats import LETTERS, make_record, schema_for
    from engine.bench.v2 import RunV2Config, run_v2

    problems = tmp_path / "problems.jsonl"
    recs = [make_record("choose", "fam", "d", f"question {i}: A: x; B: y; C: z; D: w. Which?", schema_for("choose"),
                        {"choice": LETTERS[i % 4]}, {}, [], "choose/0") for i in range(8)]
    problems.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))

    class Gold:
        name, family = "oracle", "oracle"

        def answer(self, record, rng=None):
            return record.gold

    (tmp_path / "v2").mkdir()
    for model, answerer in (("copy", None), ("majority", None), ("oracle", Gold())):
        run_v2(RunV2Config(model=model, problems=str(problems), root=str(tmp_path / "sweep"),
                           out=str(tmp_path / "v2" / f"{model}.json")), records=recs, answerer=answerer)
    monkeypatch.setenv("CDA_BENCH_RESULTS", str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    scores = at.dataframe[0].value
    assert list(scores["answerer"])[-1] == "oracle-plain"  # listed last, never ranked
    assert scores[scores["answerer"] == "oracle-plain"]["kind"].iloc[0] == "oracle (upper bound)"
    assert scores[scores["answerer"] == "oracle-plain"]["overall"].iloc[0].startswith("1.00")
    assert "upper bound" in at.markdown[0].value
    assert len(at.dataframe[-1].value) == 8
