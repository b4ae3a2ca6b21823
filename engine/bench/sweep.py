"""Placement runs for the v2 data and benchmark: one design (a generated netlist or an example design), knob
settings and a placer seed in; HPWL, overflow, convergence, RUDY and density maps out.

Every placement goes through the real engine: ``engine.place.place`` (global placement, legalisation, detailed
placement) on a generated netlist (engine.place.generate) or on an example design floorplanned by the flow
(synth + floorplan, ``run_flow(until="floorplan")``, reused by the run store when repeated). Each placement is a
run in the run store (kind ``bench``, label ``bench2:<key>``) and a line in a journal next to it, so a generation
that is killed resumes where it stopped and a rerun with the same placer code costs nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

log = logging.getLogger(__name__)

SWEEP_VERSION = 1  # bump when what a measurement computes changes
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "bench" / "runs_v2"
SEEDS = (1, 2, 3)  # placer seeds behind every truth: the noise band comes from their spread
# The knobs a problem may change; defaults come from the config dataclasses (one place for each fact).
KNOB_NAMES = ("floorplan.utilization", "place.target_density", "place.gamma_base", "place.density_weight_init",
              "place.max_iterations")
CONVERGED_SLACK = 0.002  # overflow may exceed the target by this much at the stopping iteration


def knob_defaults() -> dict[str, Any]:
    from engine.config import FloorplanConfig
    from engine.place.config import PlaceConfig

    pc, fc = PlaceConfig(), FloorplanConfig()
    return {"floorplan.utilization": fc.utilization, "place.target_density": pc.target_density,
            "place.gamma_base": pc.gamma_base, "place.density_weight_init": pc.density_weight_init,
            "place.max_iterations": pc.max_iterations}


def knob_range(name: str) -> tuple[float, float]:
    """The registry's range for a knob; a conservative fallback while the registry is not there."""
    fallback = {"floorplan.utilization": (0.3, 0.85), "place.target_density": (0.5, 1.0),
                "place.gamma_base": (0.5, 16.0), "place.density_weight_init": (0.001, 10000.0),
                "place.max_iterations": (20, 3000)}
    try:
        from engine.registry import knob

        k = knob(name)
        if k.low is not None and k.high is not None:
            return float(k.low), float(k.high)
    except Exception:  # noqa: BLE001 - registry not built yet or knob unknown to it
        pass
    return fallback[name]


@dataclass(frozen=True)
class Design:
    """What is placed. ``family`` groups designs that share a generator recipe (splits hold out whole families)."""

    name: str
    family: str
    kind: str = "generated"  # generated | example
    n_cells: int = 0
    seed: int = 0
    n_macros: int = 0
    tail: float = 1.6  # Pareto shape of net lengths: lower = more long nets (higher Rent exponent)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Design:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self, n_cells: int | None = None) -> str:
        if self.kind == "example":
            return f"example design '{Path(self.name).name}', {n_cells or '?'} cells, synthesised by Yosys"
        nets = ("many long nets" if self.tail < 1.45 else "mostly local nets" if self.tail > 1.9
                else "typical net lengths")
        macros = f"{self.n_macros} fixed macros" if self.n_macros else "no macros"
        return f"generated netlist, {self.n_cells} cells, {macros}, {nets}"


def settings_full(settings: dict) -> dict:
    out = dict(knob_defaults())
    for k, v in (settings or {}).items():
        if k not in out:
            raise EngineError(f"unknown knob '{k}'; knobs are {', '.join(KNOB_NAMES)}")
        lo, hi = knob_range(k)
        v = float(v)
        if not (math.isfinite(v) and lo <= v <= hi):
            raise EngineError(f"{k} = {v:g} is out of range {lo:g}-{hi:g}")
        out[k] = int(round(v)) if k == "place.max_iterations" else round(v, 6)
    return out


PLACER_FILES = ("density.py", "detailed.py", "electrostatics.py", "generate.py", "global_place.py", "legalize.py",
                "metrics.py", "nesterov.py", "wirelength.py", "api.py")


def placer_fingerprint() -> str:
    """Identity of the placer a measurement depends on: its numerical code and its default knob values (not the
    source of config.py, so a doc or parsing change there does not invalidate thousands of measurements)."""
    from engine.place.config import PlaceConfig

    folder = Path(__file__).resolve().parents[1] / "place"
    h = hashlib.sha256(json.dumps(asdict(PlaceConfig()), sort_keys=True, default=str).encode())
    for name in PLACER_FILES:
        path = folder / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-") + b"\0")
    return h.hexdigest()[:12]


