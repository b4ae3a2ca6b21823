"""Transfer: train PPO on some designs, apply the saved policy to a new design for a few evaluations, and
compare with searching that design from scratch (PPO from a fresh policy, random search, TPE) at the same budget.

Why it can work: the observation starts with the design's features (size, fan-out) and the reward is
normalised per design, so what the policy learned ("utilisation near X, density near Y helps designs like
these") is expressed in units that mean the same on the new design.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.rl.env import EnvConfig
from engine.rl.evaluate import EvalConfig
from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
from engine.runs import RunStore

log = logging.getLogger(__name__)


@dataclass
class TransferConfig:
    train_designs: list[str] = field(default_factory=lambda: ["counter", "alu"])  # designs the policy learns on
    target: str = "uart"  # the new design
    train_budget: int = 32  # PPO evaluations on the training designs (shared among them)
    budget: int = 8  # evaluations each agent spends on the new design
    seed: int = 1  # seed of every agent
    parallel: int = 1  # evaluations at once (Ray when > 1)
    until: str = "place"  # last flow step of an evaluation
    knobs: list[str] | None = None  # knobs to tune (None = all)
    place_overrides: dict[str, Any] = field(default_factory=dict)  # PlaceConfig fields for every evaluation


def _opt(cfg: TransferConfig, agent: str, budget: int, policy: str | None = None) -> OptimizeConfig:
    ev = EvalConfig(until=cfg.until, parallel=cfg.parallel)
    ev.place_overrides.update(cfg.place_overrides)
    return OptimizeConfig(agent=agent, budget=budget, seed=cfg.seed, policy=policy,
                          env=EnvConfig(knobs=copy.copy(cfg.knobs), eval=ev))


def run_transfer(cfg: TransferConfig, store: RunStore | None = None,
                 progress: Callable[[str], None] | None = None, train_run_id: str | None = None) -> dict:
    """Train (or reuse ``train_run_id``'s policy), then run each agent on the target. Returns a summary dict."""
    store = store or RunStore()
    say = progress or (lambda m: log.info(m))
    if train_run_id:
        train_run = store.get(train_run_id)
    else:
        say(f"training PPO on {', '.join(cfg.train_designs)} ({cfg.train_budget} evaluations)")
        train_run = optimize(cfg.train_designs, _opt(cfg, "ppo", cfg.train_budget), store)
    policy = train_run.dir / "policy.pt"
    out: dict[str, Any] = {"train_run": train_run.id, "policy": str(policy), "target": cfg.target,
                           "budget": cfg.budget, "agents": {}}
    plan = [("ppo-transfer", "ppo", str(policy)), ("ppo-scratch", "ppo", None), ("random", "random", None),
            ("tpe", "tpe", None)]
    for name, agent, pol in plan:
        say(f"{name} on {cfg.target} ({cfg.budget} evaluations)")
        run = optimize([cfg.target], _opt(cfg, agent, cfg.budget, pol), store)
        run.update_info(label=f"transfer {name}")
        data = read_optimize_run(run)
        rewards = [p["reward"] for p in data["curve"]]
        out["agents"][name] = {"run_id": run.id, "rewards": rewards,
                               "best_so_far": [p["best"] for p in data["curve"]],
                               "best": max(rewards) if rewards else float("nan"),
                               "first": rewards[0] if rewards else float("nan")}
    return out
