"""Movable macros (cells taller than a row): find them, fix them where they are, or legalise them.

Mixed-size placement runs in three stages (engine.place.api): global placement moves macros with the cells;
`legalize_macros` puts every macro on the row/site grid with no overlap (with fixed blocks or other macros)
and the least displacement it finds; the macros are then fixed and the cells legalised around them.

`legalize_macros` is greedy by size: the largest macro first (it has the fewest places to go), each taking the
legal spot nearest (|dx| + |dy|) to its global position among all row levels, searched outwards from its own
row and stopped as soon as the row distance alone exceeds the best cost found. For each candidate bottom row
the free x intervals of the macro's band (the rows it spans, minus fixed blocks and macros already placed)
are exact, so the spot chosen is the nearest legal one given the macros placed before it.
"""
from __future__ import annotations

import logging

import numpy as np

from engine.place.errors import PlaceError

log = logging.getLogger(__name__)
EPS = 1e-6


def movable_macros(netlist) -> np.ndarray:
    """Indices of the movable cells taller than the shortest row (empty when there are no rows)."""
    if not netlist.rows:
        return np.zeros(0, dtype=np.int64)
    row_h = min(r.height for r in netlist.rows)
    mov = ~np.asarray(netlist.cell_fixed, dtype=bool)
    return np.flatnonzero(mov & (np.asarray(netlist.cell_h, dtype=np.float64) > row_h + EPS))


def fix_macros(netlist):
    """A copy of netlist with its movable macros fixed where they are (a Bookshelf benchmark: its .pl).

    Returns (netlist, number fixed)."""
    idx = movable_macros(netlist)
    out = netlist.copy()
    out.cell_fixed[idx] = True
    if len(idx):
        log.info("%s: fixed %d movable macros at their input positions", netlist.name, len(idx))
    return out, len(idx)


