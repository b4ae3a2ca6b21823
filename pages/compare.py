"""Compare two runs side by side: every metric with which run is better, and their layouts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from cockpit import data, explain, figures, runpicker
from cockpit.runpicker import run_label
from engine.config import FlowConfig
from engine.errors import EngineError
from engine.registry import METRICS as REGISTRY

st.title("Compare runs")
st.caption("Two runs side by side: the same metrics, which one is better on each (a difference within the metric's "
           "noise is not called better), and their layouts.")

try:
    _hidden = runpicker.hidden_count(runpicker.store().count_by_origin(kind="flow"))
    _show_all = runpicker.show_all_toggle(st, _hidden, key="compare_show_all")
    rows, _ = runpicker.listed_runs("flow", show_all=_show_all, limit=100, hidden=_hidden)
except EngineError as exc:
    st.error(exc.message, icon=":material/error:")
    st.stop()
rows = [r for r in rows if r["status"] != "damaged"]
if len(rows) < 2:
    st.info("Comparing needs at least two runs. Start another on the Design page (for example with a different "
            "utilisation), then come back.")
    st.stop()
ids = [r["id"] for r in rows]
labels = {r["id"]: run_label(r) for r in rows}
qa, qb = st.query_params.get("a"), st.query_params.get("b")
sel = runpicker.selected_run_id()
default_a = qa if qa in ids else sel if sel in ids else ids[0]
design_a = next(r["design"] for r in rows if r["id"] == default_a)
# B defaults to the previous run of the same design (the usual question: what did my change do?).
default_b = qb if qb in ids else next((r["id"] for r in rows if r["id"] != default_a and r["design"] == design_a),
                                      next(i for i in ids if i != default_a))
if qb not in ids and not any(r["id"] != default_a and r["design"] == design_a for r in rows):
    st.info(f"There is only one run of {design_a}: start another one of it (with a different setting) to see what "
            "the change did.", icon=":material/info:")
c1, c2 = st.columns(2)
a = c1.selectbox("Run A", ids, index=ids.index(default_a), format_func=labels.get)
b = c2.selectbox("Run B", ids, index=ids.index(default_b), format_func=labels.get)
st.query_params["a"], st.query_params["b"] = a, b
try:
    ra, rb = runpicker.store().get(a), runpicker.store().get(b)
    mismatch = runpicker.pair_warning(ra.info(), rb.info())
except EngineError as exc:
    st.error(str(exc))
    st.stop()
if a == b:
    st.warning("Run A and run B are the same run: pick another run for B.", icon=":material/warning:")
if mismatch:
    st.warning(mismatch, icon=":material/warning:")


def _better(name: str, va, vb) -> str:
    """Which run is better on this metric, by the registry's direction and noise threshold: "A", "B", "within
    noise" (a difference too small to claim), or "" (no direction, not numbers, or equal)."""
    spec = REGISTRY.get(name)
    if spec is None or spec.higher_is_better is None or va is None or vb is None or va == vb:
        return ""
    verdict = spec.better(va, vb)
    if verdict is None:
        numbers = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        return "within noise" if spec.numeric and numbers else ""
    return "A" if verdict else "B"


ma, mb = ra.flat_metrics(), rb.flat_metrics()
table = []
for name in list(dict.fromkeys(list(ma) + list(mb))):
    va, vb = ma.get(name), mb.get(name)
    if isinstance(va, (dict, list)) or isinstance(vb, (dict, list)):
        continue
    table.append({"metric": explain.describe(name).label, "A": explain.value_text(name, va) if va is not None else "—",
                  "B": explain.value_text(name, vb) if vb is not None else "—",
                  "better": "not compared" if mismatch else _better(name, va, vb),
                  "_key": name})


def _full_config(config: dict) -> dict:
    """A run's config with every default filled in, so a run saved before a section was typed (its placer settings
    were a partial dict) compares field by field with a newer one."""
    try:
        return FlowConfig.from_dict(config).to_dict()
    except EngineError:
        return config


