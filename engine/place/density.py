"""Bin density with cell stretching, fillers and electrostatic energy (ePlace), and the density overflow.

`BinGrid` describes the bins over the core; `CellRaster` spreads a set of rectangles onto the bins (exact
overlap areas, each cell touching at most K x K bins, vectorised per group of equal K); `ElectrostaticDensity`
is the op: forward(pos) -> potential energy, backward -> charge x field (the ePlace density gradient).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.place.electrostatics import PoissonSolver


@dataclass(frozen=True)
class BinGrid:
    """An (m, n) grid of bins over the rectangle [x0, x1] x [y0, y1] (microns); dim 0 is x."""

    x0: float
    y0: float
    x1: float
    y1: float
    m: int
    n: int

    @property
    def bin_w(self) -> float:
        return (self.x1 - self.x0) / self.m

    @property
    def bin_h(self) -> float:
        return (self.y1 - self.y0) / self.n

    @property
    def bin_area(self) -> float:
        return self.bin_w * self.bin_h


class CellRaster:
    """Spreads rectangles (lower-left at pos, static sizes w, h) onto a BinGrid as overlap areas.

    Cells are grouped by the number of bins K they can touch per axis, so each group is one (n_g, K, K)
    tensor of overlaps scattered with index_add; standard cells have K <= 3.
    """

    def __init__(self, grid: BinGrid, w: torch.Tensor, h: torch.Tensor, weight: torch.Tensor):
        # w, h, weight: (n,) sizes (already stretched if wanted) and charge per unit area
        self.grid = grid
        self.w, self.h, self.weight = w, h, weight
        kx = torch.ceil(w / grid.bin_w).long() + 1
        ky = torch.ceil(h / grid.bin_h).long() + 1
        k = torch.clamp(torch.maximum(kx, ky), max=max(grid.m, grid.n) + 1)
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.groups = []  # (cell index tensor, K)
        for kv in torch.unique(k).tolist():
            idx = torch.nonzero(k == kv).flatten()
            self.groups.append((idx, int(kv)))

    @staticmethod
    def _axis_overlap(lo: torch.Tensor, size: torch.Tensor, origin: float, step: float, nbins: int, k: int):
        """lo, size (g,) -> bin index (g, k) and overlap length (g, k) along one axis (0 outside the grid)."""
        first = torch.floor((lo - origin) / step).long()                             # (g,)
        bins = first[:, None] + torch.arange(k, device=lo.device)[None, :]           # (g, k)
        b_lo = origin + bins.to(lo.dtype) * step
        hi = lo + size
        ov = torch.clamp(torch.minimum(hi[:, None], b_lo + step) - torch.maximum(lo[:, None], b_lo), min=0.0)
        valid = (bins >= 0) & (bins < nbins)
        ov = torch.where(valid, ov, torch.zeros_like(ov))
        return bins.clamp(0, nbins - 1), ov

    def _overlaps(self, px: torch.Tensor, py: torch.Tensor, idx: torch.Tensor, k: int):
        g = self.grid
        bx, ox = self._axis_overlap(px[idx], self.w[idx], g.x0, g.bin_w, g.m, k)   # (g, k)
        by, oy = self._axis_overlap(py[idx], self.h[idx], g.y0, g.bin_h, g.n, k)
        flat = (bx[:, :, None] * g.n + by[:, None, :]).reshape(-1)                   # (g*k*k,)
        area = (ox[:, :, None] * oy[:, None, :]) * self.weight[idx][:, None, None]    # (g, k, k)
        return flat, area

    def density(self, px: torch.Tensor, py: torch.Tensor, keep: bool = False) -> torch.Tensor:
        """(m, n) map of covered area / bin area from lower-left positions px, py (n,).

        keep=True remembers the overlaps so that a following gather() at the same positions reuses them."""
        g = self.grid
        out = torch.zeros(g.m * g.n, dtype=px.dtype, device=px.device)
        cache: list[tuple[torch.Tensor, torch.Tensor]] = []
        for idx, k in self.groups:
            flat, area = self._overlaps(px, py, idx, k)
            out.index_add_(0, flat, area.reshape(-1))
            cache.append((flat, area))
        self._cache = cache if keep else None
        return out.view(g.m, g.n) / g.bin_area

    def gather(self, px: torch.Tensor, py: torch.Tensor, field_x: torch.Tensor, field_y: torch.Tensor):
        """Overlap-weighted sums of two (m, n) maps for every cell -> (n,), (n,)."""
        fx, fy = field_x.reshape(-1), field_y.reshape(-1)
        gx = torch.zeros_like(px)
        gy = torch.zeros_like(py)
        cache = self._cache or [self._overlaps(px, py, idx, k) for idx, k in self.groups]
        self._cache = None
        for (idx, _), (flat, area) in zip(self.groups, cache):
            a = area.reshape(len(idx), -1)
            gx[idx] = (a * fx[flat].view(len(idx), -1)).sum(1)
            gy[idx] = (a * fy[flat].view(len(idx), -1)).sum(1)
        return gx, gy


def stretched_sizes(w: torch.Tensor, h: torch.Tensor, grid: BinGrid, stretch: bool):
    """ePlace smoothing: cells smaller than sqrt(2) bins are widened to it, their charge density lowered
    so that the total charge (area) is kept. Returns (w', h', weight)."""
    if not stretch:
        return w, h, torch.ones_like(w)
    sw = torch.clamp(w, min=math.sqrt(2.0) * grid.bin_w)
    sh = torch.clamp(h, min=math.sqrt(2.0) * grid.bin_h)
    weight = torch.where(sw * sh > 0, (w * h) / (sw * sh), torch.zeros_like(w))
    return sw, sh, weight


class _Electrostatic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, op):
        energy, gx, gy = op.energy_and_grad(pos)
        ctx.save_for_backward(gx, gy)
        ctx.n = pos.shape[1]
        return energy

    @staticmethod
    def backward(ctx, grad_out):
        gx, gy = ctx.saved_tensors
        return torch.stack([gx, gy]) * grad_out, None


class ElectrostaticDensity(nn.Module):
    """The ePlace density op over `pos` (2, n_total): movable cells and fillers carry charge, fixed cells
    are a static background. forward(pos) -> energy (scalar, differentiable: d/dpos = -charge x field).

    After each forward, `last_movable_density` (m, n) holds the density of the real movable cells only
    (fillers excluded), used for overflow and frames.
    """

    def __init__(self, grid: BinGrid, cell_w: torch.Tensor, cell_h: torch.Tensor, mobile: torch.Tensor,
                 n_real_movable: int, fixed_density: torch.Tensor, target_density: float, stretch: bool = True):
        # mobile: (n_mob,) indices into pos of movable cells followed by fillers; the first n_real_movable
        # of them are real cells.
        super().__init__()
        self.grid = grid
        self.mobile = mobile
        self.n_real = n_real_movable
        self.target_density = float(target_density)
        w, h = cell_w[mobile], cell_h[mobile]
        sw, sh, weight = stretched_sizes(w, h, grid, stretch)
        self.dx = (w - sw) / 2  # stretched rectangle keeps the cell centre: its lower-left shifts by (w-sw)/2
        self.dy = (h - sh) / 2
        self.real = CellRaster(grid, sw[:n_real_movable], sh[:n_real_movable], weight[:n_real_movable])
        self.fill = CellRaster(grid, sw[n_real_movable:], sh[n_real_movable:], weight[n_real_movable:])
        self.fixed_density = fixed_density                                              # (m, n)
        self.solver = PoissonSolver(grid.m, grid.n, grid.bin_w, grid.bin_h, device=cell_w.device,
                                    dtype=cell_w.dtype)
        self.last_movable_density: torch.Tensor | None = None
        self.last_total_density: torch.Tensor | None = None

    def _xy(self, pos):
        px = pos[0, self.mobile] + self.dx
        py = pos[1, self.mobile] + self.dy
        return px, py

    def energy_and_grad(self, pos: torch.Tensor):
        pos = pos.detach()
        px, py = self._xy(pos)
        r = self.n_real
        rho_real = self.real.density(px[:r], py[:r], keep=True)
        rho_fill = self.fill.density(px[r:], py[r:], keep=True) if px.shape[0] > r else torch.zeros_like(rho_real)
        rho = rho_real + rho_fill + self.fixed_density
        energy, e_x, e_y = self.solver.energy_and_field(rho)
        energy = energy * self.grid.bin_area
        self.last_movable_density = rho_real
        self.last_total_density = rho
        gx = torch.zeros(pos.shape[1], dtype=pos.dtype, device=pos.device)
        gy = torch.zeros_like(gx)
        ax, ay = self.real.gather(px[:r], py[:r], e_x, e_y)
        gx[self.mobile[:r]] = -ax
        gy[self.mobile[:r]] = -ay
        if px.shape[0] > r:
            fx, fy = self.fill.gather(px[r:], py[r:], e_x, e_y)
            gx[self.mobile[r:]] = -fx
            gy[self.mobile[r:]] = -fy
        return energy, gx, gy

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return _Electrostatic.apply(pos, self)

    def overflow(self, movable_area: float) -> float:
        """Density overflow of the last forward: sum over bins of area above the target / movable area."""
        if self.last_movable_density is None or movable_area <= 0:
            return 1.0
        excess = torch.clamp(self.last_movable_density + self.fixed_density - self.target_density, min=0.0)
        return float(excess.sum()) * self.grid.bin_area / movable_area


def fixed_density_map(grid: BinGrid, x, y, w, h, target_density: float, device, dtype) -> torch.Tensor:
    """Static density of fixed cells (real sizes, clipped to 1 per bin) x target density, (m, n).

    Scaling by the target density lets movable cells fill the space next to a macro up to the target
    without the macro's own bins counting as overflow."""
    if len(x) == 0:
        return torch.zeros(grid.m, grid.n, dtype=dtype, device=device)
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)  # noqa: E731
    raster = CellRaster(grid, t(w), t(h), torch.ones(len(x), dtype=dtype, device=device))
    rho = raster.density(t(x), t(y))
    return torch.clamp(rho, max=1.0) * target_density
