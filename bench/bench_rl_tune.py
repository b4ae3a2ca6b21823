"""Searchers side by side at equal budgets, through routing and timing (the optimizer's default), on 4 designs.

`make bench` runs it: counter, gray_prio, uart and crc32 (92-325 cells), budget 16 evaluations, seeds 1-5, TPE and
random search on Ray Tune (ASHA on, one CPU per trial, 2 at once) and PPO in the env loop (2 settings per step).
Every (design, searcher, seed) is checkpointed in bench/results/rl_tune.json, so a killed run resumes; seeds run
in the outer loop, so whatever is there at any time has the same seeds for every searcher on a design.

Reported per design and searcher: the best reward of each seed (PPA score against the design's default run:
0 = as good as the defaults), mean, standard deviation and a t-based 95% interval over the seeds, trials ASHA
stopped, failures, search seconds (Ray's cold start on its own), and the best run's metrics relative to the
default run. Per design, the paired difference TPE - random and TPE - PPO over the same seeds (mean and t 95%
interval): a searcher "wins" on a design only where that interval excludes 0.

A design over 5,000 cells is not in it: one rv32e evaluation through routing costs about 25 minutes on this
machine (bench/results/flow.json), so 16 evaluations x 5 seeds x 3 searchers would take weeks of CPU here.
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
DESIGNS = ("counter", "gray_prio", "uart", "crc32")
BUDGET, SEEDS, UNTIL = 16, (1, 2, 3, 4, 5), "timing"
SEARCHERS = ("tpe", "random", "ppo")
KEYS = ("route__wirelength", "timing__ecp_ns", "power__total", "floorplan__die__area_um2", "design__instance__area",
        "route__net__unrouted")
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


def measure_one(design: str, searcher: str, seed: int, store) -> dict:
    from engine.rl.env import EnvConfig
    from engine.rl.evaluate import EvalConfig
    from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
    from engine.rl.tune import TuneConfig

    cfg = OptimizeConfig(agent=searcher, budget=BUDGET, seed=seed,
                         env=EnvConfig(eval=EvalConfig(until=UNTIL, parallel=2)), tune=TuneConfig(num_cpus=2))
    t0, c0 = time.time(), _cpu()
    run = optimize([design], cfg, store)
    d = read_optimize_run(run)
    base = next(r for r in d["evaluations"] if r.get("baseline"))
    trials = [r for r in d["evaluations"] if not r.get("baseline")]
    best = d["best"]
    summary = run.info().get("summary") or {}
    return {"run": run.id, "status": run.status, "seconds": round(time.time() - t0, 1),
            "cpu_s_this_process": round(_cpu() - c0, 1), "summary": summary,
            "best_reward": best.get("reward"), "best_knobs": best.get("knobs"),
            "best_metrics": {k: (best.get("metrics") or {}).get(k) for k in KEYS},
            "base_metrics": {k: (base.get("metrics") or {}).get(k) for k in KEYS},
            "rewards": [r["reward"] for r in trials], "statuses": [r["status"] for r in trials],
            "trial_seconds": [r.get("seconds") for r in trials]}


def _cpu() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _interval(xs: list[float]) -> tuple[float, float | None]:
    n = len(xs)
    if n < 2:
        return (xs[0] if xs else float("nan")), None
    return statistics.mean(xs), T95.get(n, 1.96) * statistics.stdev(xs) / math.sqrt(n)


def summarise(runs: dict) -> dict:
    out: dict = {}
    for design in DESIGNS:
        per: dict = {}
        for s in SEARCHERS:
            rows = [runs[k] for k in sorted(runs)
                    if k.startswith(f"{design}/{s}/") and runs[k]["best_reward"] is not None]
            if not rows:
                continue
            best = [float(v["best_reward"]) for v in rows]
            mean, half = _interval(best)
            rel = {k: [round(v["best_metrics"][k] / v["base_metrics"][k] - 1, 4) for v in rows
                       if v["best_metrics"].get(k) is not None and v["base_metrics"].get(k)] for k in KEYS}
            per[s] = {"seeds": len(rows), "best_per_seed": [round(b, 4) for b in best], "mean": round(mean, 4),
                      "std": round(statistics.stdev(best), 4) if len(best) > 1 else 0.0,
                      "ci95_half": round(half, 4) if half is not None else None,
                      "stopped": sum(v["statuses"].count("stopped") for v in rows),
                      "failed": sum(v["statuses"].count("failed") for v in rows),
                      "trials": sum(len(v["statuses"]) for v in rows),
                      "search_s": [round(v["summary"].get("seconds", v["seconds"])
                                         - v["summary"].get("ray_start_s", 0.0), 1) for v in rows],
                      "ray_cold_start_s": [v["summary"].get("ray_start_s", 0.0) for v in rows],
                      "best_vs_default": rel}
        paired = {}
        for a, b in (("tpe", "random"), ("tpe", "ppo"), ("random", "ppo")):
            diffs = []
            for seed in SEEDS:
                ra, rb = runs.get(f"{design}/{a}/{seed}"), runs.get(f"{design}/{b}/{seed}")
                if ra and rb and ra["best_reward"] is not None and rb["best_reward"] is not None:
                    diffs.append(float(ra["best_reward"]) - float(rb["best_reward"]))
            if len(diffs) >= 2:
                m, h = _interval(diffs)
                verdict = a if m - h > 0 else b if m + h < 0 else "no clear winner"
                paired[f"{a}-{b}"] = {"seeds": len(diffs), "mean": round(m, 4), "ci95_half": round(h, 4),
                                      "verdict": verdict}
        if per:
            out[design] = {"searchers": per, "paired": paired}
    return out


def readme_table(data: dict) -> str:
    """The README's table and verdicts, from the results file (never typed by hand)."""
    names = {"tpe": "TPE", "random": "random", "ppo": "PPO"}
    lines = ["| design | searcher | seeds | best reward, mean | t 95% CI | failed / ASHA-stopped trials |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for design, d in data["summary"].items():
        for s, v in d["searchers"].items():
            ci = f"+- {v['ci95_half']:.3f}" if v["ci95_half"] is not None else "-"
            lines.append(f"| {design} | {names.get(s, s)} | {v['seeds']} | {v['mean']:+.3f} | {ci} | "
                         f"{v['failed']} / {v['stopped']} of {v['trials']} |")
        for pair, p in d["paired"].items():
            a, b = pair.split("-")
            verdicts.append(f"{design} {names[a]} - {names[b]}: {p['mean']:+.3f} +- {p['ci95_half']:.3f} "
                            f"({p['seeds']} seeds; {names.get(p['verdict'], p['verdict'])})")
    return "\n".join(lines) + "\n\nPaired over the same seeds: " + "; ".join(verdicts) + "."


def main() -> None:
    if "--readme" in sys.argv:
        print(readme_table(json.loads(OUT.read_text())))
        return
    import torch

    torch.set_num_threads(1)
    from engine.runs import RunStore

    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    runs = data.get("runs", {}) if data.get("designs") == list(DESIGNS) and data.get("budget") == BUDGET else {}
    store = RunStore(ROOT / ".cache" / "bench-rl-tune-runs")
    for seed in SEEDS:
        for design in DESIGNS:
            for s in SEARCHERS:
                key = f"{design}/{s}/{seed}"
                if key not in runs:
                    print(f"== {key}", flush=True)
                    runs[key] = measure_one(design, s, seed, store)
                    _write(runs)
    _write(runs)
    print(json.dumps(summarise(runs), indent=1))


def _write(runs: dict) -> None:
    from engine.runs import write_json

    write_json(OUT, {"designs": list(DESIGNS), "budget": BUDGET, "seeds": list(SEEDS), "until": UNTIL,
                     "searchers": list(SEARCHERS), "cpus": os.cpu_count(),
                     "note": "reward: PPA score against the design's default run (0 = the defaults); TPE and random "
                             "on Ray Tune with ASHA, one CPU per trial, 2 trials at once; PPO in the env loop, 2 "
                             "settings per step; seconds are wall time on a 2-core machine also used for light "
                             "editing while it ran",
                     "runs": runs, "summary": summarise(runs)})


if __name__ == "__main__":
    main()
