"""Chapter 5 · Routing & congestion: where the wires want to go (RUDY), what qrouter made of it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cockpit import data, figures, runpicker, story
from cockpit.jobs_panel import live
from cockpit.widgets import (
    log_block,
    metric_cards,
    metric_table,
    needs_run,
    problem_boxes,
    run_context,
    step_not_reached,
)

# congestion.npz map -> (title, quantity of its one colour scale in cockpit.figures.HEAT_SCALES)
MAP_TITLES = {"ratio": ("Congestion: wire demand ÷ track capacity", "rudy"),
              "demand": ("RUDY wire density (µm of wire per µm²)", "rudy_demand")}

run = runpicker.current_run()
m = run.metrics().get("route", {}) if run else {}
happened = None
if m:
    bits = []
    if "route__wirelength" in m:
        bits.append(f"qrouter laid **{m['route__wirelength']:,.0f} µm** of wire")
    if "route__via__count" in m:
        bits.append(f"with **{m['route__via__count']:,} vias**")
    if "route__net__unrouted" in m:
        n = int(m["route__net__unrouted"])
        bits.append("and **every net is connected**" if n == 0 else f"but **{n} nets stayed open**")
    happened = " ".join(bits) + "." if bits else "routing finished."
story.opener(
    "5 · Routing & congestion",
    "the router draws real metal wires on the layers above the cells for every net, avoiding shorts. Before it, "
    "RUDY estimates how many wires each region will need compared to the tracks it has.",
    happened,
    "bright regions of the map are where demand is highest; open nets, if any, usually sit there. Compare routed "
    "wirelength with the placement's HPWL: routes are longer because they bend around each other.",
)
if not needs_run(run):
    def body(r):
        mm = r.metrics().get("route", {})
        cong = data.congestion(r)
        if not mm and cong is None:
            step_not_reached(r, "route", "routing")
            return
        ctx = {**run_context(r), **r.metrics().get("place", {})}
        metric_cards(mm, ["route__wirelength", "route__via__count", "route__net__unrouted", "route__rudy__max",
                          "route__rudy__overflow"], ctx)
        hp = r.metrics().get("place", {}).get("placement__hpwl")
        if hp and mm.get("route__wirelength"):
            st.caption(f"Routed wire is {mm['route__wirelength'] / hp:.2f}× the placement's HPWL estimate "
                       "(1.1–1.5× is typical; much more means detours around congestion).")
        problem_boxes(r, "route")
        lay = data.layout(r, "route", "def", "routed.def") or data.layout(r, "place", "def", "placed.def")
        region = tuple(np.asarray(cong["region"]).tolist()) if cong and "region" in cong else (lay.die if lay else None)
        maps = {k: v for k, v in (cong or {}).items() if k in MAP_TITLES and isinstance(v, np.ndarray) and v.ndim == 2}
        if maps:  # side by side in one chart: one Plotly chart fewer for the browser to set up
            st.plotly_chart(figures.heatmaps_figure([(grid, MAP_TITLES[k][1], MAP_TITLES[k][0])
                                                     for k, grid in maps.items()], region),
                            width="stretch", key="maps")
        left, right = st.columns([3, 2], gap="large")
        with left:
            if lay is not None:
                fig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                            power=lay.power, power_uses=lay.power_uses,
                                            title="The routed wires, coloured by metal layer", height=640)
                figures.add_wires(fig, data.routed_wires(r))
                st.plotly_chart(fig, width="stretch")
        with right:
            per_layer = mm.get("route__wirelength__per_layer") or {}
            if per_layer:
                st.markdown("**Wire per metal layer**")
                st.html(figures.layer_bars_html(per_layer))
            failures = mm.get("route__failures") or []
            if failures:
                st.markdown(f"**Open nets ({len(failures)})**")
                st.table(pd.DataFrame(failures).rename(columns={"net": "net", "reason": "why"}).head(20))
            log = data.artefact(r, "route", "log", "qrouter.log")
            if log:
                with st.expander("qrouter log (last lines)"):
                    log_block(data.text_tail(log, 40))
        with st.expander("All routing numbers, with what they mean"):
            metric_table(mm, ctx, hide=("route__wirelength__per_layer", "route__failures"))

    live(run, body, key="route")
