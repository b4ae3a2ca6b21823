"""Narration that follows the run: the "what just happened" and "what to look at" lines are pure functions of
(step, run state, step state, progress, failure), with their own words for every state; the opener on a real
page shows the state the run folder is in now; every chapter ends with a takeaway and a link to the next."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cockpit import story
from cockpit.story import Failure, failure_of, what_happened, what_to_look_at
from engine import diagnosis
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
PLANNED = ["synth", "floorplan", "place", "route", "timing", "gds"]
STALE = ("queued", "not reached", "has not started", "not include")


def _p(status, fraction=0.0, message="", seconds=None):
    return {"status": status, "fraction": fraction, "message": message, "seconds": seconds}


ROUTE_FAILED = Failure("route", "qrouter left 3 nets open.", "Too many wires for the tracks.", "Lower utilisation.",
                       "floorplan.utilization", "route.unrouted")


def test_no_run_and_queued():
    assert "no run is selected" in what_happened("place", None)
    assert "start one on the Design page" in what_to_look_at("place", None)
    for step in ("place", None):
        text = what_happened(step, "queued", None, {}, planned=PLANNED)
        assert "queued" in text and "nothing has run yet" in text
        assert "queue" in what_to_look_at(step, "queued")


def test_running_step_shows_its_progress_never_queued_or_not_reached():
    progress = {"synth": _p("done", 1.0, seconds=2.0), "floorplan": _p("done", 1.0),
                "place": _p("running", 0.42, "iteration 120 of 300, overflow 0.31")}
    text = what_happened("place", "running", progress["place"], progress, planned=PLANNED)
    assert text.startswith("Placement is running now (42 %: iteration 120 of 300, overflow 0.31)")
    assert not any(w in text for w in STALE)
    # the page's numbers of a finished placement are not shown while it runs again (stale), even if given
    assert "HPWL" not in what_happened("place", "running", progress["place"], progress, done_text="HPWL 5 um.")
    assert "update as Placement works" in what_to_look_at("place", "running", progress["place"], done_look="Play.")
    # no fraction yet: still running, 0 %
    assert "running now (0 %)" in what_happened("place", "running", _p("running"), {"place": _p("running")})


def test_running_run_before_and_after_this_step():
    progress = {"synth": _p("running", 0.3, "yosys: abc")}
    text = what_happened("route", "running", None, progress, planned=PLANNED)
    assert text == "Routing has not started yet: the run is on Synthesis now (30 %: yosys: abc)."
    assert "fills in by itself" in what_to_look_at("route", "running", None)
    progress = {"synth": _p("done", 1.0, seconds=3.2), "floorplan": _p("running", 0.5)}
    text = what_happened("synth", "running", progress["synth"], progress, done_text="Yosys mapped 40 cells.",
                         planned=PLANNED)
    assert text == "Yosys mapped 40 cells. The run carries on with Floorplan (50 %)."
    assert what_to_look_at("synth", "running", progress["synth"], done_look="the bar chart.") == "the bar chart."
    # the page has no numbers yet: the step's time
    assert what_happened("synth", "running", progress["synth"], progress).startswith("Synthesis finished in 3.2 s.")


def test_done_reused_skipped_and_not_in_run():
    progress = {"synth": _p("done", 1.0, seconds=1.5), "place": _p("reused", 1.0, seconds=0.0),
                "route": _p("skipped", 1.0)}
    assert what_happened("synth", "done", progress["synth"], progress, done_text="40 cells.") == "40 cells."
    assert "reused from an identical earlier step" in what_happened("place", "done", progress["place"], progress)
    assert what_happened("route", "done", progress["route"], progress) == "Routing was skipped in this run."
    text = what_happened("gds", "done", None, progress, planned=["synth", "floorplan"])
    assert text == "this run does not include GDSII: it runs up to Floorplan."
    # a step still marked running in a finished run (its end event was lost) is told as finished
    assert what_happened("place", "done", _p("running", 0.8), {}, done_text="HPWL 5 um.") == "HPWL 5 um."
    assert what_to_look_at("place", "done", _p("done"), done_look="the slider.") == "the slider."


def test_failed_here_before_and_after_with_cause_and_knob():
    progress = {"synth": _p("done", 1.0), "place": _p("done", 1.0), "route": _p("failed", 1.0)}
    here = what_happened("route", "failed", progress["route"], progress, ROUTE_FAILED, planned=PLANNED)
    assert here == ("Routing failed: qrouter left 3 nets open. Likely cause: Too many wires for the tracks. "
                    "Knob to turn: `floorplan.utilization`.")
    look = what_to_look_at("route", "failed", progress["route"], ROUTE_FAILED, done_look="the map.")
    assert "red box" in look and "`floorplan.utilization`" in look
    later = what_happened("timing", "failed", None, progress, ROUTE_FAILED, planned=PLANNED)
    assert later.startswith("the run failed in Routing before reaching Timing & power: qrouter left 3 nets open.")
    assert "Knob to turn: `floorplan.utilization`" in later
    earlier = what_happened("place", "failed", progress["place"], progress, ROUTE_FAILED, done_text="HPWL 9 um.")
    assert earlier == "HPWL 9 um. The run failed later, in Routing: qrouter left 3 nets open."
    # the failed step still marked running (killed worker): failed, not running
    killed = what_happened("route", "failed", _p("running", 0.6), {"route": _p("running", 0.6)}, ROUTE_FAILED)
    assert killed.startswith("Routing failed:") and "running now" not in killed
    # the whole run (Design chapter)
    assert what_happened(None, "failed", None, progress, ROUTE_FAILED, planned=PLANNED).startswith(
        "the run failed in Routing: qrouter left 3 nets open. Likely cause:")


def test_cancelled_during_before_and_after():
    progress = {"synth": _p("done", 1.0), "place": _p("running", 0.4)}
    assert what_happened("place", "cancelled", progress["place"], progress) == \
        "Placement was cancelled while it ran (40 % done); the steps before it are kept."
    assert what_happened("route", "cancelled", None, progress, planned=PLANNED) == \
        "the run was cancelled before Routing; the steps that finished are kept."
    assert "reused" in what_to_look_at("route", "cancelled", None)
    assert what_happened("synth", "cancelled", progress["synth"], progress, done_text="40 cells.") == \
        "40 cells. The run was cancelled later; what finished is kept."
    assert what_happened(None, "cancelled", None, progress, planned=PLANNED) == \
        "the run was cancelled after 1 of 6 steps; what finished is kept."


def test_the_whole_run_line():
    progress = {"synth": _p("done", 1.0), "floorplan": _p("done", 1.0), "place": _p("running", 0.25, "it 50")}
    assert what_happened(None, "running", None, progress, planned=PLANNED) == \
        "the run is on Placement (25 %: it 50), 2 of 6 steps done."
    assert what_happened(None, "done", None, progress, done_text="run counter is done.", planned=PLANNED) == \
        "run counter is done."


@pytest.mark.parametrize("run_status", ["queued", "running", "done", "failed", "cancelled"])
@pytest.mark.parametrize("step_status", [None, "pending", "running", "done", "reused", "skipped", "failed"])
def test_every_state_has_words_and_the_functions_are_pure(run_status, step_status):
    state = _p(step_status, 0.5, "half") if step_status else None
    progress = {"place": state} if state else {}
    failure = ROUTE_FAILED if run_status == "failed" else None
    args = ("place", run_status, state, progress, failure)
    snapshot = copy.deepcopy((state, progress))
    first = what_happened(*args, planned=PLANNED)
    assert first == what_happened(*args, planned=PLANNED) and snapshot == (state, progress)
    assert first and first[-1] in ".)`" and "None" not in first
    look = what_to_look_at("place", run_status, state, failure, done_look="look here.")
    assert look and "None" not in look
    if run_status != "queued":
        assert "queued" not in first
    if run_status == "running" and step_status == "running":
        assert "running now (50 %: half)" in first


def test_failure_of_reads_the_code_and_knob_run_json_stores():
    assert failure_of({"status": "done"}) is None
    info = {"status": "failed", "failed_step": "route", "error": "qrouter left 3 nets open.",
            "code": "route.unrouted", "knob": "route.layers"}
    f = failure_of(info)
    d = diagnosis.lookup("route.unrouted")
    assert (f.step, f.code, f.knob, f.cause, f.action) == ("route", "route.unrouted", "route.layers", d.meaning,
                                                           d.action)
    # an old run without a code: the diagnosis' legacy reading of its message
    old = failure_of({"status": "failed", "failed_step": "synth", "error": "top module 'x' not found"})
    assert old.code == "synth.top_not_found"
    long = failure_of({"status": "failed", "error": "x " * 400})
    assert len(long.message) <= 220 and long.message.endswith("...") and long.step == "flow"


def test_chapters_link_forward_and_have_takeaways():
    pages = {p.name for p in (ROOT / "pages").glob("*.py")}
    for chapter in story.CHAPTERS:
        assert chapter.page in pages and chapter.takeaway.endswith(".")
    assert story.next_chapter(story.chapter_for_page("synthesis")).page == "03_floorplan.py"
    assert story.next_chapter(story.chapter_for_page("gdsii")).page == "08_optimizer.py"
    assert story.chapter_for_page("").page == "01_design.py"
    assert story.chapter_for_page("compare") is None and story.chapter_for_page("demo") is None
    assert story.next_chapter(story.CHAPTERS[-1]) is None


# ------------------------------------------------------------------------------------------ on the pages
def _opener_text(at) -> str:
    return " ".join(m.value for m in at.markdown if "What just happened" in m.value or "What to look at" in m.value)


def test_pages_tell_the_state_the_run_is_in_now(tmp_path, monkeypatch):
    from page_helpers import app_page

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    store = RunStore(tmp_path)
    run = store.create({}, "counter")
    run.update_info(steps=PLANNED)
    at = app_page(ROOT / "pages" / "05_routing.py", run.id)
    assert not at.exception and "the run is queued" in _opener_text(at)
    run.set_status("running")  # this process is its owner: alive, so it stays running
    for step in ("synth", "floorplan", "place"):
        run.event("step_start", step=step)
        run.event("step_end", step=step, status="done", seconds=1.0)
    run.event("step_start", step="route")
    run.event("progress", step="route", fraction=0.4, message="qrouter pass 2")
    at = app_page(ROOT / "pages" / "05_routing.py", run.id)
    text = _opener_text(at)
    assert not at.exception and "Routing is running now (40 %: qrouter pass 2)" in text
    assert "queued" not in text and "not reached" not in text
    infos = " ".join(i.value for i in at.info)  # the page body under the opener says the same
    assert "Routing is running now" in infos and "not reached" not in infos
    at = app_page(ROOT / "pages" / "06_timing.py", run.id)
    assert "Timing & power has not started yet: the run is on Routing now (40 %" in _opener_text(at)
    run.event("step_end", step="route", status="failed", seconds=2.0)
    run.set_status("failed", error="qrouter left 3 nets open.", failed_step="route", code="route.unrouted")
    at = app_page(ROOT / "pages" / "05_routing.py", run.id)
    text = _opener_text(at)
    assert "Routing failed: qrouter left 3 nets open. Likely cause:" in text and "Knob to turn: `" in text
    assert "red box" in text


def test_the_app_ends_a_chapter_with_its_takeaway_and_the_next_link(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "cockpit" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    takeaway = [m.value for m in at.markdown if m.value.startswith("**Takeaway**")]
    assert takeaway == [f"**Takeaway** — {story.CHAPTERS[0].takeaway}"]
    links = [el for el in at.main if getattr(el, "type", "") == "page_link"]
    assert any("Next: 2 · Synthesis" in str(el.proto.label) for el in links), [str(el) for el in links]
