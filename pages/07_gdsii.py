"""Chapter 7 · GDSII: the finished layout, the file a foundry would receive."""
from __future__ import annotations

import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

run = runpicker.current_run()
m = run.metrics().get("gds", {}) if run else {}
happened = None
if m or (run and data.artefact(run, "gds", "gds", "design.gds")):
    flat = run.flat_metrics()
    happened = (f"KLayout merged the cell layouts and the routed wires into one GDSII file for "
                f"**{flat.get('design__instance__count', 0):,} cells**"
                + (f" on a {flat['floorplan__die__width_um']:.0f} × {flat['floorplan__die__height_um']:.0f} µm die"
                   if "floorplan__die__width_um" in flat else "") + ".")
story.opener(
    "7 · GDSII",
    "the last step writes the layout as GDSII: the polygons of every cell, wire and via, layer by layer, as "
    "a mask shop would read them.",
    happened,
    "zoom into the picture (drag a box, double-click to reset): the colours are metal layers; the regular "
    "stripes are the cell rows. Download the .gds to open it in KLayout.",
)
if not needs_run(run):
    def body(r):
        gds = data.artefact(r, "gds", "gds", "design.gds")
        png = data.artefact(r, "gds", "png", "layout.png")
        mm = r.metrics().get("gds", {})
        if gds is None and png is None:
            step_not_reached(r, "gds", "GDSII layout")
            return
        metric_cards(mm, list(mm)[:5], run_context(r))
        if png is not None:
            fp = r.metrics().get("floorplan", {})
            die = ((0.0, 0.0, fp["floorplan__die__width_um"], fp["floorplan__die__height_um"])
                   if "floorplan__die__width_um" in fp else None)
            st.plotly_chart(figures.image_figure(png, die), width="stretch", key="gds-image")
        if gds is not None:
            st.download_button(f"Download {gds.name} ({gds.stat().st_size / 1e3:,.0f} kB)", gds.read_bytes(),
                               file_name=f"{r.design or 'design'}.gds", mime="application/octet-stream",
                               type="primary", icon="⬇️")
        with st.expander("All GDSII numbers"):
            metric_table(mm, run_context(r))
        problem_boxes(r, "gds")

    live(run, body, key="gds")
