"""The benchmark's ground truth: place one netlist with given knob values and measure what the problems ask about.

A *source* is an example design (synthesised and floorplanned by the flow, synthesis reused between runs) or a
synthetic netlist from ``engine.place.generate``. *Settings* are flat knob values with dotted names
(``floorplan.utilization``, ``place.target_density`` ...). Every measurement is a run of kind ``bench`` in the run
store, so each truth in the problem file names the run that computed it.

Placement here is global placement (the ePlace loop of ``engine.place``) with a fixed seed: it is deterministic on
one machine, and it is the part of placement the knobs steer. RUDY is computed on a 16 x 16 grid over the core.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

log = logging.getLogger(__name__)

MEASURE_VERSION = 2  # bump when what measure() computes changes: stored truths then need `cda bench build`
PLACER_FILES = ("config.py", "density.py", "electrostatics.py", "generate.py", "global_place.py", "metrics.py",
                "nesterov.py", "wirelength.py")
RUDY_BINS = 16

# Knobs a problem may set, with their defaults and the range a proposal must stay in.
KNOBS: dict[str, dict[str, Any]] = {
    "floorplan.utilization": {"default": 0.6, "lo": 0.3, "hi": 0.9,
                              "doc": "cell area / core area; lower leaves more room between cells"},
    "floorplan.aspect_ratio": {"default": 1.0, "lo": 0.5, "hi": 2.0,
                               "doc": "core height / core width (example designs only)"},
    "place.target_density": {"default": 0.9, "lo": 0.5, "hi": 1.0,
                             "doc": "bin density the spreading aims at"},
    "place.density_weight_init": {"default": 10.0, "lo": 1e-3, "hi": 1e4,
                                  "doc": "initial density weight; higher spreads cells sooner"},
    "place.gamma_base": {"default": 4.0, "lo": 0.5, "hi": 16.0,
                         "doc": "wirelength smoothing; lower is closer to HPWL but harder to optimise"},
    "place.max_iterations": {"default": 400, "lo": 20, "hi": 1000,
                             "doc": "iteration budget of global placement"},
}
# Knobs an answer may propose in an "act" problem (the iteration budget is part of the problem, not a proposal).
PROPOSABLE = ("floorplan.utilization", "place.target_density", "place.density_weight_init", "place.gamma_base")


@dataclass
class Source:
    """What is placed: an example design, or a synthetic netlist (cells, seed)."""

    kind: str  # "design" or "generated"
    name: str  # example design name, or a label for the generated netlist
    n_cells: int = 0  # generated only
    seed: int = 0  # generated only
    n_macros: int = 0  # generated only: fixed blocks in the core (they make off-centre hot spots)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "n_cells": self.n_cells, "seed": self.seed,
                "n_macros": self.n_macros}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        return cls(kind=d["kind"], name=d["name"], n_cells=int(d.get("n_cells", 0)), seed=int(d.get("seed", 0)),
                   n_macros=int(d.get("n_macros", 0)))

    def describe(self) -> str:
        if self.kind == "design":
            return f"the example design '{self.name}'"
        macros = f" and {self.n_macros} fixed macros" if self.n_macros else ""
        return f"a synthetic netlist '{self.name}' of {self.n_cells} cells{macros} (seed {self.seed})"


def normalize_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Full settings (defaults filled in), values checked against KNOBS; unknown knobs are an error."""
    out = {k: v["default"] for k, v in KNOBS.items()}
    for k, v in (settings or {}).items():
        if k not in KNOBS:
            raise EngineError(f"unknown knob '{k}'; knobs are {', '.join(KNOBS)}")
        try:
            val = float(v)
        except (TypeError, ValueError):
            raise EngineError(f"knob '{k}' needs a number, not {v!r}") from None
        if not math.isfinite(val):
            raise EngineError(f"knob '{k}' is not a finite number")
        lo, hi = KNOBS[k]["lo"], KNOBS[k]["hi"]
        if not lo <= val <= hi:
            raise EngineError(f"knob '{k}' = {val:g} is outside {lo:g}..{hi:g}")
        out[k] = int(round(val)) if k == "place.max_iterations" else round(val, 6)
    return out


