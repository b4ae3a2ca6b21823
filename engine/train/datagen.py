"""Engine-grounded instruction/answer data: every number in every answer comes from a real flow run.

Read top to bottom:
1. ``plan_runs``: per design, a grid of knob settings (placement grid over utilisation x target density x gamma,
   clock variants, ABC scripts, floorplan shapes, a few full flows with detailed routing).
2. ``execute_runs``: the real engine (``engine.flow.flow.run_flow``) runs them, in Ray tasks (``ray.init`` local)
   or in this process; the run store's step reuse makes variants that share a prefix cheap.
3. ``derive_examples``: questions and answers computed from the runs' metrics (facts, pairwise comparisons,
   rankings, thresholds, choosing settings, reading a congestion map), each carrying its run ids and the metric
   values it used (``uses``).
4. deduplicate, split by design (no design in two splits), write JSONL + a data card; ``verify_dataset`` re-runs a
   sample of runs from their saved configs and checks the stated numbers.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.runs import write_json
from engine.train.config import DatagenConfig, TrainError

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
PHASES = ("synth", "floorplan", "place", "route", "timing", "gds", "verify")
GAMMA_BASE = 4.0  # engine.place.config.PlaceConfig.gamma_base default; gamma factors scale it
ABC_SCRIPTS = ("default", "area", "delay", "fast")
ASPECT_RATIOS = (0.5, 1.0, 2.0)
FLOORPLAN_UTILS = (0.4, 0.5, 0.65, 0.8)
MAP_SIDE = 4  # congestion maps are shown as MAP_SIDE x MAP_SIDE grids (row 0 = top of the core)


# ================================================================================================ 1. plan
@dataclass
class RunSpec:
    """One engine run to make: the design, its knob settings and how far to run."""

    design: str
    group: str  # place | clock | synth | floorplan | full
    knobs: dict[str, Any]
    until: str = "timing"
    steps: tuple[str, ...] = ()  # explicit step list (overrides until)
    route_enabled: bool = False  # detailed routing (qrouter) or RUDY only

    def key(self) -> str:
        return json.dumps([self.design, self.group, self.knobs, self.until, self.steps, self.route_enabled],
                          sort_keys=True)


def design_names(cfg: DatagenConfig) -> list[str]:
    """Design names or folders to run; every example design when none are given."""
    from engine.designs import list_examples

    if cfg.designs:
        return [str(d) for d in cfg.designs]
    names = [d.name for d in list_examples()]
    if not names:
        raise TrainError("no example designs found under assets/designs", hint="pass designs explicitly")
    return names


def plan_runs(cfg: DatagenConfig, designs: list[str]) -> list[RunSpec]:
    """The knob grid per design, sub-sampled to ``cfg.max_runs`` (placement grid kept whole when it fits)."""
    from engine.designs import resolve

    specs: list[RunSpec] = []
    last = cfg.until
    for name in designs:
        ds = resolve(name)
        if ds.size == "large" and not cfg.include_large:
            log.info("design %s is large; skipped (include_large=False)", name)
            continue
        default_clock = ds.clock_ns
        place_until = "timing" if _before_or_eq("timing", last) else last
        grid = list(itertools.product(cfg.utilizations, cfg.target_densities, cfg.gammas))
        for u, d, g in grid:
            specs.append(RunSpec(name, "place", {"utilization": u, "target_density": d, "gamma": g,
                                                 "clock_ns": default_clock}, until=place_until))
        if _before_or_eq("timing", last) and ds.clock_port:
            for u, d in itertools.product(cfg.utilizations, cfg.target_densities):
                for c in cfg.clock_ns:
                    if c != default_clock:
                        specs.append(RunSpec(name, "clock", {"utilization": u, "target_density": d, "gamma": 1.0,
                                                             "clock_ns": c}, until="timing"))
        has_tb = ds.testbench and _before_or_eq("verify", last)
        synth_steps = ("synth", "floorplan", "verify") if has_tb else ("synth", "floorplan")
        for script in ABC_SCRIPTS:
            specs.append(RunSpec(name, "synth", {"abc_script": script}, steps=synth_steps))
        for u, ar in itertools.product(FLOORPLAN_UTILS, ASPECT_RATIOS):
            specs.append(RunSpec(name, "floorplan", {"utilization": u, "aspect_ratio": ar}, until="floorplan"))
        if _before_or_eq("route", last):
            # Full flows reuse the grid's placements (same place knobs), so they cost routing, GDS and checks only.
            for u, d in itertools.product(cfg.utilizations, sorted(cfg.target_densities)[-2:]):
                specs.append(RunSpec(name, "full", {"utilization": u, "target_density": d, "gamma": 1.0,
                                                    "clock_ns": default_clock, "routed": True},
                                     until=last, route_enabled=True))
    unknown = set(cfg.groups) - {"place", "clock", "synth", "floorplan", "full"}
    if unknown:
        raise TrainError(f"unknown run group(s) {sorted(unknown)}", hint="groups are place, clock, synth, floorplan, full")
    seen, unique = set(), []
    for s in specs:
        if s.group in cfg.groups and s.key() not in seen:
            seen.add(s.key())
            unique.append(s)
    if len(unique) > cfg.max_runs:
        rng = random.Random(cfg.seed)
        keep = [s for s in unique if s.group in ("full", "synth")]
        rest = [s for s in unique if s.group not in ("full", "synth")]
        rng.shuffle(rest)
        unique = keep + rest[: max(0, cfg.max_runs - len(keep))]
        log.info("knob grid sub-sampled to %d runs", len(unique))
    return unique


def _before_or_eq(step: str, until: str) -> bool:
    return PHASES.index(step) <= PHASES.index(until)


def flow_config(spec: RunSpec, place_iterations: int = 0):
    """The FlowConfig of a run spec (the design's own top, clock and testbench)."""
    from engine.config import FlowConfig
    from engine.designs import resolve

    ds = resolve(spec.design)
    k = spec.knobs
    fc = FlowConfig(design_files=ds.files, top=ds.top, clock_port=ds.clock_port,
                    clock_ns=float(k.get("clock_ns", ds.clock_ns)), testbench=ds.testbench)
    fc.synth.abc_script = k.get("abc_script", fc.synth.abc_script)
    fc.floorplan.utilization = float(k.get("utilization", fc.floorplan.utilization))
    fc.floorplan.aspect_ratio = float(k.get("aspect_ratio", fc.floorplan.aspect_ratio))
    fc.place = {"target_density": float(k.get("target_density", 0.9)),
                "gamma_base": GAMMA_BASE * float(k.get("gamma", 1.0))}
    if place_iterations:
        fc.place["max_iterations"] = int(place_iterations)
        fc.place["min_iterations"] = min(20, int(place_iterations))
    fc.route.enabled = spec.route_enabled
    return fc


# ============================================================================================= 2. execute
def _scalar_metrics(metrics: dict[str, dict]) -> dict[str, dict]:
    """Per step, the numeric metrics (lists and nested dicts are kept only for per-layer wirelength)."""
    out: dict[str, dict] = {}
    for step, m in metrics.items():
        keep = {}
        for k, v in m.items():
            if isinstance(v, bool):
                keep[k] = v
            elif isinstance(v, (int, float)) and np.isfinite(v):
                keep[k] = v
            elif isinstance(v, str) and len(v) < 40:
                keep[k] = v
            elif k == "route__wirelength__per_layer" and isinstance(v, dict):
                keep[k] = v
        out[step] = keep
    return out


def congestion_grid(npz_path: Path, side: int = MAP_SIDE) -> list[list[float]] | None:
    """The RUDY demand/capacity map averaged into side x side blocks, row 0 = top of the core, 2 decimals."""
    if not npz_path.is_file():
        return None
    ratio = np.load(npz_path)["ratio"]  # (bins_y, bins_x), row 0 = bottom (y up)
    if ratio.size == 0:
        return None
    by, bx = ratio.shape
    grid = np.zeros((side, side))
    for i in range(side):
        for j in range(side):
            block = ratio[i * by // side: max((i + 1) * by // side, i * by // side + 1),
                          j * bx // side: max((j + 1) * bx // side, j * bx // side + 1)]
            grid[i, j] = block.mean()
    return [[round(float(v), 2) for v in row] for row in grid[::-1]]  # flip so row 0 is the top


def record_of(run, spec: RunSpec) -> dict:
    """What the examples need from a finished run: knobs, status, metrics per step, the congestion grid."""
    info = run.info()
    metrics = _scalar_metrics(run.metrics())
    grid = congestion_grid(run.dir / "04-route" / "congestion.npz")
    return {"run_id": run.id, "design": spec.design, "group": spec.group, "knobs": spec.knobs,
            "spec": asdict(spec), "status": info.get("status"), "error": info.get("error"),
            "failed_step": info.get("failed_step"), "metrics": metrics, "congestion_grid": grid}


def run_spec(spec: RunSpec, runs_dir: str, place_iterations: int = 0, reuse: bool = True) -> dict:
    """Run one spec through the real flow into the store at runs_dir; returns its record."""
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(runs_dir)
    fc = flow_config(spec, place_iterations)
    kwargs: dict[str, Any] = {"steps": list(spec.steps)} if spec.steps else {"until": spec.until}
    run = run_flow(fc, store, label=f"datagen:{spec.group}", reuse=reuse, **kwargs)
    rec = record_of(run, spec)
    rec["place_iterations"] = place_iterations
    return rec


def execute_runs(specs: list[RunSpec], cfg: DatagenConfig, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[dict]:
    """Run every spec; waves (one run per design first, then the rest) let later runs reuse the first's steps.

    Each record is appended to ``out_dir/records.jsonl`` as it arrives, so a crash or cancel loses nothing: the
    next call skips specs already recorded. If Ray fails (its processes killed), the rest run in this process.
    """
    Path(cfg.runs_dir).mkdir(parents=True, exist_ok=True)
    runs_dir = str(Path(cfg.runs_dir).resolve())
    journal = Path(cfg.out_dir) / "records.jsonl"
    records: list[dict] = []
    if journal.is_file():
        wanted = {s.key() for s in specs}
        for line in journal.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if RunSpec(**{k: tuple(v) if k == "steps" else v for k, v in rec["spec"].items()}).key() in wanted \
                    and rec.get("place_iterations", 0) == cfg.place_iterations:
                records.append(rec)
        if records:
            log.info("resuming: %d of %d runs already recorded in %s", len(records), len(specs), journal)
    done_keys = {RunSpec(**{k: tuple(v) if k == "steps" else v for k, v in r["spec"].items()}).key() for r in records}
    todo = [s for s in specs if s.key() not in done_keys]
    first_per_design: dict[str, RunSpec] = {}
    for s in todo:
        first_per_design.setdefault(s.design, s)
    wave0 = list(first_per_design.values())
    rest = [s for s in todo if s not in wave0]
    wave1 = [s for s in rest if s.group not in ("clock", "full")]
    wave2 = [s for s in rest if s.group in ("clock", "full")]  # reuse the placements of wave 1
    total = len(specs)

    def report(rec: dict) -> None:
        records.append(rec)
        with journal.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if progress is not None:
            progress(0.9 * len(records) / total, f"run {len(records)}/{total}: {rec['design']} {rec['group']} "
                                                 f"{rec['status']}")

    def in_process(waves) -> list[dict]:
        for wave in waves:
            for s in wave:
                if s.key() in {r["_key"] for r in records if "_key" in r}:
                    continue
                if cancel is not None and cancel():
                    return records
                rec = run_spec(s, runs_dir, cfg.place_iterations)
                rec["_key"] = s.key()
                report(rec)
        return records

    if cfg.ray_workers <= 0:
        return in_process((wave0, wave1, wave2))

    import ray

    started_here = not ray.is_initialized()
    try:
        if started_here:
            ray.init(num_cpus=cfg.ray_workers, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, configure_logging=False)
        remote = ray.remote(num_cpus=1, max_retries=1)(run_spec)
        for wave in (wave0, wave1, wave2):
            pending = {remote.remote(s, runs_dir, cfg.place_iterations): s for s in wave}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        rec = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the engine raised: count it, keep going
                        log.warning("an engine run failed in its Ray task: %s", exc)
                        continue
                    rec["_key"] = spec.key()
                    report(rec)
                if cancel is not None and cancel():
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    return records
    except Exception as exc:  # Ray itself failed (processes killed, no memory): finish here, serially
        log.warning("Ray failed (%s: %s); running the remaining runs in this process", type(exc).__name__,
                    str(exc)[:200])
        return in_process((wave0, wave1, wave2))
    finally:
        if started_here:
            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001 - already gone
                pass
    return records


# ============================================================================================== 3. derive
def fmt(v: float | int) -> str:
    """How numbers are written in answers (the verifier looks for exactly this text)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return str(int(v))
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def pct(a: float, b: float) -> str:
    """Relative change from a to b, e.g. '+12.3%'."""
    if a == 0:
        return "n/a"
    return f"{(b - a) / abs(a) * 100:+.1f}%"


METRIC_WORDS = {
    "design__instance__count": ("cell count", "cells"),
    "design__instance__area": ("cell area", "um^2"),
    "design__instance__count__sequential": ("number of sequential cells", "flip-flops"),
    "design__net__count": ("net count", "nets"),
    "floorplan__core__area_um2": ("core area", "um^2"),
    "floorplan__die__area_um2": ("die area", "um^2"),
    "floorplan__core__width_um": ("core width", "um"),
    "floorplan__core__height_um": ("core height", "um"),
    "floorplan__row__count": ("number of placement rows", "rows"),
    "floorplan__utilization": ("achieved utilisation", ""),
    "placement__hpwl": ("HPWL after detailed placement", "um"),
    "placement__hpwl__global": ("HPWL after global placement", "um"),
    "placement__hpwl__legal": ("HPWL after legalisation", "um"),
    "placement__overflow": ("density overflow", ""),
    "placement__iterations": ("number of global placement iterations", "iterations"),
    "route__rudy__max": ("peak RUDY congestion", "x capacity"),
    "route__rudy__mean": ("mean RUDY congestion", "x capacity"),
    "route__rudy__overflow": ("share of over-capacity RUDY bins", ""),
    "route__wirelength": ("routed wirelength", "um"),
    "route__via__count": ("via count", "vias"),
    "route__net__unrouted": ("number of unrouted nets", "nets"),
    "timing__setup__ws": ("worst setup slack", "ns"),
    "timing__setup__tns": ("total negative slack", "ns"),
    "timing__fmax_mhz": ("maximum clock frequency", "MHz"),
    "power__total": ("total power", "W"),
    "power__switching__total": ("switching power", "W"),
    "power__leakage__total": ("leakage power", "W"),
    "gds__instance__count": ("number of cell instances in the GDSII", "cells"),
    "gds__file_bytes": ("GDSII file size", "bytes"),
    "verify__mismatch__count": ("number of gate-level vs RTL mismatches", "lines"),
    "verify__tests__count": ("number of compared testbench output lines", "lines"),
}
LOWER_IS_BETTER = {"design__instance__area", "design__instance__count", "placement__hpwl", "placement__overflow",
                   "route__rudy__max", "route__wirelength", "route__via__count", "power__total",
                   "floorplan__die__area_um2"}


def describe(knobs: dict) -> str:
    parts = []
    if "abc_script" in knobs:
        parts.append(f"the '{knobs['abc_script']}' ABC script")
    if "utilization" in knobs:
        parts.append(f"utilisation {knobs['utilization']}")
    if "aspect_ratio" in knobs:
        parts.append(f"aspect ratio {knobs['aspect_ratio']}")
    if "target_density" in knobs:
        parts.append(f"target density {knobs['target_density']}")
    if "gamma" in knobs:
        parts.append(f"gamma factor {knobs['gamma']}")
    if "clock_ns" in knobs:
        parts.append(f"a {knobs['clock_ns']} ns clock")
    if knobs.get("routed"):
        parts.append("detailed routing")
    return ", ".join(parts)


class Builder:
    """Collects examples; ``add`` records the runs and metric values an answer states."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.examples: list[dict] = []

    def pick(self, *templates: str) -> str:
        return self.rng.choice(templates)

    def add(self, phase: str, type_: str, design: str, instruction: str, answer: str,
            uses: list[tuple[dict, str, str]]) -> None:
        """uses: (record, step, metric key) triples whose values the answer states."""
        used = [{"run_id": r["run_id"], "step": s, "key": k, "value": _value(r, s, k)} for r, s, k in uses]
        self.examples.append({
            "phase": phase, "type": type_, "design": design, "instruction": instruction, "answer": answer,
            "run_id": used[0]["run_id"] if used else None,
            "run_ids": sorted({u["run_id"] for u in used}), "uses": used,
        })


def _value(rec: dict, step: str, key: str):
    if key == "congestion_grid":
        return rec["congestion_grid"]
    return rec["metrics"][step][key]


def _has(rec: dict, step: str, key: str) -> bool:
    return key in rec["metrics"].get(step, {})


def _by(records: Iterable[dict], *knob_names: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[tuple(r["knobs"].get(k) for k in knob_names)].append(r)
    return groups


def _unique_by_knobs(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        key = json.dumps(r["knobs"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _facts(b: Builder, phase: str, design: str, recs: list[dict], step: str, keys: Iterable[str],
           verb: str) -> None:
    for r in recs:
        for key in keys:
            if not _has(r, step, key):
                continue
            words, unit = METRIC_WORDS.get(key, (key, ""))
            v = _value(r, step, key)
            q = b.pick(f"What is the {words} of {design} {verb} with {describe(r['knobs'])}?",
                       f"{design} ran with {describe(r['knobs'])}. What {words} did the engine report {verb}?",
                       f"Report the {words} for {design} ({describe(r['knobs'])}).")
            b.add(phase, "fact", design, q, f"The {words} is {fmt(v)}{(' ' + unit) if unit else ''} "
                                              f"({key}).", [(r, step, key)])


def _pairs(b: Builder, phase: str, design: str, groups: dict[tuple, list[dict]], knob: str, step: str,
           keys: Iterable[str], fixed_names: tuple[str, ...]) -> None:
    """Effect of one knob with the others fixed: every pair of runs that differ only in ``knob``."""
    for fixed, recs in groups.items():
        recs = sorted(_unique_by_knobs(recs), key=lambda r: r["knobs"][knob])
        for a, c in itertools.combinations(recs, 2):
            for key in keys:
                if not (_has(a, step, key) and _has(c, step, key)):
                    continue
                words, unit = METRIC_WORDS.get(key, (key, ""))
                va, vc = _value(a, step, key), _value(c, step, key)
                ctx = ", ".join(f"{n.replace('_', ' ')} {v}" for n, v in zip(fixed_names, fixed) if v is not None)
                kn = knob.replace("_", " ")
                q = b.pick(
                    f"For {design} ({ctx}), how does changing the {kn} from {a['knobs'][knob]} to {c['knobs'][knob]} "
                    f"change the {words}?",
                    f"{design}, {ctx}: compare {kn} {a['knobs'][knob]} and {c['knobs'][knob]}. What happens to the {words}?",
                )
                if va == vc:
                    trend = "does not change"
                else:
                    trend = "rises" if vc > va else "falls"
                u = f" {unit}" if unit else ""
                ans = (f"The {words} {trend}: {fmt(va)}{u} at {kn} {a['knobs'][knob]} vs {fmt(vc)}{u} at "
                       f"{kn} {c['knobs'][knob]} ({pct(va, vc)}).")
                b.add(phase, f"effect_{knob}", design, q, ans, [(a, step, key), (c, step, key)])


def _rank(b: Builder, phase: str, design: str, groups: dict[tuple, list[dict]], knob: str, step: str,
          key: str, fixed_names: tuple[str, ...]) -> None:
    words, unit = METRIC_WORDS.get(key, (key, ""))
    for fixed, recs in groups.items():
        recs = [r for r in _unique_by_knobs(recs) if _has(r, step, key)]
        if len(recs) < 3:
            continue
        order = sorted(recs, key=lambda r: (_value(r, step, key), r["knobs"][knob]))
        ctx = ", ".join(f"{n.replace('_', ' ')} {v}" for n, v in zip(fixed_names, fixed) if v is not None)
        kn = knob.replace("_", " ")
        options = ", ".join(str(r["knobs"][knob]) for r in sorted(recs, key=lambda r: r["knobs"][knob]))
        q = f"Rank the {kn} settings {options} for {design} ({ctx}) from lowest to highest {words}."
        ans = "From lowest to highest " + words + ": " + "; ".join(
            f"{kn} {r['knobs'][knob]} ({fmt(_value(r, step, key))}{(' ' + unit) if unit else ''})" for r in order) + "."
        b.add(phase, f"rank_{knob}", design, q, ans, [(r, step, key) for r in order])


def _threshold(b: Builder, phase: str, design: str, recs: list[dict], step: str, key: str, limit: float,
               better_below: bool, meaning: str) -> None:
    words, unit = METRIC_WORDS.get(key, (key, ""))
    for r in recs:
        if not _has(r, step, key):
            continue
        v = _value(r, step, key)
        ok = v < limit if better_below else v >= limit
        q = f"{design} with {describe(r['knobs'])}: is the {words} {'below' if better_below else 'at least'} {fmt(limit)}{(' ' + unit) if unit else ''} ({meaning})?"
        ans = (f"{'Yes' if ok else 'No'}: the {words} is {fmt(v)}{(' ' + unit) if unit else ''}.")
        b.add(phase, f"threshold_{key.split('__')[-1]}", design, q, ans, [(r, step, key)])


def _choose(b: Builder, phase: str, design: str, recs: list[dict], step: str, key: str, knobs: tuple[str, ...],
            constraint: tuple[str, str, float] | None = None) -> None:
    """Which of the tried settings gives the best value (optionally under a constraint on another metric)."""
    recs = [r for r in _unique_by_knobs(recs) if _has(r, step, key)]
    if constraint:
        c_step, c_key, c_lim = constraint
        ok = [r for r in recs if _has(r, c_step, c_key) and _value(r, c_step, c_key) <= c_lim]
    else:
        ok = recs
    if len(recs) < 2:
        return
    words, unit = METRIC_WORDS.get(key, (key, ""))
    tried = "; ".join(", ".join(f"{k.replace('_', ' ')} {r['knobs'][k]}" for k in knobs) for r in recs)
    cons = ""
    if constraint:
        cw = METRIC_WORDS.get(constraint[1], (constraint[1], ""))[0]
        cons = f" while keeping the {cw} at or below {fmt(constraint[2])}"
    q = f"These settings were tried on {design}: {tried}. Which one gives the lowest {words}{cons}?"
    if not ok:
        ans = f"None of them: every setting has a {METRIC_WORDS[constraint[1]][0]} above {fmt(constraint[2])}."
        b.add(phase, "choose_settings", design, q, ans, [(r, constraint[0], constraint[1]) for r in recs])
        return
    best = min(ok, key=lambda r: _value(r, step, key))
    setting = ", ".join(f"{k.replace('_', ' ')} {best['knobs'][k]}" for k in knobs)
    uses = [(best, step, key)]
    ans = f"{setting}: {words} {fmt(_value(best, step, key))}{(' ' + unit) if unit else ''}"
    if constraint:
        ans += f", {METRIC_WORDS[constraint[1]][0]} {fmt(_value(best, constraint[0], constraint[1]))}"
        uses.append((best, constraint[0], constraint[1]))
    ans += "."
    b.add(phase, "choose_settings", design, q, ans, uses)


REGION_NAMES = {0: "top", MAP_SIDE - 1: "bottom"}


def _region(i: int, j: int) -> str:
    vert = "top" if i < MAP_SIDE / 2 else "bottom"
    horiz = "left" if j < MAP_SIDE / 2 else "right"
    return f"{vert}-{horiz}"


def _congestion(b: Builder, design: str, recs: list[dict]) -> None:
    """Reading a RUDY congestion map: the hot spot, how many blocks are over a level, and the verdict."""
    for r in recs:
        grid = r.get("congestion_grid")
        if not grid:
            continue
        g = np.array(grid)
        text = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in grid)
        head = (f"RUDY congestion map (wire demand / routing capacity) of {design} placed with "
                f"{describe(r['knobs'])}, {MAP_SIDE}x{MAP_SIDE} blocks, first row = top of the core:\n{text}\n")
        i, j = np.unravel_index(int(np.argmax(g)), g.shape)
        b.add("place", "congestion_hotspot", design, head + "Where is the most congested block and how congested is it?",
              f"Row {i + 1}, column {j + 1} (the {_region(i, j)} part of the core) at {g[i, j]:.2f} of capacity.", [(r, "route", "congestion_grid")])
        level = 0.5 if g.max() < 1.0 else 1.0
        n = int((g > level).sum())
        b.add("place", "congestion_count", design, head + f"How many blocks exceed {level:.1f} of capacity?",
              f"{n} of {g.size} blocks exceed {level:.1f}.", [(r, "route", "congestion_grid")])
        quads = {(vi, hj): g[vi * MAP_SIDE // 2:(vi + 1) * MAP_SIDE // 2, hj * MAP_SIDE // 2:(hj + 1) * MAP_SIDE // 2].mean()
                 for vi in (0, 1) for hj in (0, 1)}
        (qi, qj), qv = max(quads.items(), key=lambda kv: kv[1])
        verdict = ("above capacity somewhere: expect detours or unrouted nets; lower the utilisation or target density"
                   if g.max() > 1.0 else "within capacity everywhere: it should route")
        b.add("place", "congestion_read", design,
              head + "Which quadrant carries the most wire demand, and is the placement likely to route?",
              f"The {'top' if qi == 0 else 'bottom'}-{'left' if qj == 0 else 'right'} quadrant (mean {qv:.2f}); the "
              f"peak block is {g.max():.2f}, {verdict}.", [(r, "route", "congestion_grid")])


def _place_stages(b: Builder, design: str, recs: list[dict]) -> None:
    """What legalisation and detailed placement did to the wirelength of one run."""
    for r in recs:
        if not all(_has(r, "place", k) for k in ("placement__hpwl__global", "placement__hpwl__legal", "placement__hpwl")):
            continue
        stages = ("placement__hpwl__global", "placement__hpwl__legal", "placement__hpwl")
        g, legal, d = (_value(r, "place", k) for k in stages)
        b.add("place", "stages", design,
              f"Placing {design} with {describe(r['knobs'])}: how did the HPWL change from global placement through "
              f"legalisation to detailed placement?",
              f"Global {fmt(g)} um, legalised {fmt(legal)} um ({pct(g, legal)}), detailed {fmt(d)} um "
              f"({pct(legal, d)} from "
              f"legal). Legalisation removes overlaps at some wirelength cost; detailed placement wins part of it back.",
              [(r, "place", "placement__hpwl__global"), (r, "place", "placement__hpwl__legal"),
               (r, "place", "placement__hpwl")])
        if _has(r, "place", "placement__displacement__mean"):
            m = _value(r, "place", "placement__displacement__mean")
            b.add("place", "legal_displacement", design,
                  f"How far did legalisation move the cells of {design} placed with {describe(r['knobs'])}, on average?",
                  f"{fmt(m)} um per cell on average.", [(r, "place", "placement__displacement__mean")])


def _head_to_head(b: Builder, design: str, recs: list[dict]) -> None:
    """Two candidate settings (any knobs different): which one to pick for wirelength."""
    recs = [r for r in _unique_by_knobs(recs) if _has(r, "place", "placement__hpwl")]
    knobs = ("utilization", "target_density", "gamma")
    for a, c in itertools.combinations(recs, 2):
        if sum(a["knobs"][k] != c["knobs"][k] for k in knobs) < 2:
            continue  # one-knob pairs are the effect_* examples
        sa = ", ".join(f"{k.replace('_', ' ')} {a['knobs'][k]}" for k in knobs)
        sc = ", ".join(f"{k.replace('_', ' ')} {c['knobs'][k]}" for k in knobs)
        va, vc = _value(a, "place", "placement__hpwl"), _value(c, "place", "placement__hpwl")
        win = "A" if va <= vc else "B"
        b.add("place", "head_to_head", design,
              f"For {design}, which placement setting gives the shorter wirelength? A: {sa}. B: {sc}.",
              f"{win}: HPWL {fmt(va)} um for A vs {fmt(vc)} um for B ({pct(va, vc)} from A to B).",
              [(a, "place", "placement__hpwl"), (c, "place", "placement__hpwl")])


def derive_examples(records: list[dict], seed: int = 0) -> list[dict]:
    """All examples from the runs (only runs whose steps wrote metrics contribute)."""
    b = Builder(seed)
    by_design: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_design[r["design"]].append(r)
    for design, recs in sorted(by_design.items()):
        synth = [r for r in recs if r["group"] == "synth" and "synth" in r["metrics"]]
        fplan = [r for r in recs if r["group"] == "floorplan" and "floorplan" in r["metrics"]]
        place = [r for r in recs if r["group"] == "place" and "place" in r["metrics"]]
        timed = [r for r in recs if r["group"] in ("place", "clock", "full") and "timing" in r["metrics"]]
        full = [r for r in recs if r["group"] == "full"]

        # ---- synth
        s_keys = ("design__instance__count", "design__instance__area", "design__instance__count__sequential",
                  "design__net__count")
        _facts(b, "synth", design, synth, "synth", s_keys, "after synthesis")
        for key in ("design__instance__area", "design__instance__count"):
            _pairs(b, "synth", design, {(): synth}, "abc_script", "synth", [key], ())
        _rank(b, "synth", design, {(): synth}, "abc_script", "synth", "design__instance__area", ())
        _choose(b, "synth", design, synth, "synth", "design__instance__area", ("abc_script",))
        # ---- floorplan
        f_keys = ("floorplan__core__area_um2", "floorplan__die__area_um2", "floorplan__row__count",
                  "floorplan__core__width_um", "floorplan__core__height_um")
        _facts(b, "floorplan", design, fplan, "floorplan", f_keys, "after floorplanning")
        _pairs(b, "floorplan", design, _by(fplan, "aspect_ratio"), "utilization", "floorplan",
               ("floorplan__core__area_um2", "floorplan__row__count"), ("aspect_ratio",))
        _pairs(b, "floorplan", design, _by(fplan, "utilization"), "aspect_ratio", "floorplan",
               ("floorplan__core__width_um", "floorplan__row__count"), ("utilization",))
        _rank(b, "floorplan", design, _by(fplan, "aspect_ratio"), "utilization", "floorplan",
              "floorplan__die__area_um2", ("aspect_ratio",))
        # ---- placement
        p_keys = ("placement__hpwl", "placement__overflow", "placement__hpwl__global", "placement__iterations")
        _facts(b, "place", design, place, "place", p_keys, "after placement")
        for knob, fixed in (("target_density", ("utilization", "gamma")), ("gamma", ("utilization", "target_density")),
                            ("utilization", ("target_density", "gamma"))):
            groups = _by(place, *fixed)
            _pairs(b, "place", design, groups, knob, "place", ("placement__hpwl", "placement__overflow"), fixed)
            _rank(b, "place", design, groups, knob, "place", "placement__hpwl", fixed)
            _pairs(b, "place", design, groups, knob, "route", ("route__rudy__max",), fixed)
        _threshold(b, "place", design, place, "place", "placement__overflow", 0.1, True,
                   "the usual stop target for global placement")
        for recs_u in _by(place, "utilization").values():
            _choose(b, "place", design, recs_u, "place", "placement__hpwl", ("utilization", "target_density", "gamma"))
            _choose(b, "place", design, recs_u, "place", "placement__hpwl", ("utilization", "target_density", "gamma"),
                    constraint=("route", "route__rudy__max", 1.0))
        _facts(b, "place", design, place, "route", ("route__rudy__max", "route__rudy__overflow"), "after placement")
        _place_stages(b, design, place)
        _head_to_head(b, design, place)
        _congestion(b, design, place + full)
        # ---- routing (detailed)
        routed = [r for r in full if "route__wirelength" in r["metrics"].get("route", {})]
        _facts(b, "route", design, routed, "route",
               ("route__wirelength", "route__via__count", "route__net__unrouted", "route__rudy__max"), "after routing")
        for r in routed:
            if _has(r, "place", "placement__hpwl"):
                wl, hp = _value(r, "route", "route__wirelength"), _value(r, "place", "placement__hpwl")
                b.add("route", "route_vs_hpwl", design,
                      f"{design} with {describe(r['knobs'])}: how does the routed wirelength compare with the placement HPWL?",
                      f"Routed {fmt(wl)} um vs HPWL {fmt(hp)} um: a ratio of {wl / hp:.2f}.",
                      [(r, "route", "route__wirelength"), (r, "place", "placement__hpwl")])
            per = r["metrics"]["route"].get("route__wirelength__per_layer") or {}
            if per:
                top = max(per, key=per.get)
                b.add("route", "layer_usage", design,
                      f"Which metal layer carries the most wire in {design} routed with {describe(r['knobs'])}?",
                      f"{top}, with {fmt(per[top])} um of {fmt(_value(r, 'route', 'route__wirelength'))} um.", [(r, "route", "route__wirelength")])
        _pairs(b, "route", design, _by(routed, "target_density", "gamma", "clock_ns"), "utilization", "route",
               ("route__wirelength", "route__via__count"), ("target_density", "gamma", "clock_ns"))
        # ---- timing
        t_keys = ("timing__setup__ws", "timing__setup__tns", "timing__fmax_mhz", "power__total")
        _facts(b, "timing", design, timed, "timing", t_keys, "after timing analysis")
        unrouted = [r for r in timed if r["group"] in ("place", "clock")]
        _pairs(b, "timing", design, _by(unrouted, "utilization", "target_density", "gamma"), "clock_ns", "timing",
               ("timing__setup__ws", "power__total"), ("utilization", "target_density", "gamma"))
        _pairs(b, "timing", design, _by([r for r in timed if r["group"] == "place"], "target_density", "gamma", "clock_ns"),
               "utilization", "timing", ("timing__fmax_mhz",), ("target_density", "gamma", "clock_ns"))
        for r in timed:
            if _has(r, "timing", "timing__setup__ws") and "clock_ns" in r["knobs"]:
                ws = _value(r, "timing", "timing__setup__ws")
                b.add("timing", "meets_clock", design,
                      f"Does {design} meet its {r['knobs']['clock_ns']} ns clock with {describe(r['knobs'])}?",
                      (f"Yes: worst setup slack is {fmt(ws)} ns" if ws >= 0 else f"No: worst setup slack is {fmt(ws)} ns, "
                       "so some paths are too slow; relax the clock or improve placement") + ".",
                      [(r, "timing", "timing__setup__ws")])
        # ---- gds
        gds = [r for r in full if "gds" in r["metrics"]]
        _facts(b, "gds", design, gds, "gds", ("gds__instance__count", "gds__file_bytes"), "after GDSII generation")
        for r in gds:
            if _has(r, "gds", "gds__instance__count") and _has(r, "synth", "design__instance__count"):
                n_gds, n_syn = _value(r, "gds", "gds__instance__count"), _value(r, "synth", "design__instance__count")
                b.add("gds", "gds_vs_netlist", design,
                      f"Does the GDSII of {design} ({describe(r['knobs'])}) contain every synthesised cell?",
                      f"{'Yes' if n_gds >= n_syn else 'No'}: the GDSII has {fmt(n_gds)} cell instances for "
                      f"{fmt(n_syn)} synthesised cells.",
                      [(r, "gds", "gds__instance__count"), (r, "synth", "design__instance__count")])
        # ---- verify
        ver = [r for r in recs if "verify" in r["metrics"]]
        _facts(b, "verify", design, _unique_by_knobs(ver), "verify",
               ("verify__mismatch__count", "verify__tests__count"), "after gate-level simulation")
        for r in _unique_by_knobs(ver):
            if _has(r, "verify", "verify__mismatch__count"):
                mm = _value(r, "verify", "verify__mismatch__count")
                b.add("verify", "verify_pass", design,
                      f"Does the gate-level netlist of {design} ({describe(r['knobs'])}) behave like the RTL in its testbench?",
                      ("Yes: 0 mismatching output lines" if mm == 0 else f"No: {fmt(mm)} output lines differ")
                      + " between gate-level and RTL simulation.",
                      [(r, "verify", "verify__mismatch__count")])
    return b.examples


# ================================================================================================ 4. write
def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def deduplicate(examples: list[dict]) -> list[dict]:
    seen, out = set(), []
    for ex in examples:
        k = normalise(ex["instruction"])
        if k not in seen:
            seen.add(k)
            ex["id"] = hashlib.sha1(k.encode()).hexdigest()[:12]
            out.append(ex)
    return out


def split_designs(designs: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """design -> split; every split that can have a design gets at least one, no design is in two splits."""
    names = sorted(set(designs))
    random.Random(seed).shuffle(names)
    n = len(names)
    if n == 1:
        return {names[0]: "train"}
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n)) if n >= 3 and fractions[2] > 0 else 0
    n_train = max(1, n - n_val - n_test)
    out = {}
    for i, name in enumerate(names):
        out[name] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return out


def data_card(examples: list[dict], records: list[dict], split_of: dict[str, str], cfg: DatagenConfig,
              seconds: float) -> dict:
    per_phase = Counter(e["phase"] for e in examples)
    per_type = Counter(f"{e['phase']}/{e['type']}" for e in examples)
    samples: dict[str, list[dict]] = {}
    rng = random.Random(cfg.seed)
    for phase in PHASES:
        pool = [e for e in examples if e["phase"] == phase]
        samples[phase] = [{k: e[k] for k in ("design", "type", "instruction", "answer", "run_ids")}
                          for e in rng.sample(pool, min(2, len(pool)))]
    return {
        "total": len(examples),
        "splits": dict(Counter(e["split"] for e in examples)),
        "designs_per_split": {s: sorted(d for d, sp in split_of.items() if sp == s) for s in ("train", "val", "test")},
        "per_phase": {p: per_phase.get(p, 0) for p in PHASES},
        "per_type": dict(sorted(per_type.items())),
        "runs": {"total": len(records), "done": sum(r["status"] == "done" for r in records),
                 "failed": sum(r["status"] == "failed" for r in records),
                 "per_group": dict(Counter(r["group"] for r in records)),
                 "failures": [{"run_id": r["run_id"], "design": r["design"], "step": r.get("failed_step"),
                               "error": (r.get("error") or "")[:200]} for r in records if r["status"] == "failed"][:20]},
        "seconds": round(seconds, 1),
        "config": cfg.to_dict(),
        "samples": samples,
        "format": "JSONL, one example per line: instruction, answer, phase, type, design, split, run_id, run_ids, "
                  "uses (run_id, step, key, value of every metric the answer states), id",
    }


def card_markdown(card: dict) -> str:
    lines = ["# Training data card", "",
             f"{card['total']} instruction/answer examples computed from {card['runs']['done']} engine runs "
             f"({card['runs']['failed']} failed runs contribute only their finished steps).", "",
             "| split | examples | designs |", "|---|---:|---|"]
    for s in ("train", "val", "test"):
        lines.append(f"| {s} | {card['splits'].get(s, 0)} | {', '.join(card['designs_per_split'][s])} |")
    lines += ["", "| phase | examples |", "|---|---:|"] + [f"| {p} | {n} |" for p, n in card["per_phase"].items()]
    lines += ["", "| phase/type | examples |", "|---|---:|"] + [f"| {t} | {n} |" for t, n in card["per_type"].items()]
    lines += ["", "## Samples", ""]
    for phase, exs in card["samples"].items():
        for e in exs:
            lines += [f"**{phase} / {e['type']}** ({e['design']})", "", "> " + e["instruction"].replace("\n", "\n> "),
                      "", e["answer"], ""]
    if card.get("verify"):
        v = card["verify"]
        lines += ["## Verification", "", f"{v['checked_runs']} runs re-run from their saved configs; "
                  f"{v['checked_examples']} examples checked; {v['mismatches']} mismatches.", ""]
    return "\n".join(lines) + "\n"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def generate_dataset(cfg: DatagenConfig | None = None, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> dict:
    """Plan, run, derive, split, write; returns the data card (also in out_dir/card.json and card.md)."""
    cfg = cfg or DatagenConfig()
    t0 = time.time()
    if cfg.until not in PHASES:
        raise TrainError(f"until={cfg.until!r} is not a flow step", hint=f"one of {', '.join(PHASES)}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    designs = design_names(cfg)
    specs = plan_runs(cfg, designs)
    log.info("datagen: %d designs, %d engine runs planned", len(designs), len(specs))
    if progress is not None:
        progress(0.0, f"{len(specs)} engine runs planned over {len(designs)} designs")
    records = execute_runs(specs, cfg, progress, cancel)
    (out / "runs.json").write_text(json.dumps({"runs_dir": str(Path(cfg.runs_dir).resolve()), "runs": records},
                                              indent=None))
    cancelled = cancel is not None and cancel()
    examples = deduplicate(derive_examples(records, cfg.seed))
    if not examples and cancelled:
        log.info("datagen cancelled after %d runs; no examples yet", len(records))
        return {"state": "cancelled", "total": 0, "runs": {"total": len(records)}}
    if not examples:
        failed = [r for r in records if r["status"] == "failed"]
        hint = failed[0]["error"] if failed else "check the designs"
        raise TrainError(f"no examples could be derived from {len(records)} runs", hint=str(hint)[:300])
    split_of = split_designs([r["design"] for r in records], cfg.split, cfg.seed)
    for ex in examples:
        ex["split"] = split_of[ex["design"]]
    _write_jsonl(out / "all.jsonl", examples)
    for s in ("train", "val", "test"):
        _write_jsonl(out / f"{s}.jsonl", [e for e in examples if e["split"] == s])
    card = data_card(examples, records, split_of, cfg, time.time() - t0)
    card["state"] = "cancelled" if cancelled else "done"
    if cfg.verify_sample > 0 and not cancelled:
        if progress is not None:
            progress(0.92, f"verifier: re-running {cfg.verify_sample} runs")
        card["verify"] = {k: v for k, v in verify_dataset(out, sample=cfg.verify_sample, seed=cfg.seed).items()
                          if k != "details"}
    write_json(out / "card.json", card, indent=1)
    (out / "card.md").write_text(card_markdown(card))
    if progress is not None:
        progress(1.0, f"{card['total']} examples written to {out}")
    log.info("datagen: %d examples (%s) in %.0f s", card["total"], card["per_phase"], time.time() - t0)
    return card


# =============================================================================================== verify
def _close(a, b, rel: float) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rel, atol=0.011)
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
        return a == b
    return abs(float(a) - float(b)) <= rel * max(abs(float(a)), abs(float(b)), 1e-12)


def check_examples(examples: list[dict], records_by_id: dict[str, dict]) -> list[dict]:
    """Mismatches between what examples state and their runs' stored metrics (should be empty)."""
    problems = []
    for ex in examples:
        for u in ex["uses"]:
            rec = records_by_id.get(u["run_id"])
            if rec is None:
                problems.append({"id": ex.get("id"), "problem": f"run {u['run_id']} unknown"})
                continue
            try:
                stored = _value(rec, u["step"], u["key"])
            except KeyError:
                problems.append({"id": ex.get("id"), "problem": f"{u['key']} missing in run {u['run_id']}"})
                continue
            if stored != u["value"]:
                problems.append({"id": ex.get("id"), "problem": f"{u['key']}: example says {u['value']}, run has {stored}"})
            elif u["key"] != "congestion_grid" and isinstance(stored, (int, float)) and not isinstance(stored, bool):
                if fmt(stored) not in ex["answer"] and ex["type"] not in ("layer_usage",):
                    problems.append({"id": ex.get("id"), "problem": f"{u['key']}={fmt(stored)} not in the answer"})
    return problems


def verify_dataset(data_dir: str | Path, sample: int = 5, seed: int = 0, rerun: bool = True,
                   rel_tol: float = 1e-6, place_tol: float = 0.05) -> dict:
    """Check every example against the stored runs, then re-run ``sample`` runs from their saved configs (no step
    reuse) and compare the metrics the examples state. Returns a report (mismatches should be 0).

    Synthesis, floorplan and simulation are deterministic and must agree to ``rel_tol``. The placer is not bit
    for bit reproducible from one process to the next (float32 reductions, Nesterov step control), so numbers
    downstream of placement must agree to ``place_tol`` (relative; iteration counts are reported, not judged);
    the report gives the largest relative difference per metric so the spread stays visible.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "all.jsonl").is_file() or not (data_dir / "runs.json").is_file():
        raise TrainError(f"{data_dir} is not a generated data set (all.jsonl and runs.json missing)",
                         hint="run `cda train data` first")
    from engine.train.tinymodel import read_jsonl

    examples = read_jsonl(data_dir / "all.jsonl")
    saved = json.loads((data_dir / "runs.json").read_text())
    by_id = {r["run_id"]: r for r in saved["runs"]}
    problems = check_examples(examples, by_id)
    details: list[dict] = list(problems)
    used_runs = sorted({u["run_id"] for ex in examples for u in ex["uses"]})
    chosen = random.Random(seed).sample(used_runs, min(sample, len(used_runs))) if rerun else []
    checked_examples = 0
    spread: dict[str, float] = {}
    for run_id in chosen:
        rec = by_id[run_id]
        spec = RunSpec(**{k: tuple(v) if k == "steps" else v for k, v in rec["spec"].items()})
        fresh = run_spec(spec, str(data_dir / "verify_runs"), rec.get("place_iterations", 0), reuse=False)
        for ex in examples:
            for u in ex["uses"]:
                if u["run_id"] != run_id:
                    continue
                checked_examples += 1
                try:
                    now = _value(fresh, u["step"], u["key"])
                except KeyError:
                    details.append({"id": ex["id"], "run_id": run_id, "problem": f"{u['key']} missing on re-run"})
                    continue
                downstream = u["step"] in ("place", "route", "timing", "gds")
                if isinstance(now, (int, float)) and not isinstance(now, bool):
                    rel = abs(float(now) - float(u["value"])) / max(abs(float(u["value"])), 1e-12)
                    spread[u["key"]] = max(spread.get(u["key"], 0.0), round(rel, 6))
                if u["key"] == "placement__iterations":
                    continue
                if not _close(now, u["value"], place_tol if downstream else rel_tol):
                    details.append({"id": ex["id"], "run_id": run_id, "key": u["key"], "stated": u["value"],
                                    "rerun": now})
    report = {"checked_runs": len(chosen), "checked_examples": checked_examples, "static_problems": len(problems),
              "mismatches": len(details), "details": details[:50], "examples": len(examples),
              "tolerances": {"deterministic_steps": rel_tol, "placement_and_downstream": place_tol},
              "max_rel_diff": dict(sorted(spread.items()))}
    (data_dir / "verify.json").write_text(json.dumps(report, indent=1, default=str))
    log.info("verifier: %d examples checked statically (%d problems), %d runs re-run, %d mismatches",
             len(examples), len(problems), len(chosen), len(details))
    return report
