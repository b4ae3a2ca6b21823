"""The three-line chapter opener every page starts with (what this step does, what just happened in this run, what
to look at now), recomputed from the run's current state, and the one-line takeaway with a link to the next
chapter that every chapter ends with.

`what_happened` and `what_to_look_at` are pure functions of (step, run state, step state, progress, failure): the
same inputs always give the same sentence, and each state of a run (none, queued, running with progress, done,
failed with its cause and knob, cancelled) has its own words, so the opener never says "queued" while the run is
running or "not reached" while its step runs. While the run is active the opener re-reads the run folder every
`POLL_S` seconds (a fragment) and reruns the page when this chapter's step ends, so the page's own numbers
replace the progress line.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from engine import diagnosis
from engine.flow.registry import STEP_TITLES

POLL_S = 1.5
FINISHED_STEP = ("done", "reused", "skipped")
ACTIVE = ("queued", "running")


# ---------------------------------------------------------------------------------------------- chapters
@dataclass(frozen=True)
class Chapter:
    title: str  # as the page's opener names it ("2 · Synthesis")
    page: str  # its file under pages/
    step: str | None  # the flow step it tells (None: the whole run, or not about a flow run)
    takeaway: str  # the one line a viewer should leave the chapter with
    narrated: bool = True  # its "what just happened" follows the selected flow run


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("1 · Design", "01_design.py", None,
            "a chip starts as text: registers and the logic between them, in Verilog."),
    Chapter("2 · Synthesis", "02_synthesis.py", "synth",
            "the logic is now a list of real library cells and the nets between them; its size sets everything "
            "that follows."),
    Chapter("3 · Floorplan", "03_floorplan.py", "floorplan",
            "the die, its rows and its pins are fixed: utilisation trades chip area against room for wires."),
    Chapter("4 · Placement", "04_placement.py", "place",
            "every cell now has a legal spot; short nets (low HPWL) and an even spread (low overflow) make routing "
            "easy."),
    Chapter("5 · Routing & congestion", "05_routing.py", "route",
            "the wires are real metal now; where demand was highest, routes detour or stay open."),
    Chapter("6 · Timing", "06_timing.py", "timing",
            "the slowest path sets the fastest clock this layout can run; negative slack means it is too slow, and "
            "the clock tree's skew moves both setup and hold slack."),
    Chapter("7 · GDSII", "07_gdsii.py", "gds",
            "the layout is one GDSII file, the polygons a mask shop would make the chip from."),
    Chapter("8 · Optimizer (RL)", "08_optimizer.py", None,
            "every knob setting the agent tries is a real flow run; an agent is only better if it beats random "
            "search at the same number of runs.", narrated=False),
    Chapter("9 · Specialists", "09_specialists.py", None,
            "the answers are built from the documentation and from your runs' own numbers, with their sources.",
            narrated=False),
    Chapter("Training", "10_training.py", None,
            "the model learns only from examples whose numbers the engine computed; its validation loss must "
            "fall.", narrated=False),
    Chapter("Benchmarks", "11_benchmarks.py", None,
            "a model's score means something only next to the trivial baselines and the oracle.", narrated=False),
)


def chapter_of(title: str) -> Chapter | None:
    return next((c for c in CHAPTERS if c.title == title), None)


def chapter_for_page(url_path: str) -> Chapter | None:
    """The chapter a navigation page shows, by its URL path as cockpit/app.py names it ("placement"; "" is the
    default page, Design)."""
    if not url_path:
        return CHAPTERS[0]
    return next((c for c in CHAPTERS if c.page.split(".")[0].split("_", 1)[-1] == url_path), None)


def next_chapter(chapter: Chapter) -> Chapter | None:
    i = CHAPTERS.index(chapter)
    return CHAPTERS[i + 1] if i + 1 < len(CHAPTERS) else None


# ---------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class StepStory:
    """What a flow step does and what to look at once it has run, as the demo and the chapters say it."""

    does: str
    look: str


STEP_STORY: dict[str, StepStory] = {
    "synth": StepStory(
        "Yosys turns the Verilog into standard cells (NAND gates, flip-flops) from a real 0.18 µm library.",
        "the cell count and the mix of cell types: flip-flops are the registers, the rest is the logic between "
        "them."),
    "floorplan": StepStory(
        "sizes the chip so the cells fill the target share of the core, cuts the core into rows and puts the pins "
        "on the edge.",
        "the die outline, the rows and the pins; utilisation trades area against room for wires."),
    "place": StepStory(
        "our PyTorch placer starts every cell in the middle, pulls connected cells together and pushes crowded "
        "ones apart like charges in a field, then legalises them onto the rows.",
        "the cells spreading out while HPWL (wire length) and overflow (crowding) fall; density and RUDY maps show "
        "where it is still crowded."),
    "cts": StepStory(
        "builds a clock buffer tree from the library's CLKBUF cells, balanced by bisection (every flip-flop under "
        "the same number of buffers), and repairs nets whose fanout is too high with buffers.",
        "the clock skew (how far apart the clock edge reaches the flip-flops), the buffer count, and the hold slack "
        "in the Timing chapter: a clock that reaches a flip-flop late can break hold."),
    "route": StepStory(
        "qrouter draws the metal: every net gets real wires and vias on the layers above the cells.",
        "the congestion map (wire demand over track capacity) and the open nets: red is where wires compete for "
        "tracks."),
    "timing": StepStory(
        "OpenSTA adds up the delay of every cell and wire between flip-flops, through the clock tree (propagated "
        "clock), and checks each signal against the next clock edge.",
        "setup slack (negative: too slow), hold slack, the clock skew the tree left, and the worst path from its "
        "launching register to where it is captured."),
    "gds": StepStory(
        "KLayout writes the GDSII file a foundry would receive: every polygon of every layer.",
        "the layout with its metal-layer legend, in µm."),
    "checks": StepStory(
        "the signoff checks read the final DEF, the LEF and the gate-level netlist on their own: floating pins, "
        "unrouted nets, pins off track, overlaps and row legality, antenna data, and the layout's nets against the "
        "netlist's.",
        "the checks table on the GDSII page: every count should be 0 (pins off track and open outputs are "
        "warnings, not errors)."),
}


def _pct(before: float, after: float) -> str:
    return f"{100 * (float(after) - float(before)) / float(before):+.1f} %" if before else "unchanged"


def done_text(step: str, m: Mapping) -> str | None:
    """The "what just happened" sentence once ``step`` has finished, from its metrics (None when it has none)."""
    if not m:
        return None
    if step == "synth" and "design__instance__count" in m:
        return (f"Yosys made {fmt(m['design__instance__count'])} cells covering "
                f"{fmt(m.get('design__instance__area'), unit='µm²')}.")
    if step == "floorplan" and "floorplan__core__width_um" in m:
        full = 100 * float(m.get("floorplan__utilization") or 0)
        return (f"the core is {fmt(m['floorplan__core__width_um'])} × {fmt(m.get('floorplan__core__height_um'))} µm "
                f"in {fmt(m.get('floorplan__row__count'))} rows, {fmt(full, 2)} % full.")
    if step == "place" and "placement__hpwl" in m:
        g, lg = m.get("placement__hpwl__global"), m.get("placement__hpwl__legal")
        if g is None or lg is None or "placement__displacement__mean" not in m:
            return (f"the placer reached HPWL {fmt(m['placement__hpwl'], unit='µm')} with overflow "
                    f"{fmt(m.get('placement__overflow'))}.")
        text = (f"global placement reached HPWL {fmt(g, unit='µm')} with overflow {fmt(m.get('placement__overflow'))}; "
                f"legalisation moved cells {fmt(m['placement__displacement__mean'], unit='µm')} on average "
                f"({fmt(m.get('placement__displacement__max'), unit='µm')} at most), HPWL {_pct(g, lg)}")
        if "placement__detailed__moves" in m:
            text += (f"; detailed placement's {fmt(m['placement__detailed__moves'])} swaps brought it to "
                     f"{fmt(m['placement__hpwl'], unit='µm')} ({_pct(lg, m['placement__hpwl'])})")
        return text + "."
    if step == "cts" and "cts__buffer__count" in m:
        sinks = m.get("cts__sink__count")
        if not m["cts__buffer__count"] and not sinks:
            text = "there was no clock to buffer, so no tree was built"
        else:
            n = m["cts__buffer__count"]
            text = (f"the clock tree has {fmt(n)} CLKBUF buffer{'' if n == 1 else 's'} in "
                    f"{fmt(m.get('cts__level__count'))} level(s) driving {fmt(sinks)} flip-flops")
            if m.get("cts__skew_estimate_ns") is not None:
                text += f", estimated skew {fmt(m['cts__skew_estimate_ns'])} ns"
        rep = m.get("cts__repair__buffer__count") or 0
        text += (f"; fanout repair added {fmt(rep)} buffers on {fmt(m.get('cts__repair__net__count'))} nets."
                 if rep else "; no net needed fanout repair.")
        return text
    if step == "route" and "route__wirelength" in m:
        n = m.get("route__net__unrouted")
        return (f"qrouter laid {fmt(m['route__wirelength'], unit='µm')} of wire with {fmt(m.get('route__via__count'))} "
                "vias" + (f"; {fmt(n)} nets stay open." if n else "; every net is routed."))
    if step == "timing" and "timing__setup__ws" in m:
        ws = float(m["timing__setup__ws"])
        text = (f"timing is met with {fmt(ws)} ns to spare" if ws >= 0 else f"timing is missed by {fmt(-ws)} ns")
        if m.get("timing__fmax_mhz") is not None:
            text += f"; up to {fmt(m['timing__fmax_mhz'])} MHz"
        if m.get("timing__hold__ws") is not None:
            text += f"; hold slack {fmt(m['timing__hold__ws'])} ns"
        if m.get("timing__clock__skew_ns") is not None:
            text += f"; clock skew {fmt(m['timing__clock__skew_ns'])} ns"
        return text + "."
    if step == "checks" and "checks__status" in m:
        failed = int(m.get("checks__failed__count") or 0)
        return ("every signoff check passes." if not failed else
                f"{fmt(failed)} signoff check{'' if failed == 1 else 's'} found errors ({m['checks__status'][6:]}).")
    if step == "gds":
        return "the GDSII file is written" + (f" ({fmt(m['gds__layer__count'])} layers)." if m.get("gds__layer__count")
                                               else ".")
    return None


def step_lines(step: str, info: Mapping, progress: Mapping[str, Mapping] | None,
               metrics: Mapping[str, Mapping] | None) -> tuple[str, str, str]:
    """The three lines for a flow ``step`` of a run as its folder is now (run.json's ``info``, Run.progress(),
    Run.metrics()): what the step does, what just happened, what to look at. Pure: the demo recomputes them on
    every poll."""
    progress = progress or {}
    ss = STEP_STORY.get(step, StepStory(f"{_title(step)}.", ""))
    failure = failure_of(info)
    status = str(info.get("status") or "queued")
    state = progress.get(step)
    happened = what_happened(step, status, state, progress, failure,
                             done_text=done_text(step, (metrics or {}).get(step) or {}),
                             planned=list(info.get("steps") or []))
    look = what_to_look_at(step, status, state, failure, done_look=ss.look)
    return ss.does, happened, look


def demo_should_advance(run_status: str | None, step_status: str | None, waited_s: float, dwell_s: float) -> bool:
    """Whether Demo mode's auto-advance leaves a chapter: its step has finished (or the run ended done without
    it) and the chapter has been on screen ``dwell_s``. A failed or cancelled run holds the chapter that shows why;
    a step still queued or running holds it too."""
    if waited_s < dwell_s:
        return False
    if step_status in FINISHED_STEP:
        return True
    return run_status == "done" and step_status in (None, "pending")


# ---------------------------------------------------------------------------------------------- failures
@dataclass(frozen=True)
class Failure:
    """Why a run failed, as run.json records it and engine.diagnosis explains it."""

    step: str  # the step that failed ("route"), "setup" or "flow" when none
    message: str  # the error, shortened for a sentence
    cause: str  # the likely cause (the diagnosis' meaning, or the step's own hint)
    action: str  # what to change, in words
    knob: str | None  # the registry knob to turn, when one is the fix
    code: str


def failure_of(info: Mapping) -> Failure | None:
    """The failure of a failed run (None for any other state), from the code and knob run.json stores."""
    if info.get("status") != "failed":
        return None
    code, knob = diagnosis.of_run(dict(info))
    d = diagnosis.lookup(code)
    cause = d.meaning
    if d.code == "step.failed" and info.get("hint"):
        cause = str(info["hint"])
    message = " ".join(str(info.get("error") or "the run failed").split())
    if len(message) > 220:
        message = message[:217].rstrip() + "..."
    return Failure(str(info.get("failed_step") or "flow"), message, cause, d.action, knob, d.code)


# ---------------------------------------------------------------------------------------------- the lines
def _title(step: str | None) -> str:
    return STEP_TITLES.get(step or "", step or "the flow")


def _percent(state: Mapping | None) -> str:
    try:
        frac = float((state or {}).get("fraction") or 0.0)
    except (TypeError, ValueError):
        frac = 0.0
    return f"{round(100 * min(max(frac, 0.0), 1.0))} %"


def _progress_words(state: Mapping | None) -> str:
    """ "40 %: iteration 120 of 300" from a step's progress entry."""
    msg = str((state or {}).get("message") or "").strip().rstrip(".")
    return f"{_percent(state)}: {msg}" if msg else _percent(state)


