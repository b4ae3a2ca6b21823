"""Cockpit page logic with Streamlit's AppTest (no browser): every chapter renders a real run, the Design page
starts a real job, failures are explained with a knob to change."""
from __future__ import annotations

from pathlib import Path

import pytest
from page_helpers import app_page
from streamlit.testing.v1 import AppTest

from cockpit import explain
from engine.config import FlowConfig
from engine.flow.flow import run_flow
from engine.jobs import JobQueue
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "pages").glob("*.py"))
COUNTER = ROOT / "assets" / "designs" / "counter" / "counter.v"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_page_renders_a_run_and_no_run(runs_dir, page):
    _, run_id = runs_dir
    for rid in (run_id, None):
        at = app_page(page, rid)
        assert not at.exception, f"{page.name} raised: {[e.value for e in at.exception]}"
        assert at.title, f"{page.name} has no title"


def test_story_lines_carry_the_runs_numbers(runs_dir):
    _, run_id = runs_dir
    at = app_page(ROOT / "pages" / "02_synthesis.py", run_id)
    text = " ".join(m.value for m in at.markdown)
    assert "What this step does" in text and "What just happened" in text and "What to look at" in text
    assert "counter" in text and "cells" in text
    at = app_page(ROOT / "pages" / "03_floorplan.py", run_id)
    assert "rows" in " ".join(m.value for m in at.markdown)
    assert any(m.label == "Utilisation" for m in at.metric)


def test_design_page_starts_a_job(runs_dir):
    root, _ = runs_dir
    before = {r["id"] for r in RunStore(root).list()}
    at = AppTest.from_file(str(ROOT / "pages" / "01_design.py"), default_timeout=60)
    at.run()
    assert not at.exception
    [s for s in at.select_slider if s.label == "Run up to"][0].set_value("floorplan").run()
    [b for b in at.button if b.label == "Run the flow"][0].click().run()
    assert not at.exception
    new = [r for r in RunStore(root).list() if r["id"] not in before]
    assert len(new) == 1 and new[0]["design"] == "counter"
    assert at.query_params["run"] == new[0]["id"]
    assert JobQueue(RunStore(root)).wait(new[0]["id"], timeout_s=120) == "done"
    assert list(RunStore(root).get(new[0]["id"]).metrics()) == ["synth", "floorplan"]


def test_failures_are_explained_with_a_knob():
    info = {"status": "failed", "failed_step": "synth",
            "error": "top module 'nope' not found; the design defines: counter",
            "config": {"design_files": [str(COUNTER)], "top": "nope"}}
    (p,) = explain.problems(info, {})
    assert p.step == "synth" and p.patch == {"top": "counter"} and "top module" in p.cause
    info = {"status": "done", "config": {"clock_ns": 5.0, "floorplan": {"utilization": 0.8}, "route": {"layers": 4}}}
    metrics = {"route": {"route__net__unrouted": 3}, "timing": {"timing__setup__ws": -1.5}}
    probs = {p.step: p for p in explain.problems(info, metrics)}
    assert probs["route"].patch == {"floorplan.utilization": 0.6, "route.layers": 5}
    assert probs["timing"].patch["clock_ns"] > 6.5
    patched = explain.apply_patch(info["config"], probs["route"].patch)
    assert patched["floorplan"]["utilization"] == 0.6 and info["config"]["floorplan"]["utilization"] == 0.8
    assert explain.judge("timing__setup__ws", -0.2, {})[0] == "poor"
    assert explain.value_text("floorplan__utilization", 0.5968) == "59.7 %"


def test_failed_run_is_explained_and_rerun_with_the_knob(runs_dir):
    root, _ = runs_dir
    store = RunStore(root)
    cfg = FlowConfig(design_files=[str(COUNTER)], top="nope", clock_port="clk")
    failed = run_flow(cfg, store, until="floorplan")
    assert failed.status == "failed"
    at = app_page(ROOT / "pages" / "01_design.py", failed.id)
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "what went wrong" in text and "nope" in text and "Likely cause" in text
    (button,) = [b for b in at.button if b.label.startswith("Rerun with")]
    assert "top → counter" in button.label
    before = {r["id"] for r in store.list()}
    button.click().run()
    assert not at.exception
    (new,) = [r for r in store.list() if r["id"] not in before]
    rerun = store.get(new["id"])
    assert rerun.config["top"] == "counter" and rerun.info()["label"].startswith("rerun: top=counter")
    JobQueue(store).cancel(rerun.id)
    assert JobQueue(store).wait(rerun.id, timeout_s=60) in ("cancelled", "done")
