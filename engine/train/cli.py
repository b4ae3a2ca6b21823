"""`cda train tiny|data|verify|lora|search|export`.

Every option comes from the component's config dataclass (name, type, default and the field's doc line as help),
so the CLI, the page and the saved config.json can never disagree. ``--config FILE.json`` starts from a saved
config; options given on the command line override it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Search options that would clash with the LoRA base options they sit next to.
_SEARCH_SKIPS_LORA = {"out_dir", "lr", "r", "alpha", "seed"}


def _add_fields(parser: argparse.ArgumentParser, cls, skip: set[str] = frozenset(), dest_prefix: str = "") -> None:
    from engine.train.config import field_docs

    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if dataclasses.is_dataclass(default):
            continue
        kwargs: dict = {"default": None, "dest": dest_prefix + f.name, "help": f"{docs.get(f.name, '')} [{default}]"}
        if isinstance(default, tuple):
            kwargs.update(nargs="+", type=type(default[0]) if default else str)
        elif isinstance(default, bool):
            kwargs.update(type=lambda s: s.lower() in ("1", "true", "yes"))
        else:
            kwargs["type"] = type(default)
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _build(cls, args: argparse.Namespace, dest_prefix: str = "", base: dict | None = None):
    from engine.train.config import TrainError

    data = dict(base or {})
    if getattr(args, "config", None) and not dest_prefix:
        path = Path(args.config)
        try:
            data.update(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise TrainError(f"cannot read config {path}: {exc}") from None
    names = {f.name for f in dataclasses.fields(cls)}
    for name in names:
        value = getattr(args, dest_prefix + name, None)
        if value is not None:
            data[name] = tuple(value) if isinstance(value, list) else value
    return cls.from_dict({k: v for k, v in data.items() if k in names or k == "base"})


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction * 100:5.1f}%] {message}", flush=True)


def _cmd_tiny(args) -> int:
    from engine.train.config import TinyModelConfig
    from engine.train.tinymodel import build_tiny_model

    cfg = _build(TinyModelConfig, args)
    out = build_tiny_model(cfg, progress=_progress)
    info = json.loads((out / "pretrain.json").read_text())
    print(f"tiny model: {out} ({info['n_params'] / 1e6:.2f}M parameters, final loss "
          f"{info['losses'][-1]['loss']:.3f}, {info['seconds']:.0f} s)")
    return 0


def _cmd_data(args) -> int:
    from engine.train.config import DatagenConfig
    from engine.train.datagen import generate_dataset

    cfg = _build(DatagenConfig, args)
    card = generate_dataset(cfg, progress=_progress)
    if card["total"] == 0:
        print(f"data generation {card['state']} before any example was written")
        return 3
    print(f"data set: {cfg.out_dir} ({card['total']} examples; per split {card['splits']}; "
          f"per phase {card['per_phase']})")
    if card.get("verify"):
        v = card["verify"]
        print(f"verifier: {v['checked_runs']} runs re-run, {v['checked_examples']} examples checked, "
              f"{v['mismatches']} mismatches")
    return 0


def _cmd_verify(args) -> int:
    from engine.train.datagen import verify_dataset

    report = verify_dataset(args.data, sample=args.sample, seed=args.seed, rerun=not args.no_rerun)
    print(json.dumps({k: v for k, v in report.items() if k != "details"}, indent=1))
    return 0 if report["mismatches"] == 0 else 1


def _cmd_lora(args) -> int:
    from engine.train.config import LoraTrainConfig
    from engine.train.lora import train_lora

    cfg = _build(LoraTrainConfig, args)
    res = train_lora(cfg, progress=_progress)
    print(f"LoRA {res.state}: {res.steps}/{res.total_steps} steps, val loss {res.first_val_loss:.4f} -> "
          f"{res.final_val_loss:.4f}, adapter {res.adapter_dir} ({res.seconds:.0f} s)")
    return 0 if res.state == "done" else 3


def _cmd_search(args) -> int:
    from engine.train.config import LoraTrainConfig, SearchConfig
    from engine.train.search import run_search

    base = _build(LoraTrainConfig, args, dest_prefix="lora_", base=SearchConfig().base.to_dict())
    cfg = _build(SearchConfig, args)
    cfg.base = base
    summary = run_search(cfg, progress=_progress)
    b = summary["best"]
    print(f"search {summary['state']}: {summary['n_trials']} trials; best val loss {b['val_loss']:.4f} with "
          f"lr={b['params']['lr']:.2e} r={b['params']['r']} alpha={b['params']['alpha']:g} ({summary['seconds']:.0f} s)")
    return 0


def _cmd_export(args) -> int:
    from engine.train.config import ExportConfig
    from engine.train.export import export_model

    cfg = _build(ExportConfig, args)
    res = export_model(cfg)
    v = res.verify
    print(f"exported {res.gguf_path} (verified: {v['n_tensors']} tensors, max diff {v['max_abs_diff']:.2g}, "
          f"logits diff {v['logits_max_abs_diff']:.2g}); Modelfile {res.modelfile_path}")
    print(f"load it with: cd {res.out_dir} && ollama create {cfg.model_name} -f Modelfile")
    return 0


def register(subparsers) -> None:
    from engine.train.config import (DatagenConfig, ExportConfig, LoraTrainConfig, SearchConfig, TinyModelConfig)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hugging Face hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    p = subparsers.add_parser("train", help="engine-grounded data, the tiny base model, LoRA, search, export")
    sub = p.add_subparsers(dest="train_command", metavar="WHAT", required=True)

    def add(name: str, help_: str, cls, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", help="start from a JSON config (e.g. a saved config.json)")
        _add_fields(sp, cls)
        sp.set_defaults(func=func)
        return sp

    add("tiny", "train the tokenizer and pre-train the project's small Llama base model", TinyModelConfig, _cmd_tiny)
    add("data", "run the engine over designs and knobs (Ray) and write instruction/answer JSONL + data card",
        DatagenConfig, _cmd_data)
    add("lora", "LoRA fine-tuning on a data set (answers only in the loss); curves in out_dir", LoraTrainConfig,
        _cmd_lora)
    sp = add("search", "Optuna search over learning rate, rank and alpha (short LoRA trials)", SearchConfig,
             _cmd_search)
    grp = sp.add_argument_group("LoRA settings every trial starts from")
    _add_fields(grp, LoraTrainConfig, skip=_SEARCH_SKIPS_LORA, dest_prefix="lora_")
    add("export", "merge the adapter; write safetensors, GGUF (verified) and an Ollama Modelfile", ExportConfig,
        _cmd_export)
    v = sub.add_parser("verify", help="re-run a sample of a data set's engine runs and check the stated numbers")
    v.add_argument("--data", default=DatagenConfig().out_dir, help="data set folder (with all.jsonl, runs.json)")
    v.add_argument("--sample", type=int, default=5, help="runs to re-run")
    v.add_argument("--seed", type=int, default=0, help="which runs are sampled")
    v.add_argument("--no-rerun", action="store_true", help="only check examples against the stored runs")
    v.set_defaults(func=_cmd_verify)
