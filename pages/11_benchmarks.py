"""Benchmarks: two or more models' result sets side by side on the placement problems (truth from the engine)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.bench.report import list_result_files, score_table, short, side_by_side
from engine.bench.runner import RESULTS_DIR, compare, load_results
from engine.errors import EngineError

st.title("Benchmarks")
folder = Path(os.environ.get("CDA_BENCH_RESULTS", RESULTS_DIR))
files = list_result_files(folder) if folder.is_dir() else []
if len(files) < 2:
    st.info(f"Comparing needs two or more result sets in {folder}; there are {len(files)}. Make them with "
            "`cda bench run --model engine --mode specialist` and `cda bench run --model rules --mode baseline` "
            "(or `make bench`).")
    st.stop()

names = [f.name for f in files]
chosen = st.multiselect("Result sets", names, default=names[:2], help="bench/results/*.json from `cda bench run`")
if len(chosen) < 2:
    st.warning("Pick at least two result sets.")
    st.stop()
try:
    results = [load_results(folder / n) for n in chosen]
    cmp = compare(results)
except EngineError as exc:
    st.error(str(exc))
    st.stop()
labels = cmp["labels"]
if len(set(labels)) < len(labels):  # two files of the same model and mode: tell them apart by file name
    for r, n in zip(results, chosen):
        r["label"] = Path(n).stem
    cmp = compare(results)
    labels = cmp["labels"]

# The three opening lines: what this is, what happened, what to look at.
best = max(labels, key=lambda la: cmp["summaries"][la]["overall"]["score"])
worst = min(labels, key=lambda la: cmp["summaries"][la]["overall"]["score"])
sb, sw = cmp["summaries"][best]["overall"], cmp["summaries"][worst]["overall"]
gain = (sb["score"] - sw["score"]) / sw["score"] if sw["score"] else float("inf")
st.markdown(
    f"**What this is:** {cmp['common_problems']} placement problems whose answers the engine computed (predict, "
    "choose, diagnose, act), answered by each model and scored automatically.  \n"
    f"**What happened:** {best} scores {sb['score']:.2f} (95% CI {sb['ci95'][0]:.2f}-{sb['ci95'][1]:.2f}), "
    f"{worst} {sw['score']:.2f}" + (f" — {gain:+.0%} relative." if gain != float("inf") else ".") + "  \n"
    "**Look at:** the kinds where the intervals do not overlap, and the problems one solves that the other cannot.")

st.subheader("Scores per kind")
st.dataframe(pd.DataFrame(score_table(results)), hide_index=True, use_container_width=True)
fig = go.Figure()
kinds = ["overall", *[k for k in ("predict", "choose", "diagnose", "act")
                      if any(k in cmp["summaries"][la]["by_kind"] for la in labels)]]
for la in labels:
    s = cmp["summaries"][la]
    blocks = [s["overall"] if k == "overall" else s["by_kind"].get(k, {"score": 0, "ci95": [0, 0]}) for k in kinds]
    fig.add_bar(name=la, x=kinds, y=[b["score"] for b in blocks],
                error_y=dict(type="data", symmetric=False, array=[b["ci95"][1] - b["score"] for b in blocks],
                             arrayminus=[b["score"] - b["ci95"][0] for b in blocks]))
fig.update_layout(barmode="group", yaxis_title="mean score (95% CI)", yaxis_range=[0, 1.05], height=360,
                  margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, use_container_width=True)

ret_rows = []
for la in labels:
    for name, b in cmp["summaries"][la]["retrieval"].items():
        ret_rows.append({"result set": la, "retrieval": name, "n": b["n"], "score": b["score"],
                         "ci95": f"{b['ci95'][0]:.2f}-{b['ci95'][1]:.2f}"})
if ret_rows:
    st.caption("ChipNeMo-style split: problems where retrieval found the gold passage (hit) or not (miss); "
               "'none' = no retrieval (baseline mode).")
    st.dataframe(pd.DataFrame(ret_rows), hide_index=True)

st.subheader("Solved by one, not the other")
cols = st.columns(min(len(cmp["solved_only_by"]), 4) or 1)
for i, (key, ids) in enumerate(cmp["solved_only_by"].items()):
    with cols[i % len(cols)]:
        st.metric(f"{key}", len(ids))
        if ids:
            st.caption(", ".join(ids[:20]) + (" …" if len(ids) > 20 else ""))

st.subheader("Problem by problem")
c1, c2 = st.columns([1, 1])
kind = c1.selectbox("Kind", ["all", "predict", "choose", "diagnose", "act"])
only_diff = c2.toggle("Only where they differ (solved by some, not all)")
rows = side_by_side(results, None if kind == "all" else kind, only_diff)
st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
if rows:
    pid = st.selectbox("Problem", [r["id"] for r in rows])
    by_id = [{row["id"]: row for row in r["results"]} for r in results]
    first = by_id[0][pid]
    st.markdown(f"**{pid}** ({first['kind']}): {first['question']}")
    st.markdown(f"**Truth (engine):** `{short(first.get('truth'), 200)}`")
    acols = st.columns(len(results))
    for col, la, b in zip(acols, labels, by_id):
        row = b[pid]
        with col:
            st.markdown(f"**{la}** — score {row['score']:.2f}" + (" ✅" if row["solved"] else ""))
            st.code(short(row.get("answer"), 400) if not row.get("answer_text") else row["answer_text"][:600],
                    language="text")
            if row.get("error"):
                st.caption(f"error: {row['error']}")
            st.json(row.get("detail", {}), expanded=False)
