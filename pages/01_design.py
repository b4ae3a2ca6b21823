"""Chapter 1 · Design: pick an example or upload Verilog, choose top, clock and utilisation, start the flow."""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from cockpit import runpicker, story
from cockpit.jobs_panel import is_active, job_panel, start_flow
from cockpit.widgets import problem_boxes
from engine.config import FlowConfig
from engine.designs import DesignSpec, list_examples
from engine.errors import EngineError
from engine.flow.registry import STEP_IDS, STEP_TITLES
from engine.registry import knob
from engine.uploads import UploadConfig, UploadError, check_includes, guess_clock, guess_top, save_files
from engine.validate import size_text, validate_flow_config

EXAMPLE_KEY = "design-example"


def examples() -> dict[str, DesignSpec]:
    try:
        return {spec.name: spec for spec in list_examples()}
    except EngineError as exc:
        st.warning(f"Example designs could not be read: {exc}")
        return {}


def upload_dir(files) -> Path:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.getvalue())
    return runpicker.store().root / "uploads" / digest.hexdigest()[:16]


run = runpicker.current_run()
m = run.metrics().get("synth", {}) if run else {}
happened = None
if run is not None:
    info = run.info()
    happened = (f"run **{info['design']}** is **{info['status']}**"
                + (f"; synthesis found {m.get('design__instance__count', 0):,} cells" if m else "") + ".")
story.opener(
    "1 · Design",
    "you choose the circuit: Verilog source code (RTL) that describes registers and the logic between them. "
    "The flow will turn it into a chip layout with real open tools.",
    happened,
    "pick an example on the left (or upload your own), then press **Run the flow** and watch each step's bar fill.",
)

left, right = st.columns([5, 6], gap="large")
with left:
    st.subheader("Choose a design")
    source = st.radio("Source", ["Example design", "Upload Verilog"], horizontal=True, label_visibility="collapsed")
    files: list[Path] = []
    testbench = None
    top, clock, clock_ns, modules, design_name = "", None, 10.0, [], ""
    base = FlowConfig()  # an example brings its own defaults (design.json), an upload the flow's
    if source == "Example design":
        ex = examples()
        if not ex:
            st.warning("No example designs were found under assets/designs/.")
        else:
            order = sorted(ex, key=lambda k: (k != "counter", ex[k].size != "small", k))  # smallest first
            # A key: without one the widget's identity is its label, options and their texts, so an example folder
            # added or a description edited between the pick and the click would reset it to the first example in
            # the very rerun that starts the flow, and the run would silently be of another design.
            name = st.selectbox("Example", order, format_func=lambda k: f"{k} — {ex[k].description}",
                                key=EXAMPLE_KEY)
            chosen = ex[name]
            base = chosen.flow_config()
            files = [Path(f) for f in chosen.files]
            testbench = Path(chosen.testbench) if chosen.testbench else None
            top, clock, clock_ns = chosen.top, chosen.clock_port, chosen.clock_ns
            modules = [top] if top else []
            design_name = name
    else:
        uploads = st.file_uploader("Verilog files or one .zip", type=["v", "sv", "vh", "svh", "zip"],
                                   accept_multiple_files=True,
                                   help="A zip is checked member by member.")
        _ucfg = UploadConfig()
        st.caption(f"Limits: {size_text(_ucfg.max_file_bytes)} per file, {size_text(_ucfg.max_total_bytes)} per "
                   f"design, {_ucfg.max_files} files. A larger file is refused with a message here.")
        if uploads:
            dest = upload_dir(uploads)
            try:
                if not dest.exists():
                    save_files([(u.name, u.getvalue()) for u in uploads], dest)
                files = sorted(p for p in dest.rglob("*") if p.suffix in (".v", ".sv") and not p.name.startswith("tb_"))
                check_includes(dest)
                top, modules = guess_top(files)
                clock = guess_clock(files, top) if top else None
                design_name = top or files[0].stem
            except UploadError as exc:
                import shutil

                shutil.rmtree(dest, ignore_errors=True)
                st.error(f"Upload refused: {exc}")
                files = []
    if files:
        st.caption("Sources: " + ", ".join(f"`{p.name}`" for p in files))
        options = modules or [top]
        top = st.selectbox("Top module", options, index=options.index(top) if top in options else 0,
                           help="The module that is the chip; the others are its parts.")
        c1, c2 = st.columns(2)
        clock = c1.text_input("Clock port", value=clock or "", help="Input that clocks the flip-flops; empty for "
                              "purely combinational logic.").strip() or None
        clock_ns = c2.number_input("Clock period (ns)", min_value=0.5, max_value=1000.0, value=float(clock_ns),
                                   step=0.5, help=f"Target frequency {1000 / clock_ns:.0f} MHz at {clock_ns} ns.")
        _util = knob("floorplan.utilization")  # range from the registry
        util = st.slider("Utilisation (cell area / core area)", float(_util.low), float(_util.high),
                         float(base.floorplan.utilization), 0.05,
                         help="Lower leaves more room between cells for wires (easier routing, bigger chip).")
        until = st.select_slider("Run up to", options=list(STEP_IDS[:-1]) + [STEP_IDS[-1]], value=STEP_IDS[-1],
                                 format_func=lambda s: STEP_TITLES[s])
        busy = [j for j in runpicker.queue().jobs()]
        if busy:
            st.caption(f"{len(busy)} job(s) queued or running on this machine; a new run waits for a free core.")
        if st.button("Run the flow", type="primary", icon=":material/play_arrow:", width="stretch"):
            config = base
            config.design_files = [str(p) for p in files]
            config.top, config.clock_port, config.clock_ns = top, clock, clock_ns
            config.testbench = str(testbench) if testbench else None
            config.floorplan.utilization = util
            try:  # the same check the CLI makes: a bad name never reaches a tool script
                validate_flow_config(config)
            except EngineError as exc:
                st.error(f"Not started: {exc.message}")
            else:
                start_flow(config.to_dict(), design_name, until=None if until == STEP_IDS[-1] else until)
                st.rerun()

with right:
    st.subheader("This run")
    if run is None:
        st.info("No run yet. Choose a design and press **Run the flow**.")
    else:
        job_panel(run, key="design-job")
        if not is_active(run):
            problem_boxes(run)
