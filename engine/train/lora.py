"""LoRA fine-tuning of a local causal LM on instruction/answer JSONL, answers only in the loss.

Reads top to bottom: data -> model + adapter -> loop (train step, evaluate, checkpoint, cancel) -> save.
Everything a page needs lives in ``out_dir``: ``curves.json`` (train and validation loss, rewritten while
training), ``curves.png``, ``status.json``, ``config.json``, ``adapter/`` (final) and ``checkpoint/`` (latest).
The same code runs on CUDA (bf16 autocast where supported) and on CPU.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from engine.train.config import PROMPT_TEMPLATE, LoraTrainConfig, TrainError
from engine.train.tinymodel import load_model_folder, pick_device, read_jsonl

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
IGNORE = -100  # label value the loss skips (the prompt tokens)


@dataclass
class LoraResult:
    """What a finished (or cancelled) run reports."""

    out_dir: str
    state: str  # done | cancelled
    steps: int
    total_steps: int
    first_val_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    seconds: float
    adapter_dir: str
    model: object = field(default=None, repr=False, compare=False)
    """The trained PeftModel in memory (not saved in result.json)."""


# ------------------------------------------------------------------------------------------------ data
def load_split(data: str | Path, name: str) -> list[dict]:
    """Examples of one split: ``data/<name>.jsonl`` for a folder, the file itself for a .jsonl path."""
    data = Path(data)
    if data.is_file():
        return read_jsonl(data) if name == "train" else []
    path = data / f"{name}.jsonl"
    if not data.exists():
        raise TrainError(f"data set {data} does not exist", hint="write one with `cda train data` or set data_dir")
    return read_jsonl(path) if path.exists() else []


def encode_example(tokenizer, example: dict, max_len: int) -> tuple[list[int], list[int]] | None:
    """(input_ids, labels) with the prompt masked to IGNORE; None when nothing of the answer fits."""
    prompt = PROMPT_TEMPLATE.format(instruction=example["instruction"])
    prompt_ids = tokenizer(prompt, add_special_tokens=True, verbose=False)["input_ids"]
    answer_ids = tokenizer(example["answer"], add_special_tokens=False, verbose=False)["input_ids"]
    answer_ids = answer_ids + [tokenizer.eos_token_id]
    ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_len]
    if all(t == IGNORE for t in labels):
        return None
    return ids, labels


def encode_all(tokenizer, examples: list[dict], max_len: int) -> list[tuple[list[int], list[int]]]:
    out = [e for e in (encode_example(tokenizer, ex, max_len) for ex in examples) if e is not None]
    if len(out) < len(examples):
        log.warning("%d of %d examples have a prompt longer than max_len=%d and were dropped",
                    len(examples) - len(out), len(examples), max_len)
    return out


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, attention_mask, labels, each (B, T)."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ----------------------------------------------------------------------------------------------- model
def attach_lora(model, cfg: LoraTrainConfig):
    """Wrap a causal LM with a fresh LoRA adapter (seeded), with a clear error for wrong module names."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [t for t in cfg.target_modules if t not in names]
    if not cfg.target_modules or missing:
        raise TrainError(f"target_modules {missing or list(cfg.target_modules)} are not linear layers of this model",
                         hint=f"its linear layers are: {', '.join(sorted(names))}")
    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, peft_cfg)