def current_step(progress: Mapping[str, Mapping] | None, planned: Sequence[str] = ()) -> str | None:
    """The step a running run is on: the last one whose state is running, else the first planned one not done."""
    progress = progress or {}
    running = [s for s, p in progress.items() if (p or {}).get("status") == "running"]
    if running:
        return running[-1]
    return next((s for s in planned if (progress.get(s) or {}).get("status") not in FINISHED_STEP), None)


def _effective(step_status: str, run_status: str, step: str | None, failure: Failure | None) -> str:
    """The step's state as the run's state settles it: a step still marked running in a run that has ended
    ended with the run (jobs_panel.step_table reads it the same way)."""
    if failure is not None and step is not None and failure.step == step and step_status not in FINISHED_STEP:
        return "failed"
    if step_status == "running" and run_status not in ACTIVE:
        return {"failed": "failed", "cancelled": "cancelled"}.get(run_status, "done")
    return step_status


def _knob_words(failure: Failure) -> str:
    return f" Knob to turn: `{failure.knob}`." if failure.knob else ""


def what_happened(step: str | None, run_status: str | None, step_state: Mapping | None = None,
                  progress: Mapping[str, Mapping] | None = None, failure: Failure | None = None, *,
                  done_text: str | None = None, planned: Sequence[str] = ()) -> str:
    """The "what just happened" line of a chapter for ``step`` (None: the whole run) in a run whose state is
    ``run_status`` (None: no run selected). ``step_state`` is the step's entry of Run.progress() (status,
    fraction, message, seconds), ``progress`` all of them, ``failure`` the run's failure (failure_of), and
    ``done_text`` the page's own sentence with the step's numbers, used once the step has finished."""
    progress = progress or {}
    if run_status is None:
        return "no run is selected: start one on the Design page, or pick one in the sidebar."
    title = _title(step)
    now = current_step(progress, planned)
    if step is None:
        return _run_happened(run_status, progress, failure, done_text, planned, now)
    state = dict(step_state or {})
    status = _effective(str(state.get("status") or "pending"), run_status, step, failure)
    secs = state.get("seconds")
    took = f" in {fmt(float(secs), 2)} s" if isinstance(secs, (int, float)) and secs > 0 else ""
    if run_status == "queued":
        return "the run is queued: it waits for a worker to start it, and nothing has run yet."
    if status in ("done", "reused", "skipped"):
        if status == "skipped":
            text = f"{title} was skipped in this run."
        elif done_text:
            text = done_text.strip()
        elif status == "reused":
            text = f"{title} was reused from an identical earlier step (same inputs and settings), so it took no time."
        else:
            text = f"{title} finished{took}."
        if run_status == "running" and now and now != step:
            text += f" The run carries on with {_title(now)} ({_progress_words(progress.get(now))})."
        elif run_status == "failed" and failure is not None and failure.step != step:
            text += f" The run failed later, in {_title(failure.step)}: {failure.message}"
        elif run_status == "cancelled":
            text += " The run was cancelled later; what finished is kept."
        return text
    if status == "running":
        return f"{title} is running now ({_progress_words(state)}); this page follows it as it works."
    if status == "failed":
        f = failure
        if f is None:
            return f"{title} failed{took}; the box below says what went wrong."
        return f"{title} failed: {_failure_words(f)}"
    if status == "cancelled":
        return f"{title} was cancelled while it ran ({_percent(state)} done); the steps before it are kept."
    # pending: the step has not started
    if planned and step not in planned:
        last = _title(planned[-1])
        return f"this run does not include {title}: it runs up to {last}."
    if run_status == "running":
        where = f"the run is on {_title(now)} now ({_progress_words(progress.get(now))})" if now else \
            "the run has started"
        return f"{title} has not started yet: {where}."
    if run_status == "failed":
        f = failure
        if f is None:
            return f"the run failed before {title}, so this step did not run."
        return f"the run failed in {_title(f.step)} before reaching {title}: {_failure_words(f)}"
    if run_status == "cancelled":
        return f"the run was cancelled before {title}; the steps that finished are kept."
    return f"this run did not run {title}."


