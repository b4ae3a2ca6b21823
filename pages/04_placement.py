"""Chapter 4 · Placement: the cells moving as the analytical placer converges, live and as a replay."""
from __future__ import annotations

import numpy as np
import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import is_active, live
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

PLAY_KEY = "placement_play"
FINAL = "final (legalised)"

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
    "drag the slider (or press Play): the cloud spreads, the density map flattens, the HPWL curve rises while "
    "overflow falls. Red in the RUDY map marks where wires will be crowded.",
)


def cell_sizes(r, cells: np.ndarray):
    """Widths and heights of the frame's cells from the floorplan (frames carry positions only)."""
    lay = data.layout(r, "floorplan", "def", "floorplan.def")
    if lay is None or len(cells) == 0 or cells.max() >= len(lay.w):
        return None, None, lay
    return lay.w[cells], lay.h[cells], lay


def draw_frame(r, f: dict, key: str) -> None:
    cells = np.asarray(f.get("cells", np.arange(len(f["x"]))), int)
    w, h, lay = cell_sizes(r, cells)
    core = tuple(np.asarray(f["core"]).tolist()) if "core" in f else (lay.core if lay else None)
    die = lay.die if lay and lay.die else core
    left, right = st.columns([3, 2], gap="medium")
    with left:
        fig = figures.layout_figure(die, f["x"], f["y"], w, h, rows=lay.rows if lay else None,
                                    power=lay.power if lay else None, power_uses=lay.power_uses if lay else None,
                                    title=f"Iteration {int(f.get('iteration', 0))} · HPWL {f.get('hpwl', 0):,.0f} µm "
                                          f"· overflow {f.get('overflow', 0):.3f}", height=600)
        if lay is not None and lay.is_io.any():
            io = lay.is_io
            fig.add_trace(figures.go.Scattergl(x=lay.x[io], y=lay.y[io], mode="markers", hoverinfo="skip",
                                               name="I/O pins",
                                               marker=dict(size=7, symbol="diamond", color=figures.IO_COLOR)))
        st.plotly_chart(fig, width="stretch", key=f"{key}-cells")
    with right:
        # Frames hold the maps as images already (rows = y bins from the bottom, engine.flow.place).
        if "density" in f:
            st.plotly_chart(figures.heatmap_figure(np.asarray(f["density"]), core, "density",
                                                   title="Cell density (1 = full)"),
                            width="stretch", key=f"{key}-density")
        if "rudy" in f:
            # The same demand / capacity ratio as the Routing chapter's map, on the same scale.
            cap = data.rudy_capacity(r)
            rudy = np.asarray(f["rudy"], float)
            st.plotly_chart(figures.heatmap_figure(rudy / cap if cap else rudy, core, "rudy" if cap else "rudy_demand",
                                                   title="RUDY wire congestion"),
                            width="stretch", key=f"{key}-rudy")


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


def draw_curves(r, current: int | None) -> None:
    c = data.curves(r)
    if len(c.get("iteration", [])) > 1:
        st.plotly_chart(figures.curves_figure(c["iteration"], c["hpwl"], c["overflow"], current=current),
                        width="stretch", key="curves")


if not needs_run(run):
    def live_body(r) -> None:
        frames = data.frame_files(r)
        prog = r.progress().get("place", {})
        if not frames and not r.metrics().get("place"):
            step_not_reached(r, "place", "placement")
            return
        if prog.get("status") == "running" and frames:
            st.caption(f":red[:material/radio_button_checked:] **Live**: frame {len(frames)} · "
                       f"{prog.get('message', '')}")
            f = data.frame(frames[-1])
            if f is not None:
                draw_frame(r, f, "live")
                draw_curves(r, int(f.get("iteration", 0)))

    if is_active(run) and run.progress().get("place", {}).get("status") in ("running", None, "pending"):
        # Large designs: a frame is a few thousand points; two seconds lets a modest browser keep up.
        live(run, live_body, key="place-live", every_s=2.0)
    else:
        frames = data.frame_files(run)
        mm = run.metrics().get("place", {})
        if not frames and not mm:
            step_not_reached(run, "place", "placement")
        else:
            metric_cards(mm, ["placement__hpwl", "placement__overflow", "placement__iterations",
                              "placement__displacement__mean"], {**run_context(run), **run.metrics().get("synth", {})})
            options = list(range(len(frames))) + ([FINAL] if data.artefact(run, "place", "def", "placed.def") else [])
            if options:
                playing = st.session_state.get(PLAY_KEY, False)
                if "replay_frame" not in st.session_state or st.session_state["replay_frame"] not in options:
                    st.session_state["replay_frame"] = options[-1]
                if st.button("Pause" if playing else "Play",
                             icon=":material/pause:" if playing else ":material/play_arrow:", key="play-btn",
                             help="Replay the frames from the first to the legalised result."):
                    st.session_state[PLAY_KEY] = not playing
                    if not playing and st.session_state["replay_frame"] == options[-1]:
                        st.session_state["replay_frame"] = options[0]
                    st.rerun()

                @st.fragment(run_every=0.7 if playing else None)
                def replay() -> None:
                    if st.session_state.get(PLAY_KEY):
                        i = options.index(st.session_state["replay_frame"])
                        if i + 1 < len(options):
                            st.session_state["replay_frame"] = options[i + 1]
                        else:
                            st.session_state[PLAY_KEY] = False
                            st.rerun()
                    st.select_slider("Replay: placer frame", options=options, key="replay_frame",
                                     format_func=lambda o: o if o == FINAL else f"frame {o + 1}/{len(frames)}")
                    sel = st.session_state["replay_frame"]
                    if sel == FINAL:
                        draw_final(run)
                        draw_curves(run, None)
                    else:
                        f = data.frame(frames[sel])
                        if f is None:
                            st.warning("This frame could not be read.")
                        else:
                            draw_frame(run, f, "replay")
                            draw_curves(run, int(f.get("iteration", 0)))

                replay()
            with st.expander("All placement numbers"):
                metric_table(mm, run_context(run))
            problem_boxes(run, "place")
