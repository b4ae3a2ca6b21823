"""A real placement watched live in a real browser (Debian's chromium through Playwright, conftest's app): the Design
page starts a flow up to placement on an example design, the Placement chapter follows it while the placer runs
(the player is live and its iteration number climbs), then shows the stages after global placement on their own
(global -> legal -> detailed, with the stages table). And Demo mode keeps the presenter's pace in the address.

The design is rv32e (6,694 cells, the largest example): the small ones place in under half a second, less than one
poll of the page, so there would be nothing live to look at. Screenshots go to tests/screenshots/live_*.png."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import browser_page
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "screenshots"
DESIGN = "rv32e"


@pytest.fixture(scope="module")
def page(browser, cockpit_app):
    with browser_page(browser, 1300, 60_000) as pg:
        yield pg


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"live_{name}.png"), full_page=True)


def _info(app, run_id: str) -> dict:
    return json.loads((app.runs_dir / run_id / "run.json").read_text())


def _idle(page) -> None:
    """Wait until Streamlit has no rerun in flight (its status widget gone), then a little more."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=30_000)
    page.wait_for_timeout(500)


def _address_run(url: str) -> str | None:
    m = re.search(r"[?&]run=([^&]+)", url)
    return m.group(1) if m else None


def _player_state(page) -> dict | None:
    """What the player shows now (window.__player and its data-* attributes), None while it is not mounted."""
    for fr in page.frames:
        if "placement_player" in fr.url:
            try:
                return fr.evaluate("""() => { const S = window.__player, r = document.getElementById('player');
                    return {mode: S.mode, live: S.live, frames: S.frames.length, total: Number(r.dataset.frames),
                            it: r.dataset.iteration === undefined ? null : Number(r.dataset.iteration),
                            stage: r.dataset.stage || null}; }""")
            except Exception:  # noqa: BLE001 - the frame is being replaced (a page rerun): look again
                return None
    return None