def _failure_words(f: Failure) -> str:
    """The failure's message, its likely cause and the knob to turn, as the narration says them."""
    return f"{f.message} Likely cause: {f.cause}{_knob_words(f)}"


def _run_happened(run_status: str, progress: Mapping[str, Mapping], failure: Failure | None,
                  done_text: str | None, planned: Sequence[str], now: str | None) -> str:
    """what_happened for the whole run (the Design chapter)."""
    done = [s for s in planned if (progress.get(s) or {}).get("status") in FINISHED_STEP]
    of = f" of {len(planned)}" if planned else ""
    if run_status == "queued":
        return "the run is queued: it waits for a worker to start it, and nothing has run yet."
    if run_status == "running":
        if now:
            return (f"the run is on {_title(now)} ({_progress_words(progress.get(now))}), {len(done)}{of} steps "
                    "done.")
        return "the run has started."
    if run_status == "done":
        return done_text.strip() if done_text else f"the run finished: {len(done)}{of} steps done."
    if run_status == "failed":
        if failure is None:
            return f"the run failed after {len(done)}{of} steps."
        return f"the run failed in {_title(failure.step)}: {_failure_words(failure)}"
    if run_status == "cancelled":
        return f"the run was cancelled after {len(done)}{of} steps; what finished is kept."
    return f"the run is {run_status}."


