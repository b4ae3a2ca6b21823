"""Chapter 6 · Timing: OpenSTA's slack, the fastest clock, and the worst path drawn on the layout."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.story import fmt
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

run = runpicker.current_run()
m = run.metrics().get("timing", {}) if run else {}
happened = None
if m and "timing__setup__ws" in m:
    ws = m["timing__setup__ws"]
    verdict = f"**met** with {fmt(ws)} ns to spare" if ws >= 0 else f"**missed** by {fmt(-ws)} ns"
    happened = (f"at a {fmt(run.config.get('clock_ns'))} ns clock, timing is {verdict}"
                + (f"; this layout runs up to **{fmt(m['timing__fmax_mhz'])} MHz**" if "timing__fmax_mhz" in m else "")
                + ".")
story.opener(
    "6 · Timing",
    "OpenSTA adds up the delay of every cell and wire between two flip-flops (wire delays from the routed layout) "
    "and checks that each signal arrives before the next clock edge.",
    happened,
    "the orange line on the layout is the slowest path, from its launching flip-flop (green) to where it is "
    "captured (red). Slack is the time left over: negative means too slow.",
)


def _point_xy(p: dict, index: dict, lay) -> tuple[float, float] | None:
    if p.get("x_um") is not None and p.get("y_um") is not None:
        return float(p["x_um"]), float(p["y_um"])
    inst = p.get("instance") or p.get("cell") or (p.get("pin", "").rsplit("/", 1)[0] if "/" in p.get("pin", "") else
                                                  p.get("pin"))
    i = index.get(inst)
    if i is None:
        return None
    return float(lay.x[i] + lay.w[i] / 2), float(lay.y[i] + lay.h[i] / 2)


if not needs_run(run):
    def body(r):
        mm = r.metrics().get("timing", {})
        if not mm:
            step_not_reached(r, "timing", "timing report")
            return
        metric_cards(mm, ["timing__setup__ws", "timing__setup__tns", "timing__fmax_mhz", "timing__hold__ws",
                          "power__total"], run_context(r))
        problem_boxes(r, "timing")
        paths = data.timing_paths(r)
        lay = data.layout(r, "route", "def", "routed.def") or data.layout(r, "place", "def", "placed.def")
        left, right = st.columns([3, 2], gap="large")
        with left:
            if lay is not None:
                fig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                            title="Worst path on the layout", height=600)
                if paths:
                    index = {n: i for i, n in enumerate(lay.names)}
                    pts = paths[0].get("points") or paths[0].get("pins") or []
                    xy = [(_point_xy(p, index, lay), p) for p in pts if isinstance(p, dict)]
                    xy = [(c, p) for c, p in xy if c is not None]
                    if xy:
                        figures.add_path(fig, [c[0] for c, _ in xy], [c[1] for c, _ in xy],
                                         [f"{p.get('pin', '')} ({p.get('cell', '')}) · arrival "
                                          f"{fmt(p.get('arrival_ns'))} ns" for _, p in xy])
                st.plotly_chart(fig, width="stretch")
        with right:
            if paths:
                st.markdown("**Worst paths**")
                rows = [{"from": p.get("startpoint", ""), "to": p.get("endpoint", ""),
                         "slack (ns)": p.get("slack_ns"), "arrival (ns)": p.get("arrival_ns"),
                         "stages": len(p.get("pins") or [])} for p in paths]
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
                pts = paths[0].get("pins") or []
                if pts:
                    with st.expander("The worst path, stage by stage", expanded=True):
                        st.dataframe(pd.DataFrame([{"pin": p.get("pin"), "cell": p.get("cell"),
                                                    "edge": p.get("transition"), "delay (ns)": p.get("delay_ns"),
                                                    "arrival (ns)": p.get("arrival_ns")} for p in pts]),
                                     hide_index=True, width="stretch")
            log = data.artefact(r, "timing", "log", "sta.log")
            if log:
                with st.expander("OpenSTA report (last lines)"):
                    st.code(data.text_tail(log, 60), language=None)
        with st.expander("All timing numbers, with what they mean"):
            metric_table(mm, run_context(r), hide=("timing__clock__found_by", "power__activity_source",
                                                   "timing__parasitics"))

    live(run, body, key="timing")
