"""Global placement: the ePlace/DREAMPlace loop, read top to bottom.

objective(pos) = WA wirelength(pos; gamma) + lambda * electrostatic density energy(pos)
- gamma follows the overflow: gamma_base * (bin_w + bin_h) * 10^((overflow - 0.1) * 20/9 - 1)
- lambda starts at density_weight_init * |grad WL|_1 / |grad D|_1 and grows up to ~1.05x per iteration
  (less when the HPWL rises fast), so cells spread gradually from the centre
- Nesterov with a Lipschitz step; stop at overflow <= target_overflow or at max_iterations.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.place.config import PlaceConfig
from engine.place.density import BinGrid, ElectrostaticDensity, fixed_density_map
from engine.place.errors import Cancelled, PlaceError
from engine.place.metrics import rudy_map_torch
from engine.place.nesterov import NesterovOptimizer
from engine.place.routability import RudyStats, inflation_step
from engine.place.wirelength import HPWL, NetTensors, WAWirelength

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
OnFrame = Callable[[dict], None]


def core_box(netlist) -> tuple[float, float, float, float]:
    """The placement region: netlist.core, else the bounding box of the rows."""
    if getattr(netlist, "core", None) is not None:
        x0, y0, x1, y1 = (float(v) for v in netlist.core)
        return x0, y0, x1, y1
    if netlist.rows:
        return (min(r.x0 for r in netlist.rows), min(r.y for r in netlist.rows),
                max(r.x1 for r in netlist.rows), max(r.y + r.height for r in netlist.rows))
    raise PlaceError(f"netlist {netlist.name} has no core area or rows: run the floorplan step first",
                     hint="floorplan.utilization / floorplan.aspect_ratio set the core")


def is_cancelled(cancel: Any) -> bool:
    """cancel may be None, a callable returning bool, or an Event-like object with is_set()."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def check_input(netlist, core) -> None:
    """Clear errors for inputs the placer cannot handle (never a hang, never a traceback)."""
    x0, y0, x1, y1 = core
    if not (x1 > x0 and y1 > y0):
        raise PlaceError(f"core area {core} is empty", hint="floorplan.utilization")
    mov = ~np.asarray(netlist.cell_fixed, dtype=bool)
    if mov.sum() == 0:
        raise PlaceError(f"netlist {netlist.name} has no movable cells: nothing to place")
    fixed = ~mov
    for arr, label in ((netlist.x, "x"), (netlist.y, "y")):
        bad = ~np.isfinite(np.asarray(arr, dtype=np.float64)[fixed])
        if bad.any():
            name = netlist.cell_names[int(np.flatnonzero(fixed)[np.flatnonzero(bad)[0]])]
            raise PlaceError(f"fixed cell {name} has a NaN or infinite {label} position")
    for arr, label in ((netlist.cell_w, "width"), (netlist.cell_h, "height")):
        a = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(a).all() or (a < 0).any():
            i = int(np.flatnonzero(~np.isfinite(a) | (a < 0))[0])
            raise PlaceError(f"cell {netlist.cell_names[i]} has an invalid {label} {a[i]}")
    w, h = np.asarray(netlist.cell_w)[mov], np.asarray(netlist.cell_h)[mov]
    big = (w > x1 - x0 + 1e-9) | (h > y1 - y0 + 1e-9)
    if big.any():
        i = int(np.flatnonzero(mov)[np.flatnonzero(big)[0]])
        raise PlaceError(
            f"cell {netlist.cell_names[i]} ({netlist.cell_w[i]:g} x {netlist.cell_h[i]:g} um) is larger than the "
            f"core ({x1 - x0:g} x {y1 - y0:g} um)", hint="lower floorplan.utilization to get a larger core",
            code="place.too_full")
    free = (x1 - x0) * (y1 - y0) - fixed_area_in_core(netlist, core)
    util = float((w * h).sum()) / max(free, 1e-12)
    if util > 1.0:
        raise PlaceError(f"utilisation {util:.0%}: the movable cells need more area than the free core has",
                         hint="lower floorplan.utilization (more core area)", code="place.too_full")


