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

KINDS_V2 = ("direction", "choose", "percent", "diagnose", "act")


def v2_result_files(folder: Path) -> list[Path]:
    """v2 results (``"version": 2``) in folder/v2 and folder itself, newest first."""
    import json

    out = []
    for d in (folder / "v2", folder):
        if not d.is_dir():
            continue
        for f in d.glob("*.json"):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("version") == 2 and "results" in data:
                out.append(f)
    return sorted(out, key=lambda f: f.stat().st_mtime, reverse=True)


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
v2_files = v2_result_files(folder)
if len(v2_files) >= 2:
    show_v2(v2_files)
    with st.expander("Benchmark v1 results (older problem set)"):
        st.caption("v1 problems (assets/bench/problems_v1.jsonl) had placements stopped at an iteration cap and "
                   "shortcuts that trivial baselines pass; v2 replaces them.")
    st.stop()
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
