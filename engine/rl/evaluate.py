"""One evaluation = one real flow run with a knob setting; many at once as Ray tasks.

Each evaluation is an ordinary flow run in the run store (``run_flow(config, store, until=...)``), so its layout,
logs and metrics can be opened like any other run. Synthesis is shared through the store's step cache (a step
whose inputs and config are identical is copied, not re-run), so an agent that keeps the synthesis knobs pays
only for floorplan, placement and timing.

Parallel evaluation goes through Ray: ``ray.init()`` on this machine with its cores by default, or a cluster
address from EvalConfig. With ``parallel == 1`` evaluations run one after another in this process (no Ray),
which is also the serial reference of the speed-up benchmark.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import FlowConfig
from engine.errors import EngineError
from engine.runs import RunStore, classify_origin, started_by

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_place_overrides() -> dict[str, Any]:
    return {"frame_every": 50}


@dataclass
class EvalConfig:
    until: str = "timing"  # last flow step of an evaluation: timing (default: routed, timed, powered), or cheaper
    # floorplan/place/route, whose rewards cannot see routability or timing
    parallel: int = 1  # evaluations at once; 1 = serial in this process, >1 = Ray tasks
    ray_address: str | None = None  # Ray cluster address ("auto", "ray://host:10001"); None = start one locally
    ray_num_cpus: int = 0  # CPUs of a locally started Ray; 0 = the machine's cores
    place_overrides: dict[str, Any] = field(default_factory=_default_place_overrides)  # PlaceConfig fields set
    # for every evaluation (e.g. a small max_iterations for quick tests); knobs the agent turns win over them
    reuse: bool = True  # reuse identical steps from earlier runs (synthesis per strategy, repeated settings)

    def __post_init__(self) -> None:
        from engine.flow.registry import STEP_IDS

        if self.until not in STEP_IDS:
            raise EngineError(f"--until '{self.until}' is not a step; steps are {', '.join(STEP_IDS)}")
        if self.until == "synth":
            raise EngineError("--until synth leaves nothing to tune but synthesis: use floorplan or later")
        if int(self.parallel) < 1:
            raise EngineError(f"--parallel must be at least 1 (got {self.parallel})")


def evaluate_config(config: dict, runs_root: str, until: str, label: str = "", cancel_file: str | None = None,
                    reuse: bool = True) -> dict:
    """Run the flow for one knob setting and report what happened. Never raises for a failing flow.

    Returns {run_id, status, error, failed_step, metrics (all steps, flat), started, ended, seconds, pid}.
    """
    from engine.flow.flow import run_flow

    started = time.time()
    cancel = (lambda: Path(cancel_file).exists()) if cancel_file else None
    out: dict[str, Any] = {"run_id": None, "status": "failed", "error": None, "failed_step": None, "metrics": {},
                           "started": started, "pid": os.getpid()}
    try:
        store = RunStore(runs_root)
        with started_by("optimize", parent=classify_origin({"label": label})[1]):  # an evaluation, not a user run
            run = run_flow(FlowConfig.from_dict(config), store, until=until, cancel=cancel, reuse=reuse, label=label)
        info = run.info()
        out.update(run_id=run.id, status=info["status"], error=info.get("error"),
                   failed_step=info.get("failed_step"), metrics=run.flat_metrics())
    except EngineError as exc:
        out.update(error=exc.message)
    except Exception as exc:  # noqa: BLE001 - an evaluation must never take the search down
        log.exception("evaluation crashed")
        out.update(error=f"internal error: {type(exc).__name__}: {exc}")
    out["ended"] = time.time()
    out["seconds"] = round(out["ended"] - started, 3)
    return out


def with_place_overrides(config: FlowConfig, overrides: dict[str, Any]) -> FlowConfig:
    """A copy of ``config`` whose placer settings default to ``overrides`` (the config's own values win)."""
    from engine.place.config import PlaceConfig

    out = FlowConfig.from_dict(config.to_dict())
    default = PlaceConfig()
    for name, value in (overrides or {}).items():
        if out.place[name] == getattr(default, name):  # a value the config set itself wins
            out.place[name] = value
    return out


# ------------------------------------------------------------------ Ray (engine.parallel)
def ensure_ray(address: str | None = None, num_cpus: int = 0) -> None:
    """Start (or join) Ray once per process (engine.parallel.ensure_ray)."""
    from engine.parallel import ensure_ray as start

    start(address, num_cpus)


def _crashed(i: int, exc: BaseException) -> dict:
    """The result of an evaluation whose Ray task died: one failed evaluation, not a failed optimisation."""
    now = time.time()
    return {"run_id": None, "status": "failed", "failed_step": None, "metrics": {},
            "error": f"Ray task failed: {type(exc).__name__}: {exc}", "started": now, "ended": now, "seconds": 0.0,
            "pid": None}


class Evaluator:
    """Runs knob settings of one design through the flow, serially or as Ray tasks."""

    def __init__(self, base: FlowConfig, store: RunStore, cfg: EvalConfig | None = None,
                 cancel_file: Path | None = None, label: str = "optimize"):
        self.cfg = cfg or EvalConfig()
        self.base = with_place_overrides(base, self.cfg.place_overrides)
        self.store = store
        self.cancel_file = Path(cancel_file) if cancel_file else None
        self.label = label
        if self.cfg.parallel > 1:
            ensure_ray(self.cfg.ray_address, self.cfg.ray_num_cpus)

    def cancelled(self) -> bool:
        return bool(self.cancel_file and self.cancel_file.exists())

    def run(self, configs: Sequence[FlowConfig], on_result: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Evaluate each config (a full FlowConfig with the knobs applied); results in the order given.

        ``on_result(i, result)`` is called as each finishes (in finishing order), so a caller can record
        progress while the rest still run.
        """
        # The configs derive from a base that has the overrides already (make_context), with knobs set after them.
        from engine.parallel import fan_out

        payloads = [c.to_dict() for c in configs]
        cancel = str(self.cancel_file) if self.cancel_file else None
        evaluate = functools.partial(evaluate_config, runs_root=str(self.store.root), until=self.cfg.until,
                                     label=self.label, cancel_file=cancel, reuse=self.cfg.reuse)
        return fan_out(evaluate, payloads, self.cfg.parallel, on_result=on_result, on_error=_crashed,
                       address=self.cfg.ray_address, num_cpus=self.cfg.ray_num_cpus)  # type: ignore[return-value]


# ------------------------------------------------------------------ design features (observations)
FEATURE_NAMES = ("log_cells", "log_nets", "fanout_mean", "fanout_p90", "log_fanout_max", "seq_fraction",
                 "log_io", "clock_ns")


def design_features(run_dir: Path, tech_dir: str | None = None, top: str | None = None,
                    clock_ns: float = 10.0) -> dict[str, float]:
    """Size and connectivity of the synthesised netlist (cells, nets, fan-out statistics), scaled to O(1)."""
    from engine.io.yosys_json import netlist_from_yosys_json
    from engine.pdk import load_pdk
    from engine.runs import read_json

    synth = Path(run_dir) / "01-synth"
    m = read_json(synth / "metrics.json", {}) or {}
    if not (synth / "netlist.json").exists():
        raise EngineError(f"{synth}: no synthesised netlist to describe the design")
    nl = netlist_from_yosys_json(synth / "netlist.json", load_pdk(tech_dir), top or m.get("design__top") or None)
    degree = np.diff(nl.net_start).astype(float)
    degree = degree[degree >= 2] if np.any(degree >= 2) else np.array([2.0])
    fanout = degree - 1.0
    cells = max(1, int(np.count_nonzero(~nl.cell_is_io)))
    seq = float(m.get("design__instance__count__sequential", 0) or 0)
    return {
        "log_cells": math.log10(cells) / 5.0,
        "log_nets": math.log10(max(1, nl.n_nets)) / 5.0,
        "fanout_mean": float(fanout.mean()) / 10.0,
        "fanout_p90": float(np.percentile(fanout, 90)) / 10.0,
        "log_fanout_max": math.log10(float(fanout.max())) / 3.0,
        "seq_fraction": seq / cells,
        "log_io": math.log10(1 + int(np.count_nonzero(nl.cell_is_io))) / 3.0,
        "clock_ns": math.log10(max(clock_ns, 0.1)) / 2.0,
    }