def fixed_area_in_core(netlist, core) -> float:
    x0, y0, x1, y1 = core
    f = np.asarray(netlist.cell_fixed, dtype=bool) & ~np.asarray(netlist.cell_is_io, dtype=bool)  # IO/NI: no block
    if not f.any():
        return 0.0
    x, y = np.asarray(netlist.x)[f], np.asarray(netlist.y)[f]
    w, h = np.asarray(netlist.cell_w)[f], np.asarray(netlist.cell_h)[f]
    ow = np.clip(np.minimum(x + w, x1) - np.maximum(x, x0), 0, None)
    oh = np.clip(np.minimum(y + h, y1) - np.maximum(y, y0), 0, None)
    return float((ow * oh).sum())


def choose_bins(n_movable: int, cfg: PlaceConfig) -> int:
    if cfg.num_bins:
        return int(cfg.num_bins)
    side = 2 ** math.ceil(math.log2(max(1.0, math.sqrt(n_movable))))
    return int(min(1024, max(16, side)))


@dataclass
class GlobalResult:
    x: np.ndarray                      # (C,) lower-left x of all cells (fixed ones unchanged)
    y: np.ndarray
    iterations: int
    hpwl: float
    overflow: float
    runtime_s: float
    frames: int
    history: list[dict] = field(default_factory=list)   # per-iteration hpwl, overflow, lambda, gamma
    frame_seconds: float = 0.0
    metrics: dict = field(default_factory=dict)          # routability / timing-driven placement__* metrics


