"""The chat: route -> engine tool (when the question asks for one) -> retrieve -> model (Ollama, then a local
Hugging Face folder) -> check citations. With no model, the answer is composed from what was retrieved and
what the engine said, and says so.

`Chat.ask_stream` yields events as they happen (route, tool, retrieval, status, token..., done) so the page and
the CLI can show the text token by token; `Chat.ask` collects them into one `Answer`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from engine.errors import EngineError
from engine.specialists import tools as engine_tools
from engine.specialists.config import SpecialistConfig
from engine.specialists.llm import HFBackend, LLMError, OllamaBackend, hf_backend, looks_like_garbage
from engine.specialists.rag import KnowledgeBase, Retrieval, knowledge_base
from engine.specialists.router import RouteDecision, Router, default_router

log = logging.getLogger(__name__)

NOT_IN_KB = ("That is not in my knowledge base: none of the documentation passages is close enough to answer it, "
             "and I would rather say so than guess. I can answer questions about this flow (synthesis, floorplan, "
             "placement, routing, timing, power, verification, the tools and knobs) and about your runs.")

PERSONAS = {
    "synthesis": "the synthesis specialist (Yosys, ABC mapping onto the osu018 cells, netlists)",
    "floorplan": "the floorplan specialist (die, core, utilization, rows, IO pins)",
    "placement": "the placement specialist (the ePlace-style analytical placer, HPWL, density, legalization)",
    "routing": "the routing specialist (qrouter, RUDY congestion, vias, unrouted nets)",
    "timing": "the timing specialist (OpenSTA, slack, WNS/TNS, fmax, critical paths, parasitics)",
    "power": "the power specialist (OpenSTA power: switching, internal, leakage; activity)",
    "verification": "the verification specialist (Icarus simulation, gate-level checks, GDSII with KLayout)",
    "general": "the general guide to the CDA Cockpit (the engine, runs, jobs, optimizer, training, benchmarks)",
}

_CITE = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


def validate_question(question: Any, max_chars: int) -> str:
    """The question stripped; EngineError with a message for an empty, non-text or too long one."""
    if not isinstance(question, str):
        raise EngineError("The question must be text.")
    q = question.strip()
    if not q:
        raise EngineError("Ask a question: the text is empty.")
    if len(q) > max_chars:
        raise EngineError(f"The question is {len(q):,} characters long; the limit is {max_chars:,}.",
                          hint="shorten it, or paste only the part of the log that matters")
    return q


def check_citations(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """Keep [n] only for retrieved passages. Returns the cleaned text and the invalid numbers found."""
    bad: list[int] = []

    def fix(m: re.Match) -> str:
        nums = [int(x) for x in re.split(r"[,;]", m.group(1))]
        good = [n for n in nums if n in valid]
        bad.extend(n for n in nums if n not in valid and n not in bad)
        return f"[{', '.join(str(n) for n in good)}]" if good else ""

    cleaned = _CITE.sub(fix, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return cleaned, sorted(bad)


def cited(text: str) -> list[int]:
    out: list[int] = []
    for m in _CITE.finditer(text):
        out.extend(int(x) for x in re.split(r"[,;]", m.group(1)) if int(x) not in out)
    return out


@dataclass
class Answer:
    question: str
    specialist: str
    route: RouteDecision
    text: str = ""
    retrieval: Retrieval | None = None
    tool: engine_tools.ToolResult | None = None
    model: str | None = None  # the model that wrote the text; None when no model was used
    backend: str | None = None  # "ollama" or "hf"
    wanted_model: str | None = None  # the specialist's own model
    fallback_used: bool = False
    no_model: bool = False
    not_in_kb: bool = False
    flagged_citations: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what went wrong on the way (server down, garbage, ...)

    @property
    def sources(self) -> list[dict]:
        return [h.to_dict() for h in self.retrieval.hits] if self.retrieval else []

    @property
    def citations(self) -> list[int]:
        return cited(self.text)

    def to_dict(self) -> dict:
        return {
            "question": self.question, "specialist": self.specialist, "reason": self.route.reason,
            "confidence": self.route.confidence, "text": self.text, "model": self.model, "backend": self.backend,
            "wanted_model": self.wanted_model, "fallback_used": self.fallback_used, "no_model": self.no_model,
            "not_in_kb": self.not_in_kb, "citations": self.citations, "flagged_citations": self.flagged_citations,
            "notes": self.notes, "sources": self.sources, "tool": self.tool.to_dict() if self.tool else None,
        }


def _first_sentences(text: str, n: int = 2, max_chars: int = 320) -> str:
    flat = re.sub(r"\s+", " ", text.replace("`", "")).strip()
    parts = re.split(r"(?<=[.!?])\s+", flat)
    out = " ".join(parts[:n])
    return out if len(out) <= max_chars else out[: max_chars - 3].rsplit(" ", 1)[0] + "..."


def compose_without_model(answer: Answer, reason: str) -> str:
    """An honest answer from the engine result and the best passages, marked as written without a model."""
    lines = [f"**No model used** ({reason}). Here is what the engine and the knowledge base say:"]
    if answer.tool:
        lines += ["", answer.tool.text]
    hits = answer.retrieval.hits[:3] if answer.retrieval else []
    if hits:
        lines += ["", "From the documentation:"]
        lines += [f"- {_first_sentences(h.passage.text)} [{h.n}]" for h in hits]
    return "\n".join(lines)


class Chat:
    """One chat session's engine side (stateless apart from the loaded router and knowledge base)."""

    def __init__(self, config: SpecialistConfig | None = None, kb: KnowledgeBase | None = None,
                 router: Router | None = None):
        self.config = config or SpecialistConfig()
        self._kb = kb
        self.router = router or default_router()

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            self._kb = knowledge_base(self.config)
        return self._kb

    # --------------------------------------------------------------------------------------------
    def messages(self, answer: Answer, history: list[dict] | None) -> list[dict]:
        persona = PERSONAS.get(answer.specialist, PERSONAS["general"])
        system = (
            f"You are {persona} of CDA Cockpit, an RTL-to-GDSII flow on the osu018 0.18 um library. Answer from "
            "the numbered documentation passages and the engine results given with the question. Cite the "
            "passages you use as [n] with their number; never cite a number that is not listed. Quote engine "
            "numbers with their run id. If the passages and results do not contain the answer, say you do not "
            "know. Be concise."
        )
        context = []
        if answer.tool:
            context.append(f"Engine result ({answer.tool.name}):\n{answer.tool.text}")
        if answer.retrieval and answer.retrieval.hits:
            context.append("Documentation passages:\n" + "\n\n".join(
                f"[{h.n}] ({h.passage.source}, {h.passage.label})\n{h.passage.text}" for h in answer.retrieval.hits))
        msgs = [{"role": "system", "content": system}]
        for turn in (history or [])[-6:]:
            if turn.get("role") in ("user", "assistant") and isinstance(turn.get("content"), str):
                msgs.append({"role": turn["role"], "content": turn["content"][:4000]})
        msgs.append({"role": "user", "content": "\n\n".join(context + [f"Question: {answer.question}"])})
        return msgs

    def _backends(self, answer: Answer) -> Iterator[tuple[str, Any, str]]:
        """(backend name, backend, model) in the order to try; notes say why one was skipped."""
        if self.config.use_ollama:
            try:
                ollama = OllamaBackend(self.config)
                choice = ollama.choose(answer.specialist)
                answer.wanted_model, answer.fallback_used = choice.wanted, choice.fallback
                if choice.fallback:
                    answer.notes.append(f"model {choice.wanted} is not in `ollama list`; fell back to {choice.model}")
                yield "ollama", ollama, choice.model
            except LLMError as exc:
                answer.notes.append(str(exc))
            except ImportError as exc:
                answer.notes.append(f"the ollama client is not installed ({exc})")
        if self.config.hf_model_dir:
            try:
                hf: HFBackend = hf_backend(self.config.hf_model_dir, self.config.max_new_tokens)
                yield "hf", hf, hf.name
            except LLMError as exc:
                answer.notes.append(str(exc))

    def ask_stream(self, question: str, history: list[dict] | None = None,
                   specialist: str | None = None) -> Iterator[dict]:
        """Events: route, tool_start, tool, retrieval, status, token (text pieces), done (the Answer).

        Raises EngineError only for an invalid question (empty, too long) or an unknown specialist.
        """
        q = validate_question(question, self.config.max_question_chars)
        try:
            route = self.router.route(q, force=specialist or None)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        call = engine_tools.detect(q)
        owner = engine_tools.owner(call) if call else None
        if owner and not route.forced and route.confidence < 0.6 and owner != route.specialist:
            route.note = f"{owner}: the question asks the engine about {owner}"
            route.specialist = owner
        answer = Answer(q, route.specialist, route)
        yield {"type": "route", "specialist": route.specialist, "reason": route.reason,
               "confidence": route.confidence}

        if call is not None:
            yield {"type": "tool_start", "name": call.name, "args": call.args}
            pending: list[str] = []
            answer.tool = engine_tools.call(call, self.config.runs_dir, self.config.allow_tool_runs,
                                            progress=pending.append, run_timeout_s=self.config.tool_run_timeout_s)
            for msg in pending:
                yield {"type": "status", "text": msg}
            yield {"type": "tool", "result": answer.tool}

        answer.retrieval = self.kb.search(q, k=self.config.retrieval_k)
        answer.notes.extend(answer.retrieval.notes)
        yield {"type": "retrieval", "retrieval": answer.retrieval}

        if not answer.retrieval.relevant and answer.tool is None:
            answer.not_in_kb = True
            answer.no_model = True
            answer.text = NOT_IN_KB
            for piece in _pieces(answer.text):
                yield {"type": "token", "text": piece}
            yield {"type": "done", "answer": answer}
            return

        messages = self.messages(answer, history)
        valid = {h.n for h in answer.retrieval.hits}
        shown = False  # whether tokens of a discarded attempt are on screen (then the reader must clear them)
        for name, backend, model in self._backends(answer):
            yield {"type": "status", "text": f"asking {model} ({name})"}
            pieces: list[str] = []
            try:
                for piece in backend.stream(model, messages):
                    pieces.append(piece)
                    shown = True
                    yield {"type": "token", "text": piece}
            except LLMError as exc:
                answer.notes.append(str(exc))
                if not pieces:
                    continue  # nothing shown yet: the next backend gets its chance
                if looks_like_garbage("".join(pieces)):
                    yield {"type": "reset"}
                    shown = False
                    continue
                answer.notes.append("the answer above was cut off by that error")
            text = "".join(pieces)
            if looks_like_garbage(text):
                answer.notes.append(f"{model} returned text that is not an answer ({text[:40]!r}); not shown")
                yield {"type": "reset"}
                shown = False
                continue
            answer.text, answer.flagged_citations = check_citations(text, valid)
            if answer.flagged_citations:
                answer.notes.append("removed citations of passages that were not retrieved: "
                                    + ", ".join(f"[{n}]" for n in answer.flagged_citations))
            answer.model, answer.backend = model, name
            yield {"type": "done", "answer": answer}
            return

        answer.no_model = True
        reason = "no model reachable" if not answer.notes else answer.notes[-1].rstrip(".")
        answer.text = compose_without_model(answer, reason)
        answer.wanted_model = answer.wanted_model or self.config.models.get(answer.specialist)
        answer.fallback_used = False
        if shown:
            yield {"type": "reset"}
        for piece in _pieces(answer.text):
            yield {"type": "token", "text": piece}
        yield {"type": "done", "answer": answer}

    def ask(self, question: str, history: list[dict] | None = None, specialist: str | None = None,
            on_event=None) -> Answer:
        answer = None
        for event in self.ask_stream(question, history, specialist):
            if on_event:
                on_event(event)
            if event["type"] == "done":
                answer = event["answer"]
        assert answer is not None
        return answer


def _pieces(text: str) -> Iterator[str]:
    """Word-sized pieces, so a composed answer streams like a model's."""
    for m in re.finditer(r"\S+\s*|\s+", text):
        yield m.group(0)