cfg_a, cfg_b = _full_config(ra.config), _full_config(rb.config)


def _short(v):
    """Config values for a sentence: file paths by their name, sections by their changed fields."""
    if isinstance(v, str) and "/" in v:
        return Path(v).name
    if isinstance(v, list):
        return ", ".join(str(_short(x)) for x in v)
    return v


diffs = []
for k in sorted(set(cfg_a) | set(cfg_b)):
    va, vb = cfg_a.get(k), cfg_b.get(k)
    if va == vb:
        continue
    if isinstance(va, dict) and isinstance(vb, dict):
        diffs += [f"`{k}.{kk}`: {_short(va.get(kk))} → {_short(vb.get(kk))}" for kk in sorted(set(va) | set(vb))
                  if va.get(kk) != vb.get(kk)]
    else:
        diffs.append(f"`{k}`: {_short(va)} → {_short(vb)}")
if diffs:
    st.markdown("**Configuration differences:** " + " · ".join(diffs))
KEY = {"design__instance__count", "design__instance__area", "floorplan__utilization", "placement__hpwl",
       "placement__overflow", "route__wirelength", "route__via__count", "route__net__unrouted", "timing__setup__ws",
       "timing__setup__tns", "timing__fmax_mhz", "power__total"}
key_rows = [t for t in table if t.pop("_key") in KEY]
if table:
    st.table(pd.DataFrame(key_rows or table).set_index("metric"))
    with st.expander(f"All {len(table)} metrics"):
        st.table(pd.DataFrame(table).set_index("metric"))
else:
    st.info("Neither run has finished a step yet, so there are no numbers to compare.")

cols = st.columns(2)
for col, r, tag in ((cols[0], ra, "A"), (cols[1], rb, "B")):
    with col:
        st.markdown(f"**{tag}: {run_label(r.info())}**")
        png = data.artefact(r, "gds", "png", "layout.png")
        lay = data.layout(r, "place", "def", "placed.def")
        if png is not None:
            st.plotly_chart(figures.add_layer_legend(figures.image_figure(png, data.gds_die(r), height=480),
                                                     data.gds_colours(r)), width="stretch", key=f"img-{tag}")
        elif lay is not None:
            st.plotly_chart(figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                                  height=480), width="stretch", key=f"lay-{tag}")
        else:
            st.info("No layout yet for this run.")

st.subheader("Across runs of the same design")
design = ra.design
same = [r for r in rows if r["design"] == design and r["status"] == "done"][:30]
if len(same) < 2:
    st.caption(f"Only one finished run of {design}: run it again with other settings to see a trend here.")
else:
    runs_same = [runpicker.store().get(r["id"]) for r in reversed(same)]  # oldest first
    flat = [r.flat_metrics() for r in runs_same]
    numeric = sorted({k for m in flat for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    preferred = [k for k in ("placement__hpwl", "route__wirelength", "timing__setup__ws", "timing__fmax_mhz")
                 if k in numeric]
    metric = st.selectbox("Metric", numeric, index=numeric.index(preferred[0]) if preferred else 0,
                          format_func=lambda k: f"{explain.describe(k).label} ({k})") if numeric else None
    if metric is None:
        st.caption(f"The finished runs of {design} have no numbers yet.")
        st.stop()
    # Numbered: two runs can have the same label and age, and a category axis would merge their points.
    xs = [f"{i}. {run_label(r.info())}" for i, r in enumerate(runs_same, 1)]
    ys = [m.get(metric) for m in flat]
    fig = figures.go.Figure(figures.go.Scatter(x=xs, y=ys, mode="lines+markers", line=dict(width=3),
                                               marker=dict(size=10)))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), font=figures.FONT,
                      yaxis=dict(title=explain.describe(metric).unit or explain.describe(metric).label),
                      plot_bgcolor="#fafbfc")
    st.plotly_chart(fig, width="stretch", key="trend")
