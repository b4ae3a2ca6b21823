"""`cda ask "question"` and `cda specialists eval|models|index`."""
from __future__ import annotations

import json
import sys

from engine.specialists.config import SPECIALISTS, SpecialistConfig


def register(subparsers) -> None:
    ask = subparsers.add_parser("ask", help="ask the specialists a question (routes, retrieves, cites, may run "
                                            "the engine)")
    ask.add_argument("question", nargs="+", help="the question (quote it)")
    ask.add_argument("--specialist", choices=SPECIALISTS, help="skip the router and ask this specialist")
    ask.add_argument("--run", metavar="ID|last", help="ground the answer in this run's facts ('last' = the newest "
                                                      "flow run)")
    _model_options(ask)
    ask.add_argument("--no-llm", action="store_true", help="use no model: answer from the run's facts, retrieval "
                                                           "and the engine (same as --backend none)")
    ask.add_argument("--no-runs", action="store_true", help="never start a flow run to answer")
    ask.add_argument("--bm25-only", action="store_true", help="keyword retrieval only (no embedding model)")
    ask.add_argument("-k", type=int, help="passages to retrieve (default 5)")
    ask.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    ask.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when the answer starts a what-if run, follow it up to this many seconds and print the "
                          "engine's comparison and the check of the specialist's prediction (default 0: print the "
                          "started run and return; `cda jobs wait ID` follows it later)")
    ask.set_defaults(func=_ask)

    sp = subparsers.add_parser("specialists", help="the specialists' figures, models and index")
    sub = sp.add_subparsers(dest="specialists_command", metavar="ACTION")
    ev = sub.add_parser("eval", help="router held-out accuracy, retrieval hit@5 and MRR on the labelled sets")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_eval)
    md = sub.add_parser("models", help="which backends can answer, in the order the chat tries them, and which "
                                       "model each specialist would use")
    _model_options(md)
    md.set_defaults(func=_models)
    ix = sub.add_parser("index", help="embed the knowledge base (cached); --ship writes the embeddings into assets")
    ix.add_argument("--ship", action="store_true")
    ix.set_defaults(func=_index)
    sp.set_defaults(func=lambda args: (sp.print_help(), 2)[1])


BACKENDS = ("auto", "llamacpp", "ollama", "hf", "none")
_DEFAULTS = SpecialistConfig()


def _model_options(p) -> None:
    """The model flags `cda ask` and `cda specialists models` share (defaults: SpecialistConfig)."""
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: llama.cpp (the SmolLM2 base; --gguf specialist for the tuned LoRA), then Ollama, "
                        "then --model-dir; or only the one named; none: no model")
    p.add_argument("--gguf", metavar="PATH|auto|specialist",
                   help=f"GGUF file for llama.cpp: auto = the SmolLM2 base, specialist = the tuned LoRA (default "
                        f"{_DEFAULTS.gguf_model})")
    p.add_argument("--threads", type=int, help=f"llama.cpp CPU threads (default {_DEFAULTS.n_threads})")
    p.add_argument("--max-tokens", type=int, help=f"answer length limit in tokens (default {_DEFAULTS.max_new_tokens})")
    p.add_argument("--host", help=f"Ollama server URL (default {_DEFAULTS.host})")
    p.add_argument("--timeout", type=float,
                   help=f"seconds to wait for the Ollama server (default {_DEFAULTS.timeout_s:g})")
    p.add_argument("--model-dir", help="a local Hugging Face model folder, tried after llama.cpp and Ollama")


def _config(args) -> SpecialistConfig:
    from engine.errors import EngineError

    cfg = SpecialistConfig()
    if getattr(args, "host", None):
        cfg.host = args.host
    if getattr(args, "timeout", None):
        cfg.timeout_s = args.timeout
    if getattr(args, "model_dir", None):
        cfg.hf_model_dir = args.model_dir
    if getattr(args, "gguf", None):
        cfg.gguf_model = args.gguf
    if getattr(args, "threads", None):
        if args.threads < 1:
            raise EngineError(f"--threads {args.threads} is not a thread count; give 1 or more.")
        cfg.n_threads = args.threads
    if getattr(args, "max_tokens", None):
        if not 1 <= args.max_tokens <= 4096:
            raise EngineError(f"--max-tokens {args.max_tokens} is outside 1-4096.")
        cfg.max_new_tokens = args.max_tokens
    backend = "none" if getattr(args, "no_llm", False) else getattr(args, "backend", "auto") or "auto"
    if backend == "hf" and not cfg.hf_model_dir:
        raise EngineError("--backend hf needs --model-dir (a local Hugging Face model folder).")
    if backend not in ("auto", "llamacpp"):
        cfg.gguf_model = None
    if backend not in ("auto", "ollama"):
        cfg.use_ollama = False
    if backend not in ("auto", "hf"):
        cfg.hf_model_dir = None
    if getattr(args, "no_runs", False):
        cfg.allow_tool_runs = False
    if getattr(args, "bm25_only", False):
        cfg.use_dense = False
    if getattr(args, "k", None):
        cfg.retrieval_k = max(1, min(20, args.k))
    if getattr(args, "runs_dir", None):
        cfg.runs_dir = args.runs_dir
    return cfg


