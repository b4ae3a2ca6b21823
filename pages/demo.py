"""Demo mode: one click runs the whole story on a prepared example, with a presenter's narration for each
chapter; Back / Next step through it while the flow runs in its worker."""
from __future__ import annotations

import numpy as np
import streamlit as st

from cockpit import data, figures, nav, runpicker
from cockpit.components import player
from cockpit.jobs_panel import is_active, live, start_flow, step_table
from cockpit.story import fmt
from engine.designs import resolve
from engine.flow.registry import STEP_TITLES

DEMO_DESIGN = "counter"  # small enough to reach GDSII well under two minutes on two cores
STEP_KEY = "demo_step"
PLAYER_KEY = "demo-player"

CHAPTERS = [
    ("intro", "The plan", "We will take a small circuit written in Verilog and turn it into a chip layout, live, "
     "with real open-source tools and our own placer. Each chapter is one step of the flow."),
    ("synth", "Synthesis", "Yosys turns the Verilog into standard cells — NAND gates, flip-flops — from a real 0.18 µm "
     "library. Here is what the logic became."),
    ("floorplan", "Floorplan", "We size the chip so the cells fill about 60 % of the core, cut it into rows, and put "
     "the pins on the edge."),
    ("place", "Placement", "Now the centre of the show: every cell starts in the middle; our PyTorch placer pulls "
     "connected cells together and pushes crowded ones apart, like charges in a field, until they spread out."),
    ("route", "Routing", "qrouter draws the metal: every net gets real wires on the layers above the cells. The map "
     "shows where wires compete for tracks."),
    ("timing", "Timing", "OpenSTA checks every path between flip-flops against the clock. Positive slack: the chip "
     "works at this speed."),
    ("gds", "GDSII", "And here is the chip: the GDSII file a foundry would receive, every polygon of every layer."),
]


def demo_config() -> tuple[dict, str]:
    return resolve(DEMO_DESIGN).flow_config().to_dict(), DEMO_DESIGN