def measurement_key(design: Design, settings: dict, seed: int) -> str:
    """Identity of a measurement: what is placed, how, with which seed. The placer's code fingerprint is recorded
    with each measurement, not keyed on: a lint pass over engine/place must not throw away hours of placements;
    ``Sweeper(strict=True)`` re-runs measurements of another fingerprint, and the verifiers re-run samples."""
    blob = json.dumps({"v": SWEEP_VERSION, "design": design.to_dict(), "settings": settings_full(settings),
                       "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _alt_key(design_name: str, settings: dict, seed: int) -> str:
    """Index of journal lines written before the key changed (they carry the design name, settings and seed)."""
    return json.dumps([design_name, settings_full(settings), int(seed)], sort_keys=True)


def thirds(a: np.ndarray) -> list[list[float]]:
    """(bins, bins) map [i = x from west][j = y from south] -> 3 x 3 means, rows north to south."""
    b = a.shape[0]
    edges = [0, b // 3, b - b // 3, b]
    out = []
    for r in (2, 1, 0):  # north first
        row = []
        for c in range(3):
            block = a[edges[c]:edges[c + 1], edges[r]:edges[r + 1]]
            row.append(round(float(block.mean()), 4))
        out.append(row)
    return out


class Sweeper:
    """Measures (design, settings, seed) placements through the engine, cached by the journal and the run store."""

    def __init__(self, root: str | Path | None = None, store=None, strict: bool = False):
        from engine.runs import RunStore

        self.strict = strict
        self.root = Path(root or DEFAULT_ROOT)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store or RunStore(self.root / "runs")
        self.journal = self.root / "measurements.jsonl"
        self.placer = placer_fingerprint()
        self.cache: dict[str, dict] = {}
        self._old: dict[str, dict] = {}  # journal lines of the earlier key scheme, by design name/settings/seed
        self._lock = threading.Lock()
        self._netlists: dict[tuple, Any] = {}
        self.new_runs = 0
        if self.journal.is_file():
            for line in self.journal.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("keyv") == 2:
                    self.cache[rec["key"]] = rec
                else:
                    try:
                        self._old[_alt_key(rec["design"], rec["settings"], rec["seed"])] = rec
                    except (KeyError, EngineError):
                        continue

    # ------------------------------------------------------------------ public
    def _lookup(self, design: Design, full: dict, seed: int, key: str) -> dict | None:
        rec = self.cache.get(key) or self._old.get(_alt_key(design.name, full, seed))
        if rec is not None and self.strict and rec.get("placer") != self.placer:
            return None
        return rec

    def measure(self, design: Design, settings: dict, seed: int = 1) -> dict:
        full = settings_full(settings)
        key = measurement_key(design, full, seed)
        found = self._lookup(design, full, seed, key)
        if found is not None:
            return found
        rec = self._run(design, full, seed, key)
        with self._lock:
            self.cache[key] = rec
            with self.journal.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
        self.new_runs += 1
        return rec

    def seeds(self, design: Design, settings: dict, seeds=SEEDS) -> list[dict]:
        return [self.measure(design, settings, s) for s in seeds]

    def cached(self, design: Design, settings: dict, seed: int = 1) -> dict | None:
        full = settings_full(settings)
        return self._lookup(design, full, seed, measurement_key(design, full, seed))

    # ------------------------------------------------------------------ internals
    def _netlist(self, design: Design, util: float):
        if design.kind == "generated":
            from engine.place.generate import generate_netlist

            return generate_netlist(design.n_cells, utilization=util, seed=design.seed, n_macros=design.n_macros,
                                    tail=design.tail, name=design.name)
        if design.kind != "example":
            raise EngineError(f"unknown design kind '{design.kind}' (generated or example)")
        cache_key = (design.name, util)
        if cache_key not in self._netlists:
            from engine.designs import resolve
            from engine.flow.flow import run_flow
            from engine.io.def_io import read_def
            from engine.pdk import load_pdk

            spec = resolve(design.name)
            cfg = spec.flow_config()
            cfg.floorplan.utilization = util
            run = run_flow(cfg, self.store, until="floorplan", label=f"bench2-floorplan:{design.name}")
            info = run.info()
            if info["status"] != "done":
                raise EngineError(f"floorplan of {design.name} failed at {info.get('failed_step')}: "
                                  f"{info.get('error')}", hint=f"see the run folder {run.dir}")
            self._netlists[cache_key] = read_def(run.step_dir("floorplan", create=False) / "floorplan.def",
                                                 load_pdk(cfg.tech_dir))
        return self._netlists[cache_key].copy()

    def _run(self, design: Design, settings: dict, seed: int, key: str) -> dict:
        from engine.place import PlaceConfig, place
        from engine.place import metrics as pm
        from engine.place.global_place import core_box
        from engine.runs import write_json

        run = self.store.create({"design": design.to_dict(), "settings": settings, "seed": seed,
                                 "sweep_version": SWEEP_VERSION, "placer": self.placer},
                                design=design.name, kind="bench", label=f"bench2:{key}", origin="bench")
        run.set_status("running")
        t0 = time.perf_counter()
        try:
            netlist = self._netlist(design, settings["floorplan.utilization"])
            cfg = PlaceConfig(target_density=settings["place.target_density"],
                              gamma_base=settings["place.gamma_base"],
                              density_weight_init=settings["place.density_weight_init"],
                              max_iterations=int(settings["place.max_iterations"]),
                              min_iterations=min(20, int(settings["place.max_iterations"])),
                              seed=int(seed), frame_every=0, num_threads=1)
            res = place(netlist, cfg)
            out = res.netlist
            core = core_box(netlist)
            rudy = pm.rudy_map(out, core, pm.SUMMARY_BINS, out.x, out.y)
            dens = pm.density_map(out, core, pm.SUMMARY_BINS, out.x, out.y)
            m = res.metrics
            iters = int(m["placement__iterations"])
            overflow = float(m["placement__overflow"])
            metrics = {
                "design__instance__count": int(netlist.n_movable),
                "design__macro__count": int(np.sum(np.asarray(netlist.cell_fixed) & ~np.asarray(netlist.cell_is_io))),
                "placement__hpwl": float(m["placement__hpwl"]),
                "placement__hpwl__global": float(m["placement__hpwl__global"]),
                "placement__overflow": overflow,
                "placement__iterations": iters,
                "placement__converged": bool(iters < cfg.max_iterations
                                             and overflow <= cfg.target_overflow + CONVERGED_SLACK),
                "placement__target_overflow": cfg.target_overflow,
                "placement__displacement__mean": float(m.get("placement__displacement__mean", 0.0)),
                **pm.rudy_summary(rudy),
                "placement__density__max": round(float(dens.max()), 4),
                "placement__runtime_s": round(time.perf_counter() - t0, 3),
            }
            rec = {"key": key, "keyv": 2, "placer": self.placer, "run_id": run.id, "design": design.name,
                   "seed": seed, "settings": settings,
                   "metrics": metrics, "rudy3": thirds(rudy), "density3": thirds(dens)}
            write_json(run.step_dir("place") / "metrics.json", metrics)
            write_json(run.step_dir("place") / "bench2.json", {**rec, "rudy": np.round(rudy, 4).tolist()})
            run.set_status("done")
        except EngineError as exc:
            run.set_status("failed", error=exc.message)
            raise
        except Exception as exc:  # noqa: BLE001 - a placer failure becomes a message naming the run
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise EngineError(f"bench run {run.id} ({design.name}, {settings}, seed {seed}): placement failed: "
                              f"{exc}") from exc
        return rec


# ---------------------------------------------------------------------- statistics over seeds
def seed_stats(recs: list[dict], metric: str) -> dict:
    vals = [float(r["metrics"][metric]) for r in recs]
    return {"mean": float(np.mean(vals)), "min": min(vals), "max": max(vals), "values": vals}


def noise_band(a: dict, b: dict, floor: float) -> float:
    """Relative band within which a change is not claimed: the larger seed-to-seed range of the two settings,
    relative to the reference mean, and never below the metric's own noise floor."""
    ref = max(abs(a["mean"]), 1e-12)
    return max(floor, (a["max"] - a["min"]) / ref, (b["max"] - b["min"]) / ref)
