"""The honest baselines: random search and TPE (Optuna), over the same env, knobs and budget as PPO.

Both propose actions in the env's normalised action space (continuous knobs in [-1, 1], log-scaled where the
knob says so; discrete knobs by index) and step the same FlowVecEnv, so every agent pays the same evaluations
and is scored by the same reward. Batches of ``num_envs`` settings are evaluated together (in parallel through
Ray when the Evaluator has parallel > 1); TPE asks for a whole batch before it is told the results, as
OpenROAD's AutoTuner does with Ray Tune.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from engine.rl.env import FlowVecEnv
from engine.rl.knobs import KnobSpace

log = logging.getLogger(__name__)


def _action(cont: list[float], disc: list[int], n_cont: int) -> dict:
    return {"continuous": np.asarray(cont if n_cont else [0.0], dtype=np.float32),
            "discrete": np.asarray(disc if disc else [0], dtype=np.int64)}


def random_search(vec: FlowVecEnv, budget: int, seed: int = 1,
                  cancelled: Callable[[], bool] = lambda: False) -> None:
    """Uniform samples over the knob space (uniform in log for log-scaled knobs)."""
    rng = np.random.default_rng(seed)
    space = KnobSpace(vec.envs[0].knobs)
    n_cont, n_choices = len(space.continuous), space.n_choices
    vec.reset(seed=seed)
    done = 0
    while done < budget and not cancelled():
        k = min(vec.num_envs, budget - done)
        actions = [_action(rng.uniform(-1, 1, n_cont).tolist(), [int(rng.integers(n)) for n in n_choices], n_cont)
                   for _ in range(k)]
        FlowVecEnv(vec.envs[:k]).step(actions)
        done += k


def tpe_search(vec: FlowVecEnv, budget: int, seed: int = 1, cancelled: Callable[[], bool] = lambda: False,
               n_startup: int = 0) -> None:
    """Optuna's TPE sampler, asked for a batch of settings at a time and told their rewards.

    ``n_startup`` random trials before TPE models the results (0 = Optuna's default of 10, capped at a third of
    the budget so small budgets still get some model-guided trials).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = KnobSpace(vec.envs[0].knobs)
    n_cont = len(space.continuous)
    startup = n_startup or max(2, min(10, budget // 3))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                         constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists: dict[str, optuna.distributions.BaseDistribution] = {}
    for knob in space.continuous:
        dists[knob.name] = optuna.distributions.FloatDistribution(-1.0, 1.0)
    for knob, n in zip(space.discrete, space.n_choices):
        dists[knob.name] = optuna.distributions.CategoricalDistribution(list(range(n)))
    vec.reset(seed=seed)
    done = 0
    while done < budget and not cancelled():
        k = min(vec.num_envs, budget - done)
        trials = [study.ask(dists) for _ in range(k)]
        actions = [_action([t.params[kn.name] for kn in space.continuous],
                           [int(t.params[kn.name]) for kn in space.discrete], n_cont) for t in trials]
        _, rewards, _, _ = FlowVecEnv(vec.envs[:k]).step(actions)
        for t, r in zip(trials, rewards):
            study.tell(t, float(r))
        done += k
