"""LoRA fine-tuning of a causal LM (SmolLM2-135M-Instruct by default) on system/prompt/answer JSONL.

Reads top to bottom: data -> model + adapter -> (resume) -> loop (train step, evaluate, checkpoint, cancel) -> save.
Prompts are rendered with the model's own chat template (system + user + assistant header), exactly as the
chat and the benchmark will prompt it; only the answer tokens (and the end-of-turn token) are in the loss.
Examples longer than ``max_len`` tokens are skipped and counted, never cut (a cut answer teaches nonsense).

Everything a page needs lives in ``out_dir``: ``curves.json`` (train and validation loss, rewritten while
training), ``curves.png``, ``status.json``, ``config.json``, ``adapter/`` (final) and ``checkpoint/`` (latest:
adapter, optimiser, scheduler, RNG states and the rest of the epoch's data order, so a killed run resumes where
it stopped with the same result as an uninterrupted one). The same code runs on CUDA (bf16) and on CPU.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.runs import write_json
from engine.train.config import PROMPT_TEMPLATE, LoraTrainConfig, TrainError
from engine.train.models import load_model_folder, pick_device

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
IGNORE = -100  # label value the loss skips (the prompt tokens)


@dataclass
class LoraResult:
    """What a finished (or cancelled) run reports."""

    out_dir: str
    state: str  # done | cancelled | pruned
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
def read_examples(path: str | Path) -> list[dict]:
    """Examples of a JSONL file: {"system", "prompt", "answer", ...} lines (benchmark v2 data), or the older
    {"instruction", "answer"} lines. A broken line is an error naming the file and line."""
    from engine.runs import read_jsonl

    rows = []
    for lineno, row in read_jsonl(Path(path), TrainError):
        if not isinstance(row, dict) or "answer" not in row or not ("prompt" in row or "instruction" in row):
            raise TrainError(f"{path}:{lineno} has no 'prompt' (or 'instruction') and 'answer' fields")
        rows.append(row)
    return rows


def load_split(data: str | Path, name: str) -> list[dict]:
    """Examples of one split: ``data/<name>.jsonl`` (or ``<name>.jsonl.gz``) for a folder, the file itself for a
    .jsonl path."""
    data = Path(data)
    if data.is_file():
        return read_examples(data) if name == "train" else []
    path = data / f"{name}.jsonl"
    if not path.exists() and (data / f"{name}.jsonl.gz").exists():
        path = data / f"{name}.jsonl.gz"
    if not data.exists():
        raise TrainError(f"data set {data} does not exist",
                         hint="write one with `cda bench data`, or set data_dir")
    return read_examples(path) if path.exists() else []


def messages_of(example: dict) -> list[dict]:
    """The chat messages (system if any, then user) an example's prompt is shown as."""
    msgs = []
    if example.get("system"):
        msgs.append({"role": "system", "content": str(example["system"])})
    msgs.append({"role": "user", "content": str(example.get("prompt", example.get("instruction", "")))})
    return msgs


def answer_text(example: dict) -> str:
    ans = example["answer"]
    return ans if isinstance(ans, str) else json.dumps(ans)


