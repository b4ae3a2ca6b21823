"""Chapter 3 · Floorplan: the die, the rows the cells will sit in, and the IO pins on the edge."""
from __future__ import annotations

import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.widgets import metric_cards, metric_table, needs_run, problem_boxes, run_context, step_not_reached

run = runpicker.current_run()
m = run.metrics().get("floorplan", {}) if run else {}
happened = None
if m:
    happened = (f"a **{m.get('floorplan__core__width_um', 0):.0f} × {m.get('floorplan__core__height_um', 0):.0f} µm** "
                f"core with **{m.get('floorplan__row__count', 0)} rows** holds the cells at "
                f"**{100 * m.get('floorplan__utilization', 0):.0f} %** utilisation; "
                f"{m.get('floorplan__io__count', 0)} pins sit on the edge.")
story.opener(
    "3 · Floorplan",
    "we size the chip: a core big enough for the cells at the chosen utilisation, cut into rows of sites, with "
    "the input/output pins spread around the die edge.",
    happened,
    "the grey lines are the rows, the orange diamonds the pins; the power grid (red vdd, green gnd: metal1 "
    "rails along the rows, metal4 stripes and a ring) feeds every cell, click its legend entries to hide it. "
    "Lower utilisation gives a bigger core and more room for wires.",
)
if not needs_run(run):
    def body(r):
        mm = r.metrics().get("floorplan", {})
        if not mm:
            step_not_reached(r, "floorplan", "floorplan")
            return
        metric_cards(mm, ["floorplan__die__area_um2", "floorplan__core__area_um2", "floorplan__utilization",
                          "floorplan__row__count", "floorplan__io__count"], run_context(r))
        left, right = st.columns([3, 2], gap="large")
        lay = data.layout(r, "floorplan", "def", "floorplan.def")
        with left:
            if lay is None:
                st.info("The floorplan DEF could not be read.")
            else:
                io = lay.is_io
                fig = figures.layout_figure(lay.die, lay.x[io], lay.y[io], lay.w[io], lay.h[io], is_io=io[io],
                                            rows=lay.rows, power=lay.power, power_uses=lay.power_uses,
                                            title="Die, rows, power grid and pins" if lay.power
                                            else "Die, rows and pins")
                if lay.core:
                    c = lay.core
                    fig.add_shape(type="rect", x0=c[0], y0=c[1], x1=c[2], y1=c[3],
                                  line=dict(color="#0b5cad", width=2, dash="dash"))
                st.plotly_chart(fig, width="stretch")
        with right:
            st.markdown("**The die in numbers**")
            st.markdown(
                f"- Die: **{mm.get('floorplan__die__width_um', 0):.1f} × "
                f"{mm.get('floorplan__die__height_um', 0):.1f} µm**\n"
                f"- Core (dashed): **{mm.get('floorplan__core__width_um', 0):.1f} × "
                f"{mm.get('floorplan__core__height_um', 0):.1f} µm**, leaving a margin for the pins\n"
                f"- **{mm.get('floorplan__row__count', 0)} rows** of **{mm.get('floorplan__site__count', 0):,} sites** "
                "(a site is the 0.8 µm slot a cell's width is counted in)\n"
                f"- **{mm.get('floorplan__io__count', 0)} pins** on the edge, one per port bit"
                + (f"\n- Power grid: {figures.power_summary(lay.power, lay.power_uses)}"
                   if lay is not None and lay.power else ""))
            if mm.get("floorplan__utilization", 0) > 0.8:
                st.warning("Above 80 % utilisation the router often runs out of room; consider 0.6.")
        problem_boxes(r, "floorplan")
        with st.expander("All floorplan numbers, with what they mean"):
            metric_table(mm, run_context(r))

    live(run, body, key="floorplan")
