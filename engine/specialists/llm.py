"""Language-model backends the chat can use, each streaming text piece by piece.

- Ollama through the official `ollama` client: a model per specialist, else the first fallback that
  `ollama list` (/api/tags) shows. Short timeouts, so a dead or slow server costs seconds, never a hang.
- A local Hugging Face causal-LM folder through transformers (AutoModelForCausalLM + TextIteratorStreamer),
  loaded with local_files_only: nothing is downloaded.

Failures become `LLMError` with a message for a person; the chat then tries the next backend or answers
without a model.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from engine.specialists.config import SpecialistConfig

log = logging.getLogger(__name__)


class LLMError(Exception):
    """A model could not answer: unreachable, timed out, missing, or it returned an error or garbage."""


@dataclass
class ModelStatus:
    """What the page's model panel shows."""

    backend: str  # "ollama" or "hf"
    location: str  # host URL or folder
    reachable: bool
    models: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ModelChoice:
    backend: str
    model: str
    wanted: str  # the specialist's own model
    fallback: bool  # True when `model` is a fallback because `wanted` is not present


def _same_model(a: str, b: str) -> bool:
    """Ollama names default to the ':latest' tag: 'llama3.2' and 'llama3.2:latest' are one model."""
    def norm(x: str) -> str:
        return x if ":" in x else f"{x}:latest"
    return norm(a) == norm(b)


class OllamaBackend:
    """The `ollama` client against config.host."""

    def __init__(self, config: SpecialistConfig):
        import httpx
        import ollama

        self.config = config
        self._ollama = ollama
        self._httpx = httpx
        timeout = httpx.Timeout(config.timeout_s, connect=min(3.0, config.timeout_s))
        try:
            self.client = ollama.Client(host=config.host, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a malformed host is the user's input
            raise LLMError(f"'{config.host}' is not a usable Ollama host ({exc}).") from None

    def _explain(self, exc: Exception, model: str | None = None) -> LLMError:
        httpx, ollama = self._httpx, self._ollama
        host = self.config.host
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(f"The Ollama server at {host} did not answer within {self.config.timeout_s:g} s "
                            f"(timeout).")
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            return LLMError(f"No Ollama server answers at {host} (is `ollama serve` running?).")
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404:
                return LLMError(f"Ollama has no model '{model}' ({exc.error}).")
            return LLMError(f"Ollama returned an error{f' for {model}' if model else ''}: "
                            f"{exc.error} (HTTP {exc.status_code}).")
        if isinstance(exc, ValueError):
            return LLMError(f"'{host}' is not a usable Ollama host ({exc}).")
        return LLMError(f"Ollama failed: {type(exc).__name__}: {exc}")

    def status(self) -> ModelStatus:
        try:
            models = self.list_models()
            return ModelStatus("ollama", self.config.host, True, models)
        except LLMError as exc:
            return ModelStatus("ollama", self.config.host, False, [], str(exc))
        except ValueError as exc:  # the client parses the host lazily on some versions
            return ModelStatus("ollama", self.config.host, False, [], f"bad host: {exc}")

    def list_models(self) -> list[str]:
        try:
            listing = self.client.list()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            raise self._explain(exc) from None
        return [m.model for m in listing.models if m.model]

    def choose(self, specialist: str, present: list[str] | None = None) -> ModelChoice:
        """The specialist's own model when present, else the first fallback present; LLMError if none is."""
        present = self.list_models() if present is None else present
        wanted = self.config.models.get(specialist) or self.config.models.get("general") or ""
        for name in [wanted] + list(self.config.fallbacks):
            match = next((m for m in present if name and _same_model(m, name)), None)
            if match:
                return ModelChoice("ollama", match, wanted, fallback=not _same_model(match, wanted))
        msg = (f"None of the models for '{specialist}' is in `ollama list` (wanted {wanted}; fallbacks "
               f"{', '.join(self.config.fallbacks) or 'none'}; present: {', '.join(present) or 'none'}).")
        if self.config.fallbacks:
            msg += f" Try `ollama pull {self.config.fallbacks[0]}`."
        raise LLMError(msg)

    def stream(self, model: str, messages: list[dict]) -> Iterator[str]:
        try:
            for part in self.client.chat(model=model, messages=messages, stream=True):
                piece = part.message.content if part.message else ""
                if piece:
                    yield piece
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._explain(exc, model) from None


class HFBackend:
    """A local Hugging Face causal-LM folder (config.json, weights, tokenizer) through transformers."""

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 256):
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        if not (self.model_dir / "config.json").exists():
            raise LLMError(f"{self.model_dir} is not a Hugging Face model folder (no config.json).")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), local_files_only=True).eval()
        except Exception as exc:  # noqa: BLE001
            raise LLMError(f"Could not load the model in {self.model_dir}: {type(exc).__name__}: {exc}") from None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_dir.name

    def status(self) -> ModelStatus:
        return ModelStatus("hf", str(self.model_dir), True, [self.name])

    def prompt(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            try:
                return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # noqa: BLE001 - a broken template: fall back to plain text
                pass
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def stream(self, model: str, messages: list[dict]) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self.tokenizer(self.prompt(messages), return_tensors="pt")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120.0)
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, streamer=streamer, max_new_tokens=self.max_new_tokens,
                                        do_sample=False, pad_token_id=self.tokenizer.pad_token_id
                                        if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id)
            except BaseException as exc:  # noqa: BLE001 - reported to the reader below
                errors.append(exc)
                streamer.end()

        with self._lock:  # one generation at a time per loaded model
            thread = threading.Thread(target=generate, daemon=True)
            thread.start()
            for piece in streamer:
                if piece:
                    yield piece
            thread.join()
        if errors:
            raise LLMError(f"The local model failed: {type(errors[0]).__name__}: {errors[0]}")


_HF: dict[tuple[str, int], HFBackend] = {}
_HF_LOCK = threading.Lock()


def hf_backend(model_dir: str | Path, max_new_tokens: int = 256) -> HFBackend:
    """A loaded local model, kept per process (loading is the slow part)."""
    key = (str(Path(model_dir).resolve()), max_new_tokens)
    with _HF_LOCK:
        if key not in _HF:
            _HF[key] = HFBackend(model_dir, max_new_tokens)
        return _HF[key]


def looks_like_garbage(text: str) -> bool:
    """An answer that is empty, mostly non-printable, or one token repeated is not shown as an answer."""
    stripped = text.strip()
    if len(stripped) < 2:
        return True
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in stripped)
    if printable / len(stripped) < 0.9:
        return True
    letters = sum(ch.isalpha() for ch in stripped)
    if letters / len(stripped) < 0.3:
        return True
    words = stripped.split()
    if len(words) >= 12 and len(set(words)) <= 2:
        return True
    return False


def models_status(config: SpecialistConfig) -> list[ModelStatus]:
    """Every configured backend's status, for the page and `cda specialists models`."""
    out = []
    if config.use_ollama:
        try:
            out.append(OllamaBackend(config).status())
        except LLMError as exc:
            out.append(ModelStatus("ollama", config.host, False, [], str(exc)))
        except Exception as exc:  # noqa: BLE001 - the client package itself is missing or broken
            out.append(ModelStatus("ollama", config.host, False, [], f"ollama client unavailable: {exc}"))
    if config.hf_model_dir:
        try:
            out.append(hf_backend(config.hf_model_dir, config.max_new_tokens).status())
        except LLMError as exc:
            out.append(ModelStatus("hf", config.hf_model_dir, False, [], str(exc)))
    return out
