"""Language-model backends the chat and the benchmark use, each streaming text piece by piece.

- llama.cpp through llama-cpp-python (the embedded default: a GGUF file, SmolLM2-135M-Instruct or the exported
  LoRA specialist): the model's own chat template from the GGUF, explicit n_threads, grammar-constrained JSON.
- Ollama through the official `ollama` client: a model per specialist, else the first fallback that
  `ollama list` (/api/tags) shows. Short timeouts, so a dead or slow server costs seconds, never a hang.
- A local Hugging Face causal-LM folder through transformers (AutoModelForCausalLM + TextIteratorStreamer),
  loaded with local_files_only: nothing is downloaded. JSON answers go through the schema-constrained greedy
  sampler of ``engine.specialists.json_constraint``.

``answer_json(backend, messages, schema, max_tokens) -> (dict | None, raw_text)`` is the one call the benchmark
makes; None means the text did not parse as a JSON object valid for the schema (a parse failure).

Failures become `LLMError` with a message for a person; the chat then tries the next backend or answers
without a model.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import (
    EngineError,
    LLMError,  # defined with the other errors; imported from here too
)
from engine.specialists.config import SpecialistConfig

log = logging.getLogger(__name__)


@dataclass
class ModelStatus:
    """What the page's model panel shows."""

    backend: str  # "ollama", "hf" or "llamacpp"
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
            # the client replaces httpx's error with a generic one; the cause is kept as the context
            cause = f"{exc} {exc.__context__ or ''}"
            unresolved = any(s in cause for s in ("Name or service not known", "name resolution",
                                                  "nodename nor servname", "No address associated"))
            why = "its host name does not resolve" if unresolved else "is `ollama serve` running?"
            return LLMError(f"No Ollama server answers at {host} ({why}).")
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

    def complete_json(self, messages: list[dict], schema: dict | None, max_tokens: int = 256,
                      model: str | None = None) -> str:
        """One greedy answer constrained to the JSON schema (Ollama's structured outputs: ``format=schema``)."""
        model = model or self.choose("general").model
        try:
            res = self.client.chat(model=model, messages=messages, format=schema or "json",
                                   options={"temperature": 0, "num_predict": max_tokens})
        except Exception as exc:  # noqa: BLE001
            raise self._explain(exc, model) from None
        return (res.message.content or "") if res.message else ""


class HFBackend:
    """A local Hugging Face causal-LM folder (config.json, weights, tokenizer), or a LoRA adapter folder (merged
    into its recorded base on load), through transformers."""

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 256, n_threads: int = 1):
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        adapter = (self.model_dir / "adapter_config.json").exists()
        if not (self.model_dir / "config.json").exists() and not adapter:
            raise LLMError(f"{self.model_dir} is not a Hugging Face model folder (no config.json).")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if n_threads:
                torch.set_num_threads(n_threads)  # explicit: torch's default spins every core of a shared machine
            if adapter:  # a LoRA adapter folder: its base + the adapter, merged (same answers, faster)
                from engine.train.lora import load_adapter

                self.tokenizer, peft_model = load_adapter(self.model_dir)
                self.model = peft_model.merge_and_unload().eval()
            else:
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

    def _input_ids(self, messages: list[dict]):
        # The chat template writes its own special tokens; the tokenizer must not add a second BOS.
        special = not getattr(self.tokenizer, "chat_template", None)
        ids = self.tokenizer(self.prompt(messages), return_tensors="pt", add_special_tokens=special).input_ids
        limit = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048) - self.max_new_tokens
        return ids[:, -max(limit, 16):]  # keep the end: the question and the answer format

    def generate_text(self, messages: list[dict], max_tokens: int | None = None) -> str:
        """One greedy answer, whole (no streaming); special tokens removed."""
        import torch

        ids = self._input_ids(messages)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=max_tokens or self.max_new_tokens, pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def complete_json(self, messages: list[dict], schema: dict | None, max_tokens: int = 256,
                      model: str | None = None) -> str:
        """One greedy answer in which every token keeps the text a valid prefix of a JSON document for the
        schema (any JSON value when schema is None)."""
        from engine.specialists.json_constraint import constrained_generate

        ids = self._input_ids(messages)
        try:
            with self._lock:
                return constrained_generate(self.model, self.tokenizer, ids, schema, max_new_tokens=max_tokens)
        except Exception as exc:  # noqa: BLE001
            raise LLMError(f"The local model failed: {type(exc).__name__}: {exc}") from None

    def stream(self, model: str, messages: list[dict]) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        ids = self._input_ids(messages)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
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


