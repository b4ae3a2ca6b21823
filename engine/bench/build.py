"""`cda bench build`: compute every problem's truth with the engine and write the versioned problem file.

Writes assets/bench/problems_v<N>.jsonl (one problem a line, committed) and truth_runs_v<N>.json (for each bench
run behind a truth: its settings and key metrics), so a reader can see what the engine measured without the
run store. Measurements already in the run store are reused, so a rebuild after an interruption resumes.
"""
from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.bench.measure import MEASURE_VERSION, Measurer
from engine.bench.problems import PROBLEMS_PATH, PROBLEMS_VERSION, generate_problems, save_problems

log = logging.getLogger(__name__)


@dataclass
class BuildConfig:
    """What `cda bench build` computes."""

    out: str = str(PROBLEMS_PATH)
    """Problem file to write (JSON lines); the truth-runs summary goes next to it."""
    seed: int = 2026
    """Seed of the problem generator (sources, settings, options); the placer's own seed is fixed at 1."""
    counts: dict = field(default_factory=lambda: {"predict": 20, "choose": 16, "diagnose": 12, "act": 12})
    """Problems per kind (problems without a clear answer are drawn again, up to 3x tries)."""


def build(cfg: BuildConfig | None = None, store=None,
          progress: Callable[[float, str], None] | None = None) -> dict:
    cfg = cfg or BuildConfig()
    t0 = time.monotonic()
    measurer = Measurer(store)
    problems = generate_problems(measurer, counts=cfg.counts, seed=cfg.seed, progress=progress)
    out = save_problems(problems, cfg.out)
    runs = {}
    for p in problems:
        for rec in p.truth.get("runs", []):
            runs[rec["run_id"]] = {"source": p.source, "settings": rec["settings"], "metrics": rec["metrics"]}
    summary = {"problems_version": PROBLEMS_VERSION, "measure_version": MEASURE_VERSION, "seed": cfg.seed,
               "placer": measurer.placer,
               "problems": len(problems), "by_kind": {k: sum(p.kind == k for p in problems) for k in cfg.counts},
               "engine_runs": len(runs), "seconds": round(time.monotonic() - t0, 1),
               "machine": platform.machine(), "runs": runs}
    truth_path = out.with_name(out.name.replace("problems_", "truth_runs_").replace(".jsonl", ".json"))
    truth_path.write_text(json.dumps(summary, indent=1, sort_keys=True))
    log.info("wrote %d problems to %s (%d engine runs)", len(problems), out, len(runs))
    return {"path": str(out), "truth_path": str(truth_path), **{k: v for k, v in summary.items() if k != "runs"}}
