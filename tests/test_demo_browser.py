"""Demo mode in a real browser (Debian's chromium through Playwright, the app and browser fixtures of conftest.py):
one click on Start, then no more clicks: the chapters advance by themselves from Synthesis to GDSII in under 60 s,
each with its three lines and its maps (placement player, clock tree, congestion, layout); then Back, Pause and
Resume hold or move the narration as the presenter asks, and a reload keeps the chapter and the run.
Screenshots of each chapter go to tests/screenshots/demo_*.png."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import browser_page
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "screenshots"
ORDER = ["Synthesis", "Floorplan", "Placement", "Clock tree", "Routing", "Timing", "GDSII"]
CHAPTER = re.compile(r"^Chapter (\d+) of (\d+): ([^·]+?)( · paused)?$")
MAPS = {  # what each chapter must show at some point while it is on screen
    "Floorplan": "[data-testid='stPlotlyChart']",
    "Placement": "iframe[title*='placement_player']",
    "Clock tree": "[data-testid='stPlotlyChart']",
    "Routing": "[data-testid='stPlotlyChart']",
    "GDSII": "[data-testid='stPlotlyChart']",
}


@pytest.fixture(scope="module")
def page(browser, cockpit_app):
    with browser_page(browser, 1100, 60_000) as pg:
        yield pg


def _chapter(page) -> tuple[str, bool]:
    """(title, paused) of the chapter the progress line names now."""
    text = page.get_by_text(CHAPTER).first.inner_text().strip()
    m = CHAPTER.match(text)
    assert m, text
    return m.group(3).strip(), bool(m.group(4))


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"demo_{name}.png"))


def _wait_chapter(page, title: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _chapter(page)[0] != title:
        assert time.monotonic() < deadline, f"still on {_chapter(page)[0]}, expected {title}"
        page.wait_for_timeout(250)


def test_demo_walks_to_gdsii_by_itself_and_pause_holds(page, cockpit_app):
    page.goto(f"{cockpit_app.url}/demo")
    page.get_by_role("heading", name="Demo mode").wait_for()
    assert _chapter(page)[0] == "The plan"
    page.get_by_role("button", name="Start the demo").click()
    t0 = time.monotonic()
    page.wait_for_url(re.compile(r"[?&]run="))
    seen: list[str] = []
    maps: set[str] = set()
    shots: set[str] = set()
    entered = time.monotonic()
    lines: dict[str, str] = {}
    while True:  # no clicks from here: the narration must move by itself
        title, paused = _chapter(page)
        assert not paused
        name = title.lower().replace(" ", "_")
        if not seen or seen[-1] != title:
            seen.append(title)
            entered = time.monotonic()
            if title not in MAPS:
                _shot(page, name)
        if title in MAPS and title not in maps and page.locator(MAPS[title]).count():
            maps.add(title)
            page.wait_for_timeout(500)  # let the chart draw before the picture
            _shot(page, name)
        if title == "Placement" and "replay" not in shots and time.monotonic() - entered > 3:
            shots.add("replay")  # the replay a few seconds in
            _shot(page, "placement_replay")
        box = page.locator("[data-testid='stMarkdownContainer'] p").filter(has_text="What just happened")
        if box.count():
            text = box.first.inner_text()
            if _chapter(page)[0] == title:  # the page did not move on while we read it
                lines[title] = lines.get(title, "") + "\n" + text
        if title == "GDSII" and "GDSII" in maps:
            break
        assert time.monotonic() - t0 < 75, f"the demo stalled on {title} after {seen}"
        page.wait_for_timeout(300)
    elapsed = time.monotonic() - t0
    print(f"demo reached GDSII in {elapsed:.1f} s; chapters {seen}")
    if seen[0] == "The plan":  # the page still showed the intro when the first poll looked
        seen.pop(0)
    assert seen == ORDER, seen  # every chapter, in order, each by itself
    assert elapsed < 60, f"the demo took {elapsed:.1f} s to reach GDSII"
    assert maps == set(MAPS), f"maps missing on {set(MAPS) - maps}"
    # the three lines followed the run: each chapter ended with its own numbers, not a waiting line
    assert "cells" in lines["Synthesis"] and "CLKBUF" in lines["Clock tree"] and "wire" in lines["Routing"]
    assert "slack" in lines["Timing"] or "timing is" in lines["Timing"]
    page.get_by_text(re.compile(r"^That was the whole flow")).wait_for()
    _shot(page, "gdsii_end")

    # Back pauses on Timing; it stays there well past the time a chapter waits before moving on.
    page.get_by_role("button", name="Back").click()
    _wait_chapter(page, "Timing", 20)
    page.wait_for_timeout(7000)
    assert _chapter(page) == ("Timing", True)
    # Back to Routing, Resume: it moves on to Timing by itself; Pause there holds it.
    page.get_by_role("button", name="Back").click()
    _wait_chapter(page, "Routing", 20)
    page.get_by_role("button", name="Resume").click()
    _wait_chapter(page, "Timing", 20)
    assert not _chapter(page)[1]
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text(CHAPTER).first).to_contain_text("paused")
    page.wait_for_timeout(7000)
    assert _chapter(page) == ("Timing", True)
    _shot(page, "timing_paused")
    # A reload keeps the chapter (in the address) and the run (on disk).
    url = page.url
    page.reload()
    page.get_by_role("heading", name="Demo mode").wait_for()
    _wait_chapter(page, "Timing", 20)
    assert re.search(r"[?&]run=", page.url) and page.url == url
    assert not page.get_by_text("Traceback").count()
