"""Training: the engine-grounded data set, LoRA fine-tuning with live loss curves, the search's trials, the export.

The page reads result folders (training jobs are runs of kind ``train-*`` in the run store; the CLI writes to
.cache/train/*) and starts or cancels jobs through engine.train.jobs; it trains nothing itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from cockpit import figures, runpicker, story
from engine.errors import EngineError
from engine.train.config import ExportConfig, LoraTrainConfig, SearchConfig, field_docs
from engine.train.jobs import list_outputs, submit_train_job

ACTIVE = ("queued", "running")
POLL_S = 2.0


def read(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pick_output(what: str, title: str):
    outs = list_outputs(what, runpicker.store())
    if not outs:
        return None
    labels = [o.label for o in outs]
    i = st.selectbox(title, range(len(outs)), format_func=lambda k: labels[k], key=f"train-pick-{what}")
    return outs[i]


def cancel_button(out, key: str) -> None:
    if out.status not in ACTIVE:
        return
    if st.button("Cancel", key=key, icon=":material/stop_circle:",
                 help="stops at the next step; the checkpoint so far is kept"):
        if out.run_id:
            runpicker.queue().cancel(out.run_id)
        else:
            (out.folder / "CANCEL").write_text("cancel")
        st.toast("Cancel requested: the job stops at its next step and keeps its checkpoint.")


def start(what: str, cfg) -> None:
    try:
        run_id = submit_train_job(what, cfg, runpicker.store())
        st.toast(f"Started {what} job {run_id}.")
        st.rerun()
    except EngineError as exc:
        st.error(str(exc))


# ------------------------------------------------------------------------------------------ opener
data_outs = list_outputs("data", runpicker.store())
lora_outs = list_outputs("lora", runpicker.store())
card = read(data_outs[0].folder / "card.json") if data_outs else None
last_curves = read(lora_outs[0].folder / "curves.json") if lora_outs else None
happened = None
if card or last_curves:
    parts = []
    if card:
        parts.append(f"the data set has **{card['total']:,}** problems from **{card['engine_runs']:,}** placements "
                     f"of {card['designs']} designs")
    if last_curves and last_curves.get("val"):
        v = last_curves["val"]
        parts.append(f"the latest LoRA run took validation loss from **{v[0]['loss']:.3f}** to **{v[-1]['loss']:.3f}** "
                     + (f"and exact validation answers from {100 * v[0]['exact']:.0f}% to "
                        f"**{100 * v[-1]['exact']:.0f}%** " if "exact" in v[-1] and "exact" in v[0] else "")
                     + f"({last_curves.get('state', '?')})")
    happened = "; ".join(parts) + "."
story.opener(
    "Training",
    "turns real placements into problems in the benchmark's formats (every number comes from a run), fine-tunes a "
    "language model on them with LoRA (answers only in the loss), searches learning rate, rank and alpha, and "
    "exports a merged GGUF with an Ollama Modelfile.",
    happened,
    "the data card (what the model learns from), then the validation curve: it must fall and stay below where it "
    "started; the export's check says the GGUF gives the same logits as the model it came from.",
)

tab_data, tab_lora, tab_search, tab_export = st.tabs(["Data", "Fine-tuning", "Search", "Export"])

# ------------------------------------------------------------------------------------------ data
with tab_data:
    out = pick_output("data", "Data set")
    if out is None:
        st.info("No data set yet. Make one from a terminal: `cda bench data` (generated netlist families and the "
                "example designs, 3 placer seeds per setting; resumable) or `cda bench data --families "
                "g150-t1.6-m0` for a small one.")
    else:
        card = read(out.folder / "card.json")
        if card is None:
            st.info(f"The job is {out.status}; its data card appears when the placements are done.")
        else:
            c1, c2, c3, c4 = st.columns(4)
            c1.metric("Problems", f"{card['total']:,}")
            c2.metric("Placements", f"{card['engine_runs']:,}")
            c3.metric("Designs", f"{card['designs']}", f"{card.get('converged_settings', '?')} settings converged",
                      delta_color="off")
            verify = card.get("verify")
            c4.metric("Verifier agreement", f"{verify['agree']}/{verify['checked']}" if verify else "—")
            left, right = st.columns([3, 2])
            templates = card.get("templates", {})
            left.plotly_chart(figures.bar_figure(list(templates), list(templates.values()),
                                                 title="Problems per template", xlabel="problems"),
                              width="stretch", key="train-card-templates")
            right.dataframe([{"split": s, "problems": card["splits"].get(s, 0),
                              "kinds": ", ".join(f"{k} {n}" for k, n in sorted(card["kinds"].get(s, {}).items())),
                              "families": ", ".join(card["families_per_split"].get(s, []))}
                             for s in ("train", "val", "test")], hide_index=True, width="stretch")
            right.caption("Split by family: no generator recipe is in two splits, so validation measures "
                          "generalisation to unseen designs.")
            st.caption(f"Folder: {out.folder}")

# ------------------------------------------------------------------------------------------ LoRA
def curves_figure(curves: dict) -> go.Figure:
    fig = go.Figure()
    if curves.get("train"):
        fig.add_trace(go.Scatter(x=[p["step"] for p in curves["train"]], y=[p["loss"] for p in curves["train"]],
                                 mode="lines", name="train", line=dict(color="#adb5bd", width=1)))
    if curves.get("val"):
        fig.add_trace(go.Scatter(x=[p["step"] for p in curves["val"]], y=[p["loss"] for p in curves["val"]],
                                 mode="lines+markers", name="validation", line=dict(color="#0b5cad", width=3)))
    exact = [p for p in curves.get("val", []) if "exact" in p]
    if exact:  # a loss can fall while the model answers a constant; the share of exact answers cannot
        fig.add_trace(go.Scatter(x=[p["step"] for p in exact], y=[100 * p["exact"] for p in exact], yaxis="y2",
                                 mode="lines+markers", name="validation exact answers (%)",
                                 line=dict(color="#2b8a3e", width=2, dash="dash")))
        fig.update_layout(yaxis2=dict(title="exact answers (%)", overlaying="y", side="right", range=[0, 100]))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), font=figures.FONT, uirevision="lora",
                      xaxis_title="step", yaxis_title="loss per answer token (nats)",
                      xaxis_range=[0, max(1, curves.get("total_steps", 1))], legend=dict(orientation="h", y=-0.25))
    return fig


with tab_lora:
    out = pick_output("lora", "Fine-tuning run")
    if out is None:
        st.info("No fine-tuning yet. Start one below, or from a terminal: `cda train lora --max-examples 1600` "
                "(LoRA on SmolLM2-135M-Instruct, the base `make setup` installs).")
    else:
        @st.fragment(run_every=POLL_S if out.status in ACTIVE else None)
        def lora_view() -> None:
            curves = read(out.folder / "curves.json") or {}
            status = read(out.folder / "status.json") or {}
            state = status.get("state", out.status)
            cfg = read(out.folder / "config.json") or {}
            st.markdown(f"**{state}** · step {status.get('step', 0)}/{status.get('total_steps', '?')} · "
                        f"base `{cfg.get('base_model', '?')}` · r={cfg.get('r')} alpha={cfg.get('alpha')} "
                        f"lr={cfg.get('lr')} · {curves.get('n_train', '?')} train / {curves.get('n_val', '?')} val "
                        f"examples · device {curves.get('device', '?')}{' (bf16)' if curves.get('bf16') else ''}"
                        + (f" · {curves['cpu_seconds']:,.0f} CPU-s" if curves.get("cpu_seconds") else ""))
            skipped = (curves.get("skipped_long") or {}).get("train")
            if skipped:
                st.caption(f"{skipped} training examples longer than {curves.get('max_len')} tokens were skipped.")
            if curves.get("resumed_from"):
                st.caption(f"Resumed from the checkpoint at step {curves['resumed_from']}.")
            if curves:
                st.plotly_chart(curves_figure(curves), width="stretch", key="train-lora-curves")
            else:
                st.info("Waiting for the first evaluation…")
            if status.get("message"):
                st.caption(status["message"])
            cancel_button(out, "train-lora-cancel")
        lora_view()
    with st.expander("Fine-tune (job)"):
        d = LoraTrainConfig()
        docs = field_docs(LoraTrainConfig)
        with st.form("train-lora"):
            c1, c2 = st.columns(2)
            base = c1.text_input("Base model (empty = SmolLM2-135M-Instruct)", d.base_model, help=docs["base_model"])
            data_dir = c2.text_input("Data set folder", d.data_dir, help=docs["data_dir"])
            c3, c4, c5, c6 = st.columns(4)
            r = c3.number_input("rank r", 1, 256, d.r, help=docs["r"])
            alpha = c4.number_input("alpha", 1.0, 1024.0, d.alpha, help=docs["alpha"])
            lr = c5.number_input("learning rate", 1e-6, 1.0, d.lr, format="%.5f", help=docs["lr"])
            epochs = c6.number_input("epochs", 0.01, 100.0, d.epochs, help=docs["epochs"])
            max_steps = st.number_input("Stop after steps (0 = full epochs)", 0, 1_000_000, 0, help=docs["max_steps"])
            go_lora = st.form_submit_button("Start", icon=":material/play_arrow:")
        if go_lora:
            start("lora", LoraTrainConfig(base_model=base, data_dir=data_dir, r=int(r), alpha=float(alpha),
                                          lr=float(lr), epochs=float(epochs), max_steps=int(max_steps)))

# ------------------------------------------------------------------------------------------ search
with tab_search:
    out = pick_output("search", "Search")
    if out is None:
        st.info("No search yet: `cda train search --n-trials 8` or start one below.")
    else:
        @st.fragment(run_every=POLL_S if out.status in ACTIVE else None)
        def search_view() -> None:
            trials = read(out.folder / "trials.json") or []
            done = [t for t in trials if t.get("val_loss") is not None]
            if done:
                best = min(done, key=lambda t: t["val_loss"])
                st.markdown(f"**{len(done)}/{len(trials)}** trials finished · best validation loss "
                            f"**{best['val_loss']:.4f}** with lr {best['params']['lr']:.2e}, r {best['params']['r']}, "
                            f"alpha {best['params']['alpha']:g}")
                fig = go.Figure(go.Scatter(
                    x=[t["params"]["lr"] for t in done], y=[t["val_loss"] for t in done], mode="markers+text",
                    text=[f"r{t['params']['r']}/a{t['params']['alpha']:g}" for t in done], textposition="top center",
                    marker=dict(size=12, color=[t["params"]["r"] for t in done], colorscale="Viridis",
                                showscale=True, colorbar=dict(title="r"))))
                fig.update_layout(height=340, xaxis_type="log", xaxis_title="learning rate",
                                  yaxis_title="best validation loss", margin=dict(l=10, r=10, t=30, b=10),
                                  font=figures.FONT)
                st.plotly_chart(fig, width="stretch", key="train-search-fig")
            st.dataframe([{"trial": t["number"], "state": t["state"], "lr": t["params"]["lr"], "r": t["params"]["r"],
                           "alpha": t["params"]["alpha"], "val loss": t.get("val_loss"),
                           "seconds": t.get("seconds")} for t in trials], hide_index=True, width="stretch")
            cancel_button(out, "train-search-cancel")
        search_view()
    with st.expander("Search (job)"):
        with st.form("train-search"):
            n_trials = st.number_input("Trials", 1, 200, 4)
            steps = st.number_input("Steps per trial", 1, 100_000, 60)
            go_search = st.form_submit_button("Start", icon=":material/play_arrow:")
        if go_search:
            trial = LoraTrainConfig(max_steps=int(steps), eval_every=max(1, int(steps) // 3))
            start("search", SearchConfig(n_trials=int(n_trials), base=trial))

# ------------------------------------------------------------------------------------------ export
with tab_export:
    out = pick_output("export", "Export")
    if out is None:
        st.info("No export yet: `cda train export` merges the latest adapter and writes the GGUF and Modelfile.")
    else:
        verify = read(out.folder / "verify.json")
        if verify:
            (st.success if verify.get("ok") else st.error)(
                f"GGUF read back: {verify['n_tensors']} tensors, largest difference {verify['max_abs_diff']:.2g}; "
                f"next-token logits differ by at most {verify['logits_max_abs_diff']:.2g} "
                f"(same next token: {verify['next_token_hf'] == verify['next_token_gguf']}).")
        files = sorted(p for p in out.folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        st.dataframe([{"file": str(p.relative_to(out.folder)), "MB": round(p.stat().st_size / 1e6, 3)} for p in files],
                     hide_index=True, width="stretch")
        modelfile = out.folder / "Modelfile"
        if modelfile.is_file():
            st.code(modelfile.read_text(), language=None)
            st.caption(f"Load it: `cd {out.folder} && ollama create {ExportConfig().model_name} -f Modelfile`")
    with st.expander("Export (job)"):
        lora_dirs = [o for o in list_outputs("lora", runpicker.store()) if (o.folder / "adapter").is_dir()]
        if not lora_dirs:
            st.caption("Fine-tune first: the export merges an adapter.")
        else:
            i = st.selectbox("Adapter", range(len(lora_dirs)), format_func=lambda k: lora_dirs[k].label,
                             key="train-export-pick")
            dtype = st.radio("GGUF weights", ["f32", "f16"], horizontal=True)
            if st.button("Start export", icon=":material/play_arrow:"):
                start("export", ExportConfig(adapter_dir=str(lora_dirs[i].folder / "adapter"), dtype=dtype))