def placer_fingerprint() -> str:
    """Hash of the placer code the truth depends on: a different value means the truths may be stale."""
    folder = Path(__file__).resolve().parents[1] / "place"
    h = hashlib.sha256()
    for name in PLACER_FILES:
        path = folder / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-") + b"\0")
    return h.hexdigest()[:12]


def measurement_key(source: Source, settings: dict[str, Any], placer: str = "") -> str:
    """Identity of a measurement: the source, the full settings, and the placer code that places it."""
    blob = json.dumps({"v": MEASURE_VERSION, "placer": placer or placer_fingerprint(), "source": source.to_dict(),
                       "settings": normalize_settings(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compass(i: int, j: int, bins: int = RUDY_BINS) -> str:
    """Region of bin (i = column from the west, j = row from the south) on a 3 x 3 split of the core."""
    col = ("west", "", "east")[min(2, 3 * i // bins)]
    row = ("south", "", "north")[min(2, 3 * j // bins)]
    if not row and not col:
        return "center"
    return f"{row}-{col}" if row and col else (row or col)


@dataclass
class Measurement:
    """What one placement gives: the numbers problems are about, and the run that computed them."""

    key: str
    run_id: str
    metrics: dict[str, Any]
    rudy: list[list[float]] = field(default_factory=list)  # (bins, bins) RUDY map, [i][j] with i along x

    def to_dict(self) -> dict:
        return {"key": self.key, "run_id": self.run_id, "metrics": self.metrics}


class Measurer:
    """Places sources with settings through the engine, one bench run per new (source, settings) pair.

    Results are cached in memory and by key in the run store index (the run's label), so a build that is
    interrupted and restarted, or a scorer re-checking a proposal, does not place the same thing twice.
    """

    def __init__(self, store=None, use_store_cache: bool = True):
        from engine.runs import RunStore

        self.store = store or RunStore()
        self.use_store_cache = use_store_cache
        self.cache: dict[str, Measurement] = {}
        self._pdk = None
        self._labels: dict[str, str] | None = None  # run label -> run id of finished bench runs
        self.placer = placer_fingerprint()  # measurements of another placer version are never reused

    # ------------------------------------------------------------------ public
    def measure(self, source: Source, settings: dict[str, Any]) -> Measurement:
        full = normalize_settings(settings)
        key = measurement_key(source, full, self.placer)
        if key in self.cache:
            return self.cache[key]
        if self.use_store_cache:
            found = self._from_store(key)
            if found is not None:
                self.cache[key] = found
                return found
        m = self._run(source, full, key)
        self.cache[key] = m
        return m

    # ------------------------------------------------------------------ internals
    def _from_store(self, key: str) -> Measurement | None:
        from engine.runs import read_json

        if self._labels is None:
            self._labels = {row["label"]: row["id"] for row in self.store.list(limit=1_000_000, kind="bench")
                            if row.get("status") == "done" and row.get("label")}
        run_id = self._labels.get(f"bench:{key}")
        if run_id is None:
            return None
        run = self.store.get(run_id)
        data = read_json(run.step_dir("place", create=False) / "bench.json")
        if data and data.get("key") == key:
            return Measurement(key=key, run_id=run.id, metrics=data["metrics"], rudy=data.get("rudy", []))
        return None

    def _pdk_loaded(self):
        if self._pdk is None:
            from engine.pdk import load_pdk

            self._pdk = load_pdk()
        return self._pdk

    def _netlist(self, source: Source, settings: dict[str, Any], run) -> Any:
        util = settings["floorplan.utilization"]
        if source.kind == "generated":
            from engine.place.generate import generate_netlist

            return generate_netlist(source.n_cells, utilization=util, seed=source.seed, n_macros=source.n_macros,
                                    name=source.name)
        if source.kind != "design":
            raise EngineError(f"unknown source kind '{source.kind}' (design or generated)")
        from engine.config import FloorplanConfig, FlowConfig
        from engine.designs import resolve
        from engine.flow.flow import run_flow
        from engine.io.def_io import read_def

        spec = resolve(source.name)
        cfg = FlowConfig(design_files=spec.files, top=spec.top, clock_port=spec.clock_port, clock_ns=spec.clock_ns,
                         floorplan=FloorplanConfig(utilization=util, aspect_ratio=settings["floorplan.aspect_ratio"]))
        run_flow(cfg, self.store, until="floorplan", run=run)
        info = run.info()
        if info["status"] != "done":
            raise EngineError(f"bench run {run.id}: the flow failed at {info.get('failed_step')}: {info.get('error')}")
        run.set_status("running")
        return read_def(run.step_dir("floorplan", create=False) / "floorplan.def", self._pdk_loaded())

    def _run(self, source: Source, settings: dict[str, Any], key: str) -> Measurement:
        from engine.place import metrics as pm
        from engine.place.config import PlaceConfig
        from engine.place.global_place import GlobalPlacer, core_box
        from engine.runs import write_json

        run = self.store.create({"source": source.to_dict(), "settings": settings, "measure_version": MEASURE_VERSION,
                                 "placer": self.placer},
                                design=source.name, kind="bench", label=f"bench:{key}", origin="bench")
        run.set_status("running")
        try:
            netlist = self._netlist(source, settings, run)
            pcfg = PlaceConfig(target_density=settings["place.target_density"],
                               density_weight_init=settings["place.density_weight_init"],
                               gamma_base=settings["place.gamma_base"],
                               max_iterations=int(settings["place.max_iterations"]),
                               frame_every=0, legalize=False, detailed=False, seed=1, num_threads=1)
            result = GlobalPlacer(netlist, pcfg).run()
            core = core_box(netlist)
            rudy = pm.rudy_map(netlist, core, RUDY_BINS, result.x, result.y)
            i, j = (int(v) for v in np.unravel_index(int(np.argmax(rudy)), rudy.shape))
            bw, bh = (core[2] - core[0]) / RUDY_BINS, (core[3] - core[1]) / RUDY_BINS
            metrics = {
                "design__instance__count": int(netlist.n_movable),
                "design__core__area_um2": round((core[2] - core[0]) * (core[3] - core[1]), 3),
                "placement__hpwl": round(float(result.hpwl), 3),
                "placement__overflow": round(float(result.overflow), 5),
                "placement__iterations": int(result.iterations),
                "placement__rudy__max": round(float(rudy.max()), 5),
                "placement__rudy__mean": round(float(rudy.mean()), 5),
                "placement__rudy__hot_bin": [i, j],
                "placement__rudy__hot_region": compass(i, j),
                "placement__rudy__hot_xy_um": [round(core[0] + (i + 0.5) * bw, 2), round(core[1] + (j + 0.5) * bh, 2)],
            }
            rudy_list = np.round(rudy, 5).tolist()
            write_json(run.step_dir("place") / "bench.json", {"key": key, "metrics": metrics, "rudy": rudy_list})
            write_json(run.step_dir("place") / "metrics.json", metrics)
            run.set_status("done")
        except EngineError as exc:
            run.set_status("failed", error=exc.message)
            raise
        except Exception as exc:  # noqa: BLE001 - a placer failure becomes a clear message with the run id
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise EngineError(f"bench run {run.id} ({source.describe()}): placement failed: {exc}") from exc
        log.info("measured %s %s -> HPWL %.1f overflow %.3f (run %s)", source.name, key, metrics["placement__hpwl"],
                 metrics["placement__overflow"], run.id)
        return Measurement(key=key, run_id=run.id, metrics=metrics, rudy=rudy_list)
