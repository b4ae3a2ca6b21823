"""The design a person picks on the Design page is the design that runs.

In a real browser (Debian's chromium through Playwright) on a fresh app of its own (a new server over an empty run
store, as on CI): the first run is of the default example, then a non-default example is picked and started, once
after the page has rerun with the choice and once clicked at once; each new run's run.json names the picked design
and its files, and the address moves to it. The address already names the previous run when the button is
pressed, so the new run is found as the run that was not there before, never read off the address too early.

And without a browser (Streamlit's AppTest): the choice holds when the example list changes between the pick and
the click (an example folder added while the page is open), the case where an unkeyed select box would reset to
the first example in the very rerun that starts the flow.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import browser_page, cancel_jobs, served_app
from playwright.sync_api import expect

import engine.designs
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
DESIGN_PAGE = ROOT / "pages" / "01_design.py"
PICKS = ("uart", "alu")  # not the default (counter), small: their synthesis ends in seconds


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    """A cockpit of this module's own: a new server over an empty run store (the shared app has runs by now)."""
    runs = tmp_path_factory.mktemp("choice-runs")
    with served_app(runs, runs.parent / "choice-streamlit.log", timeout_s=90) as app:
        yield app.url, runs


def _runs(runs: Path) -> set[str]:
    return {p.name for p in runs.iterdir() if (p / "run.json").is_file()}


def _address_run(url: str) -> str | None:
    m = re.search(r"[?&]run=([^&]+)", url)
    return m.group(1) if m else None


def _idle(page) -> None:
    """Wait until Streamlit has no rerun in flight (its status widget gone)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=30_000)
    page.wait_for_timeout(300)


def _start(page, runs: Path) -> dict:
    """Press "Run the flow"; the run.json of the one run that appears, once the address has moved to it."""
    before, shown = _runs(runs), _address_run(page.url)
    page.get_by_role("button", name="Run the flow").click()
    page.wait_for_url(lambda url: _address_run(url) not in (None, shown))
    new = _runs(runs) - before
    assert len(new) == 1, f"one press, one run: {sorted(new)}"
    (run_id,) = new
    assert _address_run(page.url) == run_id, (page.url, run_id)
    return json.loads((runs / run_id / "run.json").read_text())


def _spec_files(name: str) -> list[str]:
    return sorted(engine.designs.resolve(name).files)


def _example(at):
    return next(s for s in at.selectbox if s.label == "Example")


@pytest.mark.browser
def test_the_picked_example_is_the_design_that_runs(browser, fresh_app):
    url, runs = fresh_app
    with browser_page(browser, 1100, 60_000) as page:
        page.goto(url)
        page.get_by_role("heading").first.wait_for()
        until = page.locator("[data-testid='stSlider']").filter(has_text="Run up to").get_by_role("slider")
        until.focus()
        until.press("Home")  # synthesis only: the runs end in seconds
        expect(until).to_have_attribute("aria-valuetext", re.compile("Synthesis"))
        _idle(page)
        first = _start(page, runs)  # the default example, and now the address names a run
        assert first["design"] == "counter" and first.get("until") == "synth", first["design"]
        _idle(page)
        picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Example").first
        for pick, wait in zip(PICKS, (True, False)):  # after the page has rerun with the choice / clicked at once
            picker.click()
            page.get_by_role("option", name=re.compile(rf"^{pick} ")).click()
            expect(picker.get_by_role("combobox")).to_have_value(re.compile(rf"^{pick} "))
            if wait:
                _idle(page)
            info = _start(page, runs)
            assert info["design"] == pick, f"picked {pick}, the run is of {info['design']} (waited: {wait})"
            assert info["config"]["top"] == engine.designs.resolve(pick).top
            assert sorted(info["config"]["design_files"]) == _spec_files(pick)
            assert info.get("until") == "synth"
            _idle(page)
            # the page shows the new run and still offers the picked example
            expect(page.get_by_role("combobox", name="Run")).to_have_value(re.compile(rf"^{pick} · "))
            expect(picker.get_by_role("combobox")).to_have_value(re.compile(rf"^{pick} "))
        assert not page.get_by_text("Traceback").count()


def test_the_choice_holds_when_the_example_list_changes(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    designs = tmp_path / "designs"
    designs.mkdir()
    for folder in sorted(engine.designs.DESIGNS_DIR.iterdir()):
        if (folder / "design.json").is_file():
            (designs / folder.name).symlink_to(folder)
    runs = tmp_path / "runs"
    monkeypatch.setattr(engine.designs, "DESIGNS_DIR", designs)
    monkeypatch.setenv("CDA_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(DESIGN_PAGE), default_timeout=60)
    at.run()
    assert not at.exception
    _example(at).select(PICKS[0]).run()
    [s for s in at.select_slider if s.label == "Run up to"][0].set_value("synth").run()
    assert _example(at).value == PICKS[0]
    (designs / "aa_extra").symlink_to(engine.designs.DESIGNS_DIR / "counter")  # an example appears meanwhile
    try:
        [b for b in at.button if b.label == "Run the flow"][0].click().run()
        assert not at.exception
        rows = RunStore(runs).list()
        assert len(rows) == 1 and rows[0]["design"] == PICKS[0], [r["design"] for r in rows]
        assert any(o.startswith("aa_extra") for o in _example(at).options)  # the list did change
        assert _example(at).value == PICKS[0]
    finally:
        cancel_jobs(runs)
