"""Bench: the whole training path on the engine-grounded data set, timed.

1. Data: the data set in .cache/train/data (`cda train data`); with --quick a small one is generated here.
2. The project's tiny Llama base model: tokenizer + pre-training on assets/docs and the training split.
3. Search: a few short Optuna trials over learning rate, rank and alpha.
4. LoRA with the best trial's settings for the configured epochs (answers-only loss), val loss before/after.
5. Export: merged safetensors + GGUF (read back, tensors and logits compared) + Modelfile.
6. GPU: one LoRA epoch time for a 1B-parameter Llama-architecture model (random weights: the compute is the same
   as for a real checkpoint) when CUDA is present; otherwise recorded as not measured.

Writes bench/results/train.json and train_curves.png. Run: `.venv/bin/python bench/bench_train.py`
(about 15-30 min on 2 cores with the full data set), `--quick` for a smoke run of a few minutes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from engine.runs import write_json  # noqa: E402
from engine.train.config import CACHE_DIR, DatagenConfig, ExportConfig, LoraTrainConfig, SearchConfig, TinyModelConfig  # noqa: E402
from engine.train.datagen import generate_dataset  # noqa: E402
from engine.train.export import export_model  # noqa: E402
from engine.train.lora import plot_curves, train_lora  # noqa: E402
from engine.train.search import run_search  # noqa: E402
from engine.train.tinymodel import build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
log = logging.getLogger("bench_train")


def gpu_epoch_time(data_dir: Path, out: Path) -> dict:
    """Time one LoRA epoch of a 1B Llama-architecture model on the data set (CUDA only)."""
    if not torch.cuda.is_available():
        return {"measured": False, "reason": "no CUDA GPU on this machine"}
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.train.tinymodel import load_model_folder

    tok, _ = load_model_folder(CACHE_DIR / "tinymodel")
    # TinyLlama-1.1B's shape
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=512)
    folder = out / "llama1b-random"
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    res = train_lora(LoraTrainConfig(base_model=str(folder), data_dir=str(data_dir), out_dir=str(out / "lora1b"),
                                     epochs=1.0, batch_size=16, eval_every=10**9, checkpoint_every=10**9,
                                     max_val_examples=64))
    return {"measured": True, "device": torch.cuda.get_device_name(0), "model": "Llama 1.1B shape, random weights",
            "epoch_seconds": res.seconds, "steps": res.steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small data set and short runs (smoke test)")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--out", default=str(CACHE_DIR / "bench"))
    ap.add_argument("--tiny-steps", type=int, default=300, help="pre-training steps of the tiny model")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is the robust choice on a busy machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__, "cuda": torch.cuda.is_available()}}

    data_dir = Path(DatagenConfig().out_dir)
    t0 = time.time()
    if args.quick:
        data_dir = out / "data"
        generate_dataset(DatagenConfig(designs=("counter", "gray_prio"), groups=("place", "synth"), until="route",
                                       utilizations=(0.5, 0.7), target_densities=(0.8, 1.0), gammas=(1.0,),
                                       place_iterations=60, ray_workers=0, out_dir=str(data_dir),
                                       runs_dir=str(out / "runs"), verify_sample=1))
    if not (data_dir / "card.json").is_file():
        raise SystemExit(f"no data set in {data_dir}: run `cda train data` first (or use --quick)")
    card = json.loads((data_dir / "card.json").read_text())
    result["data"] = {k: card[k] for k in ("total", "splits", "per_phase", "designs_per_split")}
    result["data"]["runs"] = card["runs"]["total"]
    result["data"]["verify"] = card.get("verify")
    result["data"]["seconds"] = card.get("seconds") if not args.quick else round(time.time() - t0, 1)

    tiny_dir = out / "tinymodel"
    tiny = TinyModelConfig(out_dir=str(tiny_dir), corpus=("assets/docs", str(data_dir / "train.jsonl")),
                           steps=60 if args.quick else args.tiny_steps)
    t0 = time.time()
    build_tiny_model(tiny)
    pre = json.loads((tiny_dir / "pretrain.json").read_text())
    result["tiny_model"] = {"params": pre["n_params"], "corpus_tokens": pre["n_corpus_tokens"], "steps": tiny.steps,
                            "first_loss": pre["losses"][0]["loss"], "final_loss": pre["losses"][-1]["loss"],
                            "seconds": round(time.time() - t0, 1)}

    base = LoraTrainConfig(base_model=str(tiny_dir), data_dir=str(data_dir), max_steps=20 if args.quick else 60,
                           eval_every=10 if args.quick else 30, max_val_examples=128)
    search = run_search(SearchConfig(base=base, out_dir=str(out / "search"), n_trials=2 if args.quick else args.trials))
    result["search"] = {"trials": [{"params": t["params"], "val_loss": t.get("val_loss"), "seconds": t.get("seconds")}
                                   for t in search["trials"]], "best": search["best"]["params"],
                        "seconds": search["seconds"]}

    best = search["best"]["params"]
    lora_cfg = LoraTrainConfig(base_model=str(tiny_dir), data_dir=str(data_dir), out_dir=str(out / "lora"),
                               lr=best["lr"], r=best["r"], alpha=best["alpha"],
                               epochs=0.2 if args.quick else args.epochs, eval_every=50, max_val_examples=256)
    res = train_lora(lora_cfg)
    result["lora"] = {"config": lora_cfg.to_dict(), "steps": res.steps, "first_val_loss": res.first_val_loss,
                      "final_val_loss": res.final_val_loss, "best_val_loss": res.best_val_loss,
                      "seconds": res.seconds, "steps_per_s": round(res.steps / max(res.seconds, 1e-9), 3)}

    exp = export_model(ExportConfig(adapter_dir=res.adapter_dir, out_dir=str(out / "export")))
    result["export"] = {"gguf_mb": round(Path(exp.gguf_path).stat().st_size / 1e6, 2), "seconds": exp.seconds,
                        **{k: exp.verify[k] for k in ("ok", "n_tensors", "max_abs_diff", "logits_max_abs_diff",
                                                      "next_token_hf", "next_token_gguf")}}
    result["gpu"] = gpu_epoch_time(data_dir, out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "train.json", result, indent=1)
    curves = json.loads((Path(res.out_dir) / "curves.json").read_text())
    plot_curves(curves, RESULTS / "train_curves.png", title="LoRA on the engine-grounded data (tiny Llama)")
    print(json.dumps({k: result[k] for k in ("data", "tiny_model", "lora", "export", "gpu")}, indent=1))


if __name__ == "__main__":
    main()
