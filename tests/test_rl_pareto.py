"""The Pareto front of an optimisation (engine.rl.pareto), `cda rl-pareto`, and the Optimizer page drawing it live.

The unit tests use hand-made points; the CLI and page tests use an optimisation folder written by the tuner's own
writers (engine.rl.tune.record_of for each Tune callback payload, engine.rl.optimize.Recorder for the files), so
the format is the one a real search leaves.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError
from engine.registry import metric
from engine.rl.env import EnvConfig
from engine.rl.evaluate import EvalConfig
from engine.rl.optimize import OptimizeConfig, Recorder, optimize_run_config
from engine.rl.pareto import AXES, Objective, format_front, fronts, non_dominated, run_fronts, trial_front
from engine.rl.reward import RewardConfig
from engine.rl.tune import record_of
from engine.runs import RunStore

PAGE = Path(__file__).resolve().parent.parent / "pages" / "08_optimizer.py"
WL, ECP = AXES[0][0], AXES[1][0]
FAIL = RewardConfig().failure_reward


def row(index: int, wl=None, ecp=None, reward=0.0, status="done", design="counter", **metrics) -> dict:
    m = dict(metrics)
    if wl is not None:
        m[WL] = wl
    if ecp is not None:
        m[ECP] = ecp
    return {"index": index, "design": design, "baseline": False, "status": status, "reward": reward,
            "metrics": m, "knobs": {"floorplan.utilization": 0.5 + index / 100}, "run_id": f"run-{index}"}


# ------------------------------------------------------------------ the dominance test on hand-made points
def test_non_dominated_ties_duplicates_and_direction():
    pts = [(1.0, 5.0), (2.0, 4.0), (2.0, 6.0), (3.0, 3.0), (3.0, 3.0), (4.0, 3.0), (0.5, 9.0)]
    # (2, 6) is beaten by (2, 4) (tie on x, worse y); (4, 3) by (3, 3) (tie on y); the two (3, 3) are both kept.
    assert non_dominated(pts, [True, True]) == [0, 1, 3, 4, 6]
    # Higher is better on y: now (0.5, 9) beats every point with x >= 0.5 and y <= 9 (all of them).
    assert non_dominated(pts, [True, False]) == [6]
    assert non_dominated([(7.0, 7.0)], [True, True]) == [0]
    assert non_dominated([], [True, True]) == []
    # A point dominated by a duplicate pair is dominated by each of them.
    assert non_dominated([(1.0, 1.0), (1.0, 1.0), (1.0, 2.0)], [True, True]) == [0, 1]


def test_non_dominated_matches_a_sort_and_sweep_across_blocks():
    # 700 points (more than one block of challengers), on a coarse grid so that ties and duplicates abound.
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 40, size=(700, 2)).astype(float)
    best, ref = math.inf, []
    for i in sorted(range(len(pts)), key=lambda i: (pts[i, 0], pts[i, 1])):
        if pts[i, 1] < best or (ref and pts[i].tolist() == pts[ref[-1]].tolist()):
            ref.append(i)
            best = min(best, pts[i, 1])
    assert non_dominated(pts, [True, True]) == sorted(ref)


def test_objectives_take_names_and_direction_from_the_registry():
    wl, ecp = Objective.of(WL), Objective.of(ECP)
    assert (wl.label, wl.minimise) == (metric(WL).label, not metric(WL).higher_is_better)
    assert ecp.minimise and ecp.unit == metric(ECP).shown_unit
    assert not Objective.of("timing__fmax_mhz").minimise  # higher is better there
    with pytest.raises(EngineError, match="no better direction"):
        Objective.of("timing__clock_period_ns")  # a target, neither better nor worse
    with pytest.raises(EngineError, match="unknown metric"):
        Objective.of("route__wirelenght")


def test_front_leaves_out_failed_stopped_and_incomplete_trials():
    rows = [
        {**row(0, 1000.0, 5.0), "baseline": True},  # the default run: the reference, never on the front
        row(1, 1200.0, 5.0, reward=-0.05),
        row(2, 900.0, 5.4, reward=0.02),
        row(3, 1100.0, 5.2, reward=0.01),
        row(4, 10.0, 1.0, reward=FAIL, status="failed"),  # partial metrics of a failed run: they must not count
        row(5, 20.0, 2.0, reward=-0.9, status="stopped"),  # ASHA stopped it after an early stage
        row(6, 800.0, None, reward=0.3),  # done, but no timing
        row(7, 700.0, float("nan"), reward=0.4),  # a value that is not a number
        row(8, "n/a", 4.0, reward=0.5),  # the best reward, but it cannot be placed on the axes
        row(9, 1150.0, 5.3, reward=0.03),  # beaten by 3 on both
        row(10, 900.0, 5.4, reward=0.02),  # a duplicate of 2: both stay on the front
    ]
    f = trial_front(rows, "counter")
    assert [o.name for o in f.objectives] == [WL, ECP] and f.note is None
    assert [p["index"] for p in f.points] == [1, 2, 3, 9, 10]
    assert [p["index"] for p in f.front] == [2, 10, 3, 1]  # by wirelength, better first; equal ones by index
    assert f.skipped == {"failed": 1, "stopped": 1, f"missing {ECP}": 2, f"missing {WL}": 1}
    assert f.best_index == 8  # the reward's best among finished trials, whether or not it has both metrics
    assert f.baseline is not None and f.baseline["values"] == [1000.0, 5.0]
    # The slow, obvious reference: on the front exactly when no other point is <= on both axes and differs.
    for p in f.points:
        beaten = any(q["values"][0] <= p["values"][0] and q["values"][1] <= p["values"][1]
                     and q["values"] != p["values"] for q in f.points)
        assert p["on_front"] is (not beaten), p


def test_a_single_trial_no_trial_and_only_failures():
    f = trial_front([row(1, 500.0, 3.0, reward=0.1)])
    assert [p["index"] for p in f.front] == [1] and f.best_index == 1 and f.baseline is None
    empty = trial_front([])
    assert empty.front == [] and empty.points == [] and empty.best_index is None and empty.note is not None
    failed = trial_front([row(1, 500.0, 3.0, reward=FAIL, status="failed"),
                          {"index": 2, "design": "counter", "status": "failed", "metrics": None, "reward": FAIL}])
    assert failed.front == [] and failed.skipped == {"failed": 2} and failed.best_index is None


def test_stand_in_axis_and_no_front_without_timing():
    # Trials through placement only: wirelength falls back to the placer's HPWL, the clock period has no stand-in.
    rows = [row(1, None, None, placement__hpwl=400.0), row(2, None, None, placement__hpwl=380.0)]
    f = trial_front(rows)
    assert [o.name for o in f.objectives] == ["placement__hpwl", ECP]
    assert f.front == [] and f.note is not None and ECP in f.note and f.skipped == {"missing metrics": 2}
    with_timing = trial_front([row(1, None, 4.0, placement__hpwl=400.0), row(2, None, 3.0, placement__hpwl=420.0)])
    assert with_timing.objectives[0].name == "placement__hpwl" and len(with_timing.front) == 2
    # A maximised axis from the registry flips the comparison.
    g = trial_front([row(1, 500.0, None, timing__fmax_mhz=200.0), row(2, 500.0, None, timing__fmax_mhz=250.0)],
                    axes=((WL,), ("timing__fmax_mhz",)))
    assert [p["index"] for p in g.front] == [2]


def test_fronts_per_design():
    rows = [row(1, 1.0, 1.0, design="a"), row(2, 2.0, 2.0, design="a"), row(3, 2.0, 2.0, design="b")]
    by = fronts(rows)
    assert list(by) == ["a", "b"]
    assert [p["index"] for p in by["a"].front] == [1] and [p["index"] for p in by["b"].front] == [3]


# ------------------------------------------------------------------ a folder as the tuner writes it
def _result(wl: float | None, ecp: float | None, reward: float, *, status="done", final=True, stage="timing",
            run_id: str | None = None) -> dict:
    """What run_trial reports for one trial (the Tune callback's ``last_result``)."""
    metrics = {"placement__hpwl": (wl or 1000.0) * 0.9, "violations": 0}
    if wl is not None:
        metrics[WL] = wl
    if ecp is not None:
        metrics.update({ECP: ecp, "timing__setup__ws": 10.0 - ecp})
    return {"score": reward, "reward": reward, "stage": stage, "final": final, "status": status,
            "error": None if status == "done" else "placement diverged", "failed_step": None,
            "knobs": {"floorplan.utilization": 0.6, "floorplan.aspect_ratio": 1.0}, "metrics": metrics,
            "run_id": run_id, "started": 1.0, "ended": 2.0, "seconds": 1.0, "pid": 1}


def _send(rec: Recorder, trial_id: str, result: dict, error: str | None = None) -> None:
    rec(record_of({"trial_id": trial_id, "config": {"floorplan.utilization": 0.6}, "result": result, "error": error},
                  "counter", FAIL))


@pytest.fixture()
def experiment(tmp_path, monkeypatch):
    """A running TPE optimisation of counter with two trials at once: a baseline, three scored trials, one
    failed, one stopped by ASHA and one whose Ray worker died."""
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    cfg = OptimizeConfig(agent="tpe", budget=8, env=EnvConfig(knobs=["floorplan.utilization",
                                                                     "floorplan.aspect_ratio"],
                                                              eval=EvalConfig(until="timing", parallel=2)))
    run = store.create(optimize_run_config(["counter"], cfg), design="counter", kind="optimize", label="tpe")
    run.set_status("running")
    rec = Recorder(run.dir, "tpe")
    rec({"design": "counter", "baseline": True, "knobs": {"floorplan.utilization": 0.6}, "run_id": "base",
         "metrics": {WL: 1000.0, ECP: 5.0, "violations": 0}, "reward": 0.0, "status": "done", "error": None,
         "started": 0.0, "ended": 0.0, "seconds": 1.0})
    _send(rec, "t1", _result(950.0, 5.2, 0.01, run_id="r1"))
    _send(rec, "t2", _result(900.0, 5.6, 0.04, run_id="r2"))  # the best reward
    _send(rec, "t3", _result(990.0, 5.7, -0.02, run_id="r3"))  # beaten by t1 on both
    _send(rec, "t4", _result(10.0, 1.0, FAIL, status="failed", run_id="r4"))
    _send(rec, "t5", _result(1200.0, None, -0.9, final=False, stage="place", run_id="r5"))
    _send(rec, "t6", {}, error="the trial's Ray worker failed")
    return store, run, rec


def test_fronts_of_a_tuner_folder_and_the_cli(experiment, capsys):
    store, run, _ = experiment
    f = run_fronts(run.dir)["counter"]
    assert [p["run_id"] for p in f.front] == ["r2", "r1"] and f.best_index == 2
    assert f.skipped == {"failed": 2, "stopped": 1} and f.baseline["values"] == [1000.0, 5.0]
    assert any("* the best-reward trial" in line for line in format_front(f))

    from engine.cli import main

    assert main(["--runs-dir", str(store.root), "rl-pareto", run.id]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "2 of 3 finished trials on the front; left out: 2 failed, 1 stopped" in out
    front_rows = [ln for ln in lines if ln.rstrip().endswith((" r1", " r2"))]
    assert len(front_rows) == 2 and front_rows[0].startswith(" *") and "900" in front_rows[0]
    assert "default knobs: Routed wirelength 1,000" in out
    assert main(["--runs-dir", str(store.root), "rl-pareto", "--json"]) == 0  # latest run by default
    data = json.loads(capsys.readouterr().out)
    got = data["fronts"]["counter"]
    assert data["run"] == run.id and [p["index"] for p in got["front"]] == [2, 1]
    assert [o["name"] for o in got["objectives"]] == [WL, ECP]
    assert main(["--runs-dir", str(store.root), "rl-pareto", run.id, "--design", "uart"]) == 1
    assert "no trials of design uart" in capsys.readouterr().err


def _charts(at) -> dict[str, dict]:
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        for t in spec["data"]:
            out[t.get("name")] = t
    return out


def test_page_draws_the_front_and_follows_new_trials(experiment):
    from streamlit.testing.v1 import AppTest

    store, run, rec = experiment
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    traces = _charts(at)
    trials, front, best = traces["tpe · trials"], traces["tpe · Pareto front (2)"], traces["tpe · best reward"]
    scale = [Objective.of(WL).scale, Objective.of(ECP).scale]
    assert sorted(trials["x"]) == [900.0 * scale[0], 950.0 * scale[0], 990.0 * scale[0]]
    assert 10.0 * scale[0] not in trials["x"]  # the failed trial's partial metrics are not plotted
    assert front["x"] == [900.0 * scale[0], 950.0 * scale[0]] and front["line"]["shape"] == "hv"
    assert front["y"] == [pytest.approx(5.6 * scale[1]), pytest.approx(5.2 * scale[1])]
    assert best["x"] == [900.0 * scale[0]] and best["marker"]["symbol"] == "star"
    assert traces["default knobs"]["x"] == [1000.0 * scale[0]]
    text = " ".join(m.value for m in at.markdown)
    assert "**2** on the Pareto front" in text and "Pareto front of routed wirelength vs effective clock" in text
    captions = " ".join(c.value for c in at.caption)
    assert "Left out: 2 failed, 1 stopped." in captions and "up to 2 at once" in captions

    # Two parallel trials land while the page is open: the next poll shows both (the cache follows the files).
    _send(rec, "t7", _result(850.0, 6.0, 0.02, run_id="r7"))
    _send(rec, "t8", _result(940.0, 5.1, 0.05, run_id="r8"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    traces = _charts(at)
    front = traces["tpe · Pareto front (3)"]
    assert front["x"] == [850.0 * scale[0], 900.0 * scale[0], 940.0 * scale[0]]  # r1 is now beaten by r8
    assert traces["tpe · best reward"]["x"] == [940.0 * scale[0]]
    assert len(traces["tpe · trials"]["x"]) == 5
    table = next(d.value for d in at.dataframe if "searcher" in d.value)
    assert list(table["trial"])[:2] == [8, 7]  # the newest trials head the table too


def test_page_says_why_there_is_no_front(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    cfg = OptimizeConfig(agent="random", budget=2, env=EnvConfig(eval=EvalConfig(until="place")))
    run = store.create(optimize_run_config(["counter"], cfg), design="counter", kind="optimize")
    rec = Recorder(run.dir, "random")
    _send(rec, "t1", _result(None, None, 0.01, stage="place", run_id="r1"))
    run.set_status("done")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "tpe · trials" not in _charts(at) and "random · trials" not in _charts(at)
    note = [c.value for c in at.caption if c.value.startswith("No front for random")]
    assert note and ECP in note[0]
