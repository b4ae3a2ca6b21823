"""Chapter 4 · Placement: the cells moving as the analytical placer converges, live and as a replay."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.components import player
from cockpit.jobs_panel import is_active
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

PLAYER_KEY = "placement-player"
LIVE_POLL_S = 1.0  # the page sends new frames once a second; the player animates between sends
WATCH = ("running", None, "pending")

run = runpicker.current_run()
m = run.metrics().get("place", {}) if run else {}
happened = None
if m:
    parts = []
    if "placement__iterations" in m:
        parts.append(f"the placer ran **{m['placement__iterations']:,} iterations**")
    if "placement__hpwl" in m:
        parts.append(f"final wirelength estimate (HPWL) **{m['placement__hpwl']:,.0f} µm**")
    if "placement__overflow" in m:
        parts.append(f"overflow **{m['placement__overflow']:.3f}**")
    happened = ", ".join(parts) + "." if parts else "placement finished."
elif run is not None and run.progress().get("place", {}).get("status") == "running":
    happened = f"the placer is running now: {run.progress()['place'].get('message', '')}."
story.opener(
    "4 · Placement",
    "our own analytical placer (ePlace-style, in PyTorch) starts with every cell piled in the middle, then pulls "
    "connected cells together (wirelength) while an electric-field model pushes them apart (density), until they "
    "spread evenly; legalisation then snaps them onto the rows.",
    happened,
    "watch the player: the cloud spreads, the density map flattens, the HPWL curve rises while overflow falls; red "
    "in the RUDY map marks where wires will be crowded. The last frame is the legalised result: grey where global "
    "placement left each cell, orange its move onto the rows. Pause, drag the frame slider or change the pace.",
)


def draw_final(r) -> None:
    lay = data.layout(r, "place", "def", "placed.def")
    if lay is None:
        st.info("The legalised placement is not written yet.")
        return
    mov = ~lay.is_io
    fig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, is_fixed=lay.is_fixed & mov,
                                rows=lay.rows, power=lay.power, power_uses=lay.power_uses,
                                title=f"Legalised placement · {int(mov.sum()):,} cells on rows",
                                height=640)
    st.plotly_chart(fig, width="stretch", key="final-cells")


def displacement(r) -> np.ndarray | None:
    """Each cell's move (|dx| + |dy|, um) from the end of global placement (last frame) to placed.def."""
    files = data.frame_files(r)
    lay = data.layout(r, "place", "def", "placed.def")
    last = data.frame(files[-1]) if files else None
    if lay is None or last is None:
        return None
    cells = np.asarray(last.get("cells", np.arange(len(last["x"]))), int)
    if not len(cells) or cells.max() >= len(lay.x):
        return None
    return np.abs(lay.x[cells] - np.asarray(last["x"], float)) + np.abs(lay.y[cells] - np.asarray(last["y"], float))


def stages(r, mm: dict) -> None:
    """Legalisation and detailed placement as their own stages: HPWL before and after each, time, moves."""
    st.subheader("Legalisation and detailed placement")
    rows = []
    g, lg, fin = mm.get("placement__hpwl__global"), mm.get("placement__hpwl__legal"), mm.get("placement__hpwl")

    def change(a, b):
        return f"{100 * (b - a) / a:+.1f} %" if a and b is not None else ""

    rows.append({"stage": "global placement", "HPWL (µm)": g, "change": "",
                 "time (s)": mm.get("placement__runtime__global_s"),
                 "what moved": f"{mm.get('placement__iterations', 0):,} Nesterov iterations"})
    if lg is not None:
        rows.append({"stage": "legalisation (Tetris + Abacus)", "HPWL (µm)": lg, "change": change(g, lg),
                     "time (s)": mm.get("placement__runtime__legalize_s"),
                     "what moved": f"every cell onto a row and site: {mm.get('placement__displacement__mean', 0):.2f} "
                                   f"µm on average, {mm.get('placement__displacement__max', 0):.2f} µm at most"})
    if "placement__detailed__moves" in mm:
        rows.append({"stage": "detailed placement (swap, reorder)", "HPWL (µm)": fin, "change": change(lg, fin),
                     "time (s)": mm.get("placement__runtime__detailed_s"),
                     "what moved": f"{mm['placement__detailed__moves']:,} swaps and shifts"})
    left, right = st.columns([3, 2], gap="medium")
    with left:
        df = pd.DataFrame(rows).set_index("stage")
        st.table(df.style.format({"HPWL (µm)": "{:,.0f}", "time (s)": "{:.3f}"}, na_rep="–"))
        st.caption("Displacement is counted from the end of global placement to the final (legal, detailed) "
                   "position; the player's last frame draws each move.")
    with right:
        d = displacement(r)
        if d is not None and len(d):
            hist, edges = np.histogram(d, bins=min(30, max(5, len(d) // 10)))
            fig = figures.go.Figure(figures.go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist, marker_color="#e8590c",
                                                   width=np.diff(edges)))
            fig.update_layout(title=dict(text="How far cells moved to become legal", x=0.01), height=300,
                              margin=dict(l=10, r=10, t=40, b=10), font=figures.FONT, plot_bgcolor="#fafbfc",
                              xaxis=dict(title="displacement |dx| + |dy| (µm)"), yaxis=dict(title="cells"))
            st.plotly_chart(fig, width="stretch", key="displacement")


if not needs_run(run):
    player.forget(PLAYER_KEY)  # this page run may mount a new player: its first send is complete
    watching = is_active(run) and run.progress().get("place", {}).get("status") in WATCH
    cards = st.container()  # above the player, filled below: the player keeps its place when placement ends

    @st.fragment(run_every=LIVE_POLL_S if watching else None)
    def placement_panel() -> None:
        prog = run.progress().get("place", {})
        with st.container():  # always there, so the player below keeps its place (and its frames)
            if prog.get("status") == "running":
                st.caption(f":red[:material/radio_button_checked:] **Live** · {prog.get('message', '')}")
        shown = player.show(run, key=PLAYER_KEY)
        if shown is None and not run.metrics().get("place"):
            step_not_reached(run, "place", "placement")
        if watching and not (is_active(run) and run.progress().get("place", {}).get("status") in WATCH):
            st.rerun()  # placement (or the run) ended: the whole page shows the numbers and the stages

    placement_panel()
    mm = run.metrics().get("place", {})
    if mm and not watching:
        with cards:
            metric_cards(mm, ["placement__hpwl", "placement__overflow", "placement__iterations",
                              "placement__displacement__mean"], {**run_context(run), **run.metrics().get("synth", {})})
        stages(run, mm)
        with st.expander("The legalised placement, zoomable, with rows and the power grid"):
            draw_final(run)
        with st.expander("All placement numbers"):
            metric_table(mm, run_context(run))
    problem_boxes(run, "place")