class LlamaCppBackend:
    """A GGUF file through llama-cpp-python: the runtime Ollama uses, in this process.

    Prompts are formatted by the chat template stored in the GGUF (llama-cpp-python reads
    ``tokenizer.chat_template``), so a model is prompted exactly as it was trained. JSON answers are decoded
    under a grammar built from the JSON schema (``LlamaGrammar.from_json_schema``).
    """

    def __init__(self, gguf_path: str | Path, max_new_tokens: int = 256, n_threads: int = 2, n_ctx: int = 2048,
                 seed: int = 0):
        self.gguf_path = Path(gguf_path)
        self.max_new_tokens = max_new_tokens
        if not self.gguf_path.is_file():
            raise LLMError(f"GGUF model {self.gguf_path} does not exist.")
        try:
            import llama_cpp
        except ImportError:
            raise LLMError("llama-cpp-python is not installed (`make setup` builds it: "
                           "`.venv/bin/pip install llama-cpp-python`).") from None
        self._llama_cpp = llama_cpp
        # Any: llama_cpp types messages and sampling options as strict TypedDicts; our plain dicts are what it reads.
        self.llm: Any
        try:
            self.llm = llama_cpp.Llama(model_path=str(self.gguf_path), n_threads=n_threads,
                                       n_threads_batch=n_threads, n_ctx=n_ctx, seed=seed, verbose=False)
        except Exception as exc:  # noqa: BLE001 - llama.cpp reports a bad file as a ValueError or RuntimeError
            raise LLMError(f"llama.cpp could not load {self.gguf_path}: {type(exc).__name__}: {exc}") from None
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.gguf_path.stem

    def status(self) -> ModelStatus:
        return ModelStatus("llamacpp", str(self.gguf_path), True, [self.name])

    # Greedy and without a repeat penalty, so answers are reproducible and match transformers' greedy decoding.
    _GREEDY = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}

    def _fit(self, messages: list[dict], max_tokens: int) -> list[dict]:
        """Cut the last user message from the front when prompt + answer would not fit the context."""
        budget = self.n_ctx - max_tokens - 64
        text = "".join(m["content"] for m in messages)
        n = len(self.llm.tokenize(text.encode(), add_bos=False, special=False))
        if n <= budget or not messages:
            return messages
        last = dict(messages[-1])
        keep = max(200, int(len(last["content"]) * budget / max(n, 1)))
        last["content"] = last["content"][-keep:]
        return messages[:-1] + [last]

    def stream(self, model: str, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        max_tokens = max_tokens or self.max_new_tokens
        try:
            with self._lock:
                for part in self.llm.create_chat_completion(messages=self._fit(messages, max_tokens),
                                                            max_tokens=max_tokens, stream=True, **self._GREEDY):
                    piece = part["choices"][0]["delta"].get("content") or ""
                    if piece:
                        yield piece
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise LLMError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from None

    def generate_text(self, messages: list[dict], max_tokens: int | None = None) -> str:
        """One greedy answer, whole."""
        return "".join(self.stream(self.name, messages, max_tokens))

    def grammar(self, schema: dict | None):
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            try:
                if schema:
                    self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema),
                                                                                         verbose=False)
                else:
                    self._grammars[key] = self._llama_cpp.LlamaGrammar.from_string(
                        self._llama_cpp.llama_grammar.JSON_GBNF, verbose=False)
            except Exception as exc:  # noqa: BLE001
                raise LLMError(f"the JSON schema could not be turned into a llama.cpp grammar: {exc}") from None
        return self._grammars[key]

    def token_texts(self) -> list[str]:
        """Each vocabulary entry's text (special tokens empty), built once per model."""
        if not hasattr(self, "_texts"):
            texts = []
            for i in range(self.llm.n_vocab()):
                try:
                    b = self.llm.detokenize([i], special=False)
                except TypeError:  # an older llama-cpp-python without `special`
                    b = self.llm.detokenize([i])
                texts.append(b.decode("utf-8", errors="replace") if b else "")
            self._texts = texts
        return self._texts

    def bounds_mask(self, schema: dict):
        """A logits processor for llama.cpp that lets only tokens keeping the answer a valid prefix under
        engine.specialists.json_constraint (which enforces minimum/maximum; llama.cpp's grammar from a JSON
        schema bounds integers only). Greedy like the grammar path: the best valid token is kept."""
        import numpy as np

        from engine.specialists.json_constraint import JsonPrefix

        texts = self.token_texts()
        eos = {self.llm.token_eos()}
        memo: dict = {"n_prompt": None, "state": JsonPrefix(schema), "done": 0}

        def _valid(tid: int, state) -> bool:
            if tid in eos or not texts[tid]:
                return state.can_end()
            return state.feed(texts[tid]) is not None

        def mask(input_ids, scores):
            ids = list(input_ids)
            if memo["n_prompt"] is None:
                memo["n_prompt"] = len(ids)
            state = memo["state"]
            for tid in ids[memo["n_prompt"] + memo["done"]:]:  # tokens chosen since the last call
                nxt = state.feed(texts[tid]) if tid < len(texts) else None
                state = nxt if nxt is not None else state
                memo["done"] += 1
            memo["state"] = state
            # The best-scoring token that keeps the answer valid, searched over the whole vocabulary (the model's
            # favourite can rank a valid token far down: after `{"setting` it wants `":` and the `s` that the
            # schema's "settings" needs came past the first 4,096; leaving those steps unconstrained let `":`
            # through and desynchronised the parser from the text). Nothing valid at all: end the answer.
            keep = next((int(t) for t in np.argsort(-scores, kind="stable") if _valid(int(t), state)), None)
            if keep is None:
                keep = min(eos)
            out = np.full_like(scores, -np.inf)
            out[keep] = scores[keep]
            return out

        return mask

    def complete_json(self, messages: list[dict], schema: dict | None, max_tokens: int = 256,
                      model: str | None = None) -> str:
        """One greedy answer decoded under the schema's grammar: every token keeps the text valid. A schema with
        numeric bounds adds a logits processor that keeps numbers inside them (the same rule as transformers')."""
        extra: dict[str, Any] = {}
        if schema and _has_bounds(schema):  # the processor enforces the whole schema (no grammar beside it)
            extra["logits_processor"] = self._llama_cpp.LogitsProcessorList([self.bounds_mask(schema)])
        else:
            extra["grammar"] = self.grammar(schema)
        try:
            with self._lock:
                res = self.llm.create_chat_completion(messages=self._fit(messages, max_tokens), max_tokens=max_tokens,
                                                      **self._GREEDY, **extra)
        except Exception as exc:  # noqa: BLE001
            raise LLMError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from None
        return res["choices"][0]["message"].get("content") or ""