def what_to_look_at(step: str | None, run_status: str | None, step_state: Mapping | None = None,
                    failure: Failure | None = None, *, done_look: str = "") -> str:
    """The "what to look at" line: the page's own pointer (``done_look``) once there is something to look at,
    else what to do in this state."""
    if run_status is None:
        return "pick a run in the sidebar, or start one on the Design page."
    if run_status == "queued":
        return "the job panel on the Design page shows its place in the queue; this page fills in by itself " \
               "once the run starts."
    status = _effective(str((step_state or {}).get("status") or "pending"), run_status, step, failure)
    if step is None:
        if run_status == "failed" and failure is not None:
            change = f"`{failure.knob}`" if failure.knob else "the setting it names"
            return f"the red box below: what went wrong, why, and a rerun with {change} changed."
        return done_look
    if status in FINISHED_STEP:
        return done_look
    if status == "running":
        return f"the figures below update as {_title(step)} works. {done_look}".strip()
    if status == "failed" or (run_status == "failed" and failure is not None):
        change = f"`{failure.knob}` changed" if failure is not None and failure.knob else "the suggested change"
        return f"the red box below: what went wrong, the likely cause, and a button that reruns with {change}."
    if run_status == "running":
        return "the progress bars show where the run is; this page fills in by itself when the run gets here."
    if run_status == "cancelled":
        return "start the run again on the Design page: the steps that finished are reused, not run again."
    return "start a run that includes this step on the Design page."


