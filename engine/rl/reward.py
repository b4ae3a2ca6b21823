"""The reward: one number per evaluation from engine-computed metrics, normalised per design.

Two options (RewardConfig.kind):

``qor`` (default): a weighted PPA score like OpenROAD AutoTuner's, made of relative improvements over the design's
default run (its knobs as the config gives them, run once and cached: ``default_run``), so 0 means "as good as
the defaults", +0.1 means "10 % better on the weighted mix", and designs of any size are comparable::

    reward = sum_m w_m * score_m / sum_m w_m      over the metrics m present in both runs
    score_m = (base_m - value_m) / |base_m|        size-like metrics (lower is better): wirelength, power, area
    score_m = base_m - value_m                      fractions (placement overflow, RUDY overflow)
    score_m = (ecp_base - ecp) / ecp_base          timing, through the effective clock period ecp = period - WNS

  Performance is the effective clock period, power the total power, area the die and the cells, wirelength the
  routed wirelength (the placer's HPWL stands in only when neither run was routed, so it is not counted twice).
  The timing term uses the effective clock period rather than WNS: with the clock period itself a knob, WNS
  alone would reward asking for a slow clock.

  Unrouted nets and DRC errors beyond the default run's are a hard penalty, not a term to trade: such a run
  scores ``unrouted_reward`` less ``penalty_per_violation`` per extra violation (never below ``failure_reward``),
  whatever its other metrics. A dense die that does not route cannot buy its way up with a short wirelength.

``ecp``: OpenROAD-flow-scripts AutoTuner's score, the effective clock period (period - WNS, in ns) plus a
penalty per unrouted net or DRC error, turned into a reward as its relative improvement over the baseline:
``(ecp_base + pen_base - ecp - pen) / ecp_base``. Needs the timing step.

A failed evaluation gets ``failure_reward`` (well below anything a working run scores) and the search goes on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError

log = logging.getLogger(__name__)

# metric -> how it is normalised ("ratio" for sizes, "diff" for fractions).
NORMALISATION = {
    "design__instance__area": "ratio",
    "floorplan__die__area_um2": "ratio",
    "placement__hpwl": "ratio",
    "placement__overflow": "diff",
    "route__rudy__overflow": "diff",
    "route__wirelength": "ratio",
    "route__via__count": "ratio",
    "timing__ecp_ns": "ratio",
    "timing__setup__tns": "tns",
    "power__total": "ratio",
}


# A metric that stands in for another only when the other is missing from either run (HPWL for the routed
# wirelength of a run that stopped at placement), so one quantity is never counted twice.
STANDS_IN_FOR = {"placement__hpwl": "route__wirelength"}


def _default_weights() -> dict[str, float]:
    # AutoTuner's PPA mix: performance, power, area, plus wirelength; the overflows are the routability proxies of
    # an evaluation that stops before routing (a run through route is judged by its unrouted nets instead).
    return {"route__wirelength": 1.0, "placement__hpwl": 1.0, "timing__ecp_ns": 1.0, "power__total": 1.0,
            "floorplan__die__area_um2": 0.5, "design__instance__area": 0.5, "placement__overflow": 0.5,
            "route__rudy__overflow": 0.5}


@dataclass
class RewardConfig:
    kind: str = "qor"  # "qor" (weighted relative QoR, documented above) or "ecp" (AutoTuner's effective clock period)
    weights: dict[str, float] = field(default_factory=_default_weights)  # metric -> weight in the qor mix
    penalty_per_violation: float = 0.05  # reward lost per unrouted net or DRC error (qor: absolute; ecp: x ecp_base)
    unrouted_reward: float = -0.5  # qor: the most a run with more unrouted nets / DRC errors than the default scores
    failure_reward: float = -1.0  # reward of an evaluation whose flow failed (timed out, cancelled, crashed)
    clip: float = 3.0  # rewards are clipped to [-clip, clip] so one odd run cannot dominate learning

    def __post_init__(self) -> None:
        if self.kind not in ("qor", "ecp"):
            raise EngineError(f"reward kind '{self.kind}' is unknown: use 'qor' or 'ecp'")
        unknown = [m for m in self.weights if m not in NORMALISATION]
        if unknown:
            raise EngineError(f"reward weights name unknown metrics: {', '.join(unknown)}; "
                              f"known: {', '.join(NORMALISATION)}")
        negative = [m for m, w in self.weights.items() if not (isinstance(w, (int, float)) and w >= 0)]
        if negative:
            raise EngineError(f"reward weights must be numbers >= 0: {', '.join(negative)}")
        if not self.failure_reward <= self.unrouted_reward:
            raise EngineError(f"unrouted_reward ({self.unrouted_reward}) must not be below failure_reward "
                              f"({self.failure_reward}): a run that finished is never worse than one that failed")


def effective_clock_period(metrics: dict[str, Any], clock_ns: float | None) -> float | None:
    """period - worst setup slack (ns): the period the design could actually run at. None without timing."""
    ws = metrics.get("timing__setup__ws")
    if ws is None or clock_ns is None:
        return None
    try:
        ws = float(ws)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(ws):
        return None
    return float(clock_ns) - ws


def derived_metrics(metrics: dict[str, Any], clock_ns: float | None) -> dict[str, Any]:
    """The flow's metrics plus the ones the reward uses (effective clock period, violations)."""
    out = dict(metrics)
    ecp = effective_clock_period(metrics, clock_ns)
    if ecp is not None:
        out["timing__ecp_ns"] = round(ecp, 6)
    out["violations"] = int(metrics.get("route__net__unrouted", 0) or 0) + int(metrics.get("route__drc__count", 0)
                                                                                  or 0)
    return out


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def reward_terms(metrics: dict[str, Any], baseline: dict[str, Any], cfg: RewardConfig, *,
                 stand_ins: bool = False) -> dict[str, float]:
    """The per-metric scores of the qor reward (for the page: which metric moved the reward). ``stand_ins``:
    drop a stand-in metric (STANDS_IN_FOR) when the metric it stands in for is in both runs (the reward's view)."""
    terms: dict[str, float] = {}
    for name in cfg.weights:
        v, b = _num(metrics.get(name)), _num(baseline.get(name))
        if v is None or b is None:
            continue
        real = STANDS_IN_FOR.get(name)
        if stand_ins and real and _num(metrics.get(real)) is not None and _num(baseline.get(real)) is not None:
            continue
        how = NORMALISATION[name]
        if how == "ratio":
            terms[name] = (b - v) / abs(b) if abs(b) > 1e-12 else 0.0
        elif how == "diff":
            terms[name] = b - v
        else:  # tns: negative numbers in ns, normalised by the baseline effective period
            scale = _num(baseline.get("timing__ecp_ns")) or 1.0
            terms[name] = (v - b) / abs(scale)
    return terms


