"""The chat's what-if in a real browser (Debian's chromium through Playwright) against `streamlit run cockpit/app.py`:
the answer comes at once with a link to the run it started, the page follows the run by itself (no click) and
shows the comparison when it ends, and a reload of the address (?chat=) brings the whole conversation back."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import browser_page
from playwright.sync_api import expect

from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.runs import RunStore

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parent / "screenshots"
QUESTION = "What happens if I set the target density to 0.7?"
WARM_UP = "What does the target density knob do?"


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _status(app, run_id: str) -> str:
    return json.loads((app.runs_dir / run_id / "run.json").read_text())["status"]


def test_what_if_answers_at_once_then_the_page_follows_the_run(browser, cockpit_app):
    config = resolve("counter").flow_config()
    config.place.max_iterations = 300
    base = run_flow(config, RunStore(cockpit_app.runs_dir), until="timing")  # a what-if through timing: seconds
    assert base.status == "done"
    with browser_page(browser, 1100, 120_000) as page:
        page.goto(f"{cockpit_app.url}/specialists?run={base.id}")
        page.get_by_role("heading", name=re.compile("Specialists")).first.wait_for()
        page.get_by_label("Answer with").click()  # answer without a model: this test is about the run
        page.get_by_role("option", name="no model (run facts, engine and docs)").click()
        page.get_by_text("Answers start from run").first.wait_for()
        box = page.get_by_placeholder("Ask about the flow, a knob, a metric, or your last run")
        box.fill(WARM_UP)  # the first answer loads the knowledge base; the what-if then answers in seconds
        box.press("Enter")
        page.get_by_text(re.compile(r"No model used")).first.wait_for()
        box.fill(QUESTION)
        box.press("Enter")

        going = page.get_by_text(re.compile(r"is going on; the comparison with run"))
        try:
            going.first.wait_for()
        except Exception:
            _shot(page, "specialists-whatif-failed")
            raise
        _shot(page, "specialists-whatif-pending")
        link = page.locator("a", has_text=re.compile(r"^run \d{8}-\d{6}-counter-[0-9a-f]{4}$")).first
        new_id = link.inner_text().removeprefix("run ")
        assert link.get_attribute("href").endswith(f"placement?run={new_id}")
        assert new_id != base.id
        assert re.search(r"[?&]chat=[0-9a-f]{16}", page.url), page.url

        deadline = time.monotonic() + 600
        while _status(cockpit_app, new_id) in ("queued", "running"):
            assert time.monotonic() < deadline, "the what-if run did not end"
            time.sleep(0.5)
        ended = time.monotonic()
        assert _status(cockpit_app, new_id) == "done"
        compared = page.get_by_text(re.compile(rf"run {new_id}, compared with run {base.id}"))
        compared.first.wait_for(timeout=30_000)  # the fragment's next tick, with no click
        lag = time.monotonic() - ended
        print(f"what-if run {new_id}: the comparison appeared {lag:.1f} s after the run ended")
        assert lag < 15, f"the comparison appeared {lag:.1f} s after the run ended"
        expect(going).to_have_count(0)
        expect(page.get_by_text("Engine: what_if (ok)")).to_have_count(1, timeout=20_000)  # no stale copy left
        _shot(page, "specialists-whatif-done")

        page.reload()  # a refresh loses nothing: the address's chat id brings the conversation back
        page.get_by_text(QUESTION).first.wait_for()
        page.get_by_text(WARM_UP).first.wait_for()
        page.get_by_text(re.compile(rf"run {new_id}, compared with run {base.id}")).first.wait_for()
        expect(page.get_by_text("Engine: what_if (ok)")).to_have_count(1)
        assert page.get_by_text(re.compile(r"is going on")).count() == 0

