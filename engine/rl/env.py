"""A gymnasium environment over the flow: an action is a knob setting, a step is a real flow run.

Episode: ``reset`` picks a design (round robin over the env's designs, or ``options={"design": name}``) and
shows the agent that design's features and its baseline result (default knobs). Each ``step`` evaluates one
knob setting with the real engine and returns the reward (reward.py) and the new observation; the episode
ends (truncated) after ``episode_length`` evaluations, so a policy learns both where to start and how to
adjust from what it just saw.

Action (design-independent, so one policy serves every design)::

    {"continuous": Box(-1, 1, (n_continuous,)),   # each continuous knob across its range (log where marked)
     "discrete":   MultiDiscrete(n_choices)}      # each bool/choice knob's option index

Values outside [-1, 1] are clipped with a warning. Observation (float32 vector)::

    design features (evaluate.FEATURE_NAMES) | per-metric score vs baseline (METRIC_SLOTS, 0 = as baseline)
    | last reward | last evaluation failed (0/1) | last knobs (KnobSpace.unit_vector) | time left in episode
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from engine.config import FlowConfig
from engine.errors import EngineError
from engine.rl.evaluate import FEATURE_NAMES, EvalConfig, Evaluator, design_features, with_place_overrides
from engine.rl.knobs import KnobSpace, apply_knobs, default_knobs, get_knobs
from engine.rl.reward import NORMALISATION, RewardConfig, compute_reward, derived_metrics, reward_terms
from engine.runs import RunStore

log = logging.getLogger(__name__)

METRIC_SLOTS = tuple(NORMALISATION)
_ALL_TERMS = RewardConfig(weights={m: 1.0 for m in METRIC_SLOTS})


@dataclass
class EnvConfig:
    knobs: list[str] | None = None  # knob names to tune (engine.rl.knobs.KNOBS); None = all of them
    episode_length: int = 4  # evaluations per episode before the env asks for a reset
    reward: RewardConfig = field(default_factory=RewardConfig)  # how an evaluation is scored
    eval: EvalConfig = field(default_factory=EvalConfig)  # how an evaluation is run (until, parallel, Ray)


def design_config(design: str | FlowConfig) -> tuple[str, FlowConfig]:
    """(name, FlowConfig) for an example name, a design folder or a Verilog file, or a ready FlowConfig."""
    if isinstance(design, FlowConfig):
        from engine.flow.flow import design_name

        return design_name(design), design
    from engine.designs import resolve

    spec = resolve(design)
    return spec.name, spec.flow_config()


@dataclass
class DesignContext:
    """What the env knows about one design: its config, its baseline and its features."""

    name: str
    config: FlowConfig
    space: KnobSpace
    baseline_knobs: dict[str, Any]
    baseline: dict[str, Any]  # derived metrics of the default-knob run
    baseline_run: str | None
    features: np.ndarray  # (len(FEATURE_NAMES),)


def make_context(name: str, config: FlowConfig, evaluator: Evaluator, cfg: EnvConfig,
                 on_eval: Callable[[dict], None] | None = None) -> DesignContext:
    """Run the design once with its default knobs: the baseline every reward of this design is measured from."""
    knobs = get_knobs(cfg.knobs)
    base_cfg = with_place_overrides(config, evaluator.cfg.place_overrides)
    base_knobs = default_knobs(base_cfg, knobs)
    space = KnobSpace(knobs, base=dict(base_knobs))
    t0 = time.time()
    [res] = evaluator.run([base_cfg])
    if res["status"] != "done":
        raise EngineError(f"design {name}: the flow with default knobs did not finish "
                          f"({res['status']}: {res.get('error') or 'no message'})",
                          hint="run `cda flow run` on the design to see the failing step")
    metrics = derived_metrics(res["metrics"], base_cfg.clock_ns)
    run_dir = evaluator.store.root / res["run_id"]
    feats = design_features(run_dir, config.tech_dir, config.top or None, base_cfg.clock_ns)
    if on_eval:
        on_eval({"design": name, "baseline": True, "knobs": base_knobs, "metrics": metrics, "reward": 0.0,
                 "run_id": res["run_id"], "status": res["status"], "error": None, "started": res["started"],
                 "ended": res["ended"], "seconds": res["seconds"]})
    log.info("baseline of %s: run %s in %.1f s", name, res["run_id"], time.time() - t0)
    return DesignContext(name=name, config=base_cfg, space=space, baseline_knobs=base_knobs, baseline=metrics,
                         baseline_run=res["run_id"], features=np.array([feats[f] for f in FEATURE_NAMES]))


class FlowEnv(gym.Env):
    """gymnasium.Env whose step runs the real flow (see the module doc for spaces and episodes)."""

    metadata = {"render_modes": []}

    def __init__(self, designs: Sequence[str | FlowConfig], cfg: EnvConfig | None = None,
                 store: RunStore | None = None, *, evaluator: Evaluator | None = None,
                 contexts: dict[str, DesignContext] | None = None,
                 on_eval: Callable[[dict], None] | None = None, cancel_file: str | None = None):
        super().__init__()
        if not designs:
            raise EngineError("the optimizer needs at least one design")
        self.cfg = cfg or EnvConfig()
        self.store = store or RunStore()
        self.designs = [design_config(d) for d in designs]
        self.knobs = get_knobs(self.cfg.knobs)
        first_cfg = self.designs[0][1]
        self.evaluator = evaluator or Evaluator(first_cfg, self.store, self.cfg.eval,
                                                cancel_file=Path(cancel_file) if cancel_file else None)
        self.contexts = contexts if contexts is not None else {}
        self.on_eval = on_eval
        probe = KnobSpace(self.knobs)
        self.n_continuous = len(probe.continuous)
        self.action_space = spaces.Dict({
            "continuous": spaces.Box(-1.0, 1.0, shape=(max(1, self.n_continuous),), dtype=np.float32),
            "discrete": spaces.MultiDiscrete(probe.n_choices or [1]),
        })
        self.obs_dim = len(FEATURE_NAMES) + len(METRIC_SLOTS) + 2 + len(self.knobs) + 1
        self.observation_space = spaces.Box(-10.0, 10.0, shape=(self.obs_dim,), dtype=np.float32)
        self._next_design = 0
        self.ctx: DesignContext | None = None
        self.t = 0
        self._last_metrics: dict[str, Any] = {}
        self._last_reward = 0.0
        self._last_failed = 0.0
        self._last_knobs: dict[str, Any] = {}
        self.last_record: dict[str, Any] = {}

    # ------------------------------------------------------------------ designs
    def context(self, index: int) -> DesignContext:
        name, config = self.designs[index]
        if name not in self.contexts:
            self.contexts[name] = make_context(name, config, self.evaluator, self.cfg, self.on_eval)
        return self.contexts[name]

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        names = [n for n, _ in self.designs]
        if options and options.get("design") is not None:
            if options["design"] not in names:
                raise EngineError(f"design '{options['design']}' is not one of this env's: {', '.join(names)}")
            index = names.index(options["design"])
        else:
            index = self._next_design
            self._next_design = (self._next_design + 1) % len(names)
        self.ctx = self.context(index)
        self.t = 0
        self._last_metrics = self.ctx.baseline
        self._last_reward, self._last_failed = 0.0, 0.0
        self._last_knobs = dict(self.ctx.baseline_knobs)
        return self._obs(), {"design": self.ctx.name, "baseline_run": self.ctx.baseline_run}

    def step(self, action):
        config, knobs = self.begin_step(action)
        [result] = self.evaluator.run([config])
        return self.end_step(knobs, result)

    # Split in two so a vector of envs can evaluate all its settings at once (FlowVecEnv).
    def begin_step(self, action) -> tuple[FlowConfig, dict[str, Any]]:
        if self.ctx is None:
            raise EngineError("call reset() before step()")
        knobs = self.knobs_from_action(action)
        return apply_knobs(self.ctx.config, knobs), knobs

    def end_step(self, knobs: dict[str, Any], result: dict):
        ctx = self.ctx
        assert ctx is not None
        self.t += 1
        metrics = derived_metrics(result["metrics"], knobs.get("clock_ns", ctx.config.clock_ns))
        if result["status"] == "done":
            try:
                reward = compute_reward(metrics, ctx.baseline, self.cfg.reward)
            except EngineError as exc:
                result = {**result, "status": "failed", "error": exc.message}
        if result["status"] != "done":
            reward = self.cfg.reward.failure_reward
            log.warning("evaluation of %s failed (%s); reward %.2f and the search goes on: %s", ctx.name,
                        result.get("failed_step") or result["status"], reward, result.get("error"))
        self._last_metrics = metrics if result["status"] == "done" else {}
        self._last_reward = reward
        self._last_failed = 0.0 if result["status"] == "done" else 1.0
        self._last_knobs = knobs
        record = {"design": ctx.name, "baseline": False, "knobs": knobs, "metrics": metrics, "reward": reward,
                  "run_id": result["run_id"], "status": result["status"], "error": result.get("error"),
                  "failed_step": result.get("failed_step"), "started": result["started"], "ended": result["ended"],
                  "seconds": result["seconds"]}
        self.last_record = record
        if self.on_eval:
            self.on_eval(record)
        truncated = self.t >= self.cfg.episode_length
        # info stays deterministic for a given action (run ids and times live in last_record and on_eval).
        info = {"design": ctx.name, "status": result["status"], "knobs": knobs}
        return self._obs(), float(reward), False, truncated, info

    # ------------------------------------------------------------------ helpers
    def knobs_from_action(self, action) -> dict[str, Any]:
        """Action (dict of 'continuous' and 'discrete') -> native knob values; out-of-range parts clipped."""
        assert self.ctx is not None
        space = self.ctx.space
        cont = np.asarray(action["continuous"], dtype=float).reshape(-1)[: self.n_continuous]
        disc = np.asarray(action["discrete"], dtype=np.int64).reshape(-1)[: len(space.discrete)]
        if cont.size and (np.any(~np.isfinite(cont))):
            raise EngineError("the action has NaN or infinite values")
        for k, u in zip(space.continuous, cont):
            if abs(u) > 1.0:
                log.warning("action for knob %s = %.3g is outside -1..1; clipped", k.name, u)
        for k, i, n in zip(space.discrete, disc, space.n_choices):
            if not 0 <= i < n:
                log.warning("action for knob %s = %d is not an option index 0..%d; clipped", k.name, i, n - 1)
        disc = np.clip(disc, 0, np.array(space.n_choices) - 1) if disc.size else disc
        return space.decode(np.clip(cont, -1.0, 1.0).tolist(), disc.tolist())

    def _obs(self) -> np.ndarray:
        assert self.ctx is not None
        terms = reward_terms(self._last_metrics, self.ctx.baseline, _ALL_TERMS) if self._last_metrics else {}
        slots = [terms.get(m, 0.0) for m in METRIC_SLOTS]
        obs = np.concatenate([
            self.ctx.features, slots, [self._last_reward, self._last_failed],
            self.ctx.space.unit_vector(self._last_knobs),
            [1.0 - self.t / max(1, self.cfg.episode_length)],
        ]).astype(np.float32)
        return np.clip(obs, -10.0, 10.0)


class FlowVecEnv:
    """K copies of FlowEnv stepped together, their K flow runs evaluated in parallel (Ray via the Evaluator).

    Auto-resets an env whose episode ended (returns the new episode's first observation, as gymnasium's
    vector envs do in "next step" mode, here simplified to "same step").
    """

    def __init__(self, envs: Sequence[FlowEnv]):
        self.envs = list(envs)
        self.evaluator = self.envs[0].evaluator

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def reset(self, seed: int | None = None) -> np.ndarray:
        return np.stack([e.reset(seed=None if seed is None else seed + i)[0] for i, e in enumerate(self.envs)])

    def step(self, actions: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        prepared = [e.begin_step(a) for e, a in zip(self.envs, actions)]
        results = self.evaluator.run([c for c, _ in prepared])
        obs, rewards, dones, infos = [], [], [], []
        for env, (_, knobs), res in zip(self.envs, prepared, results):
            o, r, term, trunc, _ = env.end_step(knobs, res)
            infos.append(env.last_record)
            if term or trunc:
                o, _ = env.reset()
            obs.append(o)
            rewards.append(r)
            dones.append(term or trunc)
        return np.stack(obs), np.array(rewards, dtype=np.float32), np.array(dones), infos
