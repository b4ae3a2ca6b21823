"""Specialists figures: router held-out accuracy, retrieval hit@5 / MRR (hybrid vs BM25 only), refusals of
off-topic questions, and latencies (route, search, a no-model answer). Writes bench/results/specialists.json
and specialists.png. Run: .venv/bin/python bench/bench_specialists.py"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.specialists import rag, router  # noqa: E402
from engine.specialists.chat import Chat  # noqa: E402
from engine.specialists.config import SpecialistConfig  # noqa: E402

OUT = ROOT / "bench" / "results"


def timed(fn, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times), "n": n}


def main() -> int:
    t0 = time.perf_counter()
    r = router.evaluate()
    t_router_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    kb = rag.knowledge_base()
    t_kb = time.perf_counter() - t0
    hybrid = rag.evaluate(kb)
    bm25 = rag.evaluate(rag.KnowledgeBase(SpecialistConfig(use_dense=False)))
    queries = [row["query"] for row in rag.load_retrieval_set()]
    rt = router.default_router()
    chat = Chat(SpecialistConfig(use_ollama=False, gguf_model=None, allow_tool_runs=False,
                                 runs_dir=str(OUT / "spec-runs.tmp")), kb=kb)
    it = iter(queries * 10)
    result = {
        "router": {k: r[k] for k in ("n_train", "n_test", "accuracy", "per_phase", "misses")},
        "retrieval_hybrid": {k: v for k, v in hybrid.items()},
        "retrieval_bm25_only": {k: v for k, v in bm25.items() if k != "misses"},
        "latency": {
            "router_train_s": t_router_fit,
            "knowledge_base_load_s": t_kb,
            "route": timed(lambda: rt.route(next(it)), 200),
            "search_hybrid": timed(lambda: kb.search(next(it)), 50),
            "answer_without_model": timed(lambda: chat.ask(next(it)), 20),
        },
        "cpu_count": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "specialists.json").write_text(json.dumps(result, indent=2, default=str))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        phases = list(r["per_phase"])
        ax[0].bar(phases, [r["per_phase"][p] or 0 for p in phases], color="#4C72B0")
        ax[0].axhline(0.9, color="red", lw=1, ls="--")
        ax[0].set_title(f"router held-out accuracy {r['accuracy']:.3f} (n={r['n_test']})")
        ax[0].tick_params(axis="x", rotation=45)
        ax[0].set_ylim(0, 1.05)
        names = ["hit@5", "mrr", "off_topic_refused"]
        x = range(len(names))
        ax[1].bar([i - 0.2 for i in x], [hybrid[n] for n in names], 0.4, label="hybrid (BM25+MiniLM, RRF, MMR)")
        ax[1].bar([i + 0.2 for i in x], [bm25[n] for n in names], 0.4, label="BM25 only")
        ax[1].set_xticks(list(x), names)
        ax[1].set_ylim(0, 1.05)
        ax[1].legend(fontsize=8, loc="lower left")
        ax[1].set_title(f"retrieval on {hybrid['n_queries']} + {hybrid['n_off_topic']} off-topic queries")
        fig.tight_layout()
        fig.savefig(OUT / "specialists.png", dpi=110)
    except ImportError:
        pass
    print(json.dumps({"router_accuracy": r["accuracy"], "hit@5": hybrid["hit@5"], "mrr": hybrid["mrr"],
                      "bm25_hit@5": bm25["hit@5"], "latency": result["latency"]}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