def _levels(netlist):
    """Row levels (distinct y, bottom to top): y, height, the union of their rows' x intervals, site grid."""
    by_y: dict[float, list] = {}
    for r in sorted(netlist.rows, key=lambda r: (r.y, r.x0)):
        by_y.setdefault(round(r.y / EPS) * EPS, []).append(r)
    ys, hs, spans, site, site_x0 = [], [], [], [], []
    for y in sorted(by_y):
        rows = by_y[y]
        ys.append(rows[0].y)
        hs.append(max(r.height for r in rows))
        merged: list[list[float]] = []
        for r in rows:
            if merged and r.x0 <= merged[-1][1] + EPS:
                merged[-1][1] = max(merged[-1][1], r.x1)
            else:
                merged.append([r.x0, r.x1])
        spans.append([(a, b) for a, b in merged])
        site.append(rows[0].site_w)
        site_x0.append(rows[0].x0)
    return np.asarray(ys), np.asarray(hs), spans, np.asarray(site), np.asarray(site_x0)


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo + EPS:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(free: list[tuple[float, float]], blocks: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """free minus the union of blocks (both lists of (x0, x1); free sorted and disjoint)."""
    if not blocks:
        return free
    blocks = sorted(blocks)
    out = []
    for a, b in free:
        cur = a
        for b0, b1 in blocks:
            if b1 <= cur + EPS:
                continue
            if b0 >= b - EPS:
                break
            if b0 > cur + EPS:
                out.append((cur, b0))
            cur = max(cur, b1)
        if b > cur + EPS:
            out.append((cur, b))
    return out


def legalize_macros(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None,
                    macros: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of all cells with each macro in `macros` (default: movable_macros) moved to a legal spot.

    Legal: the macro's bottom on a row, its x on that row's site grid, its whole footprint on rows, and no
    overlap with fixed blocks (IO and zero-size cells aside) or other macros. Raises PlaceError if a macro
    has no such spot."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64).copy()
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64).copy()
    macros = movable_macros(netlist) if macros is None else np.asarray(macros, dtype=np.int64)
    if len(macros) == 0:
        return x, y
    if not netlist.rows:
        raise PlaceError(f"netlist {netlist.name} has no rows: run the floorplan step first")
    ys, hs, spans, site, site_x0 = _levels(netlist)
    n_lv = len(ys)
    # reach[k]: the top of the run of abutting levels that starts at level k
    reach = np.empty(n_lv)
    for k in range(n_lv - 1, -1, -1):
        top = ys[k] + hs[k]
        reach[k] = reach[k + 1] if k + 1 < n_lv and abs(ys[k + 1] - top) <= EPS else top
    w_all = np.asarray(netlist.cell_w, dtype=np.float64)
    h_all = np.asarray(netlist.cell_h, dtype=np.float64)
    fixed = (np.asarray(netlist.cell_fixed, dtype=bool) & ~np.asarray(netlist.cell_is_io, dtype=bool)
             & (w_all > EPS) & (h_all > EPS))
    fixed[macros] = False
    fi = np.flatnonzero(fixed)
    # obstacles as (x0, y0, x1, y1); grown by the macros placed so far
    ox0, oy0 = list(x[fi]), list(y[fi])
    ox1, oy1 = list(x[fi] + w_all[fi]), list(y[fi] + h_all[fi])
    order = macros[np.lexsort((x[macros], -(w_all[macros] * h_all[macros])))]   # biggest first
    for i in order.tolist():
        w, h = float(w_all[i]), float(h_all[i])
        tx = float(x[i]) if np.isfinite(x[i]) else float(site_x0.min())
        ty = float(y[i]) if np.isfinite(y[i]) else float(ys[0])
        a_x0, a_y0, a_x1, a_y1 = (np.asarray(v) for v in (ox0, oy0, ox1, oy1))
        best = (np.inf, 0.0, 0.0)
        for k in np.argsort(np.abs(ys - ty), kind="stable").tolist():
            dy = abs(float(ys[k]) - ty)
            if dy >= best[0]:
                break
            yb, yt = float(ys[k]), float(ys[k]) + h
            if reach[k] < yt - EPS:
                continue
            allowed = spans[k]
            j = k + 1
            while j < n_lv and ys[j] < yt - EPS and allowed:
                allowed = _intersect(allowed, spans[j])
                j += 1
            hit = (a_y0 < yt - EPS) & (a_y1 > yb + EPS)
            free = _subtract(allowed, list(zip(a_x0[hit].tolist(), a_x1[hit].tolist())))
            s, s0 = float(site[k]), float(site_x0[k])
            for a, b in free:
                lo = s0 + np.ceil((a - s0) / s - EPS) * s
                hi = s0 + np.floor((b - w - s0) / s + EPS) * s
                if hi < lo - EPS:
                    continue
                px = s0 + round((tx - s0) / s) * s
                px = min(max(px, lo), hi)
                cost = abs(px - tx) + dy
                if cost < best[0] - EPS:
                    best = (cost, px, yb)
        if not np.isfinite(best[0]):
            raise PlaceError(f"macro legalisation: no legal spot for movable macro {netlist.cell_names[i]} "
                             f"({w:g} x {h:g} um) among the rows, fixed blocks and macros already placed",
                             hint="lower floorplan.utilization for a larger core, or fix the macros where they are "
                                  "(`cda place --fix-macros` for a Bookshelf benchmark)", code="place.too_full")
        x[i], y[i] = best[1], best[2]
        ox0.append(best[1])
        oy0.append(best[2])
        ox1.append(best[1] + w)
        oy1.append(best[2] + h)
    return x, y


def check_macros(netlist, x: np.ndarray, y: np.ndarray, macros: np.ndarray | None = None,
                 tol: float = 1e-4) -> list[str]:
    """Problems with the macros' positions (empty when legal): off the row/site grid, off the rows,
    overlapping a fixed block or another macro."""
    macros = movable_macros(netlist) if macros is None else np.asarray(macros, dtype=np.int64)
    if len(macros) == 0:
        return []
    ys, hs, spans, site, site_x0 = _levels(netlist)
    w_all = np.asarray(netlist.cell_w, dtype=np.float64)
    h_all = np.asarray(netlist.cell_h, dtype=np.float64)
    names = netlist.cell_names
    out = []
    for i in macros.tolist():
        k = int(np.argmin(np.abs(ys - y[i])))
        if abs(ys[k] - y[i]) > tol:
            out.append(f"{names[i]} y={y[i]:g} is not on a row")
            continue
        q = (x[i] - site_x0[k]) / site[k]
        if abs(q - round(q)) * site[k] > tol:
            out.append(f"{names[i]} x={x[i]:g} is not on a site")
        top = y[i] + h_all[i]
        for j in range(k, len(ys)):
            if ys[j] >= top - tol:
                break
            if not any(a - tol <= x[i] and x[i] + w_all[i] <= b + tol for a, b in spans[j]):
                out.append(f"{names[i]} leaves the rows at y={ys[j]:g}")
                break
        if top > ys[-1] + hs[-1] + tol:
            out.append(f"{names[i]} reaches above the top row")
    solid = (~np.asarray(netlist.cell_is_io, dtype=bool) & (w_all > tol) & (h_all > tol)
             & (np.asarray(netlist.cell_fixed, dtype=bool) | np.isin(np.arange(netlist.n_cells), macros)))
    si = np.flatnonzero(solid)
    for i in macros.tolist():
        o = si[(si != i) & (x[si] < x[i] + w_all[i] - tol) & (x[si] + w_all[si] > x[i] + tol)
               & (y[si] < y[i] + h_all[i] - tol) & (y[si] + h_all[si] > y[i] + tol)]
        if len(o):
            out.append(f"{names[i]} overlaps {names[int(o[0])]}")
    return out
