"""An optimisation run: a searcher (TPE, random, PPO) turning the knobs of one or more designs, recorded as a run.

TPE and random search on one design run on Ray Tune's trial scheduler (engine.rl.tune: trials, timeouts, ASHA
on the flow's stages, resume from the experiment in ``<run>/tune``); PPO, and several designs at once, run the
gymnasium env loop here (evaluations in parallel through engine.parallel).

The run (kind "optimize") holds, next to its run.json::

    evaluations.jsonl  one line per evaluation: index, agent, design, knobs, metrics, reward, flow run id, times
                       (index 0 per design is the baseline with default knobs, reward 0 by definition; a trial
                       ASHA stopped early has status "stopped", its partial reward, and never counts as best)
    curve.json         the learning curve: reward and best-so-far per evaluation
    best.json          the best evaluation (knobs, reward, run id whose layout the page shows), per design too
    policy.pt          PPO's policy (also when cancelled: what it learned so far)

Every evaluation is also a flow run of its own in the same store, so its layout opens like any other run.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.rl.env import EnvConfig, FlowEnv, FlowVecEnv, design_config
from engine.rl.evaluate import EvalConfig, Evaluator
from engine.rl.ppo import Args as PPOArgs
from engine.rl.reward import RewardConfig
from engine.rl.tune import DEFAULT_SEARCHER, SEARCHERS, TuneConfig
from engine.runs import Run, RunStore, read_json, write_json

log = logging.getLogger(__name__)

AGENTS = ("ppo", "random", "tpe")


@dataclass
class OptimizeConfig:
    agent: str = DEFAULT_SEARCHER  # the searcher: "tpe" (Optuna's TPE on Ray Tune), "random" (on Ray Tune too) or "ppo"
    budget: int = 24  # flow evaluations the agent may spend (each design's baseline run is extra)
    seed: int = 1  # seeds the agent (and the placer's seed stays the flow's own)
    env: EnvConfig = field(default_factory=EnvConfig)  # knobs, episode length, reward, evaluation (until, Ray)
    ppo: PPOArgs = field(default_factory=PPOArgs)  # PPO's hyper-parameters (budget and seed are taken from here)
    policy: str | None = None  # a saved policy.pt to start PPO from (transfer to a new design)
    tune: TuneConfig = field(default_factory=TuneConfig)  # how TPE/random run on Ray Tune (timeouts, ASHA, Ray)

    def __post_init__(self) -> None:
        if self.agent not in AGENTS:
            raise EngineError(f"unknown agent '{self.agent}': use one of {', '.join(AGENTS)}")
        if int(self.budget) < 1:
            raise EngineError(f"--budget must be at least 1 evaluation (got {self.budget})")
        if self.policy and self.agent != "ppo":
            raise EngineError(f"a saved policy starts PPO, not {self.agent}: use --searcher ppo with --policy")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OptimizeConfig:
        env = dict(d.get("env", {}))
        ev = EvalConfig(**env.pop("eval", {}))
        rw = RewardConfig(**env.pop("reward", {}))
        default = cls.__dataclass_fields__
        return cls(agent=d.get("agent", default["agent"].default), budget=int(d.get("budget", 24)),
                   seed=int(d.get("seed", 1)), env=EnvConfig(eval=ev, reward=rw, **env),
                   ppo=PPOArgs(**d.get("ppo", {})), policy=d.get("policy"), tune=TuneConfig(**d.get("tune", {})))


class Recorder:
    """Writes each evaluation as it lands; keeps the learning curve and the best point up to date on disk."""

    def __init__(self, run_dir: Path, agent: str):
        self.dir = Path(run_dir)
        self.agent = agent
        self.lock = threading.Lock()
        self.index = 0
        self.curve: list[dict] = []
        self.best: dict[str, Any] | None = None
        self.best_by_design: dict[str, dict] = {}
        self.baselines: dict[str, dict] = {}
        self.failures = 0

    def rows(self) -> list[dict]:
        """The evaluations recorded so far (as written to evaluations.jsonl)."""
        return read_evaluations(self.dir)

    def load(self) -> Recorder:
        """Take up what an earlier call recorded in this run folder (resume): index, curve, best, baselines."""
        for row in self.rows():
            self({k: v for k, v in row.items() if k not in ("index", "agent")}, write=False)
        return self

    def __call__(self, rec: dict, write: bool = True) -> None:
        with self.lock:
            row = {"index": 0 if rec.get("baseline") else self.index + 1, "agent": self.agent, **rec}
            if not rec.get("baseline"):
                self.index += 1
            if write:
                with open(self.dir / "evaluations.jsonl", "a") as f:
                    f.write(json.dumps(row, default=str) + "\n")
            if rec.get("baseline"):
                self.baselines[rec["design"]] = row
                self.best_by_design.setdefault(rec["design"], row)
            else:
                if rec["status"] == "failed":
                    self.failures += 1
                prev = self.best_by_design.get(rec["design"])
                if rec["status"] == "done" and (prev is None or rec["reward"] > prev["reward"]):
                    self.best_by_design[rec["design"]] = row
                best_so_far = self.curve[-1]["best"] if self.curve else None
                if rec["status"] != "stopped":  # a partial reward of a trial stopped early is not a result
                    best_so_far = rec["reward"] if best_so_far is None else max(best_so_far, rec["reward"])
                self.curve.append({"evaluation": row["index"], "design": rec["design"], "reward": rec["reward"],
                                   "best": best_so_far, "status": rec["status"], "seconds": rec.get("seconds"),
                                   "run_id": rec.get("run_id"), "stage": rec.get("stage")})
            candidates = [r for r in self.best_by_design.values() if r["status"] == "done"]
            self.best = max(candidates, key=lambda r: r["reward"]) if candidates else None
            write_json(self.dir / "curve.json", {"agent": self.agent, "points": self.curve})
            write_json(self.dir / "best.json", {**(self.best or {}), "per_design": self.best_by_design,
                                                 "baselines": self.baselines})


def optimize(designs: list[str], cfg: OptimizeConfig, store: RunStore | None = None, run: Run | None = None,
             progress: Callable[[float, str], None] | None = None, *, resume: bool = False) -> Run:
    """Run one optimisation into ``run`` (created when None). Cancel through the run's CANCEL file.

    ``resume``: ``run`` holds an earlier, unfinished call of this optimisation: what it recorded is kept and only
    the rest of the budget runs (Ray Tune restores its experiment; the serial loop replays the recorded trials)."""
    store = store or RunStore()
    if not designs:
        raise EngineError("give at least one design to optimise")
    named = [design_config(d) for d in designs]  # resolves names early: a typo fails before any work
    if run is None:
        if resume:
            raise EngineError("resume needs the optimisation run to continue")
        run = store.create(optimize_run_config(designs, cfg), design="+".join(n for n, _ in named), kind="optimize")
    if resume:
        (run.dir / "CANCEL").unlink(missing_ok=True)  # the cancel that stopped the earlier call is spent
    run.set_status("running")
    rec = Recorder(run.dir, cfg.agent)
    if resume:
        rec.load()
    cancel_file = run.dir / "CANCEL"
    cancelled = run.cancel_requested

    if cfg.agent in SEARCHERS and len(named) == 1:
        return _tune_optimize(designs[0], cfg, store, run, rec, progress, resume)
    if resume and rec.index:
        raise EngineError(f"run {run.id}: only TPE and random search on one design can resume",
                          hint="start a new optimisation")

    def on_eval(r: dict) -> None:
        rec(r)
        if not r.get("baseline"):
            msg = f"evaluation {rec.index}/{cfg.budget}: reward {r['reward']:+.3f} ({r['status']})"
            run.event("progress", fraction=min(1.0, rec.index / cfg.budget), message=msg)
            if progress:
                progress(min(1.0, rec.index / cfg.budget), msg)

    t0 = time.time()
    n_envs = max(1, cfg.env.eval.parallel) if cfg.agent != "ppo" else max(1, cfg.ppo.num_envs,
                                                                           cfg.env.eval.parallel)
    evaluator = Evaluator(named[0][1], store, cfg.env.eval, cancel_file=cancel_file, label=f"optimize {run.id}")
    contexts: dict = {}
    envs = [FlowEnv([c for _, c in named], cfg.env, store, evaluator=evaluator, contexts=contexts, on_eval=on_eval)
            for _ in range(n_envs)]
    vec = FlowVecEnv(envs)
    try:
        for i in range(len(named)):  # baselines first, so the page has its reference line at once
            envs[0].context(i)
        if cfg.agent == "ppo":
            from engine.rl import ppo

            args = PPOArgs(**{**asdict(cfg.ppo), "budget": cfg.budget, "seed": cfg.seed, "num_envs": n_envs})
            agent = None
            if cfg.policy:
                agent = ppo.load_policy(cfg.policy, [k.name for k in envs[0].knobs], envs[0].obs_dim)
                args.greedy_first = True
            agent = ppo.train(vec, args, agent, cancelled=cancelled,
                              on_update=lambda s: run.event("ppo_update", **s))
            ppo.save_policy(agent, run.dir / "policy.pt", [k.name for k in envs[0].knobs], args,
                            extra={"designs": [n for n, _ in named], "evaluations": rec.index})
        elif cfg.agent == "random":
            from engine.rl.search import random_search

            random_search(vec, cfg.budget, cfg.seed, cancelled)
        else:
            from engine.rl.search import tpe_search

            tpe_search(vec, cfg.budget, cfg.seed, cancelled)
    except EngineError as err:
        if cancelled():  # a baseline interrupted by the cancel: not a failure
            run.set_status("cancelled")
            return run
        run.event("error", message=err.message, hint=err.hint, code=err.code)
        run.set_status("failed", error=err.message, hint=err.hint, code=err.code, knob=err.knob)
        return run
    summary = {"evaluations": rec.index, "failures": rec.failures, "seconds": round(time.time() - t0, 2),
               "best_reward": rec.best["reward"] if rec.best else None,
               "best_run": rec.best["run_id"] if rec.best else None}
    run.update_info(summary=summary)
    run.set_status("cancelled" if cancelled() else "done")
    return run


def _tune_optimize(design: str, cfg: OptimizeConfig, store: RunStore, run: Run, rec: Recorder,
                   progress: Callable[[float, str], None] | None, resume: bool) -> Run:
    """TPE / random search on Ray Tune (or its serial fallback), recorded in ``run``."""
    from engine.rl import tune

    t0 = time.time()
    try:
        how = tune.search(design, cfg, store, run, rec, resume=resume, progress=progress)
    except EngineError as err:
        if run.cancel_requested():
            run.set_status("cancelled")
            return run
        run.event("error", message=err.message, hint=err.hint, code=err.code)
        run.set_status("failed", error=err.message, hint=err.hint, code=err.code, knob=err.knob)
        return run
    stopped = sum(1 for p in rec.curve if p["status"] == "stopped")
    summary = {"evaluations": rec.index, "failures": rec.failures, "stopped_early": stopped,
               "seconds": round(time.time() - t0, 2), "best_reward": rec.best["reward"] if rec.best else None,
               "best_run": rec.best["run_id"] if rec.best else None, **how}
    run.update_info(summary=summary)
    run.set_status("cancelled" if run.cancel_requested() else "done")
    return run


def read_evaluations(run_dir: Path) -> list[dict]:
    """The rows of evaluations.jsonl (safe while it is being written: a partial last line is left out)."""
    rows = []
    path = Path(run_dir) / "evaluations.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line being written now
    return rows


def optimize_run_config(designs: list[str], cfg: OptimizeConfig) -> dict:
    """What run.json keeps: enough to start the same optimisation again (also from a job worker)."""
    return {"designs": list(designs), "optimize": cfg.to_dict()}


def optimize_target(run: Run, progress: Callable[[float, str], None], cancelled: Callable[[], bool]) -> None:
    """Job target (engine.jobs): run the optimisation described by the run's config inside that run."""
    conf = run.config
    if "optimize" not in conf:
        raise EngineError(f"run {run.id} is not an optimisation run")
    optimize(conf["designs"], OptimizeConfig.from_dict(conf["optimize"]), run.store, run=run)


def read_optimize_run(run: Run) -> dict:
    """Everything a page or a benchmark needs from an optimisation run (safe while it is being written)."""
    rows = read_evaluations(run.dir)
    return {"evaluations": rows, "curve": (read_json(run.dir / "curve.json", {}) or {}).get("points", []),
            "best": read_json(run.dir / "best.json", {}) or {}, "has_policy": (run.dir / "policy.pt").exists(),
            "agent": ((run.config.get("optimize") or {}).get("agent"))}