def compute_reward(metrics: dict[str, Any], baseline: dict[str, Any], cfg: RewardConfig) -> float:
    """Reward of one evaluation (both dicts from ``derived_metrics``); 0 for the baseline itself."""
    extra = int(metrics.get("violations", 0) or 0) - int(baseline.get("violations", 0) or 0)
    if cfg.kind == "ecp":
        ecp, ecp_base = _num(metrics.get("timing__ecp_ns")), _num(baseline.get("timing__ecp_ns"))
        if ecp is None or ecp_base is None or ecp_base <= 0:
            raise EngineError("the 'ecp' reward needs timing results: optimise with --until timing (or later)")
        pen = cfg.penalty_per_violation * ecp_base
        score = (ecp_base + pen * baseline.get("violations", 0) - ecp - pen * metrics.get("violations", 0)) / ecp_base
    else:
        terms = reward_terms(metrics, baseline, cfg, stand_ins=True)
        total_w = sum(cfg.weights[m] for m in terms)
        score = sum(cfg.weights[m] * s for m, s in terms.items()) / total_w if total_w > 0 else 0.0
        if extra < 0:  # fewer violations than the default run: a gain
            score -= cfg.penalty_per_violation * extra
    if extra > 0:  # the hard penalty: no trade of routability for wirelength, area or speed
        score = min(score, cfg.unrouted_reward) - cfg.penalty_per_violation * extra
        return float(max(cfg.failure_reward, score))
    return float(max(-cfg.clip, min(cfg.clip, score)))


def score_evaluation(result: dict, knobs: dict[str, Any], clock_ns: float | None, baseline: dict[str, Any],
                     cfg: RewardConfig) -> tuple[float, dict[str, Any], str, str | None]:
    """(reward, derived metrics, status, error) of one evaluation result (engine.rl.evaluate's dict): a run that
    did not finish gets ``failure_reward``; so does one the reward cannot score (the error says why)."""
    metrics = derived_metrics(result.get("metrics") or {}, knobs.get("clock_ns", clock_ns))
    status, error = result.get("status", "failed"), result.get("error")
    if status == "done":
        try:
            return compute_reward(metrics, baseline, cfg), metrics, status, None
        except EngineError as exc:
            status, error = "failed", exc.message
    return float(cfg.failure_reward), metrics, status if status != "done" else "failed", error


# ------------------------------------------------------------------ the design's default run, cached
_CACHE_FILE = ".rl-baselines.json"  # in the runs folder; a leading dot: the run store never takes it for a run
_cache_lock = threading.Lock()


def baseline_key(config: dict, until: str) -> str:
    """What identifies a default run: the whole flow config (knobs at their defaults) and the last step."""
    blob = json.dumps({"config": config, "until": until}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def default_run(config: dict, until: str, runs_root: str | Path, evaluate: Callable[[dict], dict]) -> dict:
    """The design's default run (its config's own knobs) through ``until``: run once, then read from the runs
    folder's cache as long as that run's folder is there and done. ``evaluate(config) -> result`` runs it
    (engine.rl.evaluate.evaluate_config's dict). Returns {run_id, metrics (raw), status, cached, seconds}.

    Raises EngineError when the default run does not finish: nothing can be normalised against it."""
    root = Path(runs_root)
    key = baseline_key(config, until)
    path = root / _CACHE_FILE
    with _cache_lock:
        cache = _read_cache(path)
        hit = cache.get(key)
        if hit and _run_done(root, hit.get("run_id")):
            return {**hit, "cached": True}
    t0 = time.time()
    res = evaluate(config)
    if res.get("status") != "done":
        raise EngineError(f"the flow with the design's default knobs did not finish ({res.get('status')}: "
                          f"{res.get('error') or 'no message'}); rewards are measured against that run",
                          hint="run `cda flow run` on the design to see the failing step")
    entry = {"run_id": res["run_id"], "metrics": res["metrics"], "status": "done", "until": until,
             "seconds": res.get("seconds", round(time.time() - t0, 3)), "created": time.time()}
    with _cache_lock:
        cache = _read_cache(path)
        cache[key] = entry
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache, default=str))
            tmp.replace(path)
        except OSError as exc:  # a read-only runs folder: the baseline still serves this optimisation
            log.warning("could not cache the default run in %s: %s", path, exc)
    return {**entry, "cached": False}


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_done(root: Path, run_id: Any) -> bool:
    if not isinstance(run_id, str) or not run_id:
        return False
    try:
        info = json.loads((root / run_id / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("status") == "done"
