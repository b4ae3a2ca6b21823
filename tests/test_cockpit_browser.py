"""The cockpit in a real browser (Debian's chromium through Playwright) against `streamlit run cockpit/app.py`:
a flow started from the Design page reaches the end and its layout appears, a reload keeps the run, the placement
replay slider changes the picture, cancel marks a run cancelled, broken Verilog shows Yosys' message.
Screenshots of every chapter go to tests/screenshots/ (ignored by git)."""
from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
from conftest import browser_page
from playwright.sync_api import expect

from engine.flow.flow import STEP_IMPL
from engine.flow.registry import STEP_IDS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "screenshots"
CHAPTERS = ["synthesis", "floorplan", "placement", "routing", "timing", "gdsii"]
LAYOUT_PAGE = {"floorplan": "floorplan", "place": "placement", "route": "routing", "timing": "timing", "gds": "gdsii"}


@pytest.fixture(scope="module")
def page(browser, cockpit_app):
    with browser_page(browser, 950, 90_000) as pg:  # generous: a loaded 2-core machine draws the first chart slowly
        yield pg


def _goto(page, app, path: str = "", *, chart: bool = False) -> None:
    page.goto(f"{app.url}/{path}")
    page.get_by_role("heading").first.wait_for()
    if chart:
        page.locator(".js-plotly-plot").first.wait_for()
    page.wait_for_timeout(1000)  # let the last elements settle


def _wait_status(page, app, run_id: str, timeout_ms: int) -> str:
    """Wait until the run has ended on disk and the page shows its ending (the live panel polls the folder)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while _info(app, run_id)["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} did not end in time"
        time.sleep(0.5)
    text = {"done": r"^The flow finished\.", "failed": r"^Failed in ", "cancelled": r"^Cancelled\."}[
        _info(app, run_id)["status"]]
    done = page.get_by_text(re.compile(text))
    done.first.wait_for(timeout=60_000)
    return done.first.inner_text()


def _start_run(page) -> str:
    """Press "Run the flow" and wait until the address names a new run; returns its id."""
    before = re.search(r"[?&]run=([^&]+)", page.url)
    before = before.group(1) if before else None
    page.get_by_role("button", name="Run the flow").click()
    page.wait_for_url(lambda url: (m := re.search(r"[?&]run=([^&]+)", url)) is not None and m.group(1) != before)
    return _run_id(page)


def _run_id(page) -> str:
    m = re.search(r"[?&]run=([^&]+)", page.url)
    assert m, f"no run in the address: {page.url}"
    return m.group(1)


def _info(app, run_id: str) -> dict:
    return json.loads((app.runs_dir / run_id / "run.json").read_text())


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _available_steps() -> list[str]:
    """Steps whose module exists in this tree (the engine lands step by step; the test follows it)."""
    out = []
    for sid in STEP_IDS:
        if importlib.util.find_spec(STEP_IMPL[sid].split(":")[0]) is None:
            break
        out.append(sid)
    return out


def test_flow_from_design_page_reaches_the_end_and_shows_the_layout(page, cockpit_app):
    _goto(page, cockpit_app)
    steps = _available_steps()
    if len(steps) < len(STEP_IDS):  # run up to the last step that exists: move the "Run up to" slider back
        slider = page.locator("[data-testid='stSlider']").filter(has_text="Run up to").get_by_role("slider")
        slider.focus()
        slider.press("End")
        for _ in range(len(STEP_IDS) - len(steps)):
            slider.press("ArrowLeft")
        page.wait_for_timeout(500)
    run_id = _start_run(page)
    page.get_by_text(re.compile(r"Synthesis · ")).first.wait_for()  # a progress bar per step
    _shot(page, "01_design_running")
    status = _wait_status(page, cockpit_app, run_id, 300_000)
    info = _info(cockpit_app, run_id)
    assert status == "The flow finished.", f"{status} / {info.get('error')}"
    _shot(page, "01_design")
    last = [s for s in info["steps"] if s in LAYOUT_PAGE][-1]
    # The last chapter with a layout shows it (GDSII once the flow has it).
    _goto(page, cockpit_app, f"{LAYOUT_PAGE[last]}?run={run_id}", chart=True)
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 1
    # A reload (or a new tab on the same address) shows the same run.
    page.reload()
    page.get_by_role("heading").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert _run_id(page) == run_id
    expect(page.get_by_role("combobox", name="Run")).to_have_value(re.compile(f"^{info['design']} · done"))
    # Every chapter, for the record (looked at by a person): a tall window so the whole page is in the picture.
    page.set_viewport_size({"width": 1500, "height": 2100})
    for name in CHAPTERS:
        _goto(page, cockpit_app, f"{name}?run={run_id}", chart=name not in ("demo", "compare"))
        assert not page.get_by_text("Traceback").count()
        _shot(page, f"chapter_{name}")
    page.set_viewport_size({"width": 1500, "height": 950})


@pytest.fixture(scope="module")
def placed_run(cockpit_app) -> str:
    """A finished run with placement frames in the app's store (the one the first test made, else a new one)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(cockpit_app.runs_dir)
    for row in store.list(kind="flow"):
        run = store.get(row["id"])
        if row["status"] == "done" and (run.dir / "03-place" / "frames").is_dir():
            return run.id
    cfg = resolve("counter").flow_config()
    run = run_flow(cfg, store, until="route")
    assert run.status == "done", run.info().get("error")
    return run.id


