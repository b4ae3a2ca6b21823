"""Small shared renderers: metric cards with their meaning and verdict, metric tables, failure boxes with a
rerun button, and the empty state of a page with no run."""
from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from cockpit import explain, nav, runpicker
from cockpit.jobs_panel import start_flow
from engine.flow.registry import STEP_TITLES
from engine.runs import Run


def needs_run(run: Run | None) -> bool:
    """Show the empty state and return True when there is no run to show."""
    if run is None:
        st.info("No run is selected. Start one on the **Design** page (or pick one in the sidebar).")
        nav.link("01_design.py", label="Go to Design", icon=":material/edit_note:")
        return True
    return False


def metric_cards(metrics: dict, keys: list[str], ctx: dict | None = None) -> None:
    """A row of st.metric cards; each has its meaning as help and a coloured verdict under it."""
    ctx = {**metrics, **(ctx or {})}
    shown = [k for k in keys if k in metrics]
    if not shown:
        return
    cols = st.columns(len(shown))
    for col, key in zip(cols, shown):
        mt = explain.describe(key)
        value = metrics[key]
        with col:
            st.metric(mt.label, explain.value_text(key, value), help=mt.meaning or None)
            v = explain.judge(key, value, ctx)
            if v:
                st.caption(f"{explain.VERDICT_ICON[v[0]]} {v[1]}")


def metric_table(metrics: dict, ctx: dict | None = None, *, hide: tuple[str, ...] = ()) -> None:
    rows = [r for r in explain.metric_rows(metrics, ctx) if r["key"] not in hide]
    if not rows:
        return
    df = pd.DataFrame(rows).drop(columns=["key"]).set_index("metric")
    if not df["verdict"].astype(bool).any():
        df = df.drop(columns=["verdict"])
    st.table(df)  # a static table wraps long sentences, a data grid would cut them


def log_block(text: str, *, max_height_px: int = 360) -> None:
    """A log's lines as preformatted text that scrolls in its own box. Not st.code: its syntax highlighter is a
    1.5 MB script that the browser parses again on every page load showing one (a few hundred ms of the Routing
    chapter's settle time in bench_cockpit), and a tool's log has no syntax to colour."""
    st.html(f'<pre style="max-height:{int(max_height_px)}px;overflow:auto;margin:0;padding:0.6rem 0.8rem;'
            'background:#f6f8fa;border-radius:0.4rem;font-size:0.8rem;line-height:1.35;white-space:pre">'
            f"{html.escape(text)}</pre>")


def problem_boxes(run: Run, step: str | None = None) -> None:
    """The run's failures and missed goals (for one step, or all), each with a rerun button."""
    info = run.info()
    for i, p in enumerate(explain.problems(info, run.metrics())):
        if step is not None and p.step != step:
            continue
        box = st.error if p.severity == "error" else st.warning
        title = STEP_TITLES.get(p.step, p.step)
        knob = f" Knob: `{p.knob_path}`." if p.knob_path else ""
        box(f"**{title}: what went wrong.** {p.what}\n\n**Likely cause.** {p.cause}\n\n**What to change.** "
            f"{p.knob}{knob}", icon=":material/report:" if p.severity == "error" else ":material/warning:")
        if p.code:
            st.caption(f"Diagnosis `{p.code}` (`cda runs show {run.id}` prints the same).")
        tail = explain.log_tail(p.log)
        if tail:
            with st.expander("The tool's last words (log tail)"):
                log_block(tail)
        if p.patch:
            if st.button(p.button_label, key=f"rerun-{p.step}-{i}", type="primary", icon=":material/replay:"):
                config = explain.apply_patch(info.get("config", {}), p.patch)
                changes = ", ".join(f"{k}={v}" for k, v in p.patch.items())
                start_flow(config, info.get("design", "design"), label=f"rerun: {changes}")
                st.rerun()


def run_context(run: Run) -> dict:
    """Numbers the verdicts need besides the metrics themselves (the clock target)."""
    cfg = run.config
    return {"clock_ns": cfg.get("clock_ns")}


def step_not_reached(run: Run, step: str, what: str) -> None:
    status = run.status
    if status == "running" and run.progress().get(step, {}).get("status") == "running":  # started, no output yet
        st.info(f"{STEP_TITLES.get(step, step)} is running now; its {what} shows here as soon as it writes one.",
                icon=":material/autorenew:")
        return
    if status in ("queued", "running"):
        st.info(f"The run has not reached {STEP_TITLES.get(step, step)} yet; this page fills in as it gets there.")
    elif status == "failed":
        st.warning(f"The run stopped before {STEP_TITLES.get(step, step)}, so there is no {what} to show.")
        problem_boxes(run)
    elif status == "cancelled":
        st.warning(f"The run was cancelled before {STEP_TITLES.get(step, step)}.")
    else:
        st.info(f"This run has no {what} (the step was not part of it).")
    nav.link("01_design.py", label="Start a run on the Design page", icon=":material/edit_note:")


def current() -> Run | None:
    return runpicker.current_run()