class GlobalPlacer:
    """Builds the tensors of one netlist and runs the loop. Fillers are appended after the real cells."""

    def __init__(self, netlist, cfg: PlaceConfig):
        self.netlist = netlist
        self.cfg = cfg
        self.core = core_box(netlist)
        check_input(netlist, self.core)
        self.device = torch.device(cfg.device)
        self.dtype = {"float32": torch.float32, "float64": torch.float64}.get(cfg.dtype)
        if self.dtype is None:
            raise PlaceError(f"place.dtype must be float32 or float64, not {cfg.dtype!r}")
        rng = np.random.default_rng(cfg.seed)
        x0, y0, x1, y1 = self.core
        n = netlist.n_cells
        movable = ~np.asarray(netlist.cell_fixed, dtype=bool)
        self.movable_idx = np.flatnonzero(movable)
        self.n_real = n
        w = np.asarray(netlist.cell_w, dtype=np.float64)
        h = np.asarray(netlist.cell_h, dtype=np.float64)
        self.movable_area = float((w[movable] * h[movable]).sum())

        side = choose_bins(len(self.movable_idx), cfg)
        self.grid = BinGrid(x0, y0, x1, y1, side, side)

        # fillers: whitespace up to the target density, cells of a typical movable size
        fill_w, fill_h, n_fill = self._filler_plan(w[movable], h[movable])
        self.n_fill = n_fill
        all_w = np.concatenate([w, np.full(n_fill, fill_w)])
        all_h = np.concatenate([h, np.full(n_fill, fill_h)])

        # initial positions: movable cells around the core centre, fillers uniform over the core
        px = np.asarray(netlist.x, dtype=np.float64).copy()
        py = np.asarray(netlist.y, dtype=np.float64).copy()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        k = len(self.movable_idx)
        px[movable] = cx - w[movable] / 2 + rng.normal(0, cfg.init_noise * (x1 - x0), k)
        py[movable] = cy - h[movable] / 2 + rng.normal(0, cfg.init_noise * (y1 - y0), k)
        fx = rng.uniform(x0, max(x0, x1 - fill_w), n_fill)
        fy = rng.uniform(y0, max(y0, y1 - fill_h), n_fill)
        t: dict[str, Any] = dict(device=self.device, dtype=self.dtype)
        self.pos0 = torch.tensor(np.stack([np.concatenate([px, fx]), np.concatenate([py, fy])]), **t)  # (2, n+f)
        self.w_t = torch.tensor(all_w, **t)
        self.h_t = torch.tensor(all_h, **t)

        mobile = np.concatenate([self.movable_idx, n + np.arange(n_fill)])
        self.mobile = torch.as_tensor(mobile, device=self.device)
        self.mobile_mask = torch.zeros(n + n_fill, dtype=torch.bool, device=self.device)
        self.mobile_mask[self.mobile] = True
        # projection bounds for every cell (fixed cells are never moved: mask)
        self.lo_x = torch.full((n + n_fill,), x0, **t)
        self.lo_y = torch.full((n + n_fill,), y0, **t)
        self.hi_x = torch.clamp(x1 - self.w_t, min=x0)
        self.hi_y = torch.clamp(y1 - self.h_t, min=y0)

        # ops
        self.nets = NetTensors(netlist.pin_cell, netlist.pin_dx, netlist.pin_dy, netlist.net_start,
                               netlist.net_pins, netlist.net_weight, max_degree=cfg.max_net_degree,
                               device=self.device, dtype=self.dtype)
        self.all_nets = NetTensors(netlist.pin_cell, netlist.pin_dx, netlist.pin_dy, netlist.net_start,
                                   netlist.net_pins, netlist.net_weight, max_degree=1 << 62,
                                   device=self.device, dtype=self.dtype)
        self.wa = WAWirelength(self.nets, gamma=1.0)
        self.hpwl_op = HPWL(self.all_nets)
        fixed = ~movable & ~np.asarray(netlist.cell_is_io, dtype=bool)   # IO and terminal_NI can be placed over
        fixed_rho = fixed_density_map(self.grid, px[fixed], py[fixed], w[fixed], h[fixed], cfg.target_density,
                                      self.device, self.dtype)
        self.fixed_rho = fixed_rho
        self.density = ElectrostaticDensity(self.grid, self.w_t, self.h_t, self.mobile, len(self.movable_idx),
                                            fixed_rho, cfg.target_density, stretch=cfg.stretch_cells)
        self.density_area = self.movable_area      # area the overflow is relative to (inflated in routability)
        # routability: cumulative area ratio of each real movable cell; whitespace the inflation may fill
        free = (x1 - x0) * (y1 - y0) - fixed_area_in_core(netlist, self.core)
        self.whitespace = max(cfg.target_density * free - self.movable_area, 0.0)
        self.inflate_ratio = torch.ones(len(self.movable_idx), **t)
        self.base_net_weight = self.nets.net_weight.clone()
        # preconditioner pieces: pins per cell and cell area
        deg = np.bincount(np.asarray(netlist.pin_cell, dtype=np.int64), minlength=n).astype(np.float64)
        self.pin_count = torch.tensor(np.concatenate([deg, np.zeros(n_fill)]), **t)
        self.area = self.w_t * self.h_t
        self.density_weight = 0.0

    # ------------------------------------------------------------------ setup helpers
    def _filler_plan(self, w: np.ndarray, h: np.ndarray):
        cfg = self.cfg
        x0, y0, x1, y1 = self.core
        if not cfg.use_fillers or len(w) == 0:
            return 1.0, 1.0, 0
        free = (x1 - x0) * (y1 - y0) - fixed_area_in_core(self.netlist, self.core)
        fill_area = cfg.target_density * free - float((w * h).sum())
        # typical size: mean of the middle 90% by area, as DREAMPlace does (ignores big macros)
        order = np.argsort(w * h)
        lo, hi = int(0.05 * len(order)), max(int(0.95 * len(order)), int(0.05 * len(order)) + 1)
        mid = order[lo:hi]
        fw, fh = float(w[mid].mean()), float(h[mid].mean())
        if fill_area <= 0 or fw <= 0 or fh <= 0:
            return fw or 1.0, fh or 1.0, 0
        return fw, fh, int(fill_area // (fw * fh))

    def project(self, pos: torch.Tensor) -> torch.Tensor:
        """Keep every cell inside the core; fixed cells go back to where they were."""
        x = torch.minimum(torch.maximum(pos[0], self.lo_x), self.hi_x)
        y = torch.minimum(torch.maximum(pos[1], self.lo_y), self.hi_y)
        out = torch.stack([x, y])
        return torch.where(self.mobile_mask[None, :], out, self.pos0)

    def gamma_for(self, overflow: float) -> float:
        g = self.grid
        coef = 10.0 ** ((overflow - 0.1) * 20.0 / 9.0 - 1.0)
        return self.cfg.gamma_base * (g.bin_w + g.bin_h) * coef

    def evaluate(self, pos: torch.Tensor):
        """Objective and preconditioned, masked gradient at pos (2, n+f)."""
        pos = pos.detach().requires_grad_(True)
        obj = self.wa(pos) + self.density_weight * self.density(pos)
        (grad,) = torch.autograd.grad(obj, pos)
        grad = torch.where(self.mobile_mask[None, :], grad, torch.zeros_like(grad))
        if self.cfg.precondition:
            pre = torch.clamp(self.pin_count + self.density_weight * self.area, min=1.0)
            grad = grad / pre
        return obj.detach(), grad

    def _initial_density_weight(self, pos: torch.Tensor) -> float:
        p = pos.detach().requires_grad_(True)
        (gw,) = torch.autograd.grad(self.wa(p), p)
        p2 = pos.detach().requires_grad_(True)
        (gd,) = torch.autograd.grad(self.density(p2), p2)
        m = self.mobile_mask[None, :]
        nw = float(gw.where(m, torch.zeros_like(gw)).abs().sum())
        nd = float(gd.where(m, torch.zeros_like(gd)).abs().sum())
        if nd == 0.0 or nw == 0.0:
            return 1e-6
        return self.cfg.density_weight_init * nw / nd

    # ------------------------------------------------------------------ the loop
    def run(self, progress: Progress | None = None, cancel: Any = None, on_frame: OnFrame | None = None,
            fraction_span: tuple[float, float] = (0.0, 1.0)) -> GlobalResult:
        cfg = self.cfg
        t_start = time.perf_counter()
        prev_threads = torch.get_num_threads()
        threads = cfg.num_threads
        if threads <= 0 and self.device.type == "cpu":
            # One thread unless asked: the job queue already runs one worker per core, and oversubscribed
            # OpenMP threads spin (measured: 5k cells 2.4 s/iteration with 2 threads on a busy 2-core machine,
            # 0.05 s with 1).
            threads = 1
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            return self._loop(progress, cancel, on_frame, fraction_span, t_start)
        finally:
            torch.set_num_threads(prev_threads)

    def _loop(self, progress, cancel, on_frame, fraction_span, t_start) -> GlobalResult:
        cfg = self.cfg
        pos = self.project(self.pos0)
        overflow = 1.0
        self.wa.gamma = self.gamma_for(overflow)
        self.density(pos)  # fills the density map
        overflow = self.density.overflow(self.density_area)
        self.wa.gamma = self.gamma_for(overflow)
        self.density_weight = self._initial_density_weight(pos)
        extra: dict[str, Any] = {}
        timing_marks = [0.5, 0.25]            # the proxy is recomputed as the overflow falls through these
        if cfg.timing_driven:
            self.apply_timing_weights(pos, extra)
        opt = NesterovOptimizer(pos, self.evaluate, self.project, max_backtracks=cfg.max_backtracks)
        hpwl = float(self.wa.last_hpwl)
        rounds, last_round_it, inflating = 0, -10**9, cfg.routability and cfg.routability_max_rounds > 0
        first_overflow = max(overflow, cfg.target_overflow * 1.01)
        history: list[dict] = []
        frames, frame_s = 0, 0.0
        sub = self._frame_subsample()
        lo_f, hi_f = fraction_span
        shown = 0.0
        it = 0
        log.info("global placement: %d movable cells, %d fillers, %d nets, %dx%d bins",
                 len(self.movable_idx), self.n_fill, self.nets.n_nets, self.grid.m, self.grid.n)
        while True:
            if is_cancelled(cancel):
                raise Cancelled("placement cancelled")
            opt.step()
            it += 1
            overflow = self.density.overflow(self.density_area)
            new_hpwl = float(self.wa.last_hpwl)   # HPWL of the kept nets at v, a by-product of the WA pass
            if not (math.isfinite(new_hpwl) and math.isfinite(float(opt.obj))):
                raise PlaceError(f"global placement diverged at iteration {it} (objective is not finite)",
                                 hint="lower place.density_weight_init or use place.dtype=float64",
                                 code="place.diverged")
            # density weight: grow ~1.05x, less when the wirelength jumps (DREAMPlace's rule, relative ref)
            delta = new_hpwl - hpwl
            ref = max(cfg.density_weight_ref_delta * max(hpwl, 1e-9), 1e-12)
            g = cfg.density_weight_growth
            mu = g if delta < 0 else max(0.95, g ** (1.0 - delta / ref))
            self.density_weight *= mu
            hpwl = new_hpwl
            self.wa.gamma = self.gamma_for(overflow)
            changed = False
            if cfg.timing_driven and not cfg.timing_weights_file and timing_marks and overflow < timing_marks[0]:
                while timing_marks and overflow < timing_marks[0]:
                    timing_marks.pop(0)
                self.apply_timing_weights(opt.v, extra)
                changed = True
            # routability: a round once the cells are spread (overflow under the trigger), at least 20 iterations
            # after the previous one so the spreading has answered it
            if (inflating and overflow < cfg.routability_trigger_overflow and it - last_round_it >= 20):
                grew = self.inflate(opt.v, extra, rounds)
                rounds += 1
                last_round_it = it
                inflating = grew and rounds < cfg.routability_max_rounds
                changed = changed or grew
            if changed:
                opt.refresh()
                overflow = self.density.overflow(self.density_area)
                hpwl = float(self.wa.last_hpwl)
                self.wa.gamma = self.gamma_for(overflow)
            history.append(dict(iteration=it, hpwl=hpwl, overflow=overflow, density_weight=self.density_weight,
                                gamma=self.wa.gamma, step=opt.alpha, evaluations=opt.evaluations))
            done = ((overflow <= cfg.target_overflow and it >= cfg.min_iterations and not inflating)
                    or it >= cfg.max_iterations)
            if on_frame is not None and cfg.frame_every > 0 and (it % cfg.frame_every == 0 or done):
                t0 = time.perf_counter()
                on_frame(self.frame(opt.v, it, float(self.hpwl_op(opt.v)), overflow, sub))
                frame_s += time.perf_counter() - t0
                frames += 1
            if progress is not None and (it % 10 == 0 or done):
                span = math.log(first_overflow / cfg.target_overflow)
                f = max(math.log(first_overflow / max(overflow, 1e-9)) / span if span > 0 else 1.0,
                        it / cfg.max_iterations)
                shown = max(shown, min(1.0, max(0.0, f)))  # never goes backwards when overflow bumps up
                progress(lo_f + (hi_f - lo_f) * shown,
                         f"global placement: iteration {it}, HPWL {hpwl:.4g} um, overflow {overflow:.3f}")
            if done:
                break
        if overflow > cfg.target_overflow:
            log.warning("global placement stopped at the iteration cap %d with overflow %.3f (target %.2f)",
                        it, overflow, cfg.target_overflow)
        v = opt.v.detach().to("cpu", torch.float64).numpy()
        x = np.asarray(self.netlist.x, dtype=np.float64).copy()
        y = np.asarray(self.netlist.y, dtype=np.float64).copy()
        hpwl = float(self.hpwl_op(opt.v))        # exact, all nets
        x[self.movable_idx] = v[0, self.movable_idx]
        y[self.movable_idx] = v[1, self.movable_idx]
        if cfg.routability:
            with torch.no_grad():
                after = RudyStats.of(rudy_map_torch(opt.v, self.all_nets, self.grid))
            extra["placement__routability__rounds"] = rounds
            extra.setdefault("placement__routability__inflated_area_um2", 0.0)
            extra.setdefault("placement__routability__rudy_top10__before", round(after.top10, 5))
            extra.setdefault("placement__routability__rudy_max__before", round(after.max, 5))
            extra["placement__routability__rudy_top10__after"] = round(after.top10, 5)
            extra["placement__routability__rudy_max__after"] = round(after.max, 5)
        return GlobalResult(x=x, y=y, iterations=it, hpwl=hpwl, overflow=overflow,
                            runtime_s=time.perf_counter() - t_start, frames=frames, history=history,
                            frame_seconds=frame_s, metrics=extra)

    # ------------------------------------------------------------------ routability and timing
    def inflate(self, pos: torch.Tensor, extra: dict, round_no: int) -> bool:
        """One routability round: inflate the cells in RUDY hot spots and rebuild the density op with the
        inflated sizes (fillers removed to keep the total charge). True when any cell grew."""
        cfg = self.cfg
        mov = torch.as_tensor(self.movable_idx, device=self.device)
        w, h = self.w_t[mov], self.h_t[mov]
        with torch.no_grad():
            rudy = rudy_map_torch(pos, self.all_nets, self.grid)
            st = RudyStats.of(rudy)
            if round_no == 0:
                extra["placement__routability__rudy_top10__before"] = round(st.top10, 5)
                extra["placement__routability__rudy_max__before"] = round(st.max, 5)
            cx, cy = pos[0, mov] + w / 2, pos[1, mov] + h / 2
            new = inflation_step(rudy, cx, cy, w * h, self.inflate_ratio, self.grid,
                                 threshold=cfg.routability_rudy_threshold, inflation_max=cfg.inflation_max,
                                 whitespace=self.whitespace)
        if float((new - self.inflate_ratio).abs().max()) < 1e-6:
            log.info("routability round %d: no cell in a bin above %.2f x the mean RUDY", round_no + 1,
                     cfg.routability_rudy_threshold)
            return False
        self.inflate_ratio = new
        s = torch.sqrt(new)
        w_inf, h_inf = self.w_t.clone(), self.h_t.clone()
        w_inf[mov], h_inf[mov] = w * s, h * s
        added = float((w * h * (new - 1.0)).sum())
        n, f = self.n_real, self.n_fill
        fill_area = float(self.w_t[n] * self.h_t[n]) if f else 1.0
        keep = max(0, f - int(math.ceil(added / fill_area))) if f else 0
        mobile = torch.cat([mov, n + torch.arange(keep, device=self.device)])
        self.mobile = mobile
        self.mobile_mask = torch.zeros_like(self.mobile_mask)
        self.mobile_mask[mobile] = True
        self.density = ElectrostaticDensity(self.grid, w_inf, h_inf, mobile, len(self.movable_idx), self.fixed_rho,
                                            cfg.target_density, stretch=cfg.stretch_cells)
        # the inflated rectangle keeps the real cell's centre (pos is the real lower-left)
        r = len(self.movable_idx)
        self.density.dx[:r] += (w - w * s) / 2
        self.density.dy[:r] += (h - h * s) / 2
        self.area = w_inf * h_inf
        self.density_area = self.movable_area + added
        extra["placement__routability__inflated_area_um2"] = round(added, 3)
        log.info("routability round %d: RUDY top-10%% %.4g max %.4g, %d cells inflated, +%.0f um^2 (%d fillers "
                 "removed)", round_no + 1, st.top10, st.max, int((new > 1.0 + 1e-6).sum()), added, f - keep)
        return True

    def apply_timing_weights(self, pos: torch.Tensor, extra: dict) -> None:
        """Net weights from timing criticality (a slack file or the static proxy at the current positions)."""
        from engine.place.timing_weights import proxy_criticality, slack_criticality, weights_from_criticality

        cfg = self.cfg
        if cfg.timing_weights_file:
            crit = slack_criticality(self.netlist, cfg.timing_weights_file)
            extra["placement__timing__source"] = "slack file"
        else:
            v = pos.detach().to("cpu", torch.float64).numpy()
            x = np.asarray(self.netlist.x, dtype=np.float64).copy()
            y = np.asarray(self.netlist.y, dtype=np.float64).copy()
            x[self.movable_idx], y[self.movable_idx] = v[0, self.movable_idx], v[1, self.movable_idx]
            crit = proxy_criticality(self.netlist, x, y)
            extra["placement__timing__source"] = "proxy"
        wt = weights_from_criticality(crit, cfg.timing_weight_max)                         # (N,) all nets
        kept = torch.as_tensor(wt[self.nets.kept_nets], dtype=self.dtype, device=self.device)
        self.nets.net_weight = self.base_net_weight * kept
        extra["placement__timing__weighted_nets"] = int((wt > 1.0 + 1e-9).sum())

    # ------------------------------------------------------------------ frames
    def _frame_subsample(self) -> np.ndarray:
        idx = self.movable_idx
        if len(idx) > self.cfg.frame_max_cells:
            rng = np.random.default_rng(self.cfg.seed + 7)
            idx = np.sort(rng.choice(idx, self.cfg.frame_max_cells, replace=False))
        return idx

    def frame(self, pos: torch.Tensor, it: int, hpwl: float, overflow: float, sub: np.ndarray) -> dict:
        """A snapshot for the cockpit: subsampled positions, density and RUDY maps, numbers."""
        k = self.cfg.frame_map_bins
        with torch.no_grad():
            assert self.density.last_movable_density is not None  # run() filled the density map first
            dens = self.density.last_movable_density + self.density.fixed_density
            dens = F.adaptive_avg_pool2d(dens[None, None], (min(k, self.grid.m), min(k, self.grid.n)))[0, 0]
            rudy = rudy_map_torch(pos, self.all_nets, self.grid, out_bins=min(k, self.grid.m))
            p = pos[:, torch.as_tensor(sub, device=pos.device)].to("cpu", torch.float32).numpy()
        return dict(iteration=it, hpwl=hpwl, overflow=overflow, density_weight=self.density_weight,
                    cells=sub.astype(np.int32), x=p[0], y=p[1],
                    # maps as images: rows are y bins from the bottom, columns x bins (the cockpit's heat maps)
                    density=dens.T.contiguous().cpu().float().numpy(),
                    rudy=rudy.T.contiguous().cpu().float().numpy(), core=np.asarray(self.core, dtype=np.float64))
