"""The chat: route -> engine tool (when the question asks for one) -> the selected run's facts -> retrieve ->
model -> check citations. Models are tried in the order of ``engine.specialists.resolve``: llama.cpp on the tuned
specialist GGUF (else the SmolLM2 base GGUF), then Ollama, then a local Hugging Face folder. With no model, the
answer is composed from the run's facts, what the engine said and what was retrieved, and says once that no model
was used.

A 135M model is weak, so the prompt does the work: the run's facts first (design, status, failed step and its
advice, HPWL, overflow, RUDY hot spot, WNS/TNS and the worst path, the knob to turn), a few short passages, one
instruction; answers stop at a repeated sentence.

`Chat.ask_stream` yields events as they happen (route, run, tool, retrieval, status, token..., done) so the page and
the CLI can show the text token by token; `Chat.ask` collects them into one `Answer`. A what-if question answers at
once with the run it started (and the tuned specialist's prediction); `follow_what_if` adds the engine's comparison
and the prediction's check when that run ends, so the page can follow it and a refresh loses nothing.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.specialists import tools as engine_tools
from engine.specialists.config import SpecialistConfig
from engine.specialists.conversation import pending_what_if
from engine.specialists.llm import HFBackend, LLMError, OllamaBackend, hf_backend, llamacpp_backend, looks_like_garbage
from engine.specialists.rag import KnowledgeBase, Retrieval, knowledge_base
from engine.specialists.resolve import llama_cpp_missing, resolve_gguf
from engine.specialists.router import RouteDecision, Router, default_router

log = logging.getLogger(__name__)

NOT_IN_KB = ("That is not in my knowledge base: none of the documentation passages is close enough to answer it, "
             "and I would rather say so than guess. I can answer questions about this flow (synthesis, floorplan, "
             "placement, routing, timing, power, verification, the tools and knobs) and about your runs.")

#: How an answer written without a model begins; said once per conversation.
NO_MODEL = "**No model used**"

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
    run: engine_tools.ToolResult | None = None  # the selected run's facts (engine_tools.run_facts)
    prediction: engine_tools.ToolResult | None = None  # the tuned specialist's what-if prediction (and its check)
    model: str | None = None  # the model that wrote the text; None when no model was used
    backend: str | None = None  # "llamacpp", "ollama" or "hf"
    model_kind: str | None = None  # llama.cpp: "specialist", "exported", "base" or "file"
    wanted_model: str | None = None  # the specialist's own Ollama model
    fallback_used: bool = False
    no_model: bool = False
    not_in_kb: bool = False
    flagged_citations: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what went wrong on the way (server down, garbage, ...)
    shown: list[int] = field(default_factory=list)  # the passage numbers the model's prompt carried
    about_run: bool = False  # the question asks about the selected run (its facts can answer it)

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
            "model_kind": self.model_kind, "wanted_model": self.wanted_model, "fallback_used": self.fallback_used,
            "no_model": self.no_model, "not_in_kb": self.not_in_kb, "citations": self.citations,
            "flagged_citations": self.flagged_citations, "notes": self.notes, "sources": self.sources,
            "tool": self.tool.to_dict() if self.tool else None, "run": self.run.to_dict() if self.run else None,
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }


def _first_sentences(text: str, n: int = 2, max_chars: int = 320) -> str:
    flat = re.sub(r"\s+", " ", text.replace("`", "")).strip()
    parts = re.split(r"(?<=[.!?])\s+", flat)
    out = " ".join(parts[:n])
    return out if len(out) <= max_chars else out[: max_chars - 3].rsplit(" ", 1)[0] + "..."


# Words that say which of a run's facts a question is about (the specialist's phase decides when none match).
_TOPICS = {
    "timing": re.compile(r"slack|timing|\bpath|\bwns\b|\btns\b|clock|fmax|frequency|fast|slow|setup", re.I),
    "routing": re.compile(r"congest|rudy|hot ?spot|rout|unrouted|\bvias?\b|tracks?\b|wire", re.I),
    "placement": re.compile(r"hpwl|placement|placer|overflow|density|spread|legali", re.I),
}
_PHASE_TOPICS = {"timing": ("timing",), "routing": ("routing",), "placement": ("placement", "routing"),
                 "floorplan": ("placement",), "power": ("timing",)}
#: A question about the run itself (answerable from its facts even when no passage matches).
_ABOUT_RUN = re.compile(r"\b(run|runs|design|fail\w*|slack|path|congest\w*|hot ?spot|knob|fix|improve|wrong|"
                        r"worst|hpwl|overflow|unrouted|timing|rudy|why|change|should|faster|slower|better|"
                        r"tune)\b", re.I)


_KNOB_Q = re.compile(r"\b(knob|change|turn|fix|improve|better|faster|should|tune|what can)\b", re.I)


def _topics(specialist: str, question: str) -> list[str]:
    topics = [t for t, rx in _TOPICS.items() if rx.search(question)] or list(_PHASE_TOPICS.get(specialist, ()))
    return topics or ["timing", "routing", "placement"]


def model_facts(facts: dict, specialist: str, question: str) -> str:
    """The run's facts a small model reads: only those the question is about, each sentence worded like the question
    it answers ("The worst slack of this run is ..."), so that copying it is the easy continuation. Measured on
    SmolLM2-135M: worded so, it quotes the slack and the path; given the same numbers as a report, it invents."""
    m = facts.get("metrics") or {}
    out = []
    if facts.get("status") == "failed":
        out.append(f"This run failed at step {facts.get('failed_step') or '?'}: "
                   f"{(facts.get('error') or 'no message').rstrip('.')}.")
    elif facts.get("status") == "done" and re.search(r"\bfail", question, re.I):
        out.append("This run did not fail: all its steps finished.")
    topics = _topics(specialist, question)
    wp = facts.get("worst_path")
    if "timing" in topics and wp:
        clock = f", at a {wp['period_ns']:g} ns clock" if isinstance(wp.get("period_ns"), (int, float)) else ""
        out.append(f"The worst slack of this run is {wp['slack_ns']:.3f} ns, on the path from {wp['startpoint']} to "
                   f"{wp['endpoint']}{clock}.")
    hs = facts.get("hot_spot")
    if "routing" in topics and hs:
        out.append(f"The congestion hot spot of this run is the {hs['region']} of the core, where RUDY peaks at "
                   f"{m.get('route__rudy__max', hs['peak']):.2f} of track capacity.")
    if "routing" in topics and "route__net__unrouted" in m:
        out.append(f"{int(m['route__net__unrouted'])} nets of this run are unrouted.")
    if "placement" in topics and "placement__hpwl" in m:
        out.append(f"The HPWL of this run is {m['placement__hpwl']:,.0f} um"
                   + (f", and its density overflow is {m['placement__overflow']:.3f}." if "placement__overflow" in m
                      else "."))
    knobs = facts.get("knobs") or []
    if knobs and (_KNOB_Q.search(question) or facts.get("status") == "failed"):
        out.append(f"The knob to turn is: {knobs[0]}.")
    if not out:
        out.append(f"This run of {facts.get('design')} is {facts.get('status')}.")
    return " ".join(out)


def facts_answer(facts: dict, specialist: str, question: str) -> str:
    """What a run's facts say about a question, in plain sentences: the answer the chat gives without a model."""
    m = facts.get("metrics") or {}
    who = f"Run {facts.get('run_id')} ({facts.get('design')})"
    out = []
    if facts.get("status") == "failed":
        out.append(f"{who} failed at step {facts.get('failed_step') or '?'}: "
                   f"{(facts.get('error') or 'no message').rstrip('.')}.")
    elif facts.get("status") == "done" and re.search(r"\bfail", question, re.I):
        steps = facts.get("finished_steps") or []
        out.append(f"{who} did not fail: its {len(steps)} steps ({', '.join(steps)}) all finished.")
    else:
        out.append(f"{who} is {facts.get('status')}.")
    topics = _topics(specialist, question)
    wp = facts.get("worst_path")
    if "timing" in topics and (wp or "timing__setup__ws" in m):
        if wp:
            verdict = "fails timing" if wp["slack_ns"] < 0 else "meets timing"
            clock = f" at a {wp['period_ns']:g} ns clock" if isinstance(wp.get("period_ns"), (int, float)) else ""
            out.append(f"The worst path ends at {wp['endpoint']} (from {wp['startpoint']}) with slack "
                       f"{wp['slack_ns']:.3f} ns{clock}, so it {verdict}; {wp['failing']} of the {wp['reported']} "
                       f"reported paths fail.")
        if "timing__setup__ws" in m:
            out.append(f"WNS is {m['timing__setup__ws']:.3f} ns and TNS {m.get('timing__setup__tns', 0.0):.3f} ns"
                       + (f" (fmax {m['timing__fmax_mhz']:.0f} MHz)." if "timing__fmax_mhz" in m else "."))
    hs = facts.get("hot_spot")
    if "routing" in topics and ("route__rudy__max" in m or hs):
        text = f"RUDY peaks at {m.get('route__rudy__max', hs['peak'] if hs else 0.0):.2f} of track capacity"
        if hs:
            text += (f" (x {hs['x_um']:g} um, y {hs['y_um']:g} um), and the hot spot is the {hs['region']} of the "
                     f"core (mean {hs['region_mean']:.2f})")
        if "route__net__unrouted" in m:
            text += f"; {int(m['route__net__unrouted'])} nets are unrouted"
        out.append(text + ".")
    if "placement" in topics and "placement__hpwl" in m:
        text = f"HPWL is {m['placement__hpwl']:,.0f} um"
        if "placement__overflow" in m:
            text += f" with density overflow {m['placement__overflow']:.3f}"
        out.append(text + ".")
    if len(out) == 1 and facts.get("status") != "failed":
        steps = facts.get("finished_steps") or []
        out.append(f"It has finished {', '.join(steps) if steps else 'no step'} so far, so there are no "
                   f"{' or '.join(topics)} numbers to quote yet.")
    knobs = facts.get("knobs") or []
    # the knob when something needs fixing or when asked; "nothing is failing" answers only that question
    if knobs and (not knobs[0].startswith("nothing is failing") or _KNOB_Q.search(question)):
        out.append(f"The knob to turn: {knobs[0]}.")
    return " ".join(out)


