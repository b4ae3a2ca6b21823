"""The placer's front door: place(netlist, config) runs global placement, legalization and detailed placement.

    from engine.place import place, PlaceConfig
    result = place(netlist, PlaceConfig(), progress=lambda f, msg: ..., cancel=event, on_frame=lambda fr: ...)
    result.netlist.x, result.netlist.y, result.metrics["placement__hpwl"]
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.place.config import PlaceConfig
from engine.place.detailed import detailed_place
from engine.place.errors import Cancelled, PlaceError
from engine.place.global_place import GlobalPlacer, core_box, is_cancelled
from engine.place.legalize import LegalityReport, check_legality, legalize, oriented_hpwl, row_orientations
from engine.place.macros import check_macros, legalize_macros, movable_macros

log = logging.getLogger(__name__)


@dataclass
class PlaceResult:
    netlist: Any                         # a copy of the input Netlist with the placed x, y
    metrics: dict[str, Any]              # placement__* metrics (OpenROAD-style names, see engine/metrics.py)
    frames: int                          # frames handed to on_frame
    legality: LegalityReport | None = None
    history: list[dict] = field(default_factory=list)   # per global iteration: hpwl, overflow, weights
    # positions (x, y of every cell, lower-left um) at the end of each stage: "global", "legal" (after
    # legalisation, before detailed placement), "detailed"; the place step saves them as stages.npz
    stages: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _check_positions(netlist) -> None:
    for arr, label in ((netlist.x, "x"), (netlist.y, "y")):
        a = np.asarray(arr, dtype=np.float64)
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PlaceError(f"cell {netlist.cell_names[i]} has a NaN or infinite {label} position "
                             f"({int(bad.sum())} cells in all): the input netlist is corrupt")
    for arr, label in ((netlist.pin_dx, "x"), (netlist.pin_dy, "y")):
        if not np.isfinite(np.asarray(arr, dtype=np.float64)).all():
            raise PlaceError(f"a pin has a NaN {label} offset: the input netlist is corrupt")


def place(netlist, config: PlaceConfig | None = None, progress: Callable[[float, str], None] | None = None,
          cancel: Any = None, on_frame: Callable[[dict], None] | None = None) -> PlaceResult:
    """Place `netlist` (floorplanned: rows and core set, IO terminals fixed). The input is not modified.

    progress(fraction, message) is called every few iterations; cancel is a callable or an Event (raises
    engine.errors.Cancelled when set); on_frame(frame_dict) receives snapshots every config.frame_every
    iterations. Bad input raises PlaceError with a message and a hint.
    """
    cfg = config or PlaceConfig()
    t0 = time.perf_counter()
    if netlist.n_cells == 0:
        raise PlaceError(f"netlist {netlist.name} has no cells")
    _check_positions(netlist)
    gp = GlobalPlacer(netlist, cfg)
    g = gp.run(progress=progress, cancel=cancel, on_frame=on_frame, fraction_span=(0.0, 0.85))
    out = netlist.copy()
    out.x, out.y = g.x.copy(), g.y.copy()
    stages = {"global": (g.x.copy(), g.y.copy())}
    metrics: dict[str, Any] = {
        "placement__hpwl__global": round(float(netlist.hpwl(g.x, g.y)), 3),
        "placement__overflow": round(float(g.overflow), 4),
        "placement__iterations": int(g.iterations),
        "placement__runtime__global_s": round(g.runtime_s, 3),
        "placement__frames__seconds": round(g.frame_seconds, 3),
        "placement__cells__movable": int(len(gp.movable_idx)),
        "placement__bins": int(gp.grid.m),
        **g.metrics,                      # routability rounds, inflation, RUDY; timing-weighted nets
    }
    legality = None
    if cfg.legalize:
        if is_cancelled(cancel):
            raise Cancelled("placement cancelled")
        t1 = time.perf_counter()
        # Mixed-size: macros onto the row/site grid first, then fixed there while the cells legalise around them.
        lg, macros = out, movable_macros(out)
        if len(macros):
            if progress:
                progress(0.855, f"legalizing {len(macros)} movable macros")
            lg = out.copy()
            lg.x, lg.y = legalize_macros(out, g.x, g.y, macros)
            lg.cell_fixed[macros] = True
            md = np.abs(lg.x[macros] - g.x[macros]) + np.abs(lg.y[macros] - g.y[macros])
            metrics["placement__macros__movable"] = int(len(macros))
            metrics["placement__macros__displacement__max"] = round(float(md.max()), 3)
        if progress:
            progress(0.86, "legalizing (Abacus)")
        x, y = legalize(lg, lg.x, lg.y, row_search=cfg.row_search)
        metrics["placement__runtime__legalize_s"] = round(time.perf_counter() - t1, 3)
        # pins under each cell's row orientation (N/FS), as the cells will be drawn and routed
        metrics["placement__hpwl__legal"] = round(oriented_hpwl(lg, x, y), 3)
        mov = gp.movable_idx
        disp = np.abs(x[mov] - g.x[mov]) + np.abs(y[mov] - g.y[mov])      # the legaliser's moves alone
        metrics["placement__displacement__mean"] = round(float(disp.mean()), 3)
        metrics["placement__displacement__max"] = round(float(disp.max()), 3)
        stages["legal"] = (np.array(x, copy=True), np.array(y, copy=True))
        if cfg.detailed:
            if progress:
                progress(0.9, "detailed placement (matching, swaps, windows, shifting)")
            t2 = time.perf_counter()
            cancel_fn = (lambda: is_cancelled(cancel)) if cancel is not None else None
            x, y, st = detailed_place(lg, x, y, passes=cfg.detailed_passes, time_limit_s=cfg.detailed_time_limit_s,
                                      cancel=cancel_fn)
            metrics["placement__runtime__detailed_s"] = round(time.perf_counter() - t2, 3)
            metrics["placement__detailed__moves"] = int(st.moves)
            stages["detailed"] = (np.array(x, copy=True), np.array(y, copy=True))
        out.x, out.y = x, y
        legality = check_legality(out)
        bad_macros = check_macros(out, x, y, macros)
        if bad_macros:
            legality.ok = False
            legality.messages[:0] = bad_macros[:3]
        if not legality.ok:
            raise PlaceError(f"placement is not legal after legalization: {legality.summary()}",
                             hint="this is a placer bug; please report it with the input")
        metrics["placement__legal"] = True
        # Netlist pin offsets stay those of the N cell (what global placement optimised); the orientation goes
        # to the DEF (qrouter, KLayout), spef.oriented_pin_positions applies it, and so does the HPWL below.
        out.cell_orient = row_orientations(lg, x, y)   # macros (fixed in lg) keep their orientation
    metrics["placement__hpwl"] = round(oriented_hpwl(out, out.x, out.y, out.cell_orient or []), 3)
    metrics["placement__runtime_s"] = round(time.perf_counter() - t0, 3)
    if progress:
        progress(1.0, f"placed: HPWL {metrics['placement__hpwl']:.4g} um")
    log.info("placement of %s: %s", netlist.name, metrics)
    return PlaceResult(netlist=out, metrics=metrics, frames=g.frames, legality=legality, history=g.history,
                       stages=stages)


__all__ = ["place", "PlaceResult", "PlaceConfig", "PlaceError", "core_box"]
