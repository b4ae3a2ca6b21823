"""Demo mode: one click runs the whole story on a prepared example and the narration follows the run by itself,
chapter after chapter (synthesis to GDSII); the presenter can pause it and step back and forth.

Where the presenter is (chapter, auto-advance on or paused, when the chapter opened) lives in st.session_state, the
chapter also in the address (?chapter=), and the run itself on disk (?run=), so a refresh loses nothing. So does the
presenter's pace: seconds a chapter stays before auto-advance (?dwell=) and the placement replay's seconds per frame
(?pace=), set under Pace. Each chapter's three lines come from cockpit/story.py, recomputed from the run folder on
every poll."""
from __future__ import annotations

import json
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cockpit import data, figures, nav, pathnames, runpicker, story
from cockpit.components import player
from cockpit.jobs_panel import is_active, live, start_flow, step_table
from cockpit.story import fmt
from cockpit.widgets import metric_cards, run_context
from engine.designs import resolve
from engine.errors import EngineError

DEMO_DESIGN = "counter"  # the whole flow takes about 5 s of tool time on two cores: the narration sets the pace
STEP_KEY, FOLLOW_KEY, SINCE_KEY = "demo_step", "demo_follow", "demo_since"
PLAYER_KEY = "demo-player"
POLL_S = 1.0       # the narrator re-reads the run folder this often
DWELL_S = 5.0      # a chapter stays on screen at least this long before auto-advance moves on (the default)
PACE_S = 0.3       # the placement replay's seconds per frame in the demo (presenter pace, quick end; the default)
DWELL_OPTIONS = (3.0, 5.0, 8.0, 12.0, 20.0, 30.0)          # what the presenter can choose, seconds a chapter
PACE_OPTIONS = (0.2, 0.3, 0.4, 0.5, 0.7, 1.0)              # seconds a placement frame
DWELL_KEY, PACE_KEY = "demo_dwell", "demo_pace"            # session_state keys; the address has ?dwell= ?pace=

# (step, title, what the presenter says)
CHAPTERS = [
    ("intro", "The plan", "We will take a small circuit written in Verilog and turn it into a chip layout, live, "
     "with real open-source tools and our own placer. Each chapter is one step of the flow; the narration moves on "
     "by itself as the run does."),
    ("synth", "Synthesis", "Yosys turns the Verilog into standard cells — NAND gates, flip-flops — from a real 0.18 µm "
     "library. Here is what the logic became."),
    ("floorplan", "Floorplan", "We size the chip so the cells fill a set share of the core, cut it into rows, and "
     "put the pins on the edge."),
    ("place", "Placement", "Now the centre of the show: every cell starts in the middle; our PyTorch placer pulls "
     "connected cells together and pushes crowded ones apart, like charges in a field, until they spread out."),
    ("cts", "Clock tree", "One wire, the clock, reaches every flip-flop. A tree of clock buffers, split in halves "
     "again and again, makes it arrive everywhere at nearly the same moment."),
    ("route", "Routing", "qrouter draws the metal: every net gets real wires on the layers above the cells. The map "
     "shows where wires compete for tracks."),
    ("timing", "Timing", "OpenSTA checks every path between flip-flops against the clock, through the clock tree. "
     "Positive slack: the chip works at this speed."),
    ("gds", "GDSII", "And here is the chip: the GDSII file a foundry would receive, every polygon of every layer."),
]
IDS = [c[0] for c in CHAPTERS]


def demo_config() -> tuple[dict, str]:
    return resolve(DEMO_DESIGN).flow_config().to_dict(), DEMO_DESIGN


def from_address(name: str, options: tuple[float, ...], default: float) -> float:
    """A pace setting from the address (?dwell=, ?pace=): the nearest of its options; the default when absent."""
    try:
        v = float(st.query_params.get(name, default))
    except (TypeError, ValueError):
        return default
    return min(options, key=lambda o: abs(o - v))