def prompt_text(tokenizer, example: dict) -> str:
    """The exact text before the answer: the model's chat template (system + user + the assistant header), or
    the plain instruction template for a model without one (a bare causal LM such as the tests' tiny Llama)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages_of(example), tokenize=False, add_generation_prompt=True)
    return PROMPT_TEMPLATE.format(instruction=example.get("prompt", example.get("instruction", "")))


def encode_example(tokenizer, example: dict, max_len: int) -> tuple[list[int], list[int]] | None:
    """(input_ids, labels) with the prompt masked to IGNORE; the answer ends with the end-of-turn token (the
    chat template's, e.g. <|im_end|>, which is SmolLM2's EOS). None when the whole example exceeds max_len."""
    if getattr(tokenizer, "chat_template", None):
        prompt = prompt_text(tokenizer, example)
        full = tokenizer.apply_chat_template(messages_of(example) + [{"role": "assistant",
                                                                      "content": answer_text(example)}],
                                             tokenize=False)
        if not full.startswith(prompt):
            raise TrainError("the model's chat template does not render the answer after the prompt it renders "
                             "for generation, so the answer cannot be masked apart from the prompt",
                             hint="use a base model whose chat template appends turns (ChatML, Llama 3, ...)")
        prompt_ids = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
        answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False, verbose=False)["input_ids"]
        if tokenizer.eos_token_id in answer_ids:  # stop at the end of turn; what follows is the next turn's
            answer_ids = answer_ids[: answer_ids.index(tokenizer.eos_token_id) + 1]
        else:
            answer_ids = answer_ids + [tokenizer.eos_token_id]
    else:
        prompt_ids = tokenizer(prompt_text(tokenizer, example), add_special_tokens=True, verbose=False)["input_ids"]
        answer_ids = tokenizer(answer_text(example), add_special_tokens=False, verbose=False)["input_ids"]
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    if len(prompt_ids) + len(answer_ids) > max_len:
        return None
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def encode_all(tokenizer, examples: list[dict], max_len: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """(encoded examples, how many were skipped for being longer than max_len)."""
    out = [e for e in (encode_example(tokenizer, ex, max_len) for ex in examples) if e is not None]
    skipped = len(examples) - len(out)
    if skipped:
        log.warning("%d of %d examples are longer than max_len=%d tokens and were skipped", skipped, len(examples),
                    max_len)
    return out, skipped


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


def cap_per_kind(rows: list[dict], cap: int, seed: int) -> list[dict]:
    """At most ``cap`` rows of each ``kind`` (a seeded sample), in their original order."""
    by_kind: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_kind.setdefault(str(row.get("kind", "")), []).append(i)
    rng = random.Random(seed)
    keep = sorted(i for idx in by_kind.values() for i in (rng.sample(idx, cap) if len(idx) > cap else idx))
    return [rows[i] for i in keep]


def epoch_order(lengths: list[int], batch_size: int, rng: random.Random, group: bool = False) -> list[int]:
    """One epoch's example order, shuffled. With ``group``, sorted by ``lengths`` inside windows of 32 batches
    and cut into batches whose order is shuffled again, so a batch holds examples of similar length (less
    padding). Pass prompt lengths, never lengths that count the answer: those sort the batches by label."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if not group:
        return idx
    window = batch_size * 32
    batches = []
    for w in range(0, len(idx), window):
        chunk = sorted(idx[w: w + window], key=lambda i: lengths[i])
        batches += [chunk[b: b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [i for b in batches for i in b]


def plan(data_dir: str | Path, base_model: str = "", max_len: int = 320, max_examples: int = 0,
         epochs: float = 1.0, s_per_1k_tokens: float = 13.0, seed: int = 0) -> dict:
    """What a LoRA run on this data would cost, without loading the model (the tokenizer only): examples that fit,
    skipped ones, token lengths, total training tokens and the estimated hours at ``s_per_1k_tokens``."""
    from transformers import AutoTokenizer

    from engine.train.models import resolve_base

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_base(base_model).require_hf()), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = load_split(data_dir, "train")
    enc, skipped = encode_all(tokenizer, rows, max_len)
    n_fit = len(enc)
    if max_examples and len(enc) > max_examples:
        enc = [enc[i] for i in sorted(random.Random(seed + 2).sample(range(len(enc)), max_examples))]
    lengths = sorted(len(ids) for ids, _ in enc)
    answer = sorted(sum(t != IGNORE for t in labels) for _, labels in enc)
    tokens = sum(lengths) * epochs
    pct = (lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0)
    return {"n_rows": len(rows), "n_fit": n_fit, "n_used": len(enc), "skipped_long": skipped, "max_len": max_len,
            "tokens_mean": round(sum(lengths) / max(1, len(lengths)), 1), "tokens_p50": pct(lengths, 0.5),
            "tokens_p95": pct(lengths, 0.95), "answer_tokens_mean": round(sum(answer) / max(1, len(answer)), 1),
            "train_tokens": int(tokens), "s_per_1k_tokens": s_per_1k_tokens,
            "hours": round(tokens / 1000 * s_per_1k_tokens / 3600, 2)}


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
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = None
    if cfg.layers_from:
        if not 0 < cfg.layers_from < n_layers:
            raise TrainError(f"layers_from = {cfg.layers_from} leaves no layer of this {n_layers}-layer model",
                             hint=f"use 0 (all layers) up to {n_layers - 1}")
        layers = list(range(cfg.layers_from, n_layers))
    peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                          target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM",
                          layers_to_transform=layers)
    return get_peft_model(model, peft_cfg)