def load_adapter(adapter_dir: str | Path, base_model: str | Path | None = None, device: torch.device | None = None):
    """(tokenizer, PeftModel) from a saved adapter; the base is the adapter's recorded one unless given."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file():
        raise TrainError(f"{adapter_dir} is not a LoRA adapter folder (no adapter_config.json)",
                         hint="train one with `cda train lora`; its adapter is in <out_dir>/adapter")
    try:
        recorded = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
    except json.JSONDecodeError:
        raise TrainError(f"{cfg_path} is corrupt (not JSON)") from None
    tokenizer, base = load_model_folder(base_model or recorded, device=device)
    try:
        model = PeftModel.from_pretrained(base, adapter_dir)
    except Exception as exc:
        raise TrainError(f"adapter {adapter_dir} could not be loaded: {type(exc).__name__}: {str(exc)[:300]}",
                         hint="is it an adapter for this base model?") from None
    model.eval()
    return tokenizer, model


@torch.no_grad()
def evaluate_loss(model, encoded: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int,
                  device: torch.device, autocast_dtype: torch.dtype | None = None) -> float:
    """Mean cross-entropy per answer token over the examples (token-weighted, not batch-weighted)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(encoded), batch_size):
        batch = {k: v.to(device) for k, v in collate(encoded[i: i + batch_size], pad_id).items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        target = batch["labels"][:, 1:]  # token t predicts t+1
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                                 target.reshape(-1), ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((target != IGNORE).sum())
    model.train(was_training)
    return total / max(count, 1)


# ---------------------------------------------------------------------------------------------- output
def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: the page polling this file never reads half of it


def plot_curves(curves: dict, path: str | Path, title: str = "LoRA fine-tuning") -> Path:
    """Train and validation loss against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    if curves.get("train"):
        ax.plot([p["step"] for p in curves["train"]], [p["loss"] for p in curves["train"]],
                lw=1, alpha=0.7, label="train")
    if curves.get("val"):
        ax.plot([p["step"] for p in curves["val"]], [p["loss"] for p in curves["val"]],
                "o-", lw=2, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / answer token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------------ train
def train_lora(cfg: LoraTrainConfig | None = None, progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> LoraResult:
    """Fine-tune ``cfg.base_model`` with LoRA on ``cfg.data_dir``; see the module doc for the outputs."""
    cfg = cfg or LoraTrainConfig()
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "CANCEL").unlink(missing_ok=True)
    _write_json(out / "config.json", cfg.to_dict())

    def cancelled() -> bool:
        return (out / "CANCEL").exists() or (cancel is not None and cancel())

    # ---- data
    train_rows = load_split(cfg.data_dir, "train")
    val_rows = load_split(cfg.data_dir, "val")
    if not train_rows:
        raise TrainError(f"data set {cfg.data_dir} has no training examples",
                         hint="run `cda train data` first, or point data_dir at a non-empty JSONL")
    rng = random.Random(cfg.seed)
    if not val_rows:  # no validation split given: hold out 10% so the curve still means something
        rows = train_rows[:]
        rng.shuffle(rows)
        n_val = max(1, len(rows) // 10)
        val_rows, train_rows = rows[:n_val], rows[n_val:] or rows[:n_val]
        log.warning("no val.jsonl in %s; held out %d training examples for validation", cfg.data_dir, n_val)
    if cfg.max_train_examples:
        train_rows = train_rows[: cfg.max_train_examples]
    if cfg.max_val_examples:
        val_rows = random.Random(cfg.seed + 1).sample(val_rows, min(len(val_rows), cfg.max_val_examples))

    # ---- model
    device = pick_device(cfg.device)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast_dtype = torch.bfloat16 if bf16 else None
    tokenizer, base = load_model_folder(Path(cfg.base_model).resolve(), dtype=torch.bfloat16 if bf16 else None)
    max_len = min(cfg.max_len, getattr(base.config, "max_position_embeddings", cfg.max_len) or cfg.max_len)
    train_enc = encode_all(tokenizer, train_rows, max_len)
    val_enc = encode_all(tokenizer, val_rows, max_len)
    if not train_enc or not val_enc:
        raise TrainError(f"no example's prompt fits in {max_len} tokens",
                         hint=f"raise max_len (now {cfg.max_len}; the model's context is "
                              f"{base.config.max_position_embeddings}) or use shorter instructions")
    model = attach_lora(base, cfg).to(device)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA r=%d alpha=%g on %s: %d trainable parameters, %d train / %d val examples, device %s%s",
             cfg.r, cfg.alpha, cfg.base_model, n_trainable, len(train_enc), len(val_enc), device,
             " (bf16)" if bf16 else "")

    steps_per_epoch = math.ceil(len(train_enc) / cfg.batch_size)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, int(cfg.warmup_frac * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / total_steps))))

    curves = {"train": [], "val": [], "total_steps": total_steps, "n_train": len(train_enc), "n_val": len(val_enc),
              "trainable_params": n_trainable, "device": str(device), "bf16": bf16}

    def status(state: str, step: int, message: str = "") -> None:
        curves["state"] = state
        _write_json(out / "curves.json", curves)
        _write_json(out / "status.json", {"state": state, "step": step, "total_steps": total_steps,
                                          "message": message, "seconds": round(time.time() - t0, 2)})

    def evaluate(step: int) -> float:
        loss = evaluate_loss(model, val_enc, tokenizer.pad_token_id, cfg.batch_size, device, autocast_dtype)
        curves["val"].append({"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss})
        log.info("step %d/%d val loss %.4f", step, total_steps, loss)
        return loss

    def checkpoint(step: int) -> None:
        model.save_pretrained(out / "checkpoint")
        _write_json(out / "checkpoint" / "trainer_state.json", {"step": step, "total_steps": total_steps})

    # ---- loop
    evaluate(0)
    status("running", 0)
    order: list[int] = []
    state, step = "done", 0
    model.train()
    log_every = max(1, total_steps // 200)
    try:
        while step < total_steps:
            if cancelled():
                state = "cancelled"
                break
            if len(order) < cfg.batch_size:  # reshuffle at each epoch boundary
                fresh = list(range(len(train_enc)))
                rng.shuffle(fresh)
                order.extend(fresh)
            idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
            batch = {k: v.to(device) for k, v in collate([train_enc[i] for i in idx], tokenizer.pad_token_id).items()}
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=bf16):
                loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            curves["train"].append({"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss.item(),
                                    "lr": sched.get_last_lr()[0]})
            if step % cfg.eval_every == 0 or step == total_steps:
                evaluate(step)
            if step % cfg.checkpoint_every == 0:
                checkpoint(step)
            if step % log_every == 0 or step == total_steps:
                status("running", step)
                if progress is not None:
                    progress(step / total_steps, f"step {step}/{total_steps} loss {loss.item():.3f}")
    except (torch.OutOfMemoryError, MemoryError):
        checkpoint(step)
        status("failed", step, "out of memory")
        raise TrainError(f"out of memory at step {step}; the adapter so far is kept in {out / 'checkpoint'}",
                         hint=f"lower batch_size (now {cfg.batch_size}) or max_len (now {cfg.max_len})") from None
    except KeyboardInterrupt:
        state = "cancelled"

    if state == "cancelled" and (not curves["val"] or curves["val"][-1]["step"] != step):
        evaluate(step)
    checkpoint(step)
    model.save_pretrained(out / "adapter")
    tokenizer.save_pretrained(out / "adapter")  # so the adapter folder alone is enough to chat with the model
    status(state, step, "cancelled by the user; checkpoint kept" if state == "cancelled" else "")
    plot_curves(curves, out / "curves.png")
    vals = [p["loss"] for p in curves["val"]]
    result = LoraResult(out_dir=str(out), state=state, steps=step, total_steps=total_steps,
                        first_val_loss=vals[0] if vals else None, final_val_loss=vals[-1] if vals else None,
                        best_val_loss=min(vals) if vals else None, seconds=round(time.time() - t0, 2),
                        adapter_dir=str(out / "adapter"), model=model.eval())
    _write_json(out / "result.json", {k: v for k, v in result.__dict__.items() if k != "model"})
    log.info("LoRA %s after %d steps: val loss %.4f -> %.4f (%.1f s)", state, step, result.first_val_loss,
             result.final_val_loss, result.seconds)
    return result
