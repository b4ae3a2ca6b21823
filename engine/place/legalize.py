"""Legalization onto rows and sites: Tetris assigns every cell a row segment, Abacus packs each segment.

1. Rows are cut by fixed cells into free segments whose ends sit on the site grid.
2. Tetris (in global-placement x order): each cell takes the segment with the lowest displacement estimate
   |dy| + |x' - x| among those with room left, where x' is past what that segment already holds; the
   search widens from `row_search` rows until one fits. Capacity is what counts, so Abacus can always pack.
3. Abacus (Spindler et al. 2008) per segment, cells in x order: clusters that overlap merge and move to the
   width-weighted mean of their cells' wishes, clamped to the segment and snapped to sites. It is exact for
   a fixed order and runs in amortised O(n) per segment.
`check_legality` proves the result: every movable cell on a row, on a site, inside the row, no overlaps.
`row_orientations` gives each placed cell its row's orientation (N/FS alternate, so rails abut).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from engine.place.errors import PlaceError

log = logging.getLogger(__name__)
EPS = 1e-6


@dataclass
class Segments:
    """Free row intervals, ordered by row then x; rows[k] owns segments start[k]:start[k+1]."""

    x0: np.ndarray
    x1: np.ndarray
    y: np.ndarray
    row: np.ndarray
    start: np.ndarray       # (R+1,) CSR by row
    row_y: np.ndarray       # (R,)
    row_h: np.ndarray
    site_w: np.ndarray      # (R,)
    site_x0: np.ndarray     # (R,) site grid origin (the row's x0)


def _sorted_rows(netlist):
    if not netlist.rows:
        raise PlaceError(f"netlist {netlist.name} has no rows: run the floorplan step first",
                         hint="floorplan step (rows come from the floorplan)")
    return sorted(netlist.rows, key=lambda r: (r.y, r.x0))


def build_segments(netlist) -> Segments:
    rows = _sorted_rows(netlist)
    fixed = np.asarray(netlist.cell_fixed, dtype=bool) & ~np.asarray(netlist.cell_is_io, dtype=bool)
    fx, fy = np.asarray(netlist.x)[fixed], np.asarray(netlist.y)[fixed]
    fw, fh = np.asarray(netlist.cell_w)[fixed], np.asarray(netlist.cell_h)[fixed]
    has_area = (fw > EPS) & (fh > EPS)
    fx, fy, fw, fh = fx[has_area], fy[has_area], fw[has_area], fh[has_area]
    x0s, x1s, ys, rws, start = [], [], [], [], [0]
    for k, r in enumerate(rows):
        hit = (fy < r.y + r.height - EPS) & (fy + fh > r.y + EPS) & (fx < r.x1 - EPS) & (fx + fw > r.x0 + EPS)
        blocks = sorted(zip(fx[hit], fx[hit] + fw[hit]))
        cur = r.x0
        free = []
        for b0, b1 in blocks:
            if b0 > cur:
                free.append((cur, b0))
            cur = max(cur, b1)
        if cur < r.x1:
            free.append((cur, r.x1))
        for a, b in free:
            a = r.x0 + np.ceil((a - r.x0) / r.site_w - EPS) * r.site_w     # ends on the site grid, inward
            b = r.x0 + np.floor((b - r.x0) / r.site_w + EPS) * r.site_w
            if b - a >= r.site_w - EPS:
                x0s.append(a)
                x1s.append(b)
                ys.append(r.y)
                rws.append(k)
        start.append(len(x0s))
    return Segments(x0=np.asarray(x0s, float), x1=np.asarray(x1s, float), y=np.asarray(ys, float),
                    row=np.asarray(rws, np.int64), start=np.asarray(start, np.int64),
                    row_y=np.asarray([r.y for r in rows]), row_h=np.asarray([r.height for r in rows]),
                    site_w=np.asarray([r.site_w for r in rows]), site_x0=np.asarray([r.x0 for r in rows]))


def _quantised_widths(w: np.ndarray, site: float) -> np.ndarray:
    return np.ceil(w / site - EPS) * site


def tetris_assign(segs: Segments, x: np.ndarray, y: np.ndarray, w: np.ndarray, row_search: int) -> np.ndarray:
    """Segment index for each cell (arrays over the cells to legalise, w already on sites)."""
    n_seg = len(segs.x0)
    cap = segs.x1 - segs.x0                    # room left in each segment
    front = segs.x0.copy()                     # right end of what the segment holds (Tetris frontier)
    n_rows = len(segs.row_y)
    row_centre = segs.row_y + segs.row_h / 2
    r_pref = np.clip(np.searchsorted(row_centre, y + segs.row_h.mean() / 2) , 0, n_rows - 1)
    # nearest row by centre distance
    alt = np.clip(r_pref - 1, 0, n_rows - 1)
    r_pref = np.where(np.abs(row_centre[alt] - (y + segs.row_h.mean() / 2)) <
                      np.abs(row_centre[r_pref] - (y + segs.row_h.mean() / 2)), alt, r_pref)
    assign = np.empty(len(x), dtype=np.int64)
    sx0, sx1, sy, start = segs.x0, segs.x1, segs.y, segs.start
    for i in np.argsort(x, kind="stable").tolist():
        xi, yi, wi, r = x[i], y[i], w[i], int(r_pref[i])
        radius = row_search
        while True:
            a = int(start[max(0, r - radius)])
            b = int(start[min(n_rows, r + radius + 1)])
            ok = cap[a:b] >= wi - EPS
            if ok.any():
                fr = front[a:b]
                lo, hi = sx0[a:b], sx1[a:b] - wi
                est = np.minimum(np.maximum(np.maximum(xi, fr), lo), np.maximum(hi, lo))
                cost = np.abs(est - xi) + np.abs(sy[a:b] - yi) + np.maximum(fr + wi - sx1[a:b], 0.0)
                cost[~ok] = np.inf
                k = a + int(np.argmin(cost))
                assign[i] = k
                cap[k] -= wi
                front[k] = min(max(front[k], xi) + wi, sx1[k])
                break
            if a == 0 and b == n_seg:
                raise PlaceError(f"legalization: no row segment has room for a cell {wi:g} um wide",
                                 hint="lower floorplan.utilization or place.target_density", code="place.too_full")
            radius *= 2
    return assign


def abacus_segment(xt: np.ndarray, w: np.ndarray, x0: float, x1: float, site: float) -> np.ndarray:
    """Abacus on one segment: targets xt (in order), widths w (on sites) -> legal x (same order)."""
    n = len(xt)
    if n == 0:
        return xt.copy()
    # clusters as parallel lists: position, weight (sum of widths), q (weighted target sum), width, first cell
    cx: list[float] = []
    ce: list[float] = []
    cq: list[float] = []
    cw: list[float] = []
    cf: list[int] = []
    xt_l, w_l = xt.tolist(), w.tolist()
    for i in range(n):
        xi, wi = xt_l[i], w_l[i]
        if not cx or cx[-1] + cw[-1] <= min(max(xi, x0), x1 - wi) + EPS:
            cx.append(0.0)
            ce.append(wi)
            cq.append(wi * xi)
            cw.append(wi)
            cf.append(i)
        else:
            ce[-1] += wi
            cq[-1] += wi * (xi - cw[-1])
            cw[-1] += wi
        # collapse: place the last cluster, merging with its left neighbour while they overlap
        while True:
            pos = cq[-1] / ce[-1]
            pos = min(max(pos, x0), x1 - cw[-1])
            pos = x0 + round((pos - x0) / site) * site
            pos = min(max(pos, x0), x1 - cw[-1])
            if len(cx) > 1 and cx[-2] + cw[-2] > pos + EPS:
                e, q, wd = ce.pop(), cq.pop(), cw.pop()
                cx.pop()
                cf.pop()
                cq[-1] += q - e * cw[-1]
                ce[-1] += e
                cw[-1] += wd
                continue
            cx[-1] = pos
            break
    out = np.empty(n)
    cf.append(n)
    for c in range(len(cx)):
        a, b = cf[c], cf[c + 1]
        out[a:b] = cx[c] + np.concatenate([[0.0], np.cumsum(w[a:b - 1])])
    return out


def legalize(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None, row_search: int = 6):
    """Legal (x, y) for all cells from global positions (fixed cells unchanged). Raises PlaceError when the
    cells cannot fit."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64).copy()
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64).copy()
    mov = np.flatnonzero(~np.asarray(netlist.cell_fixed, dtype=bool))
    if len(mov) == 0:
        return x, y
    segs = build_segments(netlist)
    if len(segs.x0) == 0:
        raise PlaceError("legalization: fixed cells cover every row, there is no free site",
                         hint="floorplan.utilization")
    site = float(segs.site_w.max())
    if np.ptp(segs.site_w) > EPS:
        raise PlaceError("legalization: rows with different site widths are not supported")
    w = _quantised_widths(np.asarray(netlist.cell_w, dtype=np.float64)[mov], site)
    h = np.asarray(netlist.cell_h, dtype=np.float64)[mov]
    tall = h > segs.row_h.max() + EPS
    if tall.any():
        i = int(mov[np.flatnonzero(tall)[0]])
        raise PlaceError(f"legalization: movable cell {netlist.cell_names[i]} is {netlist.cell_h[i]:g} um tall, "
                         f"rows are {segs.row_h.max():g} um: multi-row cells must be fixed (placed as macros)")
    wide = w > (segs.x1 - segs.x0).max() + EPS
    if wide.any():
        i = int(mov[np.flatnonzero(wide)[0]])
        raise PlaceError(f"legalization: cell {netlist.cell_names[i]} ({netlist.cell_w[i]:g} um) is wider than "
                         f"every free row segment", hint="lower floorplan.utilization or raise aspect_ratio")
    need, have = float(w.sum()), float((segs.x1 - segs.x0).sum())
    if need > have + EPS:
        raise PlaceError(f"legalization: cells need {need:.0f} um of row length, rows have {have:.0f} um "
                         f"(utilisation {need / have:.0%})", hint="lower floorplan.utilization")
    gx, gy = x[mov], y[mov]
    gx = np.where(np.isfinite(gx), gx, segs.x0.min())
    gy = np.where(np.isfinite(gy), gy, segs.row_y.min())
    assign = tetris_assign(segs, gx, gy, w, row_search)
    order = np.lexsort((gx, assign))                 # by segment, then x
    bounds = np.searchsorted(assign[order], np.arange(len(segs.x0) + 1))
    new_x = np.empty(len(mov))
    for s in range(len(segs.x0)):
        a, b = bounds[s], bounds[s + 1]
        if a == b:
            continue
        idx = order[a:b]
        new_x[idx] = abacus_segment(gx[idx], w[idx], float(segs.x0[s]), float(segs.x1[s]), site)
    x[mov] = new_x
    y[mov] = segs.y[assign]
    return x, y


