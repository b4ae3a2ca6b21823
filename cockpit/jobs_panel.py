"""Job controls: start a flow as a job, show a progress bar per step and the place in the queue, cancel.

The panel polls the run folder with `st.fragment(run_every=...)` while the job is queued or running and stops
polling (run_every=None) once it has ended, then reruns the page once so every figure shows the final state.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from cockpit import runpicker
from cockpit.story import fmt
from engine.errors import EngineError
from engine.flow.registry import STEP_IDS, STEP_TITLES
from engine.runs import Run

ACTIVE = ("queued", "running")
POLL_S = 1.0
STEP_ICON = {"pending": ":gray[:material/radio_button_unchecked:]", "running": ":blue[:material/autorenew:]",
             "done": ":green[:material/check_circle:]", "reused": ":green[:material/recycling:]",
             "skipped": ":gray[:material/skip_next:]", "failed": ":red[:material/cancel:]",
             "cancelled": ":orange[:material/stop_circle:]"}


def start_flow(config: dict, design: str, *, label: str = "", until: str | None = None, reuse: bool = True) -> Run:
    """Create a run for `config`, queue its job, and make it the selected run.

    reuse=False runs every step again even when an identical one exists (the demo wants to show the work live).
    """
    store = runpicker.store()
    run = store.create(config, design, label=label)
    if until or not reuse:
        run.update_info(**({"until": until} if until else {}), **({} if reuse else {"reuse": False}))
    runpicker.queue().submit(run.id, "flow")
    runpicker.select(run.id)
    return run


def is_active(run: Run | None) -> bool:
    try:
        return run is not None and run.status in ACTIVE
    except EngineError:
        return False


def live(run: Run | None, body: Callable[[Run], None], *, key: str, every_s: float = POLL_S) -> None:
    """Render `body(run)` and re-render it every `every_s` while the run is active; rerun the page when it ends."""
    if run is None:
        return
    was_active = is_active(run)

    @st.fragment(run_every=every_s if was_active else None)
    def _panel() -> None:
        try:
            body(run)
        except EngineError as exc:  # the run folder was deleted or damaged while the page showed it
            st.error(exc.message, icon=":material/error:")
        if was_active and not is_active(run):
            st.rerun()  # the job ended: refresh the whole page once, which also stops the polling

    _panel()


def step_table(run: Run) -> None:
    """One progress bar per step, with its state, time and one-line message."""
    info = run.info()
    steps = info.get("steps") or list(STEP_IDS)
    progress = run.progress()
    for sid in steps:
        p = progress.get(sid, {"status": "pending", "fraction": 0.0, "message": ""})
        status = p.get("status", "pending")
        if status == "running" and info["status"] not in ACTIVE:
            status = info["status"] if info["status"] in ("failed", "cancelled") else "done"
        title = STEP_TITLES.get(sid, sid)
        secs = p.get("seconds")
        if status == "running" and p.get("started"):
            secs = time.time() - p["started"]
        extra = f" · {fmt(secs, 2)} s" if secs is not None else ""
        msg = f" — {p['message']}" if p.get("message") else ""
        text = f"{STEP_ICON.get(status, STEP_ICON['pending'])} **{title}** · {status}{extra}{msg}"
        frac = 1.0 if status in ("done", "reused", "skipped") else float(p.get("fraction", 0.0))
        st.progress(min(max(frac, 0.0), 1.0), text=text)


def status_line(run: Run) -> None:
    info = run.info()
    status = info["status"]
    if status == "queued":
        job = runpicker.queue().status(run.id)
        if job and job.position:
            st.info(f"Waiting in the queue: place {job.position}. "
                    f"{runpicker.queue().config.max_workers} job(s) run at once on this machine.")
        else:
            st.info("Starting…", icon=":material/hourglass_top:")
    elif status == "running":
        st.info(f"Running: {info.get('design', '')}", icon=":material/autorenew:")
    elif status == "done":
        st.success("The flow finished.", icon=":material/check_circle:")
    elif status == "cancelled":
        st.warning("Cancelled. The steps that finished are kept.", icon=":material/stop_circle:")
    elif status == "failed":
        st.error(f"Failed in {STEP_TITLES.get(info.get('failed_step') or '', info.get('failed_step') or 'the flow')}: "
                 f"{info.get('error', '')}")


def job_panel(run: Run | None, *, key: str = "job") -> None:
    """Status, per-step progress and a Cancel button for the run, live while it is active."""
    if run is None:
        return

    def body(r: Run) -> None:
        active = is_active(r)  # read once, so the button and the status line agree within one render
        with st.container(border=True):
            status_line(r)
            step_table(r)
            if active:
                if st.button("Cancel run", key=f"{key}-cancel", type="secondary", icon=":material/stop_circle:"):
                    runpicker.queue().cancel(r.id)
                    st.toast("Cancel requested: the job stops at its next check point.")

    live(run, body, key=key)