def _ask(args) -> int:
    from engine.specialists.chat import Chat, unsaid_notes

    chat = Chat(_config(args))
    question = " ".join(args.question)
    out = sys.stdout
    answer = None
    streaming = not args.json
    for event in chat.ask_stream(question, specialist=args.specialist, run_id=args.run):
        kind = event["type"]
        if kind == "done":
            answer = event["answer"]
        elif not streaming:
            continue
        elif kind == "route":
            out.write(f"specialist: {event['specialist']} ({event['reason']})\n")
        elif kind == "run":
            out.write(f"run: {event['result'].run_ids[0]}\n")
        elif kind == "tool_start":
            out.write(f"engine tool: {event['name']} {json.dumps(event['args'])}\n")
        elif kind == "status":
            out.write(f"... {event['text']}\n")
        elif kind == "reset":
            out.write("\n[discarded]\n")
        elif kind == "token":
            out.write(event["text"])
            out.flush()
    assert answer is not None
    meta = answer.to_dict()
    if args.wait > 0:
        _follow(meta, args, out, streaming)
    if args.json:
        out.write(json.dumps(meta, indent=2, default=str) + "\n")
        return 0
    out.write("\n")
    if meta.get("text") != answer.text:  # the what-if run ended while we waited: its comparison and the check
        out.write("\n" + meta["text"] + "\n")
        pred = meta.get("prediction") or {}
        if pred.get("text"):
            out.write("\n" + pred["text"] + "\n")
    notes = unsaid_notes(answer)
    if notes:
        out.write("\nnotes:\n" + "".join(f"  - {n}\n" for n in notes))
    if answer.model:
        kind = {"specialist": ", tuned specialist", "exported": ", exported specialist",
                "base": ", base model"}.get(answer.model_kind or "", "")
        out.write(f"\nmodel: {answer.model} ({answer.backend}{kind}{', fallback' if answer.fallback_used else ''})\n")
    else:
        out.write("\nmodel: none\n")
    if answer.tool and answer.tool.run_ids:
        out.write(f"runs: {', '.join(answer.tool.run_ids)}\n")
    if answer.retrieval and answer.retrieval.hits:
        out.write("sources:\n")
        for h in answer.retrieval.hits:
            out.write(f"  [{h.n}] {h.passage.source} - {h.passage.label}\n")
    return 0


def _follow(meta: dict, args, out, streaming: bool) -> None:
    """Poll the answer's what-if run (chat.follow_what_if) until it ends or ``args.wait`` seconds pass; a progress
    line whenever it changes."""
    import time

    from engine.errors import EngineError
    from engine.specialists.chat import follow_what_if
    from engine.specialists.conversation import pending_what_if

    if pending_what_if(meta) is None:
        return
    deadline, last = time.monotonic() + args.wait, ""
    while True:
        try:
            result = follow_what_if(meta, getattr(args, "runs_dir", None))
        except EngineError as exc:
            out.write(f"... {exc.message}\n")
            return
        if not result.data.get("pending"):
            return
        line = result.text
        if streaming and line != last:
            out.write(f"... {line}\n")
            out.flush()
            last = line
        if time.monotonic() >= deadline:
            if streaming:
                out.write(f"... still running after {args.wait:g} s: `cda jobs wait {pending_what_if(meta)}`\n")
            return
        time.sleep(1.0)


def _eval(args) -> int:
    from engine.specialists import rag, router

    r = router.evaluate()
    k = rag.evaluate()
    result = {"router": {key: r[key] for key in ("n_train", "n_test", "accuracy", "per_phase")},
              "retrieval": {key: k[key] for key in k if key != "misses"}}
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    sys.stdout.write(f"router: held-out accuracy {r['accuracy']:.3f} on {r['n_test']} questions "
                     f"(trained on {r['n_train']})\n")
    for phase, acc in r["per_phase"].items():
        sys.stdout.write(f"  {phase:<13} {acc:.2f}\n" if acc is not None else f"  {phase:<13} -\n")
    sys.stdout.write(f"retrieval ({k['mode']}, {k['passages']} passages): hit@5 {k['hit@5']:.3f}, "
                     f"MRR {k['mrr']:.3f} on {k['n_queries']} queries; off-topic refused "
                     f"{k['off_topic_refused']:.0%} of {k['n_off_topic']}\n")
    return 0


def _models(args) -> int:
    from engine.specialists.llm import LLMError, OllamaBackend
    from engine.specialists.resolve import models_status

    cfg = _config(args)
    rows = models_status(cfg)
    if not rows:
        sys.stdout.write("no backend is configured: the chat answers without a model\n")
    for i, row in enumerate(rows, 1):
        sys.stdout.write(f"{i}. {row.backend}: {row.message}\n")
        for m in row.models:
            sys.stdout.write(f"  - {m}\n")
        if row.backend == "ollama" and row.usable:
            backend = OllamaBackend(cfg)
            for name in SPECIALISTS:
                try:
                    c = backend.choose(name, row.models)
                    sys.stdout.write(f"  {name:<13} -> {c.model}{' (fallback)' if c.fallback else ''}\n")
                except LLMError as exc:
                    sys.stdout.write(f"  {name:<13} -> none ({exc})\n")
    usable = next((r for r in rows if r.usable), None)
    sys.stdout.write(f"the chat answers with: {usable.backend} ({usable.location})\n" if usable
                     else "the chat answers without a model (from the run's facts, the engine and the docs)\n")
    return 0


def _index(args) -> int:
    from engine.specialists.rag import KnowledgeBase

    kb = KnowledgeBase(SpecialistConfig())
    sys.stdout.write(f"{len(kb.passages)} passages, corpus {kb.corpus_hash}, "
                     f"{'embedded' if kb.emb is not None else 'BM25 only: ' + str(kb.dense_error)}\n")
    if args.ship:
        sys.stdout.write(f"wrote {kb.ship_embeddings()}\n")
    return 0
