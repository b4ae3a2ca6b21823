"""Benchmarks: baselines, models and the oracle side by side on the placement problems (truth from the engine)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.bench.results import RESULTS_DIR, load_results, result_files, short
from engine.errors import EngineError

KINDS_V2 = ("direction", "choose", "percent", "diagnose", "act")


def show_v2(files: list[Path]) -> None:
    """Benchmark v2: baselines, models and the oracle on held-out placement problems, side by side."""
    from engine.bench.v2 import compare_v2

    names = [f"{f.parent.name}/{f.name}" if f.parent.name == "v2" else f.name for f in files]
    by_name = dict(zip(names, files))
    chosen = st.multiselect("Result sets", names, default=names, help="bench/results/v2/*.json from "
                            "`cda bench run --mode plain|rag-tools` (or `make bench`)")
    if len(chosen) < 2:
        st.warning("Pick at least two result sets.")
        st.stop()
    try:
        results = [load_results(by_name[n]) for n in chosen]
        cmp = compare_v2(results)
    except EngineError as exc:
        st.error(str(exc))
        st.stop()
    labels, fams, sums = cmp["labels"], cmp["families"], cmp["summaries"]
    ranked = cmp["ranking"]
    models = [la for la in ranked if fams[la] == "model"]
    baselines = [la for la in ranked if fams[la] == "baseline"]
    oracle = [la for la in labels if fams[la] == "oracle"]
    lead = models[0] if models else (ranked[0] if ranked else labels[0])
    best_base = baselines[0] if baselines else None
    sl = sums[lead]["overall"]
    line = f"{lead} scores {sl['score']:.2f} (95% CI {sl['ci95'][0]:.2f}-{sl['ci95'][1]:.2f})"
    if best_base and best_base != lead:
        sb = sums[best_base]["overall"]
        line += f"; the best trivial baseline, {best_base}, {sb['score']:.2f} ({sb['ci95'][0]:.2f}-{sb['ci95'][1]:.2f})"
    if oracle:
        line += f"; the engine oracle (upper bound) {sums[oracle[0]]['overall']['score']:.2f}"
    st.markdown(
        f"**What this is:** {cmp['common_problems']} placement problems on designs no training example used "
        "(direction, choose, percent, diagnose, act), truth from the engine with 3 placer seeds; JSON answers "
        "only, parse failures counted apart.  \n"
        f"**What happened:** {line}.  \n"
        "**Look at:** where a model's interval clears every baseline's, and the problems it solves that no "
        "baseline solves. The oracle row is the engine itself: a ceiling, not a competitor.")
    rows = []
    for la in [*ranked, *oracle]:
        s = sums[la]
        row = {"answerer": la, "kind": "oracle (upper bound)" if fams[la] == "oracle" else fams[la]}
        for k in ("overall", *KINDS_V2):
            b = s["overall"] if k == "overall" else s["by_kind"].get(k)
            row[k] = f"{b['score']:.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}]" if b else "-"
        row["parse / schema failures"] = f"{s['overall']['parse_failures']} / {s['overall']['schema_failures']}"
        rows.append(row)
    st.subheader("Scores per kind")
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
    fig = go.Figure()
    kinds = ["overall", *[k for k in KINDS_V2 if any(k in sums[la]["by_kind"] for la in labels)]]
    for la in [*ranked, *oracle]:
        s = sums[la]
        blocks = [s["overall"] if k == "overall" else s["by_kind"].get(k, {"score": 0, "ci95": [0, 0]})
                  for k in kinds]
        fig.add_bar(name=la + (" (oracle)" if fams[la] == "oracle" else ""), x=kinds, y=[b["score"] for b in blocks],
                    opacity=0.5 if fams[la] == "oracle" else 1.0,
                    error_y=dict(type="data", symmetric=False, array=[b["ci95"][1] - b["score"] for b in blocks],
                                 arrayminus=[b["score"] - b["ci95"][0] for b in blocks]))
    fig.update_layout(barmode="group", yaxis_title="mean score (95% CI)", yaxis_range=[0, 1.05], height=380,
                      margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, use_container_width=True)
    if cmp["solved_by_no_baseline"]:
        st.subheader("Solved by a model and by no baseline")
        cols = st.columns(min(len(cmp["solved_by_no_baseline"]), 4))
        for i, (la, ids) in enumerate(cmp["solved_by_no_baseline"].items()):
            with cols[i % len(cols)]:
                st.metric(la, len(ids))
    st.subheader("Problem by problem")
    by_id = [{row["id"]: row for row in r["results"]} for r in results]
    common = [pid for pid in by_id[0] if all(pid in b for b in by_id[1:])]
    kind = st.selectbox("Kind", ["all", *KINDS_V2])
    table = []
    for pid in common:
        first = by_id[0][pid]
        if kind != "all" and first["kind"] != kind:
            continue
        row = {"id": pid, "kind": first["kind"], "design": first.get("design", ""), "gold": short(first["gold"])}
        for la, b in zip(labels, by_id):
            row[f"{la} score"] = b[pid]["score"]
        table.append(row)
    st.dataframe(pd.DataFrame(table), hide_index=True, use_container_width=True)
    if table:
        pid = st.selectbox("Problem", [r["id"] for r in table])
        try:
            from engine.bench.v2 import load_v2

            prompt = next((r.prompt for r in load_v2(results[0].get("problems_file")) if r.id == pid), "")
        except EngineError:
            prompt = ""
        if prompt:
            st.markdown(f"**Prompt:** {prompt}")
        st.markdown(f"**Gold (engine):** `{short(by_id[0][pid]['gold'], 300)}`")
        cols = st.columns(min(len(results), 4))
        for i, (la, b) in enumerate(zip(labels, by_id)):
            row = b[pid]
            with cols[i % len(cols)]:
                st.markdown(f"**{la}**: score {row['score']:.2f} ({row['status']})")
                st.code(short(row.get("answer"), 300), language="json")

st.title("Benchmarks")
folder = Path(os.environ.get("CDA_BENCH_RESULTS", RESULTS_DIR))
files = result_files(folder)
if len(files) < 2:
    st.info(f"Comparing needs two or more result sets in {folder} (or its v2/ folder); there are {len(files)}. "
            "Make them with `cda bench run --model rules` and `cda bench run --model lora:<adapter>` (or "
            "`make bench`).")
    st.stop()
show_v2(files)