def show_chapter(r, step: str) -> None:
    mets = r.metrics()
    mm = mets.get(step, {})
    if step == "intro":
        step_table(r)
        return
    live_frames = step == "place" and bool(data.frame_files(r))  # the placer is drawing: show it now
    if not mm and not data.step_record(r, step) and not live_frames:
        st.info(f"The flow is on its way to {STEP_TITLES.get(step, step)}…" if is_active(r)
                else f"This run has no {STEP_TITLES.get(step, step)} step.")
        return
    if step == "synth":
        types = mm.get("synth__cell_types") or {}
        st.markdown(f"### {mm.get('design__instance__count', 0):,} cells · "
                    f"{mm.get('design__instance__area', 0):,.0f} µm²")
        if types:
            items = sorted(types.items(), key=lambda kv: -kv[1])[:12]
            st.plotly_chart(figures.bar_figure([k for k, _ in items], [v for _, v in items], title="Cells by type"),
                            width="stretch")
    elif step == "floorplan":
        st.markdown(f"### {mm.get('floorplan__core__width_um', 0):.0f} × "
                    f"{mm.get('floorplan__core__height_um', 0):.0f} µm core · "
                    f"{mm.get('floorplan__row__count', 0)} rows · "
                    f"{100 * mm.get('floorplan__utilization', 0):.0f} % full")
        lay = data.layout(r, "floorplan", "def", "floorplan.def")
        if lay is not None:
            io = lay.is_io
            st.plotly_chart(figures.layout_figure(lay.die, lay.x[io], lay.y[io], lay.w[io], lay.h[io], is_io=io[io],
                                                  rows=lay.rows, power=lay.power, power_uses=lay.power_uses,
                                                  height=520), width="stretch")
    elif step == "place":
        with st.container():  # always there, so the player below keeps its place when placement ends
            if mm:
                st.markdown(f"### HPWL {mm.get('placement__hpwl', 0):,.0f} µm · "
                            f"overflow {mm.get('placement__overflow', 0):.3f}")
        # Cells, density and RUDY side by side: live while the placer runs, then a replay at presenter pace.
        if player.show(r, key=PLAYER_KEY, height=760) is None:
            st.info("The placer has not written its first frame yet…" if is_active(r)
                    else "This run kept no placement frames.")
        nav.link("04_placement.py", label="Open the placement chapter (legalisation and detailed placement)",
                 icon=":material/scatter_plot:")
    elif step == "route":
        n = mm.get("route__net__unrouted")
        st.markdown(f"### {mm.get('route__wirelength', 0):,.0f} µm of wire · {mm.get('route__via__count', 0):,} vias"
                    + (f" · {int(n)} open nets" if n else " · all nets routed"))
        cong = data.congestion(r) or {}
        ratio = cong.get("ratio")
        if isinstance(ratio, np.ndarray) and ratio.ndim == 2:
            region = tuple(np.asarray(cong["region"]).tolist()) if "region" in cong else None
            st.plotly_chart(figures.heatmap_figure(ratio, region, "rudy",
                                                   title="Congestion: wire demand ÷ track capacity", height=480),
                            width="stretch")
    elif step == "timing":
        ws, fmax = mm.get("timing__setup__ws"), mm.get("timing__fmax_mhz")
        st.markdown(f"### Slack {fmt(ws)} ns · up to {fmt(fmax)} MHz" if ws is not None else "### Timing checked")
        nav.link("06_timing.py", label="See the worst path on the layout", icon=":material/timer:")
    elif step == "gds":
        png = data.artefact(r, "gds", "png", "layout.png")
        if png is not None:
            fig = figures.image_figure(png, data.gds_die(r), height=620)
            st.plotly_chart(figures.add_layer_legend(fig, data.gds_colours(r)), width="stretch")
        nav.link("07_gdsii.py", label="Open the GDSII chapter (download)", icon=":material/layers:")


st.title("Demo mode")
player.forget(PLAYER_KEY)  # a page run may mount a new player: its first send is complete
st.caption(f"One click runs the whole story on the **{DEMO_DESIGN}** example. Use Next/Back to narrate; the flow "
           "keeps running in the background.")
run = runpicker.current_run()
demo_run = run if run is not None and run.info().get("label") == "demo" else None

c1, c2, c3, c4 = st.columns([2, 1, 1, 3])
if c1.button("Start the demo", icon=":material/play_arrow:", type="primary", width="stretch"):
    cfg, name = demo_config()
    demo_run = start_flow(cfg, name, label="demo", reuse=False)  # run every step live, nothing copied
    st.session_state[STEP_KEY] = 0
    st.rerun()
idx = int(st.session_state.get(STEP_KEY, 0))
if c2.button("Back", icon=":material/arrow_back:", width="stretch", disabled=idx <= 0):
    st.session_state[STEP_KEY] = idx - 1
    st.rerun()
if c3.button("Next", icon=":material/arrow_forward:", width="stretch", disabled=idx >= len(CHAPTERS) - 1):
    st.session_state[STEP_KEY] = idx + 1
    st.rerun()
c4.progress((idx + 1) / len(CHAPTERS), text=f"Chapter {idx + 1} of {len(CHAPTERS)}: {CHAPTERS[idx][1]}")

step, title, narration = CHAPTERS[idx]
st.subheader(title)
st.markdown(f"> :material/record_voice_over: {narration}")
if demo_run is None:
    st.info("Press **Start the demo**: the flow runs on the demo design (a few tens of seconds), and each chapter "
            "fills in as its step finishes.")
else:
    if is_active(demo_run):
        live(demo_run, lambda r: show_chapter(r, step), key=f"demo-{step}")
    else:
        show_chapter(demo_run, step)  # finished: no polling (and the replay can run its own fragment)
