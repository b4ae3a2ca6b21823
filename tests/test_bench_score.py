"""The scorer: full marks to the engine's truth, low marks to perturbed answers, documented bands, CIs."""
import copy

import pytest

from engine.bench.problems import PROBLEMS_PATH, Problem, load_problems
from engine.bench.score import bootstrap_ci, normalize_region, parse_answer, score_answer, summarize


def _problems():
    return load_problems(PROBLEMS_PATH)


def test_problem_file_has_enough_problems_of_every_kind():
    problems = _problems()
    assert len(problems) >= 50
    kinds = {p.kind for p in problems}
    assert kinds == {"predict", "choose", "diagnose", "act"}
    assert len({p.id for p in problems}) == len(problems)
    for p in problems:
        assert p.truth["runs"], p.id  # every truth names the engine runs that computed it
        assert all(r["run_id"] and r["metrics"] for r in p.truth["runs"])


def test_truth_gets_full_marks_on_every_problem():
    # act truths are settings the engine already ran, so scoring them needs no new run (measurer=None)
    for p in _problems():
        s = score_answer(p, copy.deepcopy(p.truth["answer"]), measurer=None)
        assert s.score == 1.0 and s.solved, (p.id, s.detail)


def test_truth_as_text_also_scores():
    for p in _problems():
        if p.kind in ("predict", "choose"):
            import json

            text = "Sure. " + json.dumps(p.truth["answer"]) + " Hope this helps."
            assert score_answer(p, text).score == 1.0, p.id


def test_perturbed_answers_score_low():
    for p in _problems():
        t = p.truth["answer"]
        if p.kind == "predict":
            s = score_answer(p, {"value": t["value"] * 1.6 + 1.0})
            assert s.score == 0.0, p.id
        elif p.kind == "choose":
            wrong = next(lab for lab in p.options if lab != t["choice"])
            assert score_answer(p, {"choice": wrong}).score == 0.0
        elif p.kind == "diagnose":
            wrong_knob = next(k for k in p.options if k != t["knob"])
            wrong_region = "south-west" if t["region"] != "south-west" else "north-east"
            s = score_answer(p, {"region": wrong_region, "rudy_max": t["rudy_max"] * 2, "knob": wrong_knob})
            assert s.score == 0.0 and not s.solved
        elif p.kind == "act":
            # the default settings themselves: no gain over the default -> 0
            default = {k: v for k, v in p.truth["runs"][0]["settings"].items() if k != "place.max_iterations"}
            s = score_answer(p, {"settings": default or {"floorplan.utilization": 0.6}}, measurer=None)
            assert s.score == 0.0, (p.id, s.detail)


def _predict(value=100.0, metric="placement__hpwl"):
    return Problem(id="p", kind="predict", source={"kind": "generated", "name": "g", "n_cells": 10}, settings={},
                   question="q", answer_format="", truth={"answer": {"value": value}, "metric": metric, "runs": []})


@pytest.mark.parametrize("answer,expected", [(104, 1.0), (109, 0.8), (120, 0.5), (140, 0.2), (200, 0.0),
                                             ("about 95 um", 1.0), ("no idea", 0.0), (None, 0.0)])
def test_predict_bands(answer, expected):
    assert score_answer(_predict(), answer).score == expected


def test_overflow_floor_keeps_small_truths_fair():
    p = _predict(0.01, "placement__overflow")
    assert score_answer(p, {"value": 0.012}).score == 1.0  # 0.002 off a 0.05 floor is 4%


def test_diagnose_partial_credit_and_synonyms():
    p = Problem(id="d", kind="diagnose", source={"kind": "generated", "name": "g"}, settings={}, question="q",
                answer_format="", options={"floorplan.utilization": {}, "place.target_density": {}},
                truth={"answer": {"region": "north-east", "rudy_max": 2.0, "knob": "place.target_density"}})
    assert score_answer(p, {"region": "NorthEast", "rudy_max": 2.2, "knob": "target_density"}).score == 1.0
    s = score_answer(p, "The hot spot is top-right, peak RUDY 1.5; lower utilization.")
    assert s.detail["facts"] == {"region": True, "rudy_max": False, "knob": False}
    assert abs(s.score - 1 / 3) < 1e-9


def test_act_rejects_bad_proposals():
    p = [q for q in _problems() if q.kind == "act"][0]
    for bad in ({"settings": {"place.foo": 1}}, {"settings": {"floorplan.utilization": 5.0}}, "no json here",
                {"settings": {"floorplan.utilization": "high"}}):
        s = score_answer(p, bad, measurer=None)
        assert s.score == 0.0 and "error" in s.detail


def test_parse_answer_and_regions():
    assert parse_answer('x {"a": {"b": 1}} y') == {"a": {"b": 1}}
    assert parse_answer("{broken} {\"ok\": 2}") == {"ok": 2}
    assert parse_answer("nothing") is None
    assert normalize_region("centre") == "center"
    assert normalize_region("in the south west corner") == "south-west"


def test_summary_and_bootstrap():
    rows = [{"kind": "predict", "score": 1.0, "solved": True, "retrieval_hit": True},
            {"kind": "predict", "score": 0.0, "solved": False, "retrieval_hit": False},
            {"kind": "choose", "score": 1.0, "solved": True, "retrieval_hit": True}]
    s = summarize(rows)
    assert s["overall"]["n"] == 3 and abs(s["overall"]["score"] - 2 / 3) < 1e-3
    lo, hi = s["overall"]["ci95"]
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0
    assert s["retrieval"]["hit"]["score"] == 1.0 and s["retrieval"]["miss"]["score"] == 0.0
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