def row_orientations(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None,
                     tol: float = 1e-4) -> list[str]:
    """Each cell's orientation after legalisation: a standard cell on a row takes the row's (N or FS, so the
    power rails of neighbouring rows abut); IO terminals, fixed blocks and cells off every row keep theirs."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64)
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64)
    out = list(netlist.cell_orient) if netlist.cell_orient else ["N"] * netlist.n_cells
    rows = _sorted_rows(netlist)
    row_y = np.asarray([r.y for r in rows])
    fixed = np.asarray(netlist.cell_fixed, dtype=bool) | np.asarray(netlist.cell_is_io, dtype=bool)
    w = np.asarray(netlist.cell_w, dtype=np.float64)
    for i in np.flatnonzero(~fixed):
        lo = int(np.searchsorted(row_y, y[i] - tol))
        for j in range(lo, len(rows)):  # split rows share a y: the one holding the cell's x
            r = rows[j]
            if r.y > y[i] + tol:
                break
            if x[i] >= r.x0 - tol and x[i] + w[i] <= r.x1 + tol:
                out[i] = r.orient
                break
    return out


@dataclass
class LegalityReport:
    ok: bool
    overlaps: int = 0
    off_row: int = 0
    off_site: int = 0
    outside: int = 0
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return "legal"
        return (f"{self.overlaps} overlaps, {self.off_row} cells off rows, {self.off_site} off sites, "
                f"{self.outside} outside rows" + (": " + "; ".join(self.messages[:5]) if self.messages else ""))


def check_legality(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None,
                   tol: float = 1e-4) -> LegalityReport:
    """Every movable cell on a row and a site, inside its row, and no two cells (movable or fixed) overlapping."""
    x = np.asarray(netlist.x if x is None else x, dtype=np.float64)
    y = np.asarray(netlist.y if y is None else y, dtype=np.float64)
    rows = _sorted_rows(netlist)
    names = netlist.cell_names
    w, h = np.asarray(netlist.cell_w, float), np.asarray(netlist.cell_h, float)
    mov = ~np.asarray(netlist.cell_fixed, dtype=bool)
    rep = LegalityReport(ok=True)
    row_y = np.asarray([r.y for r in rows])
    mi = np.flatnonzero(mov)
    if len(mi) and not (np.isfinite(x[mi]).all() and np.isfinite(y[mi]).all()):
        rep.ok = False
        rep.off_row = int((~np.isfinite(x[mi]) | ~np.isfinite(y[mi])).sum())
        rep.messages.append("NaN positions")
        return rep
    # on a row: y equals some row's y and the cell spans [x0, x1] of a row at that y
    k = np.clip(np.searchsorted(row_y, y[mi] - tol), 0, len(rows) - 1)
    on_row = np.abs(row_y[k] - y[mi]) <= tol
    rep.off_row = int((~on_row).sum())
    for i in mi[~on_row][:3]:
        rep.messages.append(f"{names[i]} y={y[i]:g} is not on a row")
    # several rows can share a y (split rows): pick the one containing x
    rx0 = np.asarray([r.x0 for r in rows])
    rx1 = np.asarray([r.x1 for r in rows])
    site = np.asarray([r.site_w for r in rows])
    inside = np.zeros(len(mi), dtype=bool)
    sited = np.zeros(len(mi), dtype=bool)
    same_y = {}
    for j, r in enumerate(rows):
        same_y.setdefault(round(r.y / tol), []).append(j)
    for key, js in same_y.items():
        sel = on_row & (np.round(y[mi] / tol) == key)
        if not sel.any():
            continue
        xs, ws = x[mi][sel], w[mi][sel]
        ins = np.zeros(len(xs), dtype=bool)
        sit = np.zeros(len(xs), dtype=bool)
        for j in js:
            inr = (xs >= rx0[j] - tol) & (xs + ws <= rx1[j] + tol)
            q = (xs - rx0[j]) / site[j]
            ins |= inr
            sit |= inr & (np.abs(q - np.round(q)) * site[j] <= tol)
        inside[sel] = ins
        sited[sel] = sit
    rep.outside = int((on_row & ~inside).sum())
    rep.off_site = int((on_row & inside & ~sited).sum())
    for i in mi[on_row & ~inside][:3]:
        rep.messages.append(f"{names[i]} x={x[i]:g} is outside its row")
    for i in mi[on_row & inside & ~sited][:3]:
        rep.messages.append(f"{names[i]} x={x[i]:g} is not on a site")
    # overlaps, row by row: every cell with area contributes to each row band it covers
    solid = ~np.asarray(netlist.cell_is_io, dtype=bool) & (w > tol) & (h > tol)
    ci = np.flatnonzero(solid)
    if len(ci):
        bands = []
        for j, r in enumerate(rows):
            hit = ci[(y[ci] < r.y + r.height - tol) & (y[ci] + h[ci] > r.y + tol)]
            if len(hit):
                bands.append((np.full(len(hit), j), hit))
        if bands:
            band = np.concatenate([b[0] for b in bands])
            cells = np.concatenate([b[1] for b in bands])
            order = np.lexsort((x[cells], band))
            band, cells = band[order], cells[order]
            xs, xe = x[cells], x[cells] + w[cells]
            # running max of right ends within a band: offset bands so one accumulate works
            span = float(np.nanmax(xe) - np.nanmin(xs)) + 1.0
            off = band * span * 4
            run_end = np.maximum.accumulate(xe - np.nanmin(xs) + off) - off + np.nanmin(xs)
            same = band[1:] == band[:-1]
            bad = same & (xs[1:] < run_end[:-1] - tol)
            pairs = np.flatnonzero(bad)
            rep.overlaps = int(len(pairs))
            for p in pairs[:3]:
                rep.messages.append(f"{names[cells[p + 1]]} overlaps a cell to its left (e.g. {names[cells[p]]})")
    rep.ok = rep.overlaps == 0 and rep.off_row == 0 and rep.off_site == 0 and rep.outside == 0
    return rep