def test_placement_replay_slider_changes_the_picture(page, cockpit_app, placed_run):
    # The replay is the placement player (cockpit/components, drawn in the browser; tests/test_placement_player.py)
    _goto(page, cockpit_app, f"placement?run={placed_run}")
    player = page.frame_locator("iframe[title*='placement_player']")
    root = player.locator("#player[data-mode='replay']")
    root.wait_for()
    slider = player.get_by_role("slider", name="Frame", exact=True)
    if root.get_attribute("data-playing") == "1":  # the replay starts by itself: stop it before stepping
        player.get_by_role("button", name=re.compile("Pause")).click()
        expect(root).to_have_attribute("data-playing", "0")
    slider.focus()
    slider.press("Home")  # the first frame: every cell still near the centre
    expect(root).to_have_attribute("data-frame", "0")
    status = player.locator("#status")
    expect(status).to_contain_text("iteration")
    first, before = status.inner_text(), player.locator("#c-cells").evaluate("c => c.toDataURL()")
    for _ in range(3):
        slider.press("ArrowRight")
    # three steps on (an auto-replay tick on a busy machine may add one)
    expect(root).to_have_attribute("data-frame", re.compile(r"^([3-9]|[1-9]\d+)$"))
    expect(status).not_to_have_text(first)
    assert player.locator("#c-cells").evaluate("c => c.toDataURL()") != before
    _shot(page, "04_placement_replay")


def test_broken_verilog_shows_the_tools_message(page, cockpit_app):
    _goto(page, cockpit_app)
    page.get_by_text("Upload Verilog").click()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
        str(ROOT / "tests" / "data" / "bad_syntax.v"))
    page.get_by_text("bad_syntax.v").first.wait_for()
    run_id = _start_run(page)
    status = _wait_status(page, cockpit_app, run_id, 60_000)
    assert status.startswith("Failed in Synthesis")
    expect(page.get_by_text("Fix the Verilog", exact=False).first).to_be_visible(timeout=60_000)
    body = page.locator("[data-testid='stMain']").inner_text()
    assert "syntax error" in body.lower() and "line" in body.lower()
    assert "Fix the Verilog" in body  # the explanation says what to change
    assert "Traceback" not in body
    _shot(page, "01_design_broken_verilog")


def test_cancel_marks_the_run_cancelled(page, cockpit_app):
    _goto(page, cockpit_app)
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Example").first
    box.click()
    page.get_by_role("option", name=re.compile(r"^rv32e")).click()
    run_id = _start_run(page)
    page.get_by_role("button", name="Cancel run").click()
    status = _wait_status(page, cockpit_app, run_id, 60_000)
    assert status.startswith("Cancelled")
    assert _info(cockpit_app, run_id)["status"] == "cancelled"
    _shot(page, "01_design_cancelled")