def load_base(spec: str | Path | None, device: torch.device | None = None, dtype: torch.dtype | None = None):
    """(tokenizer, model) for a base model value: a folder, a .gguf, 'smollm2' or empty (see engine.train.models)."""
    from engine.train.models import resolve_base

    return load_model_folder(resolve_base(spec).require_hf(), device=device, dtype=dtype)


def portable_base(hf_dir: Path) -> str:
    """What an adapter records as its base: 'smollm2' for the default (its folder differs per checkout)."""
    from engine.train.models import DEFAULT_BASE, DEFAULT_MODEL_DIR

    try:
        if hf_dir.resolve() == DEFAULT_MODEL_DIR.resolve():
            return DEFAULT_BASE
    except OSError:
        pass
    return str(hf_dir.resolve())


def save_adapter(model, tokenizer, folder: Path, base_hf_dir: Path) -> None:
    """Adapter + tokenizer (the folder alone is enough to chat), its base recorded portably."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cfg_path = folder / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    data["base_model_name_or_path"] = portable_base(base_hf_dir)
    cfg_path.write_text(json.dumps(data, indent=2))


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
    tokenizer, base = load_base(base_model or recorded, device=device)
    try:
        model = PeftModel.from_pretrained(base, adapter_dir)
    except Exception as exc:
        raise TrainError(f"adapter {adapter_dir} could not be loaded: {type(exc).__name__}: {str(exc)[:300]}",
                         hint="is it an adapter for this base model?") from None
    model.eval()
    return tokenizer, model


# ------------------------------------------------------------------------------------- forward passes
def cpu_has_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX), where oneDNN's bf16 matmuls beat fp32."""
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            flags = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
            return not flags or "avx512_bf16" in flags or "amx_bf16" in flags
    except (AttributeError, RuntimeError, OSError):
        pass
    return False


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` ('auto' | 'bf16' | 'fp32') on ``device``; None = fp32."""
    if name not in ("auto", "bf16", "fp32"):
        raise TrainError(f"precision = {name!r} is not one of auto, bf16, fp32")
    if name == "fp32":
        return None
    has = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    if name == "bf16" and not has:
        raise TrainError(f"precision = 'bf16' but this {device.type.upper()} has no native bf16",
                         hint="use precision 'auto' or 'fp32'")
    return torch.bfloat16 if has else None


def split_lm(model):
    """(decoder stack, output head) of a (PEFT-wrapped) causal LM, or (None, None) when it has no such split."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder, head = inner.get_decoder(), inner.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None, None
    if head is None or not hasattr(decoder, "layers"):
        return None, None
    return decoder, head


@contextmanager
def only_layers(decoder, first: int, stop: int | None = None) -> Iterator[None]:
    """Run ``decoder`` with its layers first..stop-1 only (from ``first`` on: its input is then the cached output
    of layer first-1); the full stack is back afterwards, so saved state-dict keys keep their layer numbers."""
    full = decoder.layers
    decoder.layers = torch.nn.ModuleList(list(full)[first:stop])
    try:
        yield
    finally:
        decoder.layers = full


def answer_loss(head, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(summed cross-entropy over the answer tokens, their count, per-example exact match under teacher forcing)
    from the decoder's last hidden states. The output head runs on the answer positions only: on a 49k-word
    vocabulary the head over every prompt position costs more than an adapted layer."""
    target = labels[:, 1:]  # position t predicts token t+1
    keep = target != IGNORE
    logits = head(hidden[:, :-1][keep]).float()  # (N, V)
    tgt = target[keep]
    loss = torch.nn.functional.cross_entropy(logits, tgt, reduction="sum")
    wrong = torch.zeros(labels.shape[0], device=labels.device)
    wrong.index_add_(0, keep.nonzero()[:, 0], (logits.argmax(-1) != tgt).float())
    return loss, int(keep.sum()), wrong == 0


class Forward:
    """Loss of a batch of encoded examples: through the whole model, or (with a prefix cache) through the
    adapted layers only, fed with the frozen layers' output computed once per example."""

    def __init__(self, model, pad_id: int, device: torch.device, autocast_dtype: torch.dtype | None,
                 first_layer: int = 0):
        self.model, self.pad_id, self.device, self.amp = model, pad_id, device, autocast_dtype
        self.decoder, self.head = split_lm(model)
        self.first = first_layer if self.decoder is not None else 0
        self.cache: dict[int, list[torch.Tensor]] = {}  # id(encoded list) -> cached inputs of layer `first`

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

    @torch.no_grad()
    def build_cache(self, encoded: list[tuple[list[int], list[int]]], batch_size: int = 16,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> list[torch.Tensor]:
        """Output of the frozen layers below ``first`` for every example (bf16 on CPU, no padding kept)."""
        if not self.first:
            raise TrainError("a prefix cache needs layers_from > 0")
        out: list[torch.Tensor | None] = [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # batches of equal length
        captured: list[torch.Tensor] = []
        hook = self.decoder.layers[self.first - 1].register_forward_hook(
            lambda _m, _a, o: captured.append(o[0] if isinstance(o, tuple) else o))
        was_training = self.model.training
        self.model.eval()
        try:
            with only_layers(self.decoder, 0, self.first), self._autocast():
                for b in range(0, len(order), batch_size):
                    if cancel is not None and cancel():
                        raise KeyboardInterrupt
                    idx = order[b: b + batch_size]
                    batch = collate([encoded[i] for i in idx], self.pad_id)
                    captured.clear()
                    self.decoder(input_ids=batch["input_ids"].to(self.device),
                                 attention_mask=batch["attention_mask"].to(self.device), use_cache=False)
                    h = captured[-1].to("cpu", torch.bfloat16)
                    for j, i in enumerate(idx):
                        out[i] = h[j, : len(encoded[i][0])].clone()
                    if progress is not None:
                        done = min(b + batch_size, len(order))
                        progress(done / len(order), f"frozen layers 0-{self.first - 1}: {done}/{len(order)} examples")
        finally:
            hook.remove()
            self.model.train(was_training)
        return out  # type: ignore[return-value]

    def loss(self, encoded: list[tuple[list[int], list[int]]], idx: list[int],
             cached: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, int, torch.Tensor]:
        batch = {k: v.to(self.device) for k, v in collate([encoded[i] for i in idx], self.pad_id).items()}
        with self._autocast():
            if self.decoder is None:  # a model without the decoder/head split: the whole forward, logits as is
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                return answer_loss(torch.nn.Identity(), logits, batch["labels"])
            if cached is not None:
                width = batch["input_ids"].shape[1]
                h = torch.zeros((len(idx), width, cached[idx[0]].shape[-1]), dtype=torch.bfloat16)
                for j, i in enumerate(idx):
                    h[j, : cached[i].shape[0]] = cached[i]
                with only_layers(self.decoder, self.first):
                    hidden = self.decoder(inputs_embeds=h.to(self.device, self.head.weight.dtype),
                                          attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
            else:
                hidden = self.decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      use_cache=False).last_hidden_state
            return answer_loss(self.head, hidden, batch["labels"])


@torch.no_grad()
def evaluate_loss(model, encoded: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int,
                  device: torch.device, autocast_dtype: torch.dtype | None = None, *,
                  forward: Forward | None = None, cached: list[torch.Tensor] | None = None,
                  with_exact: bool = False, exact_of: list[bool] | None = None):
    """Mean cross-entropy per answer token over the examples (token-weighted, not batch-weighted); with
    ``with_exact`` also the fraction of examples whose every answer token is the model's top choice under
    teacher forcing (a constant answer cannot score well on it, whatever its loss). ``exact_of``, a list, receives
    each example's exact match in order (for scores per kind)."""
    fwd = forward or Forward(model, pad_id, device, autocast_dtype)
    was_training = model.training
    model.eval()
    total, count, exact = 0.0, 0, 0
    for i in range(0, len(encoded), batch_size):
        loss, n, ok = fwd.loss(encoded, list(range(i, min(i + batch_size, len(encoded)))), cached)
        total += float(loss)
        count += n
        exact += int(ok.sum())
        if exact_of is not None:
            exact_of.extend(bool(x) for x in ok.tolist())
    model.train(was_training)
    mean = total / max(count, 1)
    return (mean, exact / max(len(encoded), 1)) if with_exact else mean


def exact_by_kind(oks: list[bool], kinds: list[str]) -> dict[str, float]:
    """Share of exact answers per kind (kinds in sorted order)."""
    tally: dict[str, list[int]] = {}
    for ok, kind in zip(oks, kinds):
        t = tally.setdefault(kind, [0, 0])
        t[0] += int(ok)
        t[1] += 1
    return {k: round(a / n, 4) for k, (a, n) in sorted(tally.items())}


def warm_start(model, adapter_dir: str | Path) -> None:
    """Start from a saved adapter's weights (same rank, modules and layers), e.g. to train a committed adapter on."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise TrainError(f"init_adapter {adapter_dir} holds no adapter_model.safetensors")
    hint = "use the adapter's own r, target_modules and layers_from (its train_config.json)"
    try:
        res = set_peft_model_state_dict(model, load_file(str(path)))
    except RuntimeError as exc:  # tensors of another shape (another rank)
        raise TrainError(f"init_adapter {adapter_dir} does not fit these settings: {str(exc).splitlines()[0]}",
                         hint=hint) from None
    unexpected = list(getattr(res, "unexpected_keys", []) or [])
    if unexpected:
        raise TrainError(f"init_adapter {adapter_dir} does not fit these settings ({len(unexpected)} tensors have "
                         f"no place, e.g. {unexpected[0]})", hint=hint)
    log.info("warm start from %s", adapter_dir)


# ---------------------------------------------------------------------------------------------- output
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
    handles, labels = ax.get_legend_handles_labels()
    exact = [p for p in curves.get("val", []) if "exact" in p]
    if exact:  # the share of validation answers right token for token: flat when the model answers a constant
        ax2 = ax.twinx()
        (line,) = ax2.plot([p["step"] for p in exact], [100 * p["exact"] for p in exact], "s--", color="tab:green",
                           lw=1.5, label="validation exact answers (%)")
        ax2.set_ylabel("exact answers (%)")
        ax2.set_ylim(0, 100)
        handles, labels = handles + [line], labels + [line.get_label()]
        kinds = sorted({k for p in exact for k in p.get("exact_by_kind", {})})
        for kind in kinds:  # per kind, thin: a kind stuck at its label prior shows as a flat line
            pts = [p for p in exact if kind in p.get("exact_by_kind", {})]
            (kl,) = ax2.plot([p["step"] for p in pts], [100 * p["exact_by_kind"][kind] for p in pts], lw=0.8,
                             alpha=0.8, label=f"{kind} exact (%)")
            handles, labels = handles + [kl], labels + [kl.get_label()]
    ax.legend(handles, labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------------ train
RESUME_KEYS = ("base_model", "data_dir", "r", "alpha", "dropout", "target_modules", "layers_from", "lr", "epochs",
               "batch_size", "max_len", "seed", "max_steps", "max_examples", "max_val_examples", "warmup_frac",
               "precision", "max_per_kind", "group_by_length", "val_per_kind", "init_adapter")


def _fingerprint(cfg: LoraTrainConfig, lengths: list[int]) -> dict:
    """The settings (and the shape of the encoded data: a rewritten data set changes it) a checkpoint must share
    with a run to be resumed by it."""
    d = cfg.to_dict()
    return {**{k: d[k] for k in RESUME_KEYS}, "n_train": len(lengths), "train_tokens_total": sum(lengths)}


def train_lora(cfg: LoraTrainConfig | None = None, progress: ProgressFn | None = None,
               cancel: CancelFn | None = None,
               on_eval: Callable[[int, float], bool] | None = None) -> LoraResult:
    """Fine-tune ``cfg.base_model`` with LoRA on ``cfg.data_dir``; see the module doc for the outputs.

    ``on_eval(step, val_loss)`` is called after each evaluation past step 0; True stops the run (state "pruned":
    the search's pruner uses it to drop a trial that is already worse than the others were)."""
    from engine.train.models import resolve_base

    cfg = cfg or LoraTrainConfig()
    t0, c0 = time.time(), time.process_time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "CANCEL").unlink(missing_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    ckpt = out / "checkpoint"

    def cancelled() -> bool:
        return (out / "CANCEL").exists() or (cancel is not None and cancel())

    # ---- data
    train_rows = load_split(cfg.data_dir, "train")
    val_rows = load_split(cfg.data_dir, "val")
    if not train_rows:
        raise TrainError(f"data set {cfg.data_dir} has no training examples",
                         hint="build one first, or point data_dir at a non-empty JSONL")
    rng = random.Random(cfg.seed)
    if not val_rows:  # no validation split given: hold out 10% so the curve still means something
        rows = train_rows[:]
        rng.shuffle(rows)
        n_val = max(1, len(rows) // 10)
        val_rows, train_rows = rows[:n_val], rows[n_val:] or rows[:n_val]
        log.warning("no val.jsonl in %s; held out %d training examples for validation", cfg.data_dir, n_val)
    if cfg.max_per_kind:
        train_rows = cap_per_kind(train_rows, cfg.max_per_kind, cfg.seed + 3)
    if cfg.val_per_kind:  # each kind weighs the same in the per-kind scores and in the best-adapter choice
        val_rows = cap_per_kind(val_rows, cfg.val_per_kind, cfg.seed + 4)
    if cfg.max_val_examples:
        val_rows = random.Random(cfg.seed + 1).sample(val_rows, min(len(val_rows), cfg.max_val_examples))

    # ---- model
    device = pick_device(cfg.device)
    autocast_dtype = pick_precision(cfg.precision, device)
    bf16 = autocast_dtype is not None
    base_hf = resolve_base(cfg.base_model).require_hf()
    # bf16 weights on CUDA; on CPU fp32 weights under bf16 autocast (the adapters train in fp32 either way)
    tokenizer, base = load_model_folder(base_hf, dtype=torch.bfloat16 if bf16 and device.type == "cuda" else None)
    max_len = min(cfg.max_len, getattr(base.config, "max_position_embeddings", cfg.max_len) or cfg.max_len)
    train_enc, skipped_train = encode_all(tokenizer, train_rows, max_len)
    if cfg.max_examples and len(train_enc) > cfg.max_examples:  # a seeded sample: files are often grouped by kind
        keep = sorted(random.Random(cfg.seed + 2).sample(range(len(train_enc)), cfg.max_examples))
        train_enc = [train_enc[i] for i in keep]
    val_enc, skipped_val = encode_all(tokenizer, val_rows, max_len)
    val_kinds = [str(r.get("kind", "")) for r in val_rows if encode_example(tokenizer, r, max_len) is not None]
    if not train_enc or not val_enc:
        raise TrainError(f"no {'training' if not train_enc else 'validation'} example fits in {max_len} tokens",
                         hint=f"raise max_len (now {cfg.max_len}) or shorten the prompts")
    model = attach_lora(base, cfg).to(device)
    if cfg.init_adapter:
        warm_start(model, cfg.init_adapter)
    fwd = Forward(model, tokenizer.pad_token_id, device, autocast_dtype,
                  first_layer=cfg.layers_from if cfg.cache_prefix else 0)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lengths = [len(ids) for ids, _ in train_enc]
    prompt_lengths = [sum(t == IGNORE for t in labels) for _, labels in train_enc]
    log.info("LoRA r=%d alpha=%g on %s: %d trainable parameters, %d train / %d val examples (%d / %d skipped as "
             "longer than %d tokens), device %s%s", cfg.r, cfg.alpha, base_hf, n_trainable, len(train_enc),
             len(val_enc), skipped_train, skipped_val, max_len, device, " (bf16)" if bf16 else "")

    steps_per_epoch = math.ceil(len(train_enc) / cfg.batch_size)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, int(cfg.warmup_frac * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / total_steps))))

    curves: dict = {"train": [], "val": [], "total_steps": total_steps, "n_train": len(train_enc),
                    "n_val": len(val_enc), "skipped_long": {"train": skipped_train, "val": skipped_val},
                    "max_len": max_len, "train_tokens": 0, "trainable_params": n_trainable, "device": str(device),
                    "bf16": bf16, "base_model": str(base_hf), "resumed_from": None,
                    "prefix_cache_layers": fwd.first, "cpu_seconds": 0.0}
    order: list[int] = []
    step = 0

    # ---- resume
    state_path = ckpt / "trainer_state.json"
    if cfg.resume and state_path.is_file() and (ckpt / "optimizer.pt").is_file():
        saved = json.loads(state_path.read_text())
        if saved.get("fingerprint") == _fingerprint(cfg, lengths):
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
            extra = torch.load(ckpt / "optimizer.pt", weights_only=False)
            opt.load_state_dict(extra["optimizer"])
            sched.load_state_dict(extra["scheduler"])
            torch.set_rng_state(extra["torch_rng"])
            rng.setstate(extra["python_rng"])
            step, order, curves = saved["step"], saved["order"], saved["curves"]
            curves["resumed_from"] = step
            if step >= total_steps:
                log.info("%s already finished these %d steps; pass --resume false to train again", out, step)
            else:
                log.info("resuming %s from its checkpoint at step %d/%d", out, step, total_steps)
        else:
            log.warning("%s holds a checkpoint of other settings; starting afresh", ckpt)

    cpu_before = float(curves.get("cpu_seconds") or 0.0)  # a resumed run counts the CPU time it had before

    def status(state: str, message: str = "") -> None:
        curves["state"] = state
        curves["cpu_seconds"] = round(cpu_before + time.process_time() - c0, 1)
        elapsed = time.time() - t0
        write_json(out / "curves.json", curves)
        write_json(out / "status.json", {"state": state, "step": step, "total_steps": total_steps,
                                          "message": message, "seconds": round(elapsed, 2),
                                          "train_tokens": curves["train_tokens"],
                                          "cpu_seconds": curves["cpu_seconds"]})

    def evaluate() -> float:
        oks: list[bool] = []
        loss, exact = evaluate_loss(model, val_enc, tokenizer.pad_token_id, cfg.batch_size, device, autocast_dtype,
                                    forward=fwd, cached=val_cache, with_exact=True, exact_of=oks)
        per_kind = exact_by_kind(oks, val_kinds)
        point = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss, "exact": round(exact, 4),
                 "exact_by_kind": per_kind, "seconds": round(time.time() - t0, 1)}
        curves["val"].append(point)
        log.info("step %d/%d val loss %.4f, exact answers %.1f%% (%s)", step, total_steps, loss, 100 * exact,
                 ", ".join(f"{k} {100 * v:.0f}%" for k, v in per_kind.items()))
        # The adapter with the best mean exact match over kinds (each kind weighs the same) is kept apart: the
        # loss keeps falling on answer formats long after the answers stop improving.
        score = sum(per_kind.values()) / max(len(per_kind), 1)
        if (step or cfg.init_adapter) and score > float(curves.get("best", {}).get("score", -1.0)):
            curves["best"] = {"step": step, "score": round(score, 4), "exact_by_kind": per_kind}
            save_adapter(model, tokenizer, out / "adapter_best", base_hf)
        return loss

    def checkpoint() -> None:
        ckpt.mkdir(exist_ok=True)
        save_adapter(model, tokenizer, ckpt, base_hf)
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(), "python_rng": rng.getstate()}, ckpt / ".optimizer.pt.tmp")
        (ckpt / ".optimizer.pt.tmp").replace(ckpt / "optimizer.pt")
        write_json(state_path, {"step": step, "total_steps": total_steps, "order": order, "curves": curves,
                                 "fingerprint": _fingerprint(cfg, lengths)})

    # ---- the frozen layers' output, once (each later step runs the adapted layers only)
    train_cache = val_cache = None
    if fwd.first:
        status("caching", f"running the frozen layers 0-{fwd.first - 1} once over the examples")
        try:
            val_cache = fwd.build_cache(val_enc, cancel=cancelled)
            train_cache = fwd.build_cache(
                train_enc, cancel=cancelled,
                progress=(lambda f, m: progress(0.0, m)) if progress is not None else None)
        except KeyboardInterrupt:
            status("cancelled", "cancelled while caching the frozen layers")
            raise TrainError("cancelled before the first step (while caching the frozen layers)") from None
        log.info("cached the output of layers 0-%d for %d + %d examples (%.0f s)", fwd.first - 1, len(train_enc),
                 len(val_enc), time.time() - t0)

    # ---- loop
    if not curves["val"]:
        evaluate()
    status("running")
    state = "done"
    model.train()
    log_every = max(1, total_steps // 200)
    try:
        while step < total_steps:
            if cancelled():
                state = "cancelled"
                break
            if len(order) < cfg.batch_size:  # a new epoch: the rest of this one, then a fresh order
                order = order + epoch_order(prompt_lengths, cfg.batch_size, rng, cfg.group_by_length)
            idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
            loss_sum, n_tokens, _ = fwd.loss(train_enc, idx, train_cache)
            loss = loss_sum / max(n_tokens, 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            curves["train_tokens"] += sum(lengths[i] for i in idx)
            curves["train"].append({"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss.item(),
                                    "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1)})
            if step % cfg.eval_every == 0 or step == total_steps:
                val_loss = evaluate()
                if on_eval is not None and step < total_steps and on_eval(step, val_loss):
                    state = "pruned"
                    break
            if step % cfg.checkpoint_every == 0:
                checkpoint()
            if step % log_every == 0 or step == total_steps:
                status("running")
                if progress is not None:
                    progress(step / total_steps, f"step {step}/{total_steps} loss {loss.item():.3f}")
    except (torch.OutOfMemoryError, MemoryError):
        checkpoint()
        status("failed", "out of memory")
        raise TrainError(f"out of memory at step {step}; the adapter so far is kept in {ckpt}",
                         hint=f"lower batch_size (now {cfg.batch_size}) or max_len (now {cfg.max_len})") from None
    except KeyboardInterrupt:
        state = "cancelled"

    if state == "cancelled" and (not curves["val"] or curves["val"][-1]["step"] != step):
        evaluate()
    checkpoint()
    save_adapter(model, tokenizer, out / "adapter", base_hf)
    status(state, "cancelled by the user; checkpoint kept (run again to resume)" if state == "cancelled" else "")
    plot_curves(curves, out / "curves.png")
    vals = [p["loss"] for p in curves["val"]]
    result = LoraResult(out_dir=str(out), state=state, steps=step, total_steps=total_steps,
                        first_val_loss=vals[0] if vals else None, final_val_loss=vals[-1] if vals else None,
                        best_val_loss=min(vals) if vals else None, seconds=round(time.time() - t0, 2),
                        adapter_dir=str(out / "adapter"), model=model.eval())
    write_json(out / "result.json", {k: v for k, v in result.__dict__.items() if k != "model"})
    log.info("LoRA %s after %d steps: val loss %.4f -> %.4f (%.1f s)", state, step, result.first_val_loss,
             result.final_val_loss, result.seconds)
    return result