def compose_without_model(answer: Answer, reason: str, announce: bool = True) -> str:
    """An honest answer from the run's facts, the engine result and the best passages. ``announce``: begin with the
    no-model line (once per conversation)."""
    facts = answer.run.data if answer.run is not None and answer.run.ok else None
    lines = []
    if announce:
        what = " and ".join(x for x in ("the run's facts" if facts else "", "the engine" if answer.tool else "",
                                        "the documentation") if x)
        lines.append(f"{NO_MODEL} ({reason}); this answer is put together from {what}.")
    if facts:
        lines += ["", facts_answer(facts, answer.specialist, answer.question)]
    if answer.prediction is not None and answer.prediction.ok:
        lines += ["", answer.prediction.text]
    if answer.tool:
        lines += ["", answer.tool.text]
    hits = answer.retrieval.hits[: 2 if facts else 3] if answer.retrieval and answer.retrieval.relevant else []
    if hits:
        lines += ["", "From the documentation:"]
        lines += [f"- {_first_sentences(h.passage.text)} [{h.n}]" for h in hits]
    return "\n".join(lines).lstrip("\n")


def unsaid_notes(answer: Answer) -> list[str]:
    """The notes the answer's text does not already say (a no-model answer gives the last one as its reason)."""
    return [n for n in answer.notes if n.rstrip(".") not in answer.text]


