"""The Benchmarks page under AppTest: result sets side by side, per kind and problem by problem, oracle apart."""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parent.parent / "pages" / "11_benchmarks.py"


def test_page_with_fewer_than_two_sets_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_BENCH_RESULTS", str(tmp_path))
    (tmp_path / "not-results.json").write_text("{}")  # not counted
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert any("cda bench run" in i.value and "there are 0" in i.value for i in at.info)


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
