"""Slow, obvious numpy implementations of the placer's numerical ops. Used by the tests only.

Each follows its textbook formula with explicit loops, so that the fast ops can be checked against them.
"""
from __future__ import annotations

import math

import numpy as np


def nets_as_lists(pin_cell, pin_dx, pin_dy, net_start, net_pins):
    """[(cells, dx, dy) per net] from the CSR arrays."""
    out = []
    for n in range(len(net_start) - 1):
        pins = net_pins[net_start[n]:net_start[n + 1]]
        out.append((np.asarray(pin_cell)[pins], np.asarray(pin_dx)[pins], np.asarray(pin_dy)[pins]))
    return out


def hpwl_ref(nets, x, y, weights=None) -> float:
    total = 0.0
    for k, (cells, dx, dy) in enumerate(nets):
        if len(cells) < 2:
            continue
        px = [x[c] + d for c, d in zip(cells, dx)]
        py = [y[c] + d for c, d in zip(cells, dy)]
        total += (1.0 if weights is None else weights[k]) * (max(px) - min(px) + max(py) - min(py))
    return total


def wa_ref(nets, x, y, gamma: float, weights=None, max_degree: int = 1 << 30) -> float:
    """sum over nets of sum x e^{x/g} / sum e^{x/g} - sum x e^{-x/g} / sum e^{-x/g}, both axes."""
    total = 0.0
    for k, (cells, dx, dy) in enumerate(nets):
        if len(cells) < 2 or len(cells) > max_degree:
            continue
        w = 1.0 if weights is None else weights[k]
        for coords in ([x[c] + d for c, d in zip(cells, dx)], [y[c] + d for c, d in zip(cells, dy)]):
            p = np.asarray(coords, dtype=np.float64)
            shift = p.max()
            ep = np.exp((p - shift) / gamma)
            en = np.exp((-p + p.min()) / gamma)
            total += w * ((p * ep).sum() / ep.sum() - (p * en).sum() / en.sum())
    return total


def density_ref(x, y, w, h, weight, x0, y0, bin_w, bin_h, m, n) -> np.ndarray:
    """(m, n) sum of weight x overlap area / bin area, one cell and one bin at a time."""
    rho = np.zeros((m, n))
    for c in range(len(x)):
        for i in range(m):
            bx0, bx1 = x0 + i * bin_w, x0 + (i + 1) * bin_w
            ox = max(0.0, min(x[c] + w[c], bx1) - max(x[c], bx0))
            if ox == 0.0:
                continue
            for j in range(n):
                by0, by1 = y0 + j * bin_h, y0 + (j + 1) * bin_h
                oy = max(0.0, min(y[c] + h[c], by1) - max(y[c], by0))
                rho[i, j] += weight[c] * ox * oy / (bin_w * bin_h)
    return rho


def poisson_ref(rho: np.ndarray, bin_w: float, bin_h: float):
    """phi, e_x, e_y at bin centres by the explicit cosine series (O(M^2 N^2))."""
    m, n = rho.shape
    xc = (np.arange(m) + 0.5) * bin_w
    yc = (np.arange(n) + 0.5) * bin_h
    W, H = m * bin_w, n * bin_h
    a = np.zeros((m, n))
    for u in range(m):
        for v in range(n):
            cu = 1.0 / m if u == 0 else 2.0 / m
            cv = 1.0 / n if v == 0 else 2.0 / n
            a[u, v] = cu * cv * sum(rho[i, j] * math.cos(math.pi * u * xc[i] / W) * math.cos(math.pi * v * yc[j] / H)
                                    for i in range(m) for j in range(n))
    phi = np.zeros((m, n))
    ex = np.zeros((m, n))
    ey = np.zeros((m, n))
    for u in range(m):
        for v in range(n):
            if u == 0 and v == 0:
                continue
            wu, wv = math.pi * u / W, math.pi * v / H
            k = a[u, v] / (wu * wu + wv * wv)
            cx, cy = np.cos(wu * xc), np.cos(wv * yc)
            sx, sy = np.sin(wu * xc), np.sin(wv * yc)
            phi += k * np.outer(cx, cy)
            ex += k * wu * np.outer(sx, cy)
            ey += k * wv * np.outer(cx, sy)
    return phi, ex, ey


def rudy_ref(nets, x, y, x0, y0, bin_w, bin_h, b) -> np.ndarray:
    """Each net's HPWL spread evenly over the bins its bounding box touches, / bin area."""
    out = np.zeros((b, b))
    for cells, dx, dy in nets:
        if len(cells) < 2:
            continue
        px = [x[c] + d for c, d in zip(cells, dx)]
        py = [y[c] + d for c, d in zip(cells, dy)]
        i0 = min(max(int(math.floor((min(px) - x0) / bin_w)), 0), b - 1)
        i1 = min(max(int(math.floor((max(px) - x0) / bin_w)), 0), b - 1)
        j0 = min(max(int(math.floor((min(py) - y0) / bin_h)), 0), b - 1)
        j1 = min(max(int(math.floor((max(py) - y0) / bin_h)), 0), b - 1)
        cnt = (i1 - i0 + 1) * (j1 - j0 + 1)
        v = (max(px) - min(px) + max(py) - min(py)) / cnt / (bin_w * bin_h)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                out[i, j] += v
    return out
