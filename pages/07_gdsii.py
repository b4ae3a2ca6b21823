"""Chapter 7 · GDSII: the finished layout, the file a foundry would receive."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

run = runpicker.current_run()
m = run.metrics().get("gds", {}) if run else {}
happened = None
if m or (run and data.artefact(run, "gds", "gds", "design.gds")):
    flat = run.flat_metrics()
    happened = (f"KLayout merged the cells (their LEF abstracts) and the routed wires into one GDSII file for "
                f"**{flat.get('design__instance__count', 0):,} cells**"
                + (f" on a {flat['floorplan__die__width_um']:.0f} × {flat['floorplan__die__height_um']:.0f} µm die"
                   if "floorplan__die__width_um" in flat else "") + ".")
    if "checks__status" in flat:
        failed = int(flat.get("checks__failed__count") or 0)
        happened += (" Every signoff check passes." if not failed else
                     f" **{failed} signoff check{'' if failed == 1 else 's'} found errors**: see the table below.")
story.opener(
    "7 · GDSII",
    "the last step writes the layout as GDSII: the polygons of every cell, wire and via, layer by layer, as "
    "a mask shop would read them.",
    happened,
    "zoom into the picture (drag a box, double-click to reset): the colours are metal layers; the regular "
    "stripes are the cell rows. Download the .gds to open it in KLayout.",
)
_STATUS_WORDS = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warning", "n/a": "— not available"}


def checks_table(r) -> None:
    """The signoff checks of the run (its checks.json, read as written: nothing is recomputed here)."""
    st.subheader("Signoff checks")
    st.markdown("**The osu018 cells in this GDSII are abstracts**: each cell is its LEF outline, pins and "
                "obstructions, not its transistor layout (Debian ships no cell GDS). So no DRC or LVS on geometry "
                "is possible here; the checks below are the ones this library allows: placement, routing "
                "connectivity and the layout's nets against the netlist's.")
    report = data.cached_json(data.artefact(r, "checks", "report", "checks.json"))
    if not report:
        if r.status in ("queued", "running"):
            step_not_reached(r, "checks", "signoff checks")
        else:
            st.info("This run has no signoff checks (it ended before them, or was made before the flow had them).")
        return
    rows = [{"check": c.get("name", c.get("id")), "count": "—" if c.get("count") is None else f"{c['count']:,}",
             "status": _STATUS_WORDS.get(c.get("status"), c.get("status")),
             "what it looks at": c.get("note") if c.get("status") == "n/a" else c.get("what")}
            for c in report.get("checks", [])]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    found = [c for c in report.get("checks", []) if c.get("details") and c.get("status") in ("fail", "warn")]
    if found:
        with st.expander("Findings, check by check (the first ones; checks.json has them all)"):
            for c in found:
                st.markdown(f"**{c.get('name')}** ({c.get('count'):,})")
                st.json(c["details"][:20], expanded=False)


if not needs_run(run):
    def body(r):
        gds = data.artefact(r, "gds", "gds", "design.gds")
        png = data.artefact(r, "gds", "png", "layout.png")
        mm = r.metrics().get("gds", {})
        if gds is None and png is None:
            step_not_reached(r, "gds", "GDSII layout")
            return
        ver = r.metrics().get("verify", {})
        metric_cards({**mm, **ver}, ["gds__instance__count", "gds__layer__count", "gds__file_bytes", "verify__status",
                                     "verify__mismatch__count"], run_context(r))
        if ver.get("verify__status"):
            st.caption(f"Verification: the routed netlist was simulated against the RTL with the design's testbench "
                       f"({ver.get('verify__tests__count', 0):,} outputs compared, "
                       f"{ver.get('verify__mismatch__count', 0)} mismatches).")
        if png is not None:
            fig = figures.image_figure(png, data.gds_die(r), height=820)
            figures.add_layer_legend(fig, data.gds_colours(r))
            st.plotly_chart(fig, width="stretch", key="gds-image")
            st.caption("The osu018 cells are LEF abstracts (outline, pins, obstructions), not transistor layouts; "
                       "the legend names the colour KLayout gave each layer.")
        if st.toggle("Interactive layer view (cells, fillers, power grid, wires by metal layer)", key="gds-vector"):
            lay = (data.layout(r, "gds", "filled_def", "filled.def") or data.layout(r, "route", "def", "routed.def"))
            if lay is None:
                st.info("No routed or filled DEF to draw.")
            else:
                vec = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                            power=lay.power, power_uses=lay.power_uses, is_fill=lay.is_fill,
                                            title="Cells, fillers, power grid and routed wires", height=720)
                figures.add_wires(vec, data.routed_wires(r))
                st.plotly_chart(vec, width="stretch", key="gds-vector-fig")
        checks_table(r)
        if gds is not None:
            st.download_button(f"Download {gds.name} ({gds.stat().st_size / 1e3:,.0f} kB)", gds.read_bytes,
                               file_name=f"{r.design or 'design'}.gds", mime="application/octet-stream",
                               type="primary", icon="⬇️")
        with st.expander("All GDSII, signoff-check and verification numbers, with what they mean"):
            metric_table({**mm, **r.metrics().get("checks", {}), **ver}, run_context(r),
                         hide=("gds__bbox_um", "verify__vcd_scope"))
        problem_boxes(r, "gds")
        problem_boxes(r, "checks")

    live(run, body, key="gds")
