"""The reward: one number per evaluation from engine-computed metrics, normalised per design.

Two options (RewardConfig.kind):

``qor`` (default): a weighted sum of relative improvements over a baseline run of the same design with its
default knobs, so 0 means "as good as the defaults", +0.1 means "10 % better on the weighted mix", and designs
of any size are comparable::

    reward = sum_m w_m * score_m / sum_m w_m      over the metrics m present in both runs
    score_m = (base_m - value_m) / |base_m|        size-like metrics (lower is better): area, HPWL, wirelength
    score_m = base_m - value_m                      fractions (placement overflow, RUDY overflow)
    score_m = (ecp_base - ecp) / ecp_base          timing, through the effective clock period ecp = period - WNS
            - penalty_per_violation * (unrouted nets + DRC errors) (applied once, outside the weighted mean)

  The timing term uses the effective clock period rather than WNS: with the clock period itself a knob, WNS
  alone would reward asking for a slow clock.

``ecp``: OpenROAD-flow-scripts AutoTuner's score, the effective clock period (period - WNS, in ns) plus a
penalty per unrouted net or DRC error, turned into a reward as its relative improvement over the baseline:
``(ecp_base + pen_base - ecp - pen) / ecp_base``. Needs the timing step.

A failed evaluation gets ``failure_reward`` (well below anything a working run scores) and the search goes on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError

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


def _default_weights() -> dict[str, float]:
    return {"placement__hpwl": 1.0, "route__wirelength": 1.0, "timing__ecp_ns": 1.0, "placement__overflow": 0.5,
            "route__rudy__overflow": 0.5, "floorplan__die__area_um2": 0.25, "design__instance__area": 0.25,
            "timing__setup__tns": 0.25}


@dataclass
class RewardConfig:
    kind: str = "qor"  # "qor" (weighted relative QoR, documented above) or "ecp" (AutoTuner's effective clock period)
    weights: dict[str, float] = field(default_factory=_default_weights)  # metric -> weight in the qor mix
    penalty_per_violation: float = 0.05  # reward lost per unrouted net or DRC error (qor: absolute; ecp: x ecp_base)
    failure_reward: float = -1.0  # reward of an evaluation whose flow failed
    clip: float = 3.0  # rewards are clipped to [-clip, clip] so one odd run cannot dominate learning

    def __post_init__(self) -> None:
        if self.kind not in ("qor", "ecp"):
            raise EngineError(f"reward kind '{self.kind}' is unknown: use 'qor' or 'ecp'")
        unknown = [m for m in self.weights if m not in NORMALISATION]
        if unknown:
            raise EngineError(f"reward weights name unknown metrics: {', '.join(unknown)}; "
                              f"known: {', '.join(NORMALISATION)}")


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


def reward_terms(metrics: dict[str, Any], baseline: dict[str, Any], cfg: RewardConfig) -> dict[str, float]:
    """The per-metric scores of the qor reward (for the page: which metric moved the reward)."""
    terms: dict[str, float] = {}
    for name in cfg.weights:
        v, b = _num(metrics.get(name)), _num(baseline.get(name))
        if v is None or b is None:
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
    if cfg.kind == "ecp":
        ecp, ecp_base = _num(metrics.get("timing__ecp_ns")), _num(baseline.get("timing__ecp_ns"))
        if ecp is None or ecp_base is None or ecp_base <= 0:
            raise EngineError("the 'ecp' reward needs timing results: optimise with --until timing (or later)")
        pen = cfg.penalty_per_violation * ecp_base
        score = (ecp_base + pen * baseline.get("violations", 0) - ecp - pen * metrics.get("violations", 0)) / ecp_base
    else:
        terms = reward_terms(metrics, baseline, cfg)
        total_w = sum(cfg.weights[m] for m in terms)
        score = sum(cfg.weights[m] * s for m, s in terms.items()) / total_w if total_w > 0 else 0.0
        score -= cfg.penalty_per_violation * (metrics.get("violations", 0) - baseline.get("violations", 0))
    return float(max(-cfg.clip, min(cfg.clip, score)))