def test_a_real_placement_is_watched_live_then_its_stages_are_shown(page, cockpit_app):
    t0 = time.monotonic()
    page.goto(cockpit_app.url)
    page.get_by_role("heading").first.wait_for()
    picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Example").first
    picker.click()
    page.get_by_role("option", name=re.compile(rf"^{DESIGN}")).click()
    # the page has rerun with the choice (a loaded machine is slow to; the run would be of the old design)
    expect(picker.get_by_role("combobox")).to_have_value(re.compile(rf"^{DESIGN}"))
    _idle(page)  # the rerun with the new design has finished: the run button now starts that design
    until = page.locator("[data-testid='stSlider']").filter(has_text="Run up to").get_by_role("slider")
    until.focus()
    until.press("End")
    for _ in range(20):  # back to Placement: the run ends there, the test needs no routing
        if "Placement" in until.get_attribute("aria-valuetext", timeout=5_000) or "":
            break
        until.press("ArrowLeft")
    expect(until).to_have_attribute("aria-valuetext", re.compile("Placement"))
    _idle(page)
    # The address may already name a run (the sidebar selects the newest one of the app's store, which earlier
    # browser tests filled): the new run is the one the address names after the click, not whatever it names now.
    before = _address_run(page.url)
    page.get_by_role("button", name="Run the flow").click()
    page.wait_for_url(lambda url: _address_run(url) not in (None, before))
    run_id = _address_run(page.url)
    info = _info(cockpit_app, run_id)
    assert info["design"] == DESIGN and info["config"]["top"] == DESIGN, (run_id, info["design"])
    assert info.get("until") == "place", info.get("until")
    # Straight to the Placement chapter: it waits for the step, then follows it.
    page.goto(f"{cockpit_app.url}/placement?run={run_id}")
    page.get_by_role("heading", name=re.compile("Placement")).first.wait_for()
    seen: list[dict] = []
    shot = False
    while _info(cockpit_app, run_id)["status"] in ("queued", "running"):
        assert time.monotonic() - t0 < 90, f"the run did not end in time; the player showed {seen[-3:]}"
        s = _player_state(page)
        if s is not None and s["mode"] == "live":
            seen.append({**s, "t": time.monotonic() - t0})
            if not shot and len(seen) > 5:
                shot = True
                _shot(page, "placement_running")
        page.wait_for_timeout(100)
    info = _info(cockpit_app, run_id)
    assert info["status"] == "done", info.get("error")
    # Live: the player followed the placer while it ran, its iteration number climbing, never going back.
    its = [s["it"] for s in seen if s["it"] is not None]
    assert len(set(its)) >= 4, f"live frames seen: {its}"
    assert its == sorted(its), its
    assert max(s["frames"] for s in seen) >= 4
    live_span = seen[-1]["t"] - seen[0]["t"]
    print(f"live for {live_span:.1f} s: iterations {its[0]} -> {its[-1]} ({len(set(its))} distinct), "
          f"frames received up to {max(s['frames'] for s in seen)}")
    # Ended: the page shows the stages after global placement as their own pictures and in a table.
    frames = len(list((cockpit_app.runs_dir / run_id / "03-place" / "frames").glob("*.npz")))
    player = page.frame_locator("iframe[title*='placement_player']")
    root = player.locator("#player")
    expect(root).to_have_attribute("data-frames", str(frames + 2), timeout=30_000)   # frames, legal, detailed
    table = page.locator("[data-testid='stTable']").filter(has_text="legalisation (Tetris + Abacus)")
    expect(table).to_contain_text("detailed placement")
    with np.load(cockpit_app.runs_dir / run_id / "03-place" / "stages.npz") as z:   # legalisation's displacement
        mean, mx, hpwl_legal = float(z["disp_legal_mean"]), float(z["disp_legal_max"]), float(z["hpwl_legal"])
    expect(table).to_contain_text(f"{mean:.2f} / {mx:.2f}")
    expect(table).to_contain_text(f"{hpwl_legal:,.0f}")
    print(f"legalisation moved cells {mean:.2f} um on average, {mx:.2f} um at most; legal HPWL {hpwl_legal:,.0f} um")
    for name, stage in (("Legal", "legal"), ("Detailed", "detailed"), ("Global", "global")):
        player.get_by_role("button", name=f"Show stage {name}").click()
        expect(root).to_have_attribute("data-stage", stage)
        if stage != "global":
            expect(player.locator("table.stages tr.on")).to_have_attribute("data-row", stage)
            _shot(page, f"stage_{stage}")
    expect(player.locator("#status")).to_contain_text("iteration")
    table.scroll_into_view_if_needed()
    table.screenshot(path=str(SHOTS / "live_stages_table.png"))
    player.locator("#stage-text").screenshot(path=str(SHOTS / "live_player_stages.png"))
    assert not page.get_by_text("Traceback").count()
    print(f"the whole test took {time.monotonic() - t0:.1f} s")


def test_demo_pace_is_kept_in_the_address(page, cockpit_app):
    page.goto(f"{cockpit_app.url}/demo")
    page.get_by_role("heading", name="Demo mode").wait_for()
    page.get_by_role("button", name="Pace").click()
    dwell = page.get_by_role("slider", name="Seconds a chapter stays")
    dwell.focus()
    dwell.press("End")                                     # 30 s a chapter
    page.wait_for_url(re.compile(r"[?&]dwell=30(&|$)"))
    pace = page.get_by_role("slider", name="Placement replay, seconds a frame")
    pace.focus()
    pace.press("Home")                                     # 0.2 s a frame
    page.wait_for_url(re.compile(r"[?&]pace=0\.2(&|$)"))
    url = page.url
    page.reload()                                          # a refresh keeps both
    page.get_by_role("heading", name="Demo mode").wait_for()
    page.get_by_role("button", name="Pace").click()
    expect(page.get_by_role("slider", name="Seconds a chapter stays")).to_have_attribute("aria-valuetext", "30 s")
    expect(page.get_by_role("slider", name="Placement replay, seconds a frame")).to_have_attribute(
        "aria-valuetext", "0.2 s")
    assert re.search(r"[?&]dwell=30", page.url) and re.search(r"[?&]pace=0\.2", page.url), (url, page.url)