# ---------------------------------------------------------------------------------------------- rendering
def _state(run) -> tuple[str, dict, dict[str, dict], list[str]]:
    info = run.info()
    return info["status"], info, run.progress(), list(info.get("steps") or [])


def _lines(chapter: Chapter | None, run, does: str, happened: str | None, look: str) -> tuple[str, str, str]:
    """The three lines for ``chapter`` of ``run`` as its folder is now."""
    if chapter is None or not chapter.narrated:
        return does, happened or "this run has not reached this step yet.", look
    if run is None:
        return does, what_happened(chapter.step, None), what_to_look_at(chapter.step, None, done_look=look)
    status, info, progress, planned = _state(run)
    failure = failure_of(info)
    step_state = progress.get(chapter.step) if chapter.step else None
    text = what_happened(chapter.step, status, step_state, progress, failure, done_text=happened, planned=planned)
    return does, text, what_to_look_at(chapter.step, status, step_state, failure, done_look=look)


def _show(does: str, happened: str, look: str) -> None:
    with st.container(border=True):
        st.markdown(f"**What this step does** — {does}")
        st.markdown(f"**What just happened** — {happened}")
        st.markdown(f"**What to look at** — {look}")


def _step_status(run, step: str | None) -> tuple[str, str | None]:
    status, _, progress, _ = _state(run)
    return status, (progress.get(step) or {}).get("status") if step else None


