"""The project's own small base model: a byte-level BPE tokenizer and a Llama-architecture LM pre-trained on
the docs and the engine-grounded data.

No weights can be downloaded here, so without this the LoRA, search and export path could not run end to end.
The output is a normal Hugging Face folder: ``AutoTokenizer/AutoModelForCausalLM.from_pretrained(folder)``
load it, and every later stage treats it exactly like a real 1-8B model folder.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from engine.train.config import PROMPT_TEMPLATE, TinyModelConfig, TrainError

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = [PAD, BOS, EOS]  # ids 0, 1, 2

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


# ----------------------------------------------------------------------------------------------- corpus
def example_text(example: dict) -> str:
    """The exact text an instruction/answer example is trained on (prompt template + answer)."""
    return PROMPT_TEMPLATE.format(instruction=example["instruction"]) + example["answer"]


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file of examples; a broken line is a clear error naming the file and line."""
    from engine.runs import read_jsonl as _rows

    rows = []
    for lineno, row in _rows(Path(path), TrainError):
        if not isinstance(row, dict) or "instruction" not in row or "answer" not in row:
            raise TrainError(f"{path}:{lineno} has no 'instruction'/'answer' fields")
        rows.append(row)
    return rows


def collect_corpus(sources: Iterable[str | Path], max_chars: int) -> list[str]:
    """Texts from folders (*.md, *.txt, recursively), text files and JSONL data sets; missing sources are skipped
    with a warning (the data set may not exist yet when the model is first built)."""
    texts: list[str] = []
    total = 0
    for src in sources:
        src = Path(src)
        if not src.exists():
            log.warning("corpus source %s does not exist; skipped", src)
            continue
        files = sorted(p for p in src.rglob("*") if p.suffix in (".md", ".txt", ".jsonl")) if src.is_dir() else [src]
        for f in files:
            if f.suffix == ".jsonl":
                new = [example_text(r) for r in read_jsonl(f)]
            else:
                new = [f.read_text(encoding="utf-8", errors="replace")]
            for t in new:
                if total >= max_chars:
                    return texts
                texts.append(t[: max_chars - total])
                total += len(texts[-1])
    return texts


# -------------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: list[str], vocab_size: int, max_len: int):
    """Byte-level BPE (GPT-2 style, so every byte is representable and GGUF's 'gpt2' tokenizer model matches)
    wrapped as a transformers fast tokenizer that adds <s> in front of every sequence, like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=max_len
    )


# ---------------------------------------------------------------------------------------------- model
def build_model(cfg: TinyModelConfig, vocab_size: int):
    """A freshly initialised LlamaForCausalLM of the configured size (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if cfg.hidden_size % cfg.n_heads or (cfg.hidden_size // cfg.n_heads) % 2:
        raise TrainError(f"hidden_size {cfg.hidden_size} must split into {cfg.n_heads} heads of even size",
                         hint="change hidden_size or n_heads")
    if cfg.n_heads % cfg.n_kv_heads:
        raise TrainError(f"n_heads {cfg.n_heads} is not a multiple of n_kv_heads {cfg.n_kv_heads}")
    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=cfg.max_len,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,  # GGUF 'output.weight' then is its own tensor, as in most Llama exports
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' asked for but no CUDA GPU is available", hint="use device='auto' or 'cpu'")
    return torch.device(name)


def _token_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    """All texts as one stream, each as <s> text </s>, shape (N,)."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def build_tiny_model(cfg: TinyModelConfig | None = None, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> Path:
    """Train the tokenizer, pre-train the model on the corpus and save both to ``cfg.out_dir``.

    Returns the folder. Writes ``pretrain.json`` (loss per step, timings, config) next to the weights.
    A cancel keeps the weights trained so far (still a loadable folder).
    """
    cfg = cfg or TinyModelConfig()
    out = Path(cfg.out_dir)
    t0 = time.time()
    texts = collect_corpus(cfg.corpus, cfg.max_corpus_chars)
    if not texts or sum(len(t) for t in texts) < 200:
        raise TrainError(f"the corpus {list(cfg.corpus)} has almost no text to train on",
                         hint="point corpus at assets/docs or a data set written by `cda train data`")
    log.info("corpus: %d texts, %d chars", len(texts), sum(map(len, texts)))
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.max_len)
    stream = _token_stream(tokenizer, texts)
    block = cfg.max_len
    n_blocks = max(1, (len(stream) - 1) // block)
    if len(stream) < block + 1:  # pad a tiny corpus up to one block
        stream = torch.cat([stream, torch.full((block + 1 - len(stream),), tokenizer.eos_token_id)])

    device = pick_device(cfg.device)
    model = build_model(cfg, len(tokenizer)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny model: %.2fM parameters, %d blocks of %d tokens, device %s", n_params / 1e6, n_blocks, block, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[dict] = []
    status = "done"
    model.train()
    for step in range(cfg.steps):
        if cancel is not None and cancel():
            status = "cancelled"
            break
        starts = torch.randint(0, len(stream) - block - 1 + 1, (cfg.batch_size,), generator=gen)
        batch = torch.stack([stream[s: s + block] for s in starts]).to(device)  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append({"step": step + 1, "loss": loss.item()})
        if step % 10 == 0 or step == cfg.steps - 1:
            log.info("pre-train step %d/%d loss %.3f (%.1f s)", step + 1, cfg.steps, loss.item(), time.time() - t0)
        if progress is not None and (step % 10 == 0 or step == cfg.steps - 1):
            progress((step + 1) / cfg.steps, f"pre-train step {step + 1}/{cfg.steps} loss {float(loss):.3f}")

    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.to("cpu").save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "pretrain.json").write_text(json.dumps({
        "status": status,
        "config": cfg.to_dict(),
        "n_params": n_params,
        "n_corpus_texts": len(texts),
        "n_corpus_tokens": int(len(stream)),
        "seconds": round(time.time() - t0, 2),
        "losses": losses,
    }, indent=1))
    log.info("tiny model saved to %s (%s, %.1f s)", out, status, time.time() - t0)
    return out


def load_model_folder(path: str | Path, device: torch.device | None = None, dtype: torch.dtype | None = None):
    """Load (tokenizer, model) from a local HF folder with clear errors for missing or corrupt folders."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise TrainError(f"model folder {path} does not exist",
                         hint="build the project's tiny model with `cda train tiny` or set base_model to a "
                              "local HF folder")
    if not (path / "config.json").is_file():
        raise TrainError(f"model folder {path} has no config.json, so it is not a Hugging Face model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs = {"local_files_only": True}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as exc:  # transformers raises many types for broken folders; all mean the same to the user
        raise TrainError(f"model folder {path} could not be loaded: {type(exc).__name__}: {str(exc)[:300]}",
                         hint="the folder looks corrupt; rebuild it or point base_model at another folder") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device is not None:
        model.to(device)
    return tokenizer, model
