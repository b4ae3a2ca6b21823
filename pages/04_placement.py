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
    if m.get("placement__hpwl__legal") is not None and "placement__displacement__mean" in m:
        parts.append(f"legalisation moved cells {m['placement__displacement__mean']:.1f} µm on average "
                     f"({m['placement__displacement__max']:.1f} µm at most)")
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
    "in the RUDY map marks where wires will be crowded. After the last frame come the two stages: **Legal** (grey "
    "where global placement left each cell, orange its move onto a row) and **Detailed** (grey the legal spot, "
    "orange each swap). Pause, drag the frame slider, jump between the stages or change the pace.",
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


def displacement(r) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
    """Each movable cell's move (|dx| + |dy|, um) in legalisation and in detailed placement, from stages.npz;
    for a run that did not record the legal positions, the move from the last frame to placed.def (both stages
    together) and None. The last item says whether the stages were recorded apart."""
    s = player.read_stages(r)
    if s is not None and "disp_legal" in s:
        return np.asarray(s["disp_legal"], float), (np.asarray(s["disp_detailed"], float)
                                                    if "disp_detailed" in s else None), True
    files = data.frame_files(r)
    lay = data.layout(r, "place", "def", "placed.def")
    last = data.frame(files[-1]) if files else None
    if lay is None or last is None:
        return None, None, False
    cells = np.asarray(last.get("cells", np.arange(len(last["x"]))), int)
    if not len(cells) or cells.max() >= len(lay.x):
        return None, None, False
    d = np.abs(lay.x[cells] - np.asarray(last["x"], float)) + np.abs(lay.y[cells] - np.asarray(last["y"], float))
    return d, None, False


def change(a, b) -> str:
    return f"{100 * (b - a) / a:+.1f} %" if a and b is not None else ""


def stage_rows(n: dict) -> list[dict]:
    """global -> legal -> detailed: each stage's HPWL, its change from the stage before, the displacement."""
    g, lg, fin = n.get("hpwl_global"), n.get("hpwl_legal"), n.get("hpwl")
    rows = [{"stage": "global placement", "HPWL (µm)": g, "change": "", "moved (µm, mean / max)": "",
             "time (s)": n.get("global_s"), "what moved": f"{n.get('iterations') or 0:,} Nesterov iterations"}]
    if lg is not None:
        rows.append({"stage": "legalisation (Tetris + Abacus)", "HPWL (µm)": lg, "change": change(g, lg),
                     "moved (µm, mean / max)": f"{n.get('disp_mean') or 0:.2f} / {n.get('disp_max') or 0:.2f}",
                     "time (s)": n.get("legalize_s"), "what moved": "every cell onto a row and a site"})
    if n.get("moves") is not None:
        moved = (f"{n['detailed_disp_mean']:.2f} / {n['detailed_disp_max']:.2f}"
                 if "detailed_disp_mean" in n else "not recorded for this run")
        what = f"{n['moves']:,} swaps and shifts"
        if "detailed_moved" in n:
            what += f"; {n['detailed_moved']:,} of {n['movable']:,} cells moved"
        rows.append({"stage": "detailed placement (swap, reorder)", "HPWL (µm)": fin, "change": change(lg, fin),
                     "moved (µm, mean / max)": moved, "time (s)": n.get("detailed_s"), "what moved": what})
    return rows


def stages(r, mm: dict) -> None:
    """Legalisation and detailed placement as their own stages: HPWL before and after each, displacement, time."""
    st.subheader("Global → legal → detailed")
    n = player.stage_numbers(r)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        df = pd.DataFrame(stage_rows(n)).set_index("stage")
        st.table(df.style.format({"HPWL (µm)": "{:,.0f}", "time (s)": "{:.3f}"}, na_rep="–"))
        if n["recorded"]:
            st.caption("Each stage's HPWL as the placer measures it, its change from the stage before, and how far "
                       "the movable cells moved in that stage (|dx| + |dy|). In the player above, **Stages: Global → "
                       "Legal → Detailed** shows each stage's cells over the stage before.")
        else:
            st.caption("The positions after legalisation were **not recorded for this run** (it predates "
                       "stages.npz): HPWL after each stage comes from the run's metrics, the moves below are from "
                       "the end of global placement to the final placement, both stages together.")
    with right:
        d_legal, d_det, recorded = displacement(r)
        if d_legal is not None and len(d_legal):
            fig = figures.go.Figure()
            top = float(max(d_legal.max(), d_det.max() if d_det is not None and len(d_det) else 0.0, 1e-6))
            edges = np.linspace(0.0, top, min(30, max(5, len(d_legal) // 10)) + 1)
            for d, name, colour in ((d_legal, "legalisation" if recorded else "legal + detailed", "#e8590c"),
                                    (d_det[d_det > 1e-6] if d_det is not None else None,
                                     "detailed placement (cells it moved)", "#0b5cad")):
                if d is None or not len(d):
                    continue
                hist, _ = np.histogram(d, bins=edges)
                fig.add_trace(figures.go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist, marker_color=colour, name=name,
                                             width=np.diff(edges), opacity=0.8))
            fig.update_layout(title=dict(text="How far cells moved in each stage", x=0.01), height=300,
                              barmode="overlay", margin=dict(l=10, r=10, t=40, b=10), font=figures.FONT,
                              plot_bgcolor="#fafbfc", legend=dict(orientation="h", y=-0.3),
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
