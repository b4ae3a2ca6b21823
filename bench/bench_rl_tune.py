"""TPE vs random search on Ray Tune at equal budgets, through routing and timing (the optimizer's default).

`make bench` runs it: counter, budget 12, seeds 1-3, ASHA on (the default), one CPU per trial. Each (searcher,
seed) is checkpointed in bench/results/rl_tune.json, so a killed run resumes. Reported per searcher: the best
reward of each seed (PPA score against the design's default run: 0 = as good as the defaults), mean, standard
deviation and a t-based 95% interval over the seeds, trials ASHA stopped, failures, search seconds without Ray's
cold start and the cold start on its own, and the best run's metrics relative to the default run.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

OUT = ROOT / "bench" / "results" / "rl_tune.json"
DESIGN, BUDGET, SEEDS, SEARCHERS, UNTIL = "counter", 12, (1, 2, 3), ("tpe", "random"), "timing"
KEYS = ("route__wirelength", "timing__ecp_ns", "power__total", "floorplan__die__area_um2", "design__instance__area",
        "route__net__unrouted")
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 10: 2.262}


def measure_one(searcher: str, seed: int, store) -> dict:
    from engine.rl.env import EnvConfig
    from engine.rl.evaluate import EvalConfig
    from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
    from engine.rl.tune import TuneConfig

    cfg = OptimizeConfig(agent=searcher, budget=BUDGET, seed=seed, env=EnvConfig(eval=EvalConfig(until=UNTIL)),
                         tune=TuneConfig(num_cpus=1))
    t0 = time.time()
    run = optimize([DESIGN], cfg, store)
    d = read_optimize_run(run)
    trials = [r for r in d["evaluations"] if not r["baseline"]]
    base, best = d["evaluations"][0], d["best"]
    return {"run": run.id, "status": run.status, "seconds": round(time.time() - t0, 1),
            "summary": run.info().get("summary"), "best_reward": best.get("reward"), "best_knobs": best.get("knobs"),
            "best_metrics": {k: best.get("metrics", {}).get(k) for k in KEYS},
            "base_metrics": {k: base["metrics"].get(k) for k in KEYS},
            "rewards": [r["reward"] for r in trials], "statuses": [r["status"] for r in trials],
            "trial_seconds": [r["seconds"] for r in trials]}


def summarise(runs: dict) -> dict:
    out = {}
    for s in SEARCHERS:
        rows = [v for k, v in sorted(runs.items()) if k.startswith(s + "/")]
        if not rows:
            continue
        best = [float(v["best_reward"]) for v in rows]
        n = len(best)
        sd = statistics.stdev(best) if n > 1 else 0.0
        half = T95.get(n, 1.96) * sd / math.sqrt(n) if n > 1 else None
        rel = {k: [round(v["best_metrics"][k] / v["base_metrics"][k] - 1, 4) for v in rows
                   if v["best_metrics"].get(k) is not None and v["base_metrics"].get(k)] for k in KEYS}
        out[s] = {"seeds": n, "best_per_seed": [round(b, 4) for b in best], "mean": round(statistics.mean(best), 4),
                  "std": round(sd, 4), "ci95_half": round(half, 4) if half is not None else None,
                  "stopped": [v["statuses"].count("stopped") for v in rows],
                  "failed": [v["statuses"].count("failed") for v in rows],
                  "search_s_without_cold_start": [round(v["summary"]["seconds"] - v["summary"]["ray_start_s"], 1)
                                                  for v in rows],
                  "ray_cold_start_s": [v["summary"]["ray_start_s"] for v in rows],
                  "best_vs_default": rel}
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from engine.runs import RunStore

    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    runs = data.get("runs", {})
    store = RunStore(ROOT / ".cache" / "bench-rl-tune-runs")
    for seed in SEEDS:
        for s in SEARCHERS:
            key = f"{s}/{seed}"
            if key not in runs:
                runs[key] = measure_one(s, seed, store)
                _write(runs)
    _write(runs)
    print(json.dumps(summarise(runs), indent=1))


def _write(runs: dict) -> None:
    from engine.runs import write_json

    write_json(OUT, {"design": DESIGN, "budget": BUDGET, "seeds": list(SEEDS), "until": UNTIL,
                     "note": "reward: PPA score against the design's default run (0 = the defaults); ASHA on; "
                             "one CPU per trial; machine shared with other jobs (CPU-bound timings are noisy)",
                     "runs": runs, "summary": summarise(runs)})


if __name__ == "__main__":
    main()