def pace_settings() -> tuple[float, float]:
    """(seconds a chapter stays, seconds a placement frame) as the presenter set them."""
    return float(st.session_state.get(DWELL_KEY, DWELL_S)), float(st.session_state.get(PACE_KEY, PACE_S))


def dwell_s(run, step: str, dwell: float = DWELL_S, pace: float = PACE_S) -> float:
    """How long the chapter stays before auto-advance: `dwell`, the placement chapter long enough for its replay
    at `pace` a frame (and its two stages)."""
    if step == "place" and run is not None:
        replay = (len(data.frame_files(run)) + 2 * player.STAGE_DWELL) * pace + 3.0  # + the player loading
        return min(max(dwell, replay), max(15.0, 3 * dwell))
    return dwell


def _keep_pace() -> None:
    """The pace widgets changed: write them to the address, so a refresh keeps them."""
    st.query_params["dwell"] = f"{float(st.session_state[DWELL_KEY]):g}"
    st.query_params["pace"] = f"{float(st.session_state[PACE_KEY]):g}"


def go_to(idx: int, *, follow: bool | None = None) -> None:
    st.session_state[STEP_KEY] = max(0, min(idx, len(CHAPTERS) - 1))
    st.session_state[SINCE_KEY] = time.time()
    if follow is not None:
        st.session_state[FOLLOW_KEY] = follow
    st.query_params["chapter"] = IDS[st.session_state[STEP_KEY]]


def _lines(does: str, happened: str, look: str) -> None:
    with st.container(border=True):
        st.markdown(f"**What this step does** — {does}")
        st.markdown(f"**What just happened** — {happened}")
        st.markdown(f"**What to look at** — {look}")


def _clock_tree_figure(r, lay) -> go.Figure | None:
    tree_path = data.artefact(r, "cts", "tree", "tree.json")
    tree = json.loads(tree_path.read_text()) if tree_path else {}
    bufs = [b for b in tree.get("buffers", []) if b.get("tree") == "clock"]
    if not bufs:
        return None
    fig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                title="Clock buffers on the placement", height=520)
    xs, ys = [], []
    for b in bufs:
        for _inst, _pin, x, y in b.get("loads", []):
            xs += [b["x"], x, None]
            ys += [b["y"], y, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#c2255c", width=1.5), name="clock wires",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[b["x"] for b in bufs], y=[b["y"] for b in bufs], mode="markers",
                             marker=dict(size=14, color="#c2255c", symbol="triangle-up"), name="clock buffers",
                             text=[f"{b['name']} ({b['cell']}, level {b['level']})" for b in bufs],
                             hovertemplate="%{text}<extra></extra>"))
    return fig