def _has_bounds(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "minimum" in schema or "maximum" in schema or any(_has_bounds(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_bounds(v) for v in schema)
    return False


_HF: dict[tuple[str, int], HFBackend] = {}
_LLAMA: dict[tuple[str, int, int, int], LlamaCppBackend] = {}
_HF_LOCK = threading.Lock()


def hf_backend(model_dir: str | Path, max_new_tokens: int = 256, n_threads: int = 1) -> HFBackend:
    """A loaded local model, kept per process (loading is the slow part)."""
    key = (str(Path(model_dir).resolve()), max_new_tokens)
    with _HF_LOCK:
        if key not in _HF:
            _HF[key] = HFBackend(model_dir, max_new_tokens, n_threads)
        return _HF[key]


def llamacpp_backend(gguf_path: str | Path, max_new_tokens: int = 256, n_threads: int = 2,
                     n_ctx: int = 2048) -> LlamaCppBackend:
    """A loaded GGUF model, kept per process."""
    key = (str(Path(gguf_path).resolve()), max_new_tokens, n_threads, n_ctx)
    with _HF_LOCK:
        if key not in _LLAMA:
            _LLAMA[key] = LlamaCppBackend(gguf_path, max_new_tokens, n_threads, n_ctx)
        return _LLAMA[key]


def open_backend(spec: str, max_new_tokens: int = 256, n_threads: int = 2, host: str | None = None,
                 timeout_s: float = 60.0) -> tuple[Any, str | None]:
    """(backend, model name for Ollama or None) for one model value, as the benchmark names them:

    - ``smollm2`` (or empty): the SmolLM2-135M-Instruct base, through llama.cpp on its GGUF when llama-cpp-python
      is installed, else through transformers on the imported folder;
    - ``<file>.gguf``: llama.cpp; ``llamacpp:<file>`` the same, said explicitly;
    - ``hf:<folder>`` or a folder: transformers (an HF model folder, or a LoRA adapter folder merged on load);
    - ``ollama:<name>``: the Ollama server at ``host`` (the specialists' default host when None).
    Loaded models are kept per process. Raises LLMError with a message for a person."""
    spec = (spec or "smollm2").strip()
    if spec.startswith("ollama:"):
        cfg = SpecialistConfig(timeout_s=timeout_s)
        if host:
            cfg.host = host
        return OllamaBackend(cfg), spec.split(":", 1)[1]
    if spec.startswith("llamacpp:"):
        return llamacpp_backend(spec.split(":", 1)[1], max_new_tokens, n_threads), None
    if spec.startswith("hf:"):
        return hf_backend(spec.split(":", 1)[1], max_new_tokens, 1), None
    if spec in ("smollm2", "base"):
        from engine.train.models import resolve_base

        try:
            base = resolve_base("")
        except EngineError as exc:
            raise LLMError(f"the SmolLM2 base model is not available: {exc}") from None
        try:
            import llama_cpp  # noqa: F401 - only to choose the runtime
        except ImportError:
            return hf_backend(base.require_hf(), max_new_tokens, 1), None
        if base.gguf_path is not None:
            return llamacpp_backend(base.gguf_path, max_new_tokens, n_threads), None
        return hf_backend(base.require_hf(), max_new_tokens, 1), None
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        return llamacpp_backend(path, max_new_tokens, n_threads), None
    if path.is_dir():
        return hf_backend(path, max_new_tokens, 1), None
    raise LLMError(f"'{spec}' is not a model: use smollm2, a .gguf file, an HF or adapter folder, or ollama:<name>")


def parse_json_answer(raw: str, schema: dict | None = None) -> dict | None:
    """The JSON object in a model's answer, or None when there is none or it breaks the schema.

    Tolerates what unconstrained models wrap around JSON: a ```json fence or text before/after the object."""
    from engine.specialists.json_constraint import schema_errors

    text = raw.strip()
    candidates = [text]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for cand in candidates:
        try:
            value = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict) and not (schema and schema_errors(value, schema)):
            return value
        return None
    return None


def answer_json(backend, messages: list[dict], schema: dict | None, max_tokens: int = 128,
                model: str | None = None) -> tuple[dict | None, str]:
    """Ask ``backend`` (LlamaCppBackend, HFBackend or OllamaBackend) for a JSON answer constrained to ``schema``.

    Returns (the answer as a dict, the raw text); the dict is None when the text is not a JSON object valid for
    the schema (a parse failure, which the benchmark counts apart from wrong answers). Raises LLMError when the
    backend itself fails (unreachable, crashed)."""
    raw = backend.complete_json(messages, schema, max_tokens, model=model)
    return parse_json_answer(raw, schema), raw


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
    gguf = config.resolve_gguf()
    if gguf:
        try:
            out.append(llamacpp_backend(gguf, config.max_new_tokens, config.n_threads).status())
        except LLMError as exc:
            out.append(ModelStatus("llamacpp", gguf, False, [], str(exc)))
    if config.hf_model_dir:
        try:
            out.append(hf_backend(config.hf_model_dir, config.max_new_tokens, config.torch_threads).status())
        except LLMError as exc:
            out.append(ModelStatus("hf", config.hf_model_dir, False, [], str(exc)))
    return out


def smoke_test_llamacpp(gguf: str | Path | None = None, timeout_s: float = 300.0) -> str:
    """`make setup`'s check of the llama.cpp build: decode a few tokens with the quantised base model in a separate
    process (a crash in llama.cpp's native kernels kills the process, it cannot be caught in this one) and stop with
    the reason when that fails. Returns the line to show."""
    import subprocess
    import sys

    if gguf is None:
        from engine.train.models import smollm2_gguf

        gguf = smollm2_gguf()
    code = ("import sys, llama_cpp; m = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=1, verbose=False); "
            "print(repr(m.create_completion('The placer', max_tokens=4, temperature=0.0)['choices'][0]['text']))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(gguf)], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"llama.cpp check: no answer from {gguf} in {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise SystemExit(f"llama.cpp check failed ({how}) decoding with {gguf}:\n{proc.stderr[-2000:]}\n"
                         "Rebuild it: rm -rf .cache/wheels && make setup (the Makefile's LLAMA_CMAKE_ARGS set the "
                         "CPU features it is built for).")
    return f"llama.cpp check: {Path(str(gguf)).name} decodes ({proc.stdout.strip()})"
