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
    ask.add_argument("--host", help="Ollama server URL (default http://127.0.0.1:11434)")
    ask.add_argument("--timeout", type=float, help="seconds to wait for the Ollama server")
    ask.add_argument("--model-dir", help="a local Hugging Face model folder used when Ollama gives nothing")
    ask.add_argument("--no-llm", action="store_true", help="use no model: answer from retrieval and the engine")
    ask.add_argument("--no-runs", action="store_true", help="never start a flow run to answer")
    ask.add_argument("--bm25-only", action="store_true", help="keyword retrieval only (no embedding model)")
    ask.add_argument("-k", type=int, help="passages to retrieve (default 5)")
    ask.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    ask.set_defaults(func=_ask)

    sp = subparsers.add_parser("specialists", help="the specialists' figures, models and index")
    sub = sp.add_subparsers(dest="specialists_command", metavar="ACTION")
    ev = sub.add_parser("eval", help="router held-out accuracy, retrieval hit@5 and MRR on the labelled sets")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_eval)
    md = sub.add_parser("models", help="which models each backend has, and which one each specialist would use")
    md.add_argument("--host")
    md.add_argument("--model-dir")
    md.set_defaults(func=_models)
    ix = sub.add_parser("index", help="embed the knowledge base (cached); --ship writes the embeddings into assets")
    ix.add_argument("--ship", action="store_true")
    ix.set_defaults(func=_index)
    sp.set_defaults(func=lambda args: (sp.print_help(), 2)[1])


def _config(args) -> SpecialistConfig:
    cfg = SpecialistConfig()
    if getattr(args, "host", None):
        cfg.host = args.host
    if getattr(args, "timeout", None):
        cfg.timeout_s = args.timeout
    if getattr(args, "model_dir", None):
        cfg.hf_model_dir = args.model_dir
    if getattr(args, "no_llm", False):
        cfg.use_ollama = False
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
    from engine.specialists.chat import Chat

    chat = Chat(_config(args))
    question = " ".join(args.question)
    out = sys.stdout
    answer = None
    streaming = not args.json
    for event in chat.ask_stream(question, specialist=args.specialist):
        kind = event["type"]
        if kind == "done":
            answer = event["answer"]
        elif not streaming:
            continue
        elif kind == "route":
            out.write(f"specialist: {event['specialist']} ({event['reason']})\n")
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
    if args.json:
        out.write(json.dumps(answer.to_dict(), indent=2, default=str) + "\n")
        return 0
    out.write("\n")
    if answer.flagged_citations or answer.notes:
        out.write("\nnotes:\n" + "".join(f"  - {n}\n" for n in answer.notes))
    if answer.model:
        out.write(f"\nmodel: {answer.model} ({answer.backend}{', fallback' if answer.fallback_used else ''})\n")
    else:
        out.write("\nmodel: none used\n")
    if answer.tool and answer.tool.run_ids:
        out.write(f"runs: {', '.join(answer.tool.run_ids)}\n")
    if answer.retrieval and answer.retrieval.hits:
        out.write("sources:\n")
        for h in answer.retrieval.hits:
            out.write(f"  [{h.n}] {h.passage.source} - {h.passage.label}\n")
    return 0


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
    from engine.specialists.llm import LLMError, OllamaBackend, models_status

    cfg = _config(args)
    for st in models_status(cfg):
        state = "reachable" if st.reachable else f"unreachable: {st.error}"
        sys.stdout.write(f"{st.backend} at {st.location}: {state}\n")
        for m in st.models:
            sys.stdout.write(f"  - {m}\n")
        if st.backend == "ollama" and st.reachable:
            backend = OllamaBackend(cfg)
            for name in SPECIALISTS:
                try:
                    c = backend.choose(name, st.models)
                    sys.stdout.write(f"  {name:<13} -> {c.model}{' (fallback)' if c.fallback else ''}\n")
                except LLMError as exc:
                    sys.stdout.write(f"  {name:<13} -> none ({exc})\n")
    return 0


def _index(args) -> int:
    from engine.specialists.rag import KnowledgeBase

    kb = KnowledgeBase(SpecialistConfig())
    sys.stdout.write(f"{len(kb.passages)} passages, corpus {kb.corpus_hash}, "
                     f"{'embedded' if kb.emb is not None else 'BM25 only: ' + str(kb.dense_error)}\n")
    if args.ship:
        sys.stdout.write(f"wrote {kb.ship_embeddings()}\n")
    return 0