def show_chapter(r, step: str) -> None:
    """The chapter's numbers and maps from the run as it is now."""
    mm = r.metrics().get(step, {})
    if step == "intro":
        step_table(r)
        return
    live_frames = step == "place" and bool(data.frame_files(r))  # the placer is drawing: show it now
    if not mm and not data.step_record(r, step) and not live_frames:
        return  # the narrator above says where the run is
    if step == "synth":
        types = mm.get("synth__cell_types") or {}
        if types:
            items = sorted(types.items(), key=lambda kv: -kv[1])[:12]
            st.plotly_chart(figures.bar_figure([k for k, _ in items], [v for _, v in items], title="Cells by type"),
                            width="stretch")
    elif step == "floorplan":
        lay = data.layout(r, "floorplan", "def", "floorplan.def")
        if lay is not None:
            io = lay.is_io
            st.plotly_chart(figures.layout_figure(lay.die, lay.x[io], lay.y[io], lay.w[io], lay.h[io], is_io=io[io],
                                                  rows=lay.rows, power=lay.power, power_uses=lay.power_uses,
                                                  height=520), width="stretch")
    elif step == "place":
        # Cells, density and RUDY side by side: live while the placer runs, then a replay at presenter pace.
        if player.show(r, key=PLAYER_KEY, height=760, pace_s=pace_settings()[1]) is None:
            st.info("The placer has not written its first frame yet…" if is_active(r)
                    else "This run kept no placement frames.")
        nav.link("04_placement.py", label="Open the placement chapter (legalisation and detailed placement)",
                 icon=":material/scatter_plot:")
    elif step == "cts":
        metric_cards(mm, ["cts__buffer__count", "cts__level__count", "cts__sink__count", "cts__skew_estimate_ns",
                          "cts__repair__buffer__count"], run_context(r))
        lay = data.layout(r, "cts", "def", "cts.def")
        fig = _clock_tree_figure(r, lay) if lay is not None else None
        if fig is not None:
            st.plotly_chart(fig, width="stretch")
    elif step == "route":
        cong = data.congestion(r) or {}
        ratio = cong.get("ratio")
        if isinstance(ratio, np.ndarray) and ratio.ndim == 2:
            region = tuple(np.asarray(cong["region"]).tolist()) if "region" in cong else None
            st.plotly_chart(figures.heatmap_figure(ratio, region, "rudy",
                                                   title="Congestion: wire demand ÷ track capacity", height=480),
                            width="stretch")
        nav.link("05_routing.py", label="Open the routing chapter (metal layers)", icon=":material/route:")
    elif step == "timing":
        metric_cards(mm, ["timing__setup__ws", "timing__fmax_mhz", "timing__hold__ws", "timing__clock__skew_ns"],
                     run_context(r))
        paths = data.timing_paths(r)
        nl_path = data.artefact(r, "synth", "netlist_json", "netlist.json")
        if paths and nl_path is not None:
            netlist = json.loads(nl_path.read_text())
            names = dict(registers=pathnames.register_names(netlist), types=pathnames.cell_types(netlist))
            p = paths[0]
            start = pathnames.point_label(p.get("startpoint"), kind=p.get("startpoint_kind", ""), **names)
            end = pathnames.point_label(p.get("endpoint"), kind=p.get("endpoint_kind", ""), **names)
            st.markdown(f"**Slowest path**: from `{start}` to `{end}`, {len(p.get('pins') or [])} stages, slack "
                        f"{fmt(p.get('slack_ns'))} ns.")
        nav.link("06_timing.py", label="See the worst path on the layout", icon=":material/timer:")
    elif step == "gds":
        png = data.artefact(r, "gds", "png", "layout.png")
        if png is not None:
            fig = figures.image_figure(png, data.gds_die(r), height=620)
            st.plotly_chart(figures.add_layer_legend(fig, data.gds_colours(r)), width="stretch")
        nav.link("07_gdsii.py", label="Open the GDSII chapter (download)", icon=":material/layers:")


st.title("Demo mode")
player.forget(PLAYER_KEY)  # a page run may mount a new player: its first send is complete
st.caption(f"One click runs the whole story on the **{DEMO_DESIGN}** example. The narration follows the run by "
           "itself; **Pause** holds it on a chapter, **Back** / **Next** step through it (and pause), **Resume** "
           "carries on.")
run = runpicker.current_run()
demo_run = run if run is not None and run.info().get("label") == "demo" else None

if STEP_KEY not in st.session_state:  # a new session (a refresh): the address says where the presenter was
    asked = st.query_params.get("chapter")
    go_to(IDS.index(asked) if asked in IDS else 0, follow=True)
if DWELL_KEY not in st.session_state:  # likewise the presenter's pace
    st.session_state[DWELL_KEY] = from_address("dwell", DWELL_OPTIONS, DWELL_S)
if PACE_KEY not in st.session_state:
    st.session_state[PACE_KEY] = from_address("pace", PACE_OPTIONS, PACE_S)
idx = int(st.session_state[STEP_KEY])
follow = bool(st.session_state.get(FOLLOW_KEY, True))
dwell, pace = pace_settings()

