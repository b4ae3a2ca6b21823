"""The Pareto front of an optimisation: the trials no other trial beats on both routed wirelength and clock period.

The reward folds PPA into one number; the front shows the trade-off it hides. A trial is on the front when no
other finished trial is at least as good on every objective and strictly better on one (two trials with the same
values are both on it). Objectives are registry metrics (engine.registry): their direction comes from
``higher_is_better``, never from here. Each axis names its metric and what stands in for it in an optimisation
that stops before the metric exists::

    axis 1: route__wirelength  (placement__hpwl when no trial was routed)
    axis 2: timing__ecp_ns     (clock period - worst setup slack: the period the layout could run at)

Input is the optimisation's ``evaluations.jsonl`` rows (engine.rl.optimize.Recorder). Only trials that finished
(status ``done``) count; failed, cancelled and ASHA-stopped trials and done trials missing a metric (or holding a
value that is not a finite number) are left out and counted by reason. The design's default run (the baseline row)
is kept beside the front as the reference point, never on it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

# Each axis: the metric, then its stand-ins in the order they are tried (the first one some finished trial has).
AXES: tuple[tuple[str, ...], ...] = (("route__wirelength", "placement__hpwl"), ("timing__ecp_ns",))


@dataclass(frozen=True)
class Objective:
    """One axis of the front, described by the registry."""

    name: str  # metric key, e.g. "route__wirelength"
    label: str  # the registry's label, e.g. "Routed wirelength"
    unit: str  # the shown unit (after ``scale``), e.g. "µm"
    scale: float  # shown value = stored value x scale
    minimise: bool  # from the registry's higher_is_better

    @classmethod
    def of(cls, name: str) -> Objective:
        from engine.registry import metric

        spec = metric(name)
        if spec.higher_is_better is None or not spec.numeric:
            raise EngineError(f"metric {name} has no better direction: it cannot be an objective of the front")
        return cls(name=name, label=spec.label, unit=spec.shown_unit, scale=spec.scale,
                   minimise=not spec.higher_is_better)

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


def number(value: Any) -> float | None:
    """A finite float, or None (missing, text, NaN, infinity, a bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def non_dominated(values: Sequence[Sequence[float]], minimise: Sequence[bool]) -> list[int]:
    """Indices (in input order) of the points no other point dominates. ``values``: (N, K) numbers;
    ``minimise[k]``: False where higher is better. Equal points do not dominate each other: all of them stay."""
    v = np.asarray(values, dtype=float).reshape(len(values), len(minimise))  # (N, K)
    if v.shape[0] == 0:
        return []
    v = v * np.where(np.asarray(minimise, dtype=bool), 1.0, -1.0)  # (N, K), lower is better on every axis
    dominated = np.zeros(v.shape[0], dtype=bool)  # (N,)
    for start in range(0, v.shape[0], 512):  # blocks of challengers j keep memory at (512, N, K)
        blk = v[start:start + 512, None, :]  # (B, 1, K)
        no_worse = np.all(blk <= v[None, :, :], axis=2)  # (B, N): [j, i] = j no worse than i everywhere
        better = np.any(blk < v[None, :, :], axis=2)  # (B, N): [j, i] = j strictly better somewhere
        dominated |= np.any(no_worse & better, axis=0)
    return [int(i) for i in np.flatnonzero(~dominated)]


@dataclass
class Front:
    """The front of one design's trials, with every scored trial and why the others were left out."""

    design: str | None
    objectives: list[Objective]
    points: list[dict] = field(default_factory=list)  # scored trials: index, run_id, trial_id, values, reward,
    # knobs, on_front; in evaluation order
    front: list[dict] = field(default_factory=list)  # the points on the front, by the first objective (better first)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> trials left out ("failed", "missing <metric>")
    baseline: dict | None = None  # the default run as a point (values may be None where it lacks a metric)
    best_index: int | None = None  # evaluation index of the best-reward finished trial (on the front or not)
    note: str | None = None  # why there is no front (no axis metric in any finished trial), else None

    def to_dict(self) -> dict:
        return {**asdict(self), "objectives": [asdict(o) for o in self.objectives]}


def _pick_axes(done: list[dict], axes: Sequence[Sequence[str]]) -> tuple[list[str | None], list[str]]:
    """Per axis, the first candidate metric some finished trial has (None: none has any of them)."""
    names: list[str | None] = []
    for candidates in axes:
        found = next((m for m in candidates if any(number((r.get("metrics") or {}).get(m)) is not None
                                                    for r in done)), None)
        names.append(found)
    missing = [c[0] for c, n in zip(axes, names) if n is None]
    return names, missing


def trial_front(rows: Iterable[dict], design: str | None = None,
                axes: Sequence[Sequence[str]] = AXES) -> Front:
    """The front over the trial rows of one design (evaluations.jsonl rows; ``design`` None: every row)."""
    for candidates in axes:
        if not candidates:
            raise EngineError("every axis of the front needs at least one metric")
    mine = [r for r in rows if isinstance(r, dict) and (design is None or r.get("design") == design)]
    base_row = next((r for r in mine if r.get("baseline")), None)
    trials = [r for r in mine if not r.get("baseline")]
    done = [r for r in trials if r.get("status") == "done"]
    names, missing = _pick_axes(done, axes)
    chosen = [n or c[0] for n, c in zip(names, axes)]
    objectives = [Objective.of(n) for n in chosen]
    out = Front(design=design, objectives=objectives)

    for r in trials:
        status = str(r.get("status") or "failed")
        if status != "done":
            out.skipped[status] = out.skipped.get(status, 0) + 1
    rewarded = [r for r in done if number(r.get("reward")) is not None]
    if rewarded:
        best = max(rewarded, key=lambda r: float(r["reward"]))  # the first of equal rewards
        out.best_index = best.get("index")
    if base_row is not None:
        m = base_row.get("metrics") or {}
        out.baseline = {"index": base_row.get("index"), "run_id": base_row.get("run_id"),
                        "values": [number(m.get(n)) for n in chosen], "knobs": base_row.get("knobs") or {}}
    if missing:
        from engine.registry import metric

        out.note = ("no finished trial has " + " or ".join(f"{metric(m).label.lower()} ({m})" for m in missing)
                    + (": the trials stop before routing and timing" if "timing__ecp_ns" in missing else ""))
        if done:
            out.skipped["missing metrics"] = len(done)
        return out

    for r in done:
        m = r.get("metrics") or {}
        values = [number(m.get(n)) for n in chosen]
        absent = [n for n, v in zip(chosen, values) if v is None]
        if absent:
            key = "missing " + ", ".join(absent)
            out.skipped[key] = out.skipped.get(key, 0) + 1
            continue
        out.points.append({"index": r.get("index"), "run_id": r.get("run_id"), "trial_id": r.get("trial_id"),
                           "values": values, "reward": number(r.get("reward")), "knobs": r.get("knobs") or {},
                           "on_front": False})
    on = non_dominated([p["values"] for p in out.points], [o.minimise for o in objectives])
    for i in on:
        out.points[i]["on_front"] = True
    first = objectives[0]
    out.front = sorted((out.points[i] for i in on),
                       key=lambda p: (p["values"][0] if first.minimise else -p["values"][0],
                                      p["index"] if isinstance(p["index"], int) else 0))
    return out


def fronts(rows: Iterable[dict], axes: Sequence[Sequence[str]] = AXES) -> dict[str, Front]:
    """One front per design of an optimisation's rows (several designs: a PPO policy trained over them)."""
    rows = [r for r in rows if isinstance(r, dict)]
    designs = list(dict.fromkeys(str(r.get("design")) for r in rows if r.get("design") is not None))
    return {d: trial_front(rows, d, axes) for d in designs}


def run_fronts(run_dir: str | Path, axes: Sequence[Sequence[str]] = AXES) -> dict[str, Front]:
    """The fronts of the optimisation run in ``run_dir`` (safe while it is being written)."""
    from engine.rl.optimize import read_evaluations

    return fronts(read_evaluations(Path(run_dir)), axes)


def format_front(front: Front) -> list[str]:
    """The front as lines of text for the terminal (`cda rl-pareto`)."""
    from engine.registry import format_value

    objs = front.objectives
    head = f"Pareto front of {front.design or 'the trials'}: " + " vs ".join(
        f"{o.title}, {'lower' if o.minimise else 'higher'} is better" for o in objs)
    lines = [head]
    left = ", ".join(f"{n} {why}" for why, n in sorted(front.skipped.items()))
    if front.note:
        lines.append(f"  no front: {front.note}" + (f" (left out: {left})" if left else ""))
        return lines
    lines.append(f"  {len(front.front)} of {len(front.points)} finished trials on the front"
                 + (f"; left out: {left}" if left else ""))
    cols = [f"{o.label} ({o.unit})" if o.unit else o.label for o in objs]
    lines.append("  " + f"{'trial':>6}  " + "  ".join(f"{c:>24}" for c in cols) + f"  {'reward':>8}  run")
    for p in front.front:
        mark = "*" if p["index"] == front.best_index else " "
        vals = "  ".join(f"{format_value(o.name, v * o.scale):>24}" for o, v in zip(objs, p["values"]))
        reward = f"{p['reward']:+.4f}" if p["reward"] is not None else "—"
        lines.append(f" {mark}{p['index']!s:>6}  {vals}  {reward:>8}  {p['run_id'] or ''}")
    if front.best_index is not None and all(p["index"] != front.best_index for p in front.front):
        lines.append(f"  best-reward trial {front.best_index} is not on the front (its reward weighs power and "
                     "area too)")
    elif front.best_index is not None:
        lines.append("  * the best-reward trial")
    if front.baseline and all(v is not None for v in front.baseline["values"]):
        vals = ", ".join(f"{o.label} {format_value(o.name, v * o.scale)} {o.unit}".rstrip()
                         for o, v in zip(objs, front.baseline["values"]))
        lines.append(f"  default knobs: {vals}")
    return lines
