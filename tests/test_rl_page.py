"""The Optimizer page under AppTest: curves and best point of real optimisation runs; a start through jobs."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.jobs import JobQueue
from engine.rl.env import EnvConfig
from engine.rl.evaluate import EvalConfig
from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
from engine.runs import RunStore

PAGE = Path(__file__).resolve().parent.parent / "pages" / "08_optimizer.py"
FP_KNOBS = ["floorplan.utilization", "floorplan.aspect_ratio"]


@pytest.fixture()
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_page_without_runs_offers_the_start_form(runs_root):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value.startswith("8 · Optimizer")
    assert any("No optimisation yet" in i.value for i in at.info)


def test_page_shows_curves_best_knobs_and_starts_a_job(runs_root):
    store = RunStore(runs_root)
    for agent in ("random", "tpe"):
        run = optimize(["counter"], OptimizeConfig(agent=agent, budget=3, env=EnvConfig(
            knobs=FP_KNOBS, eval=EvalConfig(until="floorplan"))), store)
        assert run.status == "done"
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "**random** 3 evaluations" in text and "**tpe** 3 evaluations" in text
    assert any(s.value.startswith("Best point") for s in at.subheader)
    knobs = at.dataframe[0].value
    assert set(knobs["knob"]) == set(FP_KNOBS)

    # Start one job from the form and let the worker finish it.
    at.multiselect[0].set_value(["random"])
    at.number_input[0].set_value(2)
    at.selectbox[1].set_value("floorplan")
    at.multiselect[1].set_value(FP_KNOBS)
    before = {r["id"] for r in store.list(kind="optimize")}
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    # The run the click started, found by id rather than by creation time (runs made within one second tie).
    new = [r["id"] for r in store.list(kind="optimize") if r["id"] not in before]
    assert len(new) == 1, f"expected one new optimize run, found {new}"
    newest = store.get(new[0])
    assert JobQueue(store).wait(newest.id, timeout_s=120) == "done"
    assert len(read_optimize_run(newest)["curve"]) == 2