c1, c2, c3, c4, c5, c6 = st.columns([2, 1, 1, 1, 3, 1.2])
if c1.button("Start the demo", icon=":material/play_arrow:", type="primary", width="stretch"):
    cfg, name = demo_config()
    start_flow(cfg, name, label="demo", reuse=False)  # run every step live, nothing copied
    go_to(1, follow=True)
    st.rerun()
if c2.button("Back", icon=":material/arrow_back:", width="stretch", disabled=idx <= 0):
    go_to(idx - 1, follow=False)
    st.rerun()
if follow:
    if c3.button("Pause", icon=":material/pause:", width="stretch",
                 disabled=demo_run is None or idx >= len(CHAPTERS) - 1):
        st.session_state[FOLLOW_KEY] = False
        st.rerun()
elif c3.button("Resume", icon=":material/play_circle:", width="stretch", disabled=demo_run is None):
    go_to(idx, follow=True)
    st.rerun()
if c4.button("Next", icon=":material/arrow_forward:", width="stretch", disabled=idx >= len(CHAPTERS) - 1):
    go_to(idx + 1, follow=False)
    st.rerun()
c5.progress((idx + 1) / len(CHAPTERS), text=f"Chapter {idx + 1} of {len(CHAPTERS)}: {CHAPTERS[idx][1]}"
            + ("" if follow or demo_run is None else " · paused"))
with c6.popover("Pace", icon=":material/speed:", width="stretch", key="demo-pace-popover",
                help=f"{dwell:g} s a chapter, {pace:g} s a placement frame (kept in the address)"):
    st.select_slider("Seconds a chapter stays", DWELL_OPTIONS, key=DWELL_KEY, on_change=_keep_pace,
                     format_func=lambda v: f"{v:g} s",
                     help="Auto-advance moves on once the chapter's step has finished and it was on screen this "
                          "long (the placement chapter stays until its replay has played).")
    st.select_slider("Placement replay, seconds a frame", PACE_OPTIONS, key=PACE_KEY, on_change=_keep_pace,
                     format_func=lambda v: f"{v:g} s", help="The placement player's presenter pace.")

step, title, narration = CHAPTERS[idx]
st.subheader(title)
st.markdown(f"> :material/record_voice_over: {narration}")
if demo_run is None:
    st.info("Press **Start the demo**: the flow runs on the demo design, and each chapter fills in and moves on as "
            "its step finishes.")
else:
    last = idx >= len(CHAPTERS) - 1
    polling = (follow and not last) or is_active(demo_run)

    @st.fragment(run_every=POLL_S if polling else None)
    def narrator() -> None:
        try:
            info, progress = demo_run.info(), demo_run.progress()
            if step != "intro":
                _lines(*story.step_lines(step, info, progress, demo_run.metrics()))
        except EngineError as exc:  # the run folder went away while the page showed it
            st.error(exc.message, icon=":material/error:")
            return
        if not st.session_state.get(FOLLOW_KEY, True) or last:
            return
        waited = time.time() - float(st.session_state.get(SINCE_KEY, 0.0))
        state = (progress.get(step) or {}).get("status") if step != "intro" else "done"
        if story.demo_should_advance(info.get("status"), state, waited, dwell_s(demo_run, step, dwell, pace)):
            go_to(idx + 1)
            st.rerun()

    narrator()
    if is_active(demo_run):
        live(demo_run, lambda r: show_chapter(r, step), key=f"demo-{step}")
    else:
        show_chapter(demo_run, step)  # finished: no polling (and the replay can run its own fragment)
    if last and not is_active(demo_run) and demo_run.status == "done":
        secs = sum(float((p or {}).get("seconds") or 0.0) for p in demo_run.progress().values())
        st.success(f"That was the whole flow, Verilog to GDSII, in {fmt(secs, 2)} s of tool time.",
                   icon=":material/check_circle:")
