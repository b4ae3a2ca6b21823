"""Placement metrics: exact HPWL, density overflow and the RUDY congestion map (numpy and torch versions)."""
from __future__ import annotations

import numpy as np
import torch

from engine.place.density import BinGrid
from engine.place.wirelength import NetTensors, segment_extreme


def hpwl(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None) -> float:
    """Total weighted HPWL (microns) of a Netlist at positions x, y (defaults: the netlist's own)."""
    return float(netlist.hpwl(x, y))


def density_map(netlist, core, bins: int, x=None, y=None, movable_only: bool = False) -> np.ndarray:
    """(bins, bins) covered area / bin area of the cells (exact overlaps, no stretching)."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64)
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64)
    sel = ~np.asarray(netlist.cell_is_io, dtype=bool)
    if movable_only:
        sel &= ~np.asarray(netlist.cell_fixed, dtype=bool)
    x0, y0, x1, y1 = core
    bw, bh = (x1 - x0) / bins, (y1 - y0) / bins
    out = np.zeros((bins, bins))
    xs, ys = x[sel], y[sel]
    ws, hs = np.asarray(netlist.cell_w)[sel], np.asarray(netlist.cell_h)[sel]
    kx = int(np.ceil(ws.max() / bw)) + 1 if len(ws) else 1
    ky = int(np.ceil(hs.max() / bh)) + 1 if len(hs) else 1
    ix = np.floor((xs - x0) / bw).astype(np.int64)[:, None] + np.arange(kx)[None, :]
    iy = np.floor((ys - y0) / bh).astype(np.int64)[:, None] + np.arange(ky)[None, :]
    # overlap of each cell with each of the bins it touches: (N, kx) and (N, ky)
    ox = np.clip(np.minimum(xs[:, None] + ws[:, None], x0 + (ix + 1) * bw) - np.maximum(xs[:, None], x0 + ix * bw),
                 0, None)
    oy = np.clip(np.minimum(ys[:, None] + hs[:, None], y0 + (iy + 1) * bh) - np.maximum(ys[:, None], y0 + iy * bh),
                 0, None)
    ox[(ix < 0) | (ix >= bins)] = 0
    oy[(iy < 0) | (iy >= bins)] = 0
    area = ox[:, :, None] * oy[:, None, :]
    flat = np.clip(ix, 0, bins - 1)[:, :, None] * bins + np.clip(iy, 0, bins - 1)[:, None, :]
    np.add.at(out.reshape(-1), flat.reshape(-1), area.reshape(-1))
    return out / (bw * bh)


def overflow(netlist, core, bins: int, target_density: float, x=None, y=None) -> float:
    """Sum over bins of the movable area above target density (fixed cells scaled by the target) / movable area."""
    mov = density_map(netlist, core, bins, x, y, movable_only=True)
    tot = density_map(netlist, core, bins, x, y, movable_only=False)
    fixed = np.minimum(tot - mov, 1.0) * target_density
    x0, y0, x1, y1 = core
    area = (x1 - x0) * (y1 - y0) / bins / bins
    excess = np.clip(mov + fixed - target_density, 0, None).sum() * area
    return float(excess / max(netlist.movable_area(), 1e-12))


def rudy_map_torch(pos: torch.Tensor, nets: NetTensors, grid: BinGrid, out_bins: int | None = None) -> torch.Tensor:
    """RUDY (Spindler & Johannes): each net spreads its HPWL uniformly over the bins its bounding box touches.

    -> (b, b) wire length per unit area (um / um^2). Uses 2-D difference arrays, so the cost is O(nets + bins)
    whatever the net sizes."""
    b = out_bins or grid.m
    bw, bh = (grid.x1 - grid.x0) / b, (grid.y1 - grid.y0) / b
    dev, dt = pos.device, pos.dtype
    if nets.n_nets == 0:
        return torch.zeros(b, b, dtype=dt, device=dev)
    px, py = nets.pin_xy(pos)
    n = nets.n_nets
    xl = segment_extreme(px, nets.pin_net, n, "amin")
    xh = segment_extreme(px, nets.pin_net, n, "amax")
    yl = segment_extreme(py, nets.pin_net, n, "amin")
    yh = segment_extreme(py, nets.pin_net, n, "amax")
    i0 = torch.clamp(torch.floor((xl - grid.x0) / bw).long(), 0, b - 1)
    i1 = torch.clamp(torch.floor((xh - grid.x0) / bw).long(), 0, b - 1)
    j0 = torch.clamp(torch.floor((yl - grid.y0) / bh).long(), 0, b - 1)
    j1 = torch.clamp(torch.floor((yh - grid.y0) / bh).long(), 0, b - 1)
    count = ((i1 - i0 + 1) * (j1 - j0 + 1)).to(dt)
    v = nets.net_weight * ((xh - xl) + (yh - yl)) / (count * bw * bh)
    d = torch.zeros((b + 1) * (b + 1), dtype=dt, device=dev)
    s = b + 1
    d.index_add_(0, i0 * s + j0, v)
    d.index_add_(0, (i1 + 1) * s + j0, -v)
    d.index_add_(0, i0 * s + j1 + 1, -v)
    d.index_add_(0, (i1 + 1) * s + j1 + 1, v)
    return d.view(s, s).cumsum(0).cumsum(1)[:b, :b]


def rudy_map(netlist, core, bins: int = 64, x=None, y=None) -> np.ndarray:
    """(bins, bins) RUDY map of a Netlist (numpy in, numpy out)."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64)
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64)
    nets = NetTensors(netlist.pin_cell, netlist.pin_dx, netlist.pin_dy, netlist.net_start, netlist.net_pins,
                      netlist.net_weight, max_degree=1 << 62, device="cpu", dtype=torch.float64)
    cx0, cy0, cx1, cy1 = (float(c) for c in core)
    grid = BinGrid(cx0, cy0, cx1, cy1, bins, bins)
    pos = torch.tensor(np.stack([x, y]), dtype=torch.float64)
    return rudy_map_torch(pos, nets, grid).numpy()


SUMMARY_BINS = 16  # the map the benchmark and the training data measure RUDY on (engine.bench.sweep)


def rudy_summary(rudy: np.ndarray) -> dict[str, float]:
    """Mean, top-10% (the hottest tenth of the bins: far less seed-sensitive than the single peak) and max of a
    RUDY map, as the benchmark, the training data and the flow's place step report them."""
    flat = np.sort(np.asarray(rudy, dtype=np.float64).ravel())
    return {"placement__rudy__max": round(float(flat[-1]), 5), "placement__rudy__mean": round(float(flat.mean()), 5),
            "placement__rudy__top10": round(float(flat[-max(1, flat.size // 10):].mean()), 5)}