def announced_no_model(history: list[dict] | None) -> bool:
    """Whether an earlier answer of this conversation already said that no model was used."""
    return any(t.get("role") == "assistant" and NO_MODEL in str(t.get("content", "")) for t in history or [])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def cut_repetition(text: str) -> tuple[str, bool]:
    """(text up to where it starts looping, whether it was cut). A small greedy model loops, by sentence ("The
    timing is optimized. The timing is optimized.") or by phrase ("of the corner of the corner of the corner");
    the loop is not part of the answer."""
    parts = _SENTENCE_END.split(text)
    seen: set[str] = set()
    kept: list[str] = []
    for i, part in enumerate(parts):
        key = re.sub(r"\W+", " ", part).strip().lower()
        complete = i < len(parts) - 1 or part.rstrip().endswith((".", "!", "?"))
        if complete and len(key) >= 12 and key in seen:
            return " ".join(kept).strip(), True
        if complete:
            seen.add(key)
        kept.append(part)
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    words = [text[a:b].lower().strip(".,;:") for a, b in spans]
    for n in range(1, 9):  # a block of n words repeated back to back at the end, 9 words or more in all
        reps = max(3, -(-9 // n))
        if len(words) < n * reps:
            continue
        block = words[-n:]
        if all(words[-(k + 1) * n: len(words) - k * n] == block for k in range(reps)):
            start = len(words) - reps * n
            while start >= n and words[start - n:start] == block:
                start -= n
            return text[: spans[start + n - 1][1]].rstrip(" ,;:"), True  # keep the block once
    return text, False


def _whole_sentences(text: str) -> str:
    """A text cut off by the token limit, back to its last complete sentence (when it has one)."""
    stripped = text.rstrip()
    if not stripped or stripped.endswith((".", "!", "?", ")", "]", "`", "*")):
        return stripped
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", stripped)]
    return stripped[: ends[-1]] if ends and ends[-1] > len(stripped) // 3 else stripped


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
    def messages(self, answer: Answer, history: list[dict] | None, compact: bool = False) -> list[dict]:
        """System + (recent turns) + user. ``compact`` (small local models): fewer, shorter passages and turns.
        Sets ``answer.shown`` to the passage numbers the prompt carries."""
        persona = PERSONAS.get(answer.specialist, PERSONAS["general"])
        if compact:  # one instruction
            system = (f"You are {persona} of CDA Cockpit. Answer the question in one or two sentences from the "
                      "facts given with it, quoting their numbers; cite a passage you use as [n] and never cite a "
                      "number that is not listed.")
        else:
            system = (
                f"You are {persona} of CDA Cockpit, an RTL-to-GDSII flow on the osu018 0.18 um library. Answer the "
                "question in two or three sentences from the run facts, engine results and numbered passages given "
                "with it: quote their numbers as written (with the run id), cite a passage you use as [n] and never "
                "cite a number that is not listed; if they do not contain the answer, say you do not know."
            )
        context = []
        facts = answer.run.data if answer.run is not None and answer.run.ok else None
        if facts and compact:  # a small model copies well from a few sentences about the question only
            context.append("Run facts: " + model_facts(facts, answer.specialist, answer.question))
        elif facts and answer.run is not None:  # facts come from the run
            context.append(f"Run facts:\n{answer.run.text}")
        if answer.prediction is not None and answer.prediction.ok:
            context.append(answer.prediction.text)
        if answer.tool and not (compact and facts and answer.tool.name == "timing_paths" and facts.get("worst_path")):
            context.append(f"Engine result ({answer.tool.name}):\n{answer.tool.text}")
        # passages that do not match the question are not evidence (the run's facts or the engine's result are)
        hits = answer.retrieval.hits if answer.retrieval and answer.retrieval.relevant else []
        if compact:
            hits = [] if facts and answer.about_run else hits[:3]
        limit = 500 if compact else 1500
        answer.shown = [h.n for h in hits]
        if hits:
            context.append("Documentation passages:\n" + "\n\n".join(
                f"[{h.n}] ({h.passage.source}, {h.passage.label})\n{_clip(h.passage.text, limit)}" for h in hits))
        msgs = [{"role": "system", "content": system}]
        for turn in (history or [])[-(2 if compact else 6):]:
            if turn.get("role") in ("user", "assistant") and isinstance(turn.get("content"), str):
                msgs.append({"role": turn["role"], "content": turn["content"][: 800 if compact else 4000]})
        msgs.append({"role": "user", "content": "\n\n".join(context + [f"Question: {answer.question}"])})
        return msgs

    def _backends(self, answer: Answer) -> Iterator[tuple[str, Any, str]]:
        """(backend name, backend, model) in the order to try (see engine.specialists.resolve); notes say why one
        was skipped."""
        cfg = self.config
        if cfg.gguf_model:
            choice = resolve_gguf(cfg.gguf_model)
            missing = llama_cpp_missing()
            if choice.path is None:
                answer.notes.append(choice.note[0].upper() + choice.note[1:] + ".")
            elif missing:
                answer.notes.append(missing[0].upper() + missing[1:] + ".")
            else:
                try:
                    backend = llamacpp_backend(choice.path, cfg.max_new_tokens, cfg.n_threads)
                    answer.model_kind = choice.kind
                    name = "cda-specialist" if choice.kind in ("specialist", "exported") else choice.path.stem
                    yield "llamacpp", backend, name
                except LLMError as exc:
                    answer.notes.append(str(exc))
                answer.model_kind = None
        if cfg.use_ollama:
            try:
                ollama = OllamaBackend(cfg)
                choice_o = ollama.choose(answer.specialist)
                answer.wanted_model, answer.fallback_used = choice_o.wanted, choice_o.fallback
                if choice_o.fallback:
                    answer.notes.append(f"model {choice_o.wanted} is not in `ollama list`; fell back to "
                                        f"{choice_o.model}")
                yield "ollama", ollama, choice_o.model
            except LLMError as exc:
                answer.notes.append(str(exc))
            except ImportError as exc:
                answer.notes.append(f"the ollama client is not installed ({exc})")
        if cfg.hf_model_dir:
            try:
                hf: HFBackend = hf_backend(cfg.hf_model_dir, cfg.max_new_tokens, cfg.torch_threads)
                yield "hf", hf, hf.name
            except LLMError as exc:
                answer.notes.append(str(exc))

    def _run_facts(self, run_id: str, answer: Answer) -> None:
        try:
            answer.run = engine_tools.run_facts(run_id, self.config.runs_dir)
        except EngineError as exc:
            answer.notes.append(f"the selected run cannot be read: {exc.message}")

    def ask_stream(self, question: str, history: list[dict] | None = None,
                   specialist: str | None = None, run_id: str | None = None,
                   wait_runs: bool = False) -> Iterator[dict]:
        """Events: route, run, prediction, tool_start, tool, retrieval, status, token (text pieces), reset, done (the
        Answer).

        ``run_id`` (an id, or 'last' for the newest flow run): ground the answer in that run's facts; engine tools
        that need a run use it when the question names none.
        ``wait_runs`` False: a what-if answers at once with the run it started (``answer.tool.data["pending"]``);
        `follow_what_if` brings the comparison and the prediction's check when the run ends. True: wait for it here.
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

        if run_id:
            self._run_facts(run_id, answer)
            if answer.run is not None:
                yield {"type": "run", "result": answer.run}
        if call is not None:
            if answer.run is not None and not call.args.get("run_id"):
                call.args["run_id"] = answer.run.run_ids[0]  # the selected run, not the newest one
            if call.name == "what_if" and self.config.predict_what_if:
                from engine.specialists.predict import predict_what_if

                yield {"type": "status", "text": "asking the tuned specialist which way the numbers go"}
                answer.prediction = predict_what_if(call.args["knob"], call.args["value"], call.args.get("run_id"),
                                                    self.config.runs_dir, n_threads=self.config.n_threads)
                yield {"type": "prediction", "result": answer.prediction}
            yield {"type": "tool_start", "name": call.name, "args": call.args}
            pending: list[str] = []
            answer.tool = engine_tools.call(call, self.config.runs_dir, self.config.allow_tool_runs,
                                            progress=pending.append, run_timeout_s=self.config.tool_run_timeout_s,
                                            wait=wait_runs)
            for msg in pending:
                yield {"type": "status", "text": msg}
            if answer.prediction is not None and answer.prediction.ok:
                from engine.specialists.predict import check_prediction

                verdict = check_prediction(answer.prediction, answer.tool)
                if verdict:
                    answer.prediction.text += "\n\n" + verdict
            yield {"type": "tool", "result": answer.tool}

        answer.retrieval = self.kb.search(q, k=self.config.retrieval_k)
        answer.notes.extend(answer.retrieval.notes)
        yield {"type": "retrieval", "retrieval": answer.retrieval}

        answer.about_run = answer.run is not None and answer.run.ok and bool(_ABOUT_RUN.search(q))
        if not answer.retrieval.relevant and answer.tool is None and not answer.about_run:
            answer.not_in_kb = True
            answer.no_model = True
            answer.text = NOT_IN_KB
            for piece in _pieces(answer.text):
                yield {"type": "token", "text": piece}
            yield {"type": "done", "answer": answer}
            return

        shown = False  # whether tokens of a discarded attempt are on screen (then the reader must clear them)
        for name, backend, model in self._backends(answer):
            messages = self.messages(answer, history, compact=name != "ollama")
            valid = set(answer.shown)
            yield {"type": "status", "text": f"asking {model} ({name})"}
            pieces: list[str] = []
            looped = False
            try:
                stream = backend.stream(model, messages)
                try:
                    for piece in stream:
                        pieces.append(piece)
                        shown = True
                        yield {"type": "token", "text": piece}
                        if cut_repetition("".join(pieces))[1]:
                            looped = True
                            break
                finally:
                    close = getattr(stream, "close", None)
                    if close:
                        close()  # stops the generation (and frees the model's lock) when we stop reading
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
            if looped:
                text = cut_repetition(text)[0]
                answer.notes.append(f"{model} began repeating itself; the answer stops before the repetition")
            text = _whole_sentences(text)
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
        answer.model_kind = None
        cfg = self.config
        if not (cfg.gguf_model or cfg.use_ollama or cfg.hf_model_dir):
            reason = "answering without a model was asked for"
        else:
            reason = answer.notes[-1].rstrip(".") if answer.notes else "no model answered"
        answer.text = compose_without_model(answer, reason, announce=not announced_no_model(history))
        answer.shown = [h.n for h in answer.retrieval.hits] if answer.retrieval.relevant else []
        answer.wanted_model = answer.wanted_model or self.config.models.get(answer.specialist)
        answer.fallback_used = False
        if shown:
            yield {"type": "reset"}
        for piece in _pieces(answer.text):
            yield {"type": "token", "text": piece}
        yield {"type": "done", "answer": answer}

    def ask(self, question: str, history: list[dict] | None = None, specialist: str | None = None,
            on_event=None, run_id: str | None = None, wait_runs: bool = False) -> Answer:
        answer = None
        for event in self.ask_stream(question, history, specialist, run_id=run_id, wait_runs=wait_runs):
            if on_event:
                on_event(event)
            if event["type"] == "done":
                answer = event["answer"]
        assert answer is not None
        return answer


def follow_what_if(meta: dict, runs_dir: str | None = None) -> engine_tools.ToolResult:
    """Where a saved answer's what-if run is now (engine_tools.what_if_result). Once the run has ended, ``meta``
    (Answer.to_dict()) is updated in place: its tool result becomes the comparison (or the failure with its cause),
    its prediction gets the check against the engine's numbers, and its text says the result in place of "started
    run ..."."""
    run_id = pending_what_if(meta)
    if run_id is None:
        raise EngineError("This answer has no what-if run going on.")
    started = engine_tools.ToolResult.from_dict(meta["tool"])
    try:
        result = engine_tools.what_if_result(run_id, runs_dir)
    except EngineError as exc:  # the run folder was deleted meanwhile: that is its ending
        data = {**started.data, "pending": False, "state": "gone"}
        result = engine_tools.ToolResult("what_if", False, f"Run {run_id}: {exc.message}", started.run_ids, data)
    if result.data.get("pending"):
        return result
    pred = meta.get("prediction")
    if pred and pred.get("ok"):
        from engine.specialists.predict import check_prediction

        verdict = check_prediction(engine_tools.ToolResult.from_dict(pred), result)
        if verdict:
            pred["text"] = pred["text"] + "\n\n" + verdict
    text = meta.get("text") or ""
    meta["text"] = text.replace(started.text, result.text) if started.text in text else \
        (text + "\n\n" + result.text).lstrip()
    meta["tool"] = result.to_dict()
    return result


def _clip(text: str, limit: int) -> str:
    flat = text.strip()
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _pieces(text: str) -> Iterator[str]:
    """Word-sized pieces, so a composed answer streams like a model's."""
    for m in re.finditer(r"\S+\s*|\s+", text):
        yield m.group(0)
