"""Chapter 6 · Timing: OpenSTA's slack, the fastest clock, and the worst path drawn on the layout."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cockpit import data, figures, pathnames, runpicker, story
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
                + (f"; hold slack {fmt(m['timing__hold__ws'])} ns" if m.get("timing__hold__ws") is not None else "")
                + (f" after {fmt(hb)} hold buffers"
                   if (hb := run.metrics().get("cts", {}).get("cts__hold__buffer__count")) else "")
                + (f"; the clock tree leaves {fmt(m['timing__clock__skew_ns'])} ns of skew"
                   if m.get("timing__clock__skew_ns") is not None else "")
                + ".")
story.opener(
    "6 · Timing",
    "OpenSTA adds up the delay of every cell and wire between two flip-flops (wire delays from the routed layout) "
    "and checks that each signal arrives before the next clock edge; the clock itself comes through the clock tree "
    "(propagated clock), so its skew shows in setup and hold slack.",
    happened,
    "the orange line on the layout is the slowest path, from its launching flip-flop (green) to where it is "
    "captured (red). Slack is the time left over: negative means too slow. Below it, the clock tree in blue: "
    "its buffers and the skew they leave between flip-flops.",
)


def _clock_tree(fig, tree: dict) -> None:
    """The clock tree over the layout: each buffer, a line to every pin it drives, the port to the root."""
    clock = [b for b in tree.get("buffers", []) if b.get("tree") == "clock"]
    by_net = {b["out_net"]: b for b in clock}
    xs, ys = [], []
    for b in clock:
        for _inst, _pin, x, y in b.get("loads", []):
            xs += [b["x"], x, None]
            ys += [b["y"], y, None]
        parent = by_net.get(b["in_net"])
        src = (parent["x"], parent["y"]) if parent else tree.get("port_xy")
        if src:
            xs += [src[0], b["x"], None]
            ys += [src[1], b["y"], None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#1971c2", width=1.5), name="clock wires",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[b["x"] for b in clock], y=[b["y"] for b in clock], mode="markers",
                             marker=dict(size=[16 - 3 * min(b["level"], 3) for b in clock], color="#1971c2",
                                         symbol="triangle-up"), name="clock buffers",
                             text=[f"{b['name']} ({b['cell']}, level {b['level']}, {len(b['loads'])} loads)"
                                   for b in clock], hovertemplate="%{text}<extra></extra>"))


@st.cache_data(max_entries=16, show_spinner=False)
def _names_of(path: str, mtime: float) -> tuple[dict, dict]:
    netlist = json.loads(Path(path).read_text())
    return pathnames.register_names(netlist), pathnames.cell_types(netlist)


def _names(r) -> tuple[dict, dict]:
    """Register names and cell types of the run's synthesised netlist (empty when it has none)."""
    path = data.artefact(r, "synth", "netlist_json", "netlist.json")
    if path is None or not Path(path).exists():
        return {}, {}
    try:
        return _names_of(str(path), Path(path).stat().st_mtime)
    except (OSError, ValueError):
        return {}, {}


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
                          "timing__clock__skew_ns", "power__total"], run_context(r))
        problem_boxes(r, "timing")
        paths = data.timing_paths(r)
        lay = (data.layout(r, "route", "def", "routed.def") or data.layout(r, "cts", "def", "cts.def")
               or data.layout(r, "place", "def", "placed.def"))
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
                tree = data.clock_tree(r)
                if tree.get("buffers"):
                    cm = r.metrics().get("cts", {})
                    st.markdown(f"**Clock tree**: {cm.get('cts__buffer__count', 0)} buffers in "
                                f"{cm.get('cts__level__count', 0)} level(s) drive {cm.get('cts__sink__count', 0)} "
                                f"flip-flops; skew {fmt(mm.get('timing__clock__skew_ns'))} ns (OpenSTA, "
                                f"propagated clock), {fmt(cm.get('cts__skew_estimate_ns'))} ns estimated by cts.")
                    tfig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io,
                                                 rows=lay.rows, title="Clock tree on the layout", height=520)
                    _clock_tree(tfig, tree)
                    st.plotly_chart(tfig, width="stretch")
        with right:
            if paths:
                st.markdown("**Worst paths**")
                regs, types = _names(r)
                rows = [{"from": pathnames.point_label(p.get("startpoint"), kind=p.get("startpoint_kind", ""),
                                                       registers=regs, types=types),
                         "to": pathnames.point_label(p.get("endpoint"), kind=p.get("endpoint_kind", ""),
                                                     registers=regs, types=types),
                         "slack (ns)": p.get("slack_ns"), "arrival (ns)": p.get("arrival_ns"),
                         "stages": len(p.get("pins") or [])} for p in paths]
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
                st.caption("Each point names its instance and cell type; a flip-flop also the register it holds "
                           "(from the synthesised netlist), a port says so.")
                pts = paths[0].get("pins") or []
                if pts:
                    with st.expander("The worst path, stage by stage", expanded=True):
                        st.dataframe(pd.DataFrame([{"pin": pathnames.point_label(p.get("pin"), cell=p.get("cell"),
                                                                                 registers=regs, types=types),
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