def opener(title: str, does: str, happened: str | None, look: str) -> None:
    """Render a chapter's title and its three lines. ``happened`` is the page's sentence with the step's numbers
    (None when it has none yet); the opener tells the run's state around it, and follows the run while it is
    active."""
    from cockpit import runpicker
    from engine.errors import EngineError

    st.title(title)
    chapter = chapter_of(title)
    run = runpicker.current_run(show_error=False) if chapter is not None and chapter.narrated else None
    try:
        seen = _step_status(run, chapter.step) if run is not None and chapter is not None else None
    except EngineError:
        run, seen = None, None
    if seen is None or seen[0] not in ACTIVE:
        _show(*_lines(chapter, run, does, happened, look))
        return

    @st.fragment(run_every=POLL_S)
    def _live() -> None:
        try:
            now = _step_status(run, chapter.step)
            _show(*_lines(chapter, run, does, happened if now == seen else None, look))
        except EngineError as exc:  # the run folder went away while the page showed it
            st.error(exc.message, icon=":material/error:")
            return
        # This chapter's step (or the run) changed state: rerun the page once so its numbers and figures follow.
        if now != seen and (now[0] not in ACTIVE or now[1] in (*FINISHED_STEP, "failed", "cancelled")):
            st.rerun()

    _live()


def closer(url_path: str) -> None:
    """The chapter's last line: its one-line takeaway and a link to the next chapter (nothing for a page that is
    not a chapter, such as Compare). ``url_path``: the navigation page's (StreamlitPage.url_path)."""
    from cockpit import nav

    chapter = chapter_for_page(url_path)
    if chapter is None:
        return
    st.divider()
    st.markdown(f"**Takeaway** — {chapter.takeaway}")
    following = next_chapter(chapter)
    if following is not None:
        nav.link(following.page, label=f"Next: {following.title}", icon=":material/arrow_forward:")


def fmt(value, digits: int = 3, unit: str = "") -> str:
    """A number for a sentence: thousands separators, a few significant digits, its unit."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        a = abs(value)
        if a >= 1000 or (a >= 100 and value.is_integer()):
            text = f"{value:,.0f}"
        elif a >= 100:
            text = f"{value:,.1f}"
        elif a == 0:
            text = "0"
        else:
            text = f"{value:.{digits}g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()
