"""Stored truths match a fresh engine run (a cheap sample: small sources, short placements, synthesis reused).

With the placer code the truths were built with (same fingerprint) the match must be exact (0.1%). After a
placer change the truths must still hold within the scorer's full-marks band (5%); beyond that the failure
says to run `cda bench build`.
"""
from __future__ import annotations

from engine.bench.measure import Measurer
from engine.bench.problems import load_problems, verify_problem
from engine.bench.score import PREDICT_BANDS
from engine.runs import RunStore


def _cost(p) -> tuple:
    src = p.source
    cells = src.get("n_cells") or {"counter": 92, "gray_prio": 128}.get(src["name"], 10_000)
    return (len(p.truth["runs"]), cells, p.settings.get("place.max_iterations", 1000))


def _tolerance(p, measurer) -> float:
    return 1e-3 if p.truth.get("placer") == measurer.placer else PREDICT_BANDS[0][0]


def test_sampled_truths_match_a_fresh_engine_run(tmp_path):
    problems = load_problems()
    design = min((p for p in problems if p.kind == "predict" and p.source["kind"] == "design"), key=_cost)
    generated = min((p for p in problems if p.kind == "choose" and p.source["kind"] == "generated"), key=_cost)
    measurer = Measurer(RunStore(tmp_path / "runs"), use_store_cache=False)
    for p in (design, generated):
        assert verify_problem(p, measurer, rel_tol=_tolerance(p, measurer)) == [], p.id
    # every fresh measurement is a bench run in the store, with its metrics on disk
    rows = RunStore(tmp_path / "runs").list(kind="bench")
    assert len(rows) == len(design.truth["runs"]) + len(generated.truth["runs"])
    assert all(r["status"] == "done" for r in rows)


def test_a_changed_truth_is_caught(tmp_path):
    problems = load_problems()
    p = min((p for p in problems if p.source["kind"] == "generated"), key=_cost)
    rec = p.truth["runs"][0]
    rec["metrics"]["placement__hpwl"] *= 1.2
    diffs = verify_problem(p, Measurer(RunStore(tmp_path / "runs")))
    assert any("placement__hpwl" in d for d in diffs)
