"""The action space: the flow's knobs the optimizer may turn, each with its range or choices and a reason.

A knob is addressed by its dotted path in FlowConfig ("floorplan.utilization", "place.target_density",
"clock_ns"); its type, doc and the span the optimizer explores come from the registry (engine/registry/knobs.py).
Values outside that span are clipped to it with a warning (never silently, never an error): an agent or a person
asking for utilisation 1.4 gets 0.85 and a line in the log saying so.

Agents see knobs in two forms: native values (what the flow reads) and a normalised vector in [-1, 1] per
continuous knob plus a choice index per discrete knob (what PPO's policy head produces).
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.config import FlowConfig
from engine.errors import EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Knob:
    """One tunable value of the flow."""

    name: str  # dotted path in FlowConfig: "<section>.<field>" or a top-level field such as "clock_ns"
    kind: str  # "float", "int", "bool" or "choice"
    doc: str  # why an agent would turn it
    low: float = 0.0  # lower bound (float/int); for relative knobs a multiple of the design's own value
    high: float = 1.0  # upper bound (float/int)
    choices: tuple = ()  # the options of a "choice" knob (bool knobs use (False, True))
    log_scale: bool = False  # sample and normalise on a log scale (ranges spanning a factor of several)
    relative: bool = False  # low/high multiply the design's own default (the clock period differs per design)
    step: float = 0.0  # quantise to this grid (relative knobs: a fraction of the design's value); 0 = none

    @property
    def discrete(self) -> bool:
        return self.kind in ("bool", "choice")

    @property
    def options(self) -> tuple:
        return (False, True) if self.kind == "bool" else self.choices

    def bounds(self, base: float | None = None) -> tuple[float, float]:
        """Native (low, high) for a design whose default value is ``base`` (only relative knobs use it)."""
        if self.relative:
            if base is None or base <= 0:
                raise EngineError(f"knob {self.name}: needs the design's own value to set its range")
            return self.low * base, self.high * base
        return self.low, self.high


# The knobs that matter, after OpenROAD-flow-scripts' AutoTuner (clock period, core utilisation, aspect ratio,
# placement density) plus the knobs of our own placer and synthesis script. Their type, the span explored, the
# scale and the doc come from the registry (engine.registry.knobs), where the config's defaults live too.
OPTIMIZED_KNOBS = ("floorplan.utilization", "floorplan.aspect_ratio", "place.target_density", "place.gamma_base",
                   "place.max_iterations", "place.detailed", "synth.abc_script", "synth.flatten", "clock_ns")


def from_registry(path: str) -> Knob:
    """The optimizer's view of a registry knob: the span it explores (the registry's ``search``, else the whole
    valid range), its scale and its grid."""
    from engine.registry import knob

    spec = knob(path)
    if spec.type is bool:
        return Knob(path, "bool", spec.doc)
    if spec.type is str:
        if not spec.choices:
            raise EngineError(f"knob {path} is free text: an optimizer needs a range or a list of choices")
        return Knob(path, "choice", spec.doc, choices=tuple(spec.choices))
    low, high = spec.search or (spec.low, spec.high)
    if low is None or high is None:
        raise EngineError(f"knob {path} is unbounded: an optimizer needs a range (give the registry a search span)")
    return Knob(path, "int" if spec.type is int else "float", spec.doc, float(low), float(high),
                log_scale=spec.log_scale, relative=spec.relative, step=spec.step)


KNOBS: tuple[Knob, ...] = tuple(from_registry(p) for p in OPTIMIZED_KNOBS)
KNOB_BY_NAME = {k.name: k for k in KNOBS}
DEFAULT_KNOB_NAMES = tuple(k.name for k in KNOBS)


def get_knobs(names: Iterable[str] | None = None) -> tuple[Knob, ...]:
    """The knobs with these names (all when None), in the order given; a clear error for an unknown one."""
    if names is None:
        return KNOBS
    out = []
    for n in names:
        if n not in KNOB_BY_NAME:
            raise EngineError(f"unknown knob '{n}'; knobs are: {', '.join(KNOB_BY_NAME)}")
        out.append(KNOB_BY_NAME[n])
    if not out:
        raise EngineError("no knobs to tune: give at least one knob")
    return tuple(out)


# ------------------------------------------------------------------ reading and writing FlowConfig
def read_knob(config: FlowConfig, name: str) -> Any:
    """The value the flow would use for knob ``name`` under ``config``."""
    section, _, fld = name.rpartition(".")
    return getattr(getattr(config, section) if section else config, fld)


def default_knobs(config: FlowConfig, knobs: Sequence[Knob] = KNOBS) -> dict[str, Any]:
    """The knob values of ``config`` itself: the baseline the reward is normalised against."""
    return {k.name: read_knob(config, k.name) for k in knobs}


def apply_knobs(config: FlowConfig, values: dict[str, Any]) -> FlowConfig:
    """A copy of ``config`` with the knob values set (values are expected clipped already)."""
    cfg = copy.deepcopy(config)
    for name, value in values.items():
        section, _, fld = name.rpartition(".")
        setattr(getattr(cfg, section) if section else cfg, fld, value)
    return cfg


# ------------------------------------------------------------------ clipping
def clip_value(knob: Knob, value: Any, base: float | None = None) -> tuple[Any, str | None]:
    """(value within the knob's range, a warning or None). Raises EngineError for a value that means nothing."""
    if knob.discrete:
        if knob.kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "on", "off"):
                return value.lower() in ("true", "1", "on"), None
            if isinstance(value, (bool, int, float)) or hasattr(value, "item"):
                return bool(value), None
            raise EngineError(f"knob {knob.name}: '{value}' is not true/false")
        if value in knob.choices:
            return value, None
        raise EngineError(f"knob {knob.name}: '{value}' is not one of {', '.join(map(str, knob.choices))}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EngineError(f"knob {knob.name}: '{value}' is not a number") from None
    if math.isnan(v):
        raise EngineError(f"knob {knob.name}: NaN is not a value")
    lo, hi = knob.bounds(base)
    warning = None
    if v < lo or v > hi:
        clipped = min(max(v, lo), hi)
        warning = f"knob {knob.name}={v:g} is outside {lo:g}..{hi:g}; clipped to {clipped:g}"
        v = clipped
    if knob.step and knob.relative and base:
        v = round(v / (knob.step * base)) * knob.step * base
        v = min(max(v, lo), hi)
    elif knob.step:
        v = min(max(round(v / knob.step) * knob.step, lo), hi)
    if knob.kind == "int":
        return int(round(v)), warning
    return round(v, 6), warning


def clip_knobs(values: dict[str, Any], knobs: Sequence[Knob] = KNOBS, base: dict[str, Any] | None = None,
               *, warn: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Clip every value into its knob's range. Returns (clipped values, warnings); logs each warning.

    ``base`` holds the design's defaults (needed by relative knobs such as clock_ns). Unknown knob names are
    an error: a typo must not be optimised silently.
    """
    by_name = {k.name: k for k in knobs}
    out, warnings = {}, []
    for name, value in values.items():
        knob = by_name.get(name) or KNOB_BY_NAME.get(name)
        if knob is None:
            raise EngineError(f"unknown knob '{name}'; knobs are: {', '.join(KNOB_BY_NAME)}")
        out[name], w = clip_value(knob, value, (base or {}).get(name))
        if w:
            warnings.append(w)
            if warn:
                log.warning(w)
    return out, warnings


# ------------------------------------------------------------------ normalised form (for agents)
@dataclass
class KnobSpace:
    """The knobs of one optimisation with the design's base values: maps native <-> normalised forms."""

    knobs: tuple[Knob, ...]
    base: dict[str, Any] = field(default_factory=dict)  # the design's default value per knob

    @property
    def continuous(self) -> tuple[Knob, ...]:
        return tuple(k for k in self.knobs if not k.discrete)

    @property
    def discrete(self) -> tuple[Knob, ...]:
        return tuple(k for k in self.knobs if k.discrete)

    @property
    def n_choices(self) -> list[int]:
        return [len(k.options) for k in self.discrete]

    def _to_unit(self, knob: Knob, v: float) -> float:
        lo, hi = knob.bounds(self.base.get(knob.name))
        if knob.log_scale:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, 1e-12))
        return 2.0 * (v - lo) / (hi - lo) - 1.0

    def _from_unit(self, knob: Knob, u: float) -> float:
        lo, hi = knob.bounds(self.base.get(knob.name))
        u = min(max(float(u), -1.0), 1.0)
        if knob.log_scale:
            return math.exp(math.log(lo) + (u + 1.0) / 2.0 * (math.log(hi) - math.log(lo)))
        return lo + (u + 1.0) / 2.0 * (hi - lo)

    def encode(self, values: dict[str, Any]) -> tuple[list[float], list[int]]:
        """Native values -> (continuous in [-1, 1], discrete choice indices)."""
        cont = [max(-1.0, min(1.0, self._to_unit(k, float(values[k.name])))) for k in self.continuous]
        disc = [list(k.options).index(values[k.name]) for k in self.discrete]
        return cont, disc

    def decode(self, cont: Sequence[float], disc: Sequence[int]) -> dict[str, Any]:
        """(continuous in [-1, 1] (clamped), choice indices) -> native values, quantised like clip_knobs."""
        out: dict[str, Any] = {}
        for k, u in zip(self.continuous, cont):
            out[k.name] = clip_value(k, self._from_unit(k, u), self.base.get(k.name))[0]
        for k, i in zip(self.discrete, disc):
            out[k.name] = k.options[int(i)]
        return {k.name: out[k.name] for k in self.knobs}

    def unit_vector(self, values: dict[str, Any]) -> list[float]:
        """A fixed-length description of a knob setting for observations: continuous in [-1, 1], discrete as
        the choice index scaled to [-1, 1]."""
        cont, disc = self.encode(values)
        scaled = [(2.0 * i / max(1, n - 1) - 1.0) for i, n in zip(disc, self.n_choices)]
        return cont + scaled
