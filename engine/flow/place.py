"""The flow's place step: floorplan.def -> the analytical placer -> placed.def, frames/ and history.json.

Frames (what the cockpit replays live) are `frames/frame_<iteration>.npz`, one per `place.frame_every`
iterations: cells (indices into the netlist), x, y (lower-left, float32, subsampled), density and rudy maps
(images: [iy, ix], row 0 at the bottom), core, iteration, hpwl, overflow. `history.json` holds every iteration's
numbers. `stages.npz` holds every cell's position after global placement, legalisation and detailed placement
(x_<stage>, y_<stage>, netlist order), each stage's HPWL and the displacement of legalisation and detailed placement.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import Cancelled, EngineError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.io.def_io import read_def, write_def
from engine.runs import read_json, write_json

if TYPE_CHECKING:
    from engine.netlist import Netlist
    from engine.place.api import PlaceResult

log = logging.getLogger(__name__)


class PlaceStep(Step):
    id = "place"
    inputs = (Input("floorplan", "def"),)
    outputs = ("def",)
    uses = ("place", "tech_dir")
    version = 3  # 2: cells take their row's orientation (N/FS) in placed.def; 3: stages.npz

    def run(self, ctx: StepContext) -> StepResult:
        from engine.place.api import place
        from engine.place.config import PlaceConfig

        overrides = dict(ctx.config.place or {})
        known = set(PlaceConfig.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ctx.fail(f"unknown placer setting(s): {', '.join(unknown)}",
                           hint=f"place settings are: {', '.join(sorted(known))}", code="place.bad_settings")
        try:
            cfg = PlaceConfig(**overrides)
        except TypeError as exc:
            raise ctx.fail(f"bad placer settings: {exc}", code="place.bad_settings") from None
        netlist = read_def(ctx.artefact("floorplan", "def"), ctx.pdk)
        pin_layers = read_json(ctx.run.step_dir("floorplan", create=False) / "pins.json", None)
        frames_dir = ctx.step_dir / "frames"
        frames_dir.mkdir(exist_ok=True)
        write_s = [0.0]

        def on_frame(frame: dict) -> None:
            t0 = time.perf_counter()
            arrays: dict[str, Any] = {k: np.asarray(v) for k, v in frame.items()}
            np.savez(frames_dir / f"frame_{frame['iteration']:05d}.npz", **arrays)
            write_s[0] += time.perf_counter() - t0

        def progress(fraction: float, message: str) -> None:
            ctx.progress(fraction, message)

        def run_placer(c: PlaceConfig):
            try:
                return place(netlist, c, progress=progress, cancel=ctx.cancelled, on_frame=on_frame)
            except Cancelled:
                raise
            except EngineError as exc:
                raise ctx.fail(exc.message, hint=exc.hint or "see the place.* settings",
                               code=exc.code if exc.code != EngineError.default_code else "place.failed",
                               knob=exc.knob) from None

        result = run_placer(cfg)
        auto: dict = {}
        if not cfg.routability and cfg.routability_auto_congestion > 0:
            # Auto routability: the router's own congestion measure (RUDY demand / routing capacity of the layers
            # the route step will use) on the first placement; above the threshold, place again with inflation.
            top10 = self._congestion_top10(ctx, result.netlist)
            auto["placement__routability__auto_congestion_top10"] = round(top10, 4)
            if top10 > cfg.routability_auto_congestion:
                log.info("top-10%% congestion %.3f > place.routability_auto_congestion %.3f: re-placing with "
                         "routability on", top10, cfg.routability_auto_congestion)
                for old in frames_dir.glob("frame_*.npz"):
                    old.unlink()
                first_hpwl = result.metrics["placement__hpwl"]
                cfg2 = PlaceConfig(**{**cfg.to_dict(), "routability": True})
                result = run_placer(cfg2)
                auto["placement__routability__auto"] = "re-placed with routability"
                auto["placement__routability__auto_hpwl_first"] = first_hpwl
                auto["placement__routability__auto_congestion_top10_after"] = round(
                    self._congestion_top10(ctx, result.netlist), 4)
            else:
                auto["placement__routability__auto"] = "not needed"
        placed = result.netlist
        write_def(placed, ctx.step_dir / "placed.def", ctx.pdk,
                  pin_layers=pin_layers if isinstance(pin_layers, dict) else None)
        hist = result.history
        write_json(ctx.step_dir / "history.json", {k: [h[k] for h in hist] for k in
                                                   ("iteration", "hpwl", "overflow", "density_weight", "gamma")}
                   if hist else {})
        artefacts = {"def": "placed.def", "placed_def": "placed.def", "frames": "frames", "history": "history.json"}
        if write_stages(ctx.step_dir / "stages.npz", netlist, result):
            artefacts["stages"] = "stages.npz"
        metrics = dict(result.metrics)
        metrics.update(auto)
        metrics.update(_rudy_summary(result.netlist))
        metrics["placement__frames__count"] = int(result.frames)
        metrics["placement__frames__seconds"] = round(metrics.get("placement__frames__seconds", 0.0) + write_s[0], 3)
        return StepResult(metrics=metrics, artefacts=artefacts,
                          message=f"HPWL {metrics['placement__hpwl']:,.0f} um after {metrics['placement__iterations']} "
                                  f"iterations (overflow {metrics['placement__overflow']:.3f}), legal")

    @staticmethod
    def _congestion_top10(ctx: StepContext, placed) -> float:
        """Mean RUDY demand / capacity of the hottest 10 % of bins (the route step's bins and layers)."""
        from engine.flow.congestion import congestion

        route = ctx.config.route
        ratio = congestion(placed, ctx.pdk, layers=route.layers, bins=route.rudy_bins).ratio.ravel()
        if ratio.size == 0:
            return 0.0
        k = max(1, int(round(0.1 * ratio.size)))
        return float(np.sort(ratio)[-k:].mean())


def write_stages(path: Path, netlist: Netlist, result: PlaceResult) -> bool:
    """Save the positions at the end of each placer stage (global, legal, detailed), each stage's HPWL (um, as the
    placer's metrics give it) and the displacement (|dx| + |dy|, um) of the movable cells from one stage to the
    next; the cockpit draws the before/after of legalisation and detailed placement from it. False: nothing to save."""
    stages = result.stages
    if "legal" not in stages:
        return False
    m = result.metrics
    movable = ~np.asarray(netlist.cell_fixed, bool)
    out: dict[str, Any] = {"stages": np.array(list(stages)), "movable": movable,
                           "names": np.array(netlist.cell_names)}
    hpwl = {"global": m.get("placement__hpwl__global"), "legal": m.get("placement__hpwl__legal"),
            "detailed": m.get("placement__hpwl")}
    order = list(stages)
    for i, name in enumerate(order):
        x, y = (np.asarray(v, np.float64) for v in stages[name])
        out[f"x_{name}"], out[f"y_{name}"] = x.astype(np.float32), y.astype(np.float32)
        if hpwl.get(name) is not None:
            out[f"hpwl_{name}"] = np.float64(hpwl[name])
        if i:
            px, py = (np.asarray(v, np.float64) for v in stages[order[i - 1]])
            d = (np.abs(x - px) + np.abs(y - py))[movable]
            out[f"disp_{name}"] = d.astype(np.float32)          # per movable cell, from the stage before
            out[f"disp_{name}_mean"] = np.float64(d.mean() if d.size else 0.0)
            out[f"disp_{name}_max"] = np.float64(d.max() if d.size else 0.0)
            out[f"disp_{name}_moved"] = np.int64((d > 1e-6).sum())
    np.savez_compressed(path, **out)
    return True


def _rudy_summary(netlist) -> dict[str, float]:
    """RUDY mean / top-10% / max of the final placement on the benchmark's 16x16 map (the numbers the training
    data and the benchmark quote, so the specialists can be asked about this run in their own terms)."""
    from engine.place import metrics as pm
    from engine.place.global_place import core_box

    return pm.rudy_summary(pm.rudy_map(netlist, core_box(netlist), pm.SUMMARY_BINS))

