"""Detailed placement on a legal placement: every move keeps it legal and lowers the exact HPWL, with each
movable cell's pins under its row's orientation (N/FS) and fixed cells' under their own.

- Independent-set matching (ABCDPlace/NTUplace): same-width cells sharing no net, grouped by neighbourhood,
  are assigned to their own slots optimally (scipy's linear_sum_assignment on the HPWL cost, other pins fixed).
- Global swap (Pan et al., FastPlace-DP): each cell's optimal region is the median box of its nets' bounding
  boxes without it (computed for all cells at once per pass, vectorised); a cell away from its region is tried
  against the same-width cells nearest the region's centre on the rows there; the best improving swap wins.
- Sliding windows: WINDOW (3) consecutive cells of a row in all orders, packed left or right in their span.
- Local reorder: adjacent cells of a row exchange places inside the span they occupy (gaps are kept).
- Row shifting: each cell slides inside its free gap towards its optimal region's centre (order kept).
- Gap moves: a cell far from its optimal region moves into a free gap there.
- Vertical moves: a cell goes one row up or down where that shortens its nets (rounding global y to a row is
  blind to the nets, and an FS row mirrors the pins), the cells around it there re-packed by Abacus; where it
  does not fit alone it trades rows with a cell nearby that gains by coming the other way. On gen:5000 this
  raised the gain of detailed placement from 1.5% to 2.6% (bench/results/legalize.json); the batched moves
  alone stop near 1.5% however many passes they get (8 passes: 1.53%).
The batched moves score all candidates at once (ragged numpy gathers over the touched nets), then apply the
improving ones that share no net together, whose HPWL changes then add up exactly; each batch is kept only if
the exact HPWL of the nets it touches went down (big nets are left out of the scores). Gap moves and the
one-by-one swaps go in the time left.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from engine.place.legalize import EPS, oriented_pin_offsets, sorted_rows

log = logging.getLogger(__name__)


@dataclass
class DetailedStats:
    hpwl_before: float
    hpwl_after: float
    swaps: int
    gap_moves: int
    reorders: int
    passes: int
    runtime_s: float
    ism: int = 0            # cells moved by independent-set matching
    windows: int = 0        # sliding windows reordered
    shifts: int = 0         # cells shifted inside their row gap
    vertical: int = 0       # cells moved one row up or down (the row there re-packed)

    @property
    def moves(self) -> int:
        return (self.swaps + self.gap_moves + self.reorders + self.ism + self.windows + self.shifts +
                self.vertical)


def _ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + l) for s, l) without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offs + np.arange(total)


class _State:
    """Arrays shared by the moves: positions, nets per cell, rows with their cells in x order."""

    def __init__(self, netlist, x, y):
        self.nl = netlist
        self.x = np.asarray(x, dtype=np.float64).copy()
        self.y = np.asarray(y, dtype=np.float64).copy()
        self.w = np.asarray(netlist.cell_w, dtype=np.float64)
        self.movable = ~np.asarray(netlist.cell_fixed, dtype=bool)
        self.pin_cell = np.asarray(netlist.pin_cell, dtype=np.int64)
        # pin offsets under orientation: fixed cells keep their own; a movable cell takes its row's (N or FS:
        # the HPWL is that of the cells as they will be drawn), so its y offsets depend on its row (self.fs)
        orient = list(netlist.cell_orient) if netlist.cell_orient else ["N"] * netlist.n_cells
        orient = [o if f else "N" for o, f in zip(orient, np.asarray(netlist.cell_fixed, dtype=bool).tolist())]
        self.pin_dx, self.pin_dy_n = oriented_pin_offsets(netlist, orient)
        self.pin_dy_f = np.asarray(netlist.cell_h, dtype=np.float64)[self.pin_cell] - self.pin_dy_n
        self.net_start = np.asarray(netlist.net_start, dtype=np.int64)
        self.net_pins = np.asarray(netlist.net_pins, dtype=np.int64)
        self.net_weight = np.asarray(netlist.net_weight, dtype=np.float64)
        self.deg = np.diff(self.net_start)
        # cell -> nets (unique) CSR, nets with >= 2 pins only
        pin_net = np.full(len(self.pin_cell), -1, dtype=np.int64)
        pin_net[self.net_pins] = np.repeat(np.arange(len(self.deg)), self.deg)
        ok = (pin_net >= 0)
        ok[ok] = self.deg[pin_net[ok]] >= 2
        pairs = (np.unique(np.stack([self.pin_cell[ok], pin_net[ok]], 1), axis=0) if ok.any()
                 else np.zeros((0, 2), np.int64))
        self.pair_cell, self.pair_net = pairs[:, 0], pairs[:, 1]
        n = netlist.n_cells
        self.cn_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.pair_cell, minlength=n), out=self.cn_start[1:])
        self.pin_net = pin_net
        # rows: cells (movable and fixed solid) per row in x order
        rows = sorted_rows(netlist)
        self.row_y = np.asarray([r.y for r in rows])
        self.row_x0 = np.asarray([r.x0 for r in rows])
        self.row_x1 = np.asarray([r.x1 for r in rows])
        self.site = np.asarray([r.site_w for r in rows])
        self.row_h = np.asarray([r.height for r in rows])
        solid = ~np.asarray(netlist.cell_is_io, dtype=bool) & (self.w > EPS)
        h = np.asarray(netlist.cell_h, dtype=np.float64)
        # fixed cells per row (they may cover several rows); they never move
        fixed = np.flatnonzero(solid & ~self.movable)
        self.fixed_in_row: list[np.ndarray] = []
        for j in range(len(rows)):
            on = fixed[(self.y[fixed] < self.row_y[j] + self.row_h[j] - 1e-6) &
                       (self.y[fixed] + h[fixed] > self.row_y[j] + 1e-6)]
            self.fixed_in_row.append(on)
        self.row_has_fixed = np.asarray([len(f) > 0 for f in self.fixed_in_row], dtype=bool)
        self.row_fs = np.asarray([r.orient in ("FS", "S") for r in rows], dtype=bool)
        self.fs = np.zeros(n, dtype=bool)
        self.fs[self.movable] = self.fs_at(self.y[self.movable])
        self.all_nets = np.flatnonzero(self.deg > 0)
        self.rebuild_rows()

    def fs_at(self, y: np.ndarray) -> np.ndarray:
        """Whether a movable cell at y (a row's y) is flipped (its row is FS or S)."""
        r = np.clip(np.searchsorted(self.row_y, np.asarray(y, dtype=np.float64) - 1e-6), 0, len(self.row_y) - 1)
        return self.row_fs[r]

    def pin_dy(self, pins: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        return np.where(flipped, self.pin_dy_f[pins], self.pin_dy_n[pins])

    def set_pos(self, cells, nx, ny) -> None:
        cells = np.asarray(cells, dtype=np.int64)
        self.x[cells], self.y[cells] = nx, ny
        self.fs[cells] = self.fs_at(self.y[cells])

    def total_hpwl(self) -> float:
        """Exact weighted HPWL of every net, pins under their orientations."""
        return self.nets_hpwl(self.all_nets)

    def rebuild_rows(self) -> None:
        """row_cells (cells of each row in x order, fixed included), row_of and slot of the movable cells."""
        n_rows = len(self.row_y)
        mov = np.flatnonzero(self.movable)
        row = np.clip(np.searchsorted(self.row_y, self.y[mov] - 1e-6), 0, n_rows - 1)
        o = np.lexsort((self.x[mov], row))
        mov, row = mov[o], row[o]
        bounds = np.searchsorted(row, np.arange(n_rows + 1))
        self.row_cells = []
        self.row_of = np.full(len(self.x), -1, dtype=np.int64)
        self.slot = np.full(len(self.x), -1, dtype=np.int64)
        for j in range(n_rows):
            cells = mov[bounds[j]:bounds[j + 1]]
            if self.row_has_fixed[j]:
                cells = np.concatenate([cells, self.fixed_in_row[j]])
                cells = cells[np.argsort(self.x[cells], kind="stable")]
            self.row_cells.append(cells.tolist())
            m = self.movable[cells]
            self.row_of[cells[m]] = j
            self.slot[cells[m]] = np.flatnonzero(m)

    def nets_of(self, cells) -> np.ndarray:
        cells = np.asarray(cells, dtype=np.int64)
        idx = _ragged_arange(self.cn_start[cells], self.cn_start[cells + 1] - self.cn_start[cells])
        nets = self.pair_net[idx]
        return np.unique(nets) if len(cells) > 1 else nets

    def nets_hpwl(self, nets: np.ndarray) -> float:
        if len(nets) == 0:
            return 0.0
        lens = self.deg[nets]
        slots = _ragged_arange(self.net_start[nets], lens)
        pins = self.net_pins[slots]
        c = self.pin_cell[pins]
        px = self.x[c] + self.pin_dx[pins]
        py = self.y[c] + self.pin_dy(pins, self.fs[c])
        st = np.concatenate([[0], np.cumsum(lens)[:-1]])
        span = (np.maximum.reduceat(px, st) - np.minimum.reduceat(px, st) +
                np.maximum.reduceat(py, st) - np.minimum.reduceat(py, st))
        return float((span * self.net_weight[nets]).sum())

    def move_delta(self, cells, nx, ny) -> float:
        """HPWL change if cells moved to (nx, ny); positions are restored."""
        nets = self.nets_of(cells)
        before = self.nets_hpwl(nets)
        ox, oy = self.x[cells].copy(), self.y[cells].copy()
        self.set_pos(cells, nx, ny)
        after = self.nets_hpwl(nets)
        self.set_pos(cells, ox, oy)
        return after - before

    def optimal_centres(self):
        """(n,) x and y of the centre of each cell's optimal region (NaN for cells without nets).

        Per net the bounding box without the cell is taken from the two smallest and two largest pins."""
        n = self.nl.n_cells
        px = self.x[self.pin_cell] + self.pin_dx
        py = self.y[self.pin_cell] + self.pin_dy(np.arange(len(self.pin_cell)), self.fs[self.pin_cell])
        valid = self.pin_net >= 0
        out = []
        for p in (px, py):
            pins = np.flatnonzero(valid)
            order = np.lexsort((p[pins], self.pin_net[pins]))
            pins = pins[order]
            net = self.pin_net[pins]
            st = np.searchsorted(net, np.arange(len(self.deg)))
            en = np.searchsorted(net, np.arange(len(self.deg)), side="right")
            cnt = en - st
            has2 = cnt >= 2
            lo1 = np.where(has2, p[pins[np.minimum(st, len(pins) - 1)]], np.nan)
            lo2 = np.where(has2, p[pins[np.minimum(st + 1, len(pins) - 1)]], np.nan)
            hi1 = np.where(has2, p[pins[np.maximum(en - 1, 0)]], np.nan)
            hi2 = np.where(has2, p[pins[np.maximum(en - 2, 0)]], np.nan)
            lo_cell = np.where(has2, self.pin_cell[pins[np.minimum(st, len(pins) - 1)]], -1)
            hi_cell = np.where(has2, self.pin_cell[pins[np.maximum(en - 1, 0)]], -1)
            pc, pn = self.pair_cell, self.pair_net
            lo = np.where(lo_cell[pn] == pc, lo2[pn], lo1[pn])
            hi = np.where(hi_cell[pn] == pc, hi2[pn], hi1[pn])
            vals = np.concatenate([lo, hi])
            cells = np.concatenate([pc, pc])
            o = np.lexsort((vals, cells))
            vals, cells = vals[o], cells[o]
            cnt_c = np.bincount(cells, minlength=n)
            start = np.concatenate([[0], np.cumsum(cnt_c)[:-1]])
            m = cnt_c // 2
            has = cnt_c >= 2
            a = vals[np.clip(start + m - 1, 0, max(len(vals) - 1, 0))] if len(vals) else np.zeros(n)
            b = vals[np.clip(start + m, 0, max(len(vals) - 1, 0))] if len(vals) else np.zeros(n)
            out.append(np.where(has, (a + b) / 2, np.nan))
        return out[0], out[1]


def _gap_spot(st: _State, r: int, k: int, xs: np.ndarray, want: float, wi: float):
    """Site-aligned x for a cell of width wi in the gap before cells[k] of row r (k == len: after the last),
    as close to `want` as the gap allows; None if it does not fit."""
    cells = st.row_cells[r]
    lo = st.row_x0[r] if k == 0 else max(st.row_x0[r], xs[k - 1] + st.w[cells[k - 1]])
    hi = st.row_x1[r] if k == len(cells) else min(st.row_x1[r], xs[k])
    if hi - lo < wi - EPS:
        return None
    site, x0 = st.site[r], st.row_x0[r]
    a = x0 + np.ceil((lo - x0) / site - EPS) * site
    b = x0 + np.floor((hi - wi - x0) / site + EPS) * site
    if b < a - EPS:
        return None
    t = x0 + np.round((min(max(want, a), b) - x0) / site) * site
    return float(min(max(t, a), b))


def _global_swap(st: _State, max_cells: int, deadline: float, min_dist: float = 0.5,
                 reach: int = 1) -> tuple[int, int]:
    """Swaps with same-width cells and moves into free gaps near each cell's optimal region.

    The work is bounded by a count (``max_cells`` candidates, farthest from their optimal region first), not by
    the clock, so the result does not depend on how busy the machine is; ``deadline`` is only a safety stop."""
    ox, oy = st.optimal_centres()
    mov = np.flatnonzero(st.movable & np.isfinite(ox))
    rh = st.row_h[0]
    cx = st.x + st.w / 2
    cy = st.y + rh / 2
    dist = np.abs(ox[mov] - cx[mov]) + np.abs(oy[mov] - cy[mov])
    todo = mov[dist > min_dist * rh]
    todo = todo[np.argsort(-(np.abs(ox[todo] - cx[todo]) + np.abs(oy[todo] - cy[todo])))]
    row_x = [st.x[np.asarray(r, dtype=np.int64)] if r else np.zeros(0) for r in st.row_cells]
    swaps = gap_moves = 0
    n_rows = len(st.row_y)
    for k, i in enumerate(todo[:max_cells].tolist()):
        if k % 256 == 0 and time.perf_counter() > deadline:
            break
        tr = int(np.clip(np.searchsorted(st.row_y, oy[i] - rh / 2), 0, n_rows - 1))
        best = -EPS
        best_move: tuple | None = None  # ("swap", j) or ("gap", row, slot, x)
        wi = st.w[i]
        want = ox[i] - wi / 2
        for r in (tr, tr - 1, tr + 1):
            if r < 0 or r >= n_rows:
                continue
            cells = st.row_cells[r]
            s = int(np.searchsorted(row_x[r], want))
            for q in range(max(0, s - reach - 1), min(len(cells), s + reach + 2)):
                j = cells[q]
                if j == i or not st.movable[j] or abs(st.w[j] - wi) > EPS:
                    continue
                d = st.move_delta([i, j], [st.x[j], st.x[i]], [st.y[j], st.y[i]])
                if d < best:
                    best, best_move = d, ("swap", j)
            for q in range(max(0, s - reach), min(len(cells), s + reach) + 1):
                nx = _gap_spot(st, r, q, row_x[r], want, wi)
                if nx is None:
                    continue
                d = st.move_delta([i], [nx], [st.row_y[r]])
                if d < best:
                    best, best_move = d, ("gap", r, q, nx)
        if best_move is None:
            continue
        ri, si = int(st.row_of[i]), int(st.slot[i])
        if best_move[0] == "swap":
            j = best_move[1]
            rj, sj = int(st.row_of[j]), int(st.slot[j])
            st.set_pos([i, j], [st.x[j], st.x[i]], [st.y[j], st.y[i]])
            st.row_cells[ri][si], st.row_cells[rj][sj] = j, i
            st.row_of[i], st.row_of[j] = rj, ri
            st.slot[i], st.slot[j] = sj, si
            row_x[ri][si], row_x[rj][sj] = st.x[j], st.x[i]
            swaps += 1
        else:
            _, r, q, nx = best_move
            del st.row_cells[ri][si]
            if r == ri and q > si:
                q -= 1
            st.row_cells[r].insert(q, i)
            st.set_pos([i], [nx], [st.row_y[r]])
            st.row_of[i] = r
            for rr in {ri, r}:
                cells = st.row_cells[rr]
                arr = np.asarray(cells, dtype=np.int64)
                mv = st.movable[arr] if len(arr) else np.zeros(0, bool)
                st.slot[arr[mv]] = np.flatnonzero(mv)
                row_x[rr] = st.x[arr] if len(arr) else np.zeros(0)
            gap_moves += 1
    return swaps, gap_moves


def _local_reorder(st: _State, deadline: float) -> int:
    moves = 0
    for cells in st.row_cells:
        if time.perf_counter() > deadline:
            break
        for s in range(len(cells) - 1):
            a, b = cells[s], cells[s + 1]
            if not (st.movable[a] and st.movable[b]):
                continue
            xa, xb, wa, wb = st.x[a], st.x[b], st.w[a], st.w[b]
            nb, na = xa, xb + wb - wa          # b to the left end, a to the right end of the span
            d = st.move_delta([a, b], [na, nb], [st.y[a], st.y[b]])
            if d < -EPS:
                st.x[a], st.x[b] = na, nb
                cells[s], cells[s + 1] = b, a
                st.slot[a], st.slot[b] = s + 1, s
                moves += 1
    return moves


# ---------------------------------------------------------------------------------------------- batched moves
BIG_NET = 64  # nets with more pins are left out of batched deltas (each pass is checked on the exact HPWL)


def batch_delta(st: _State, cells: np.ndarray, nx: np.ndarray, ny: np.ndarray):
    """HPWL change of K independent candidate moves at once. cells (K, 2) (-1 = unused slot), new positions
    nx, ny (K, 2). Returns (delta (K,), move id per touched net, net id) - the nets let the caller pick moves
    that share none, so that their deltas add up exactly."""
    k_all = cells.shape[0]
    n_nets = len(st.deg)
    flat = cells.reshape(-1)
    ok = flat >= 0
    kk = np.repeat(np.arange(k_all), cells.shape[1])[ok]
    cc = flat[ok]
    cnt = st.cn_start[cc + 1] - st.cn_start[cc]
    nets = st.pair_net[_ragged_arange(st.cn_start[cc], cnt)]
    mk = np.repeat(kk, cnt)
    small = st.deg[nets] <= BIG_NET
    key = np.unique(mk[small] * n_nets + nets[small])                 # (move, net) pairs, sorted by move
    pk, pn = key // n_nets, key % n_nets
    lens = st.deg[pn]
    pins = st.net_pins[_ragged_arange(st.net_start[pn], lens)]
    c = st.pin_cell[pins]
    owner = np.repeat(np.arange(len(pn)), lens)
    k_of = pk[owner]
    bx = st.x[c] + st.pin_dx[pins]
    by = st.y[c] + st.pin_dy(pins, st.fs[c])
    ax, ay = bx.copy(), by.copy()
    for slot in range(cells.shape[1]):
        m = cells[k_of, slot] == c
        ax[m] = nx[k_of[m], slot] + st.pin_dx[pins[m]]
        ay[m] = ny[k_of[m], slot] + st.pin_dy(pins[m], st.fs_at(ny[k_of[m], slot]))
    if len(lens) == 0:
        return np.zeros(k_all), pk, pn
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])

    def span(px, py):
        return (np.maximum.reduceat(px, starts) - np.minimum.reduceat(px, starts) +
                np.maximum.reduceat(py, starts) - np.minimum.reduceat(py, starts))

    d = (span(ax, ay) - span(bx, by)) * st.net_weight[pn]
    return np.bincount(pk, weights=d, minlength=k_all), pk, pn


def batch_delta_chunked(st: _State, cells: np.ndarray, nx: np.ndarray, ny: np.ndarray, chunk: int = 40000):
    """batch_delta over slices of the moves, so that memory stays bounded (~100 MB) at 200k cells."""
    if len(cells) <= chunk:
        return batch_delta(st, cells, nx, ny)
    ds, pks, pns = [], [], []
    for a in range(0, len(cells), chunk):
        d, pk, pn = batch_delta(st, cells[a:a + chunk], nx[a:a + chunk], ny[a:a + chunk])
        ds.append(d)
        pks.append(pk + a)
        pns.append(pn)
    return np.concatenate(ds), np.concatenate(pks), np.concatenate(pns)


def _independent(delta: np.ndarray, cells: np.ndarray, pk: np.ndarray, pn: np.ndarray) -> list[int]:
    """Improving moves, best first, that share no cell and no net with a move taken before them."""
    good = np.flatnonzero(delta < -EPS)
    good = good[np.argsort(delta[good], kind="stable")]
    bounds = np.searchsorted(pk, np.arange(len(delta) + 1))
    used_c: set[int] = set()
    used_n: set[int] = set()
    take = []
    for k in good.tolist():
        cs = [c for c in cells[k].tolist() if c >= 0]
        ns = pn[bounds[k]:bounds[k + 1]].tolist()
        if any(c in used_c for c in cs) or any(n in used_n for n in ns):
            continue
        used_c.update(cs)
        used_n.update(ns)
        take.append(k)
    return take


def _movable_order(st: _State):
    """Movable cells sorted by (row, x), with their rows."""
    mov = np.flatnonzero(st.movable)
    row = np.clip(np.searchsorted(st.row_y, st.y[mov] - 1e-6), 0, len(st.row_y) - 1)
    o = np.lexsort((st.x[mov], row))
    return mov[o], row[o]


def _batched_swaps(st: _State) -> int:
    """Same-width swaps toward each cell's optimal region, all cells at once."""
    ox, oy = st.optimal_centres()
    rh = st.row_h[0]
    site = st.site[0]
    cells, rows = _movable_order(st)
    wq = np.rint(st.w[cells] / site).astype(np.int64)
    n_rows = len(st.row_y)
    span = float(st.row_x1.max() - st.row_x0.min()) + 10.0
    key = (wq * n_rows + rows) * span + (st.x[cells] - st.row_x0.min())
    o = np.argsort(key, kind="stable")
    key_s, cell_s = key[o], cells[o]
    cand = cells[np.isfinite(ox[cells])]
    far = np.abs(ox[cand] - st.x[cand] - st.w[cand] / 2) + np.abs(oy[cand] - st.y[cand] - rh / 2) > 2 * site
    cand = cand[far]
    if len(cand) == 0:
        return 0
    tr = np.clip(np.searchsorted(st.row_y, oy[cand] - rh / 2 - 1e-6), 0, n_rows - 1)
    alt = np.clip(tr - 1, 0, n_rows - 1)
    tr = np.where(np.abs(st.row_y[alt] + rh / 2 - oy[cand]) < np.abs(st.row_y[tr] + rh / 2 - oy[cand]), alt, tr)
    wc = np.rint(st.w[cand] / site).astype(np.int64)
    q = (wc * n_rows + tr) * span + (ox[cand] - st.w[cand] / 2 - st.row_x0.min())
    pos = np.searchsorted(key_s, q)
    i_list, j_list = [], []
    for off in (-1, 0, 1):
        p = np.clip(pos + off, 0, len(key_s) - 1)
        j = cell_s[p]
        same = (np.floor(key_s[p] / span) == (wc * n_rows + tr)) & (j != cand)
        i_list.append(cand[same])
        j_list.append(j[same])
    i = np.concatenate(i_list)
    j = np.concatenate(j_list)
    if len(i) == 0:
        return 0
    mc = np.stack([i, j], 1)
    nx = np.stack([st.x[j], st.x[i]], 1)
    ny = np.stack([st.y[j], st.y[i]], 1)
    delta, pk, pn = batch_delta_chunked(st, mc, nx, ny)
    take = np.asarray(_independent(delta, mc, pk, pn), dtype=np.int64)
    if len(take) and _apply_round(st, mc[take].reshape(-1), nx[take].reshape(-1), ny[take].reshape(-1)):
        return len(take)
    return 0


def _batched_reorder(st: _State) -> int:
    """Adjacent cells of a row change order (b takes a's left end, a ends where b ended), even then odd pairs."""
    moved = 0
    for parity in (0, 1):
        cells, rows = _movable_order(st)
        if len(cells) < 2:
            return moved
        a, b = cells[:-1], cells[1:]
        ok = rows[:-1] == rows[1:]
        # rows with fixed cells: only abutting pairs (nothing can sit between them)
        gap = st.x[b] - (st.x[a] + st.w[a])
        ok &= ~st.row_has_fixed[rows[:-1]] | (gap < EPS)
        idx = np.flatnonzero(ok)
        idx = idx[(idx % 2) == parity]
        a, b = a[idx], b[idx]
        if len(a) == 0:
            continue
        mc = np.stack([a, b], 1)
        nx = np.stack([st.x[b] + st.w[b] - st.w[a], st.x[a]], 1)
        ny = np.stack([st.y[a], st.y[b]], 1)
        delta, pk, pn = batch_delta_chunked(st, mc, nx, ny)
        take = np.asarray(_independent(delta, mc, pk, pn), dtype=np.int64)
        if len(take) and _apply_round(st, mc[take].reshape(-1), nx[take].reshape(-1), ny[take].reshape(-1)):
            moved += len(take)
    return moved


# ------------------------------------------------------------------------ ISM, windows, shifting (batched)
def _row_sequence(st: _State):
    """Movable and fixed cells of every row in x order, as flat arrays: (cell, row, x, w, movable); a fixed
    cell spanning several rows appears in each. Neighbours in this sequence bound each other's moves."""
    mov = np.flatnonzero(st.movable)
    rows = [np.clip(np.searchsorted(st.row_y, st.y[mov] - 1e-6), 0, len(st.row_y) - 1)]
    cells = [mov]
    for j in np.flatnonzero(st.row_has_fixed).tolist():
        f = st.fixed_in_row[j]
        cells.append(f)
        rows.append(np.full(len(f), j, dtype=np.int64))
    cell = np.concatenate(cells)
    row = np.concatenate(rows)
    o = np.lexsort((st.x[cell], row))
    cell, row = cell[o], row[o]
    return cell, row, st.x[cell], st.w[cell], st.movable[cell]


def _apply_round(st: _State, cells: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> bool:
    """Move cells to (nx, ny) if the exact HPWL of the nets they touch goes down, else leave them. The moves
    were chosen on separable deltas that leave out big nets (and, for ISM, nets shared with big ones): this is
    where the result is made exact, so that no round ever lengthens the wires."""
    if len(cells) == 0:
        return False
    nets = st.nets_of(cells)
    before = st.nets_hpwl(nets)
    ox, oy = st.x[cells].copy(), st.y[cells].copy()
    st.set_pos(cells, nx, ny)
    if st.nets_hpwl(nets) < before - EPS:
        return True
    st.set_pos(cells, ox, oy)
    return False


def _independent_cells(st: _State, cand: np.ndarray, rng) -> np.ndarray:
    """A maximal set of candidate cells (random order) no two of which share a net of <= BIG_NET pins."""
    used = np.zeros(len(st.deg), dtype=bool)
    take = []
    small = st.deg[st.pair_net] <= BIG_NET
    for c in rng.permutation(cand).tolist():
        a, b = st.cn_start[c], st.cn_start[c + 1]
        ns = st.pair_net[a:b][small[a:b]]
        if used[ns].any():
            continue
        used[ns] = True
        take.append(c)
    return np.asarray(take, dtype=np.int64)


def _pair_boxes(st: _State, pc: np.ndarray, pn: np.ndarray):
    """For (cell, net) pairs: the box of the net's pins on other cells (+-inf when none) and the span of the
    cell's own pins on it, as offsets from its corner (x; y as the N cell and flipped)."""
    lens = st.deg[pn]
    pins = st.net_pins[_ragged_arange(st.net_start[pn], lens)]
    owner = np.repeat(np.arange(len(pn)), lens)
    c = st.pin_cell[pins]
    mine = c == pc[owner]
    px = st.x[c] + st.pin_dx[pins]
    py = st.y[c] + st.pin_dy(pins, st.fs[c])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    inf = np.inf

    def red(v, m, fill, op):
        return op.reduceat(np.where(m, v, fill), starts)

    other = ~mine
    box = (red(px, other, inf, np.minimum), red(px, other, -inf, np.maximum),
           red(py, other, inf, np.minimum), red(py, other, -inf, np.maximum))
    dxv, dyn, dyf = st.pin_dx[pins], st.pin_dy_n[pins], st.pin_dy_f[pins]
    own = (red(dxv, mine, inf, np.minimum), red(dxv, mine, -inf, np.maximum),
           red(dyn, mine, inf, np.minimum), red(dyn, mine, -inf, np.maximum),
           red(dyf, mine, inf, np.minimum), red(dyf, mine, -inf, np.maximum))
    return box, own


def _ism(st: _State, rng, set_size: int = 12, band_rows: int = 3) -> int:
    """Independent-set matching (ABCDPlace / NTUplace style), one width at a time: cells of that width that
    share no net are grouped by neighbourhood (bands of rows, then x) into sets; with every other pin fixed,
    the wirelength of a set is a sum of one term per (cell, slot), so the best assignment of the cells to their
    own slots is a linear assignment problem, solved exactly by scipy.optimize.linear_sum_assignment."""
    cand = np.flatnonzero(st.movable & (np.diff(st.cn_start) > 0))
    wkey = np.rint(st.w[cand] * 1000).astype(np.int64)                 # same width (to the nanometre)
    moved = 0
    for wk in np.unique(wkey).tolist():
        same = cand[wkey == wk]
        if len(same) >= 2:
            moved += _ism_width(st, _independent_cells(st, same, rng), set_size, band_rows,
                                int(rng.integers(band_rows)))
    return moved


def _ism_width(st: _State, pick: np.ndarray, set_size: int, band_rows: int, band_shift: int) -> int:
    """One ISM round over independent cells of one width (see _ism)."""
    from scipy.optimize import linear_sum_assignment

    if len(pick) < 2:
        return 0
    row = np.clip(np.searchsorted(st.row_y, st.y[pick] - 1e-6), 0, len(st.row_y) - 1)
    band = (row + band_shift) // band_rows
    band_x = np.where(band % 2 == 0, st.x[pick], -st.x[pick])          # serpentine: sets stay compact
    o = np.lexsort((band_x, band))
    pick, band = pick[o], band[o]
    group = band
    new_group = np.concatenate([[True], group[1:] != group[:-1]])
    gstart = np.maximum.accumulate(np.where(new_group, np.arange(len(pick)), 0))
    rank = np.arange(len(pick)) - gstart
    set_id = np.cumsum(np.concatenate([[True], new_group[1:] | (rank[1:] % set_size == 0)])) - 1
    size = np.bincount(set_id)
    keep = size[set_id] >= 2
    if not keep.any():
        return 0
    pick, set_id = pick[keep], set_id[keep]
    _, set_id = np.unique(set_id, return_inverse=True)
    n_sets = int(set_id.max()) + 1
    size = np.bincount(set_id, minlength=n_sets)
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    cost, mat_off = ism_costs(st, pick, set_id)
    mv_cells, mv_x, mv_y = [], [], []
    for s in range(n_sets):
        n = int(size[s])
        m = cost[mat_off[s]:mat_off[s + 1]].reshape(n, n)
        r, c = linear_sum_assignment(m)
        if m[r, c].sum() < np.trace(m) - EPS:
            members = pick[first[s]:first[s] + n]
            moved = c != r
            mv_cells.append(members[r[moved]])
            mv_x.append(st.x[members[c[moved]]])
            mv_y.append(st.y[members[c[moved]]])
    if not mv_cells:
        return 0
    cells = np.concatenate(mv_cells)
    if _apply_round(st, cells, np.concatenate(mv_x), np.concatenate(mv_y)):
        return len(cells)
    return 0


def ism_costs(st: _State, pick: np.ndarray, set_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost matrices of ISM sets, all at once: pick (M,) cells grouped by set_id (sorted, 0..S-1). Entry
    [i, j] of set s is the weighted HPWL of cell i's nets with cell i at the slot of cell j (as the cell will
    be drawn there: N or FS) and every other pin where it is. Flat (sum of size^2,) with offsets (S+1,)."""
    size = np.bincount(set_id)
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    local = np.arange(len(pick)) - first[set_id]
    # (cell, net) pairs of the picked cells, every net (big ones too: their term is exact for one cell alone)
    cnt = st.cn_start[pick + 1] - st.cn_start[pick]
    pair = _ragged_arange(st.cn_start[pick], cnt)
    p_of = np.repeat(np.arange(len(pick)), cnt)                       # picked index of each pair
    pn = st.pair_net[pair]
    (lox, hix, loy, hiy), (mdx, Mdx, mdn, Mdn, mdf, Mdf) = _pair_boxes(st, pick[p_of], pn)
    # every pair against every slot of its set: (pair, slot) entries
    k = size[set_id[p_of]]
    e_pair = np.repeat(np.arange(len(pn)), k)
    e_slot = _ragged_arange(first[set_id[p_of]], k)                   # picked index of the slot's owner
    sx, sy = st.x[pick[e_slot]], st.y[pick[e_slot]]
    sf = st.fs[pick[e_slot]]
    span_x = np.maximum(hix[e_pair], sx + Mdx[e_pair]) - np.minimum(lox[e_pair], sx + mdx[e_pair])
    lo_dy = np.where(sf, mdf[e_pair], mdn[e_pair])
    hi_dy = np.where(sf, Mdf[e_pair], Mdn[e_pair])
    span_y = np.maximum(hiy[e_pair], sy + hi_dy) - np.minimum(loy[e_pair], sy + lo_dy)
    cost_e = (span_x + span_y) * st.net_weight[pn[e_pair]]
    mat_off = np.concatenate([[0], np.cumsum(size.astype(np.int64) ** 2)])
    s_of = set_id[p_of[e_pair]]
    flat = mat_off[s_of] + local[p_of[e_pair]] * size[s_of] + local[e_slot]
    return np.bincount(flat, weights=cost_e, minlength=int(mat_off[-1])), mat_off


def window_deltas(st: _State, win: np.ndarray, cand_slot: np.ndarray, cand_x: np.ndarray) -> np.ndarray:
    """Exact HPWL change of C candidate arrangements of K row windows at once (y does not change in a row).

    win (K, m) cells; cand_slot (K, C, m) the cell (index 0..m-1 into win's row) placed at cand_x (K, C, m).
    Per (window, net): the x-box of the pins outside the window and the x-span of each window cell's own pins
    on that net; a candidate's span is then a max / min over m terms. -> (K, C)."""
    K, m = win.shape
    C = cand_x.shape[1]
    flat = win.reshape(-1)
    cnt = st.cn_start[flat + 1] - st.cn_start[flat]
    pidx = _ragged_arange(st.cn_start[flat], cnt)
    k_p = np.repeat(np.repeat(np.arange(K), m), cnt)
    net_p = st.pair_net[pidx]
    n_nets = len(st.deg)
    key = np.unique(k_p * n_nets + net_p)
    k_u, net_u = key // n_nets, key % n_nets                             # (U,) window and net
    lens = st.deg[net_u]
    pins = st.net_pins[_ragged_arange(st.net_start[net_u], lens)]
    owner = np.repeat(np.arange(len(net_u)), lens)
    c = st.pin_cell[pins]
    slot_of = np.full(len(pins), -1, dtype=np.int64)
    for j in range(m):
        slot_of[c == win[k_u[owner], j]] = j
    px = st.x[c] + st.pin_dx[pins]
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    out = slot_of < 0
    olo = np.minimum.reduceat(np.where(out, px, np.inf), starts)
    ohi = np.maximum.reduceat(np.where(out, px, -np.inf), starts)
    dx = st.pin_dx[pins]
    mdx = np.stack([np.minimum.reduceat(np.where(slot_of == j, dx, np.inf), starts) for j in range(m)], 1)
    Mdx = np.stack([np.maximum.reduceat(np.where(slot_of == j, dx, -np.inf), starts) for j in range(m)], 1)
    # (window, net, cell) triples where the cell has pins on the net, grouped by (window, net): usually one
    # or two per net, so the candidates' spans reduce over these rather than over all m cells
    slot_p = np.repeat(np.tile(np.arange(m), K), cnt)
    u_p = np.searchsorted(key, k_p * n_nets + net_p)
    o = np.argsort(u_p, kind="stable")
    u_p, slot_p = u_p[o], slot_p[o]
    u_first = np.searchsorted(u_p, np.arange(len(key)))
    xc = np.empty((K, C, m))                                             # x of each window cell per candidate
    np.put_along_axis(xc, cand_slot, cand_x, axis=2)
    xp = xc[k_u[u_p], :, slot_p]                                         # (T, C)
    hi = np.maximum(ohi[:, None], np.maximum.reduceat(xp + Mdx[u_p, slot_p][:, None], u_first, axis=0))
    lo = np.minimum(olo[:, None], np.minimum.reduceat(xp + mdx[u_p, slot_p][:, None], u_first, axis=0))
    x0p = st.x[win[k_u[u_p], slot_p]]
    hi0 = np.maximum(ohi, np.maximum.reduceat(x0p + Mdx[u_p, slot_p], u_first))
    lo0 = np.minimum(olo, np.minimum.reduceat(x0p + mdx[u_p, slot_p], u_first))
    d = ((hi - lo) - (hi0 - lo0)[:, None]) * st.net_weight[net_u][:, None]
    out_d = np.zeros((K, C))
    if len(k_u):
        uk, first = np.unique(k_u, return_index=True)                    # k_u is sorted (keys by window)
        out_d[uk] = np.add.reduceat(d, first, axis=0)
    return out_d


def _perms(m: int) -> np.ndarray:
    import itertools

    return np.asarray(list(itertools.permutations(range(m))), dtype=np.int64)


def _window_perm(st: _State, m: int = 3) -> int:
    """Sliding windows of m consecutive movable cells of a row (nothing fixed between them): all m! orders,
    packed to the window's left end or to its right end; the best improving choice per window (exact deltas,
    window_deltas), windows that share no net applied together. m phases cover every start position."""
    moved = 0
    site = st.site[0]
    perms = _perms(m)
    P = len(perms)
    for phase in range(m):
        cell, row, xs, ws, mv = _row_sequence(st)
        n = len(cell)
        if n < m:
            return moved
        s = np.arange(phase, n - m + 1, m)
        ok = row[s] == row[s + m - 1]
        for j in range(m):
            ok &= mv[s + j]
        s = s[ok]
        if len(s) == 0:
            continue
        win = np.stack([cell[s + j] for j in range(m)], 1)                # (K, m)
        wq = np.ceil(st.w[win] / site - EPS) * site
        left = xs[s]
        right = left + np.floor((xs[s + m - 1] + ws[s + m - 1] - left) / site + EPS) * site
        wp = wq[:, perms]                                                  # (K, P, m) widths in each order
        lx = left[:, None, None] + np.cumsum(wp, axis=2) - wp              # left-packed x in each order
        rx = right[:, None, None] - np.cumsum(wp[:, :, ::-1], axis=2)[:, :, ::-1]
        fits = left + wq.sum(axis=1) <= right + EPS                        # the window holds them packed
        cand_x = np.concatenate([lx, rx], axis=1)                          # (K, 2P, m) x of each position
        cand_slot = np.broadcast_to(np.concatenate([perms, perms], 0), (len(s), 2 * P, m))
        delta = window_deltas(st, win, np.ascontiguousarray(cand_slot), cand_x)
        delta[~fits] = np.inf
        best = np.argmin(delta, axis=1)
        bd = delta[np.arange(len(s)), best]
        good = np.flatnonzero(bd < -EPS)
        if len(good) == 0:
            continue
        mc = win[good[:, None], cand_slot[good, best[good]]]              # cells in position order
        nx = cand_x[good, best[good]]
        ny = np.repeat(st.y[win[good, :1]], m, axis=1)
        # net-disjoint windows, best first (their deltas then add up); pk/pn: the windows' small nets
        cnt = st.cn_start[mc + 1] - st.cn_start[mc]
        pidx = _ragged_arange(st.cn_start[mc.reshape(-1)], cnt.reshape(-1))
        pk = np.repeat(np.repeat(np.arange(len(good)), m), cnt.reshape(-1))
        pn = st.pair_net[pidx]
        small = st.deg[pn] <= BIG_NET
        key = np.unique(pk[small] * len(st.deg) + pn[small])
        take = np.asarray(_independent(bd[good], mc, key // len(st.deg), key % len(st.deg)), dtype=np.int64)
        if len(take) and _apply_round(st, mc[take].reshape(-1), nx[take].reshape(-1), ny[take].reshape(-1)):
            moved += len(take)
    return moved


def _shift(st: _State) -> int:
    """Row-wise shifting: each cell slides inside the free space between its row neighbours towards the centre
    of its optimal region (order kept, site grid kept). Every other cell of the row sequence moves in one
    batch (its neighbours stay put, so the space it slides in is its own); improving, net-disjoint moves."""
    moved = 0
    site = st.site[0]
    for parity in (0, 1):
        ox, _ = st.optimal_centres()
        cell, row, xs, ws, mv = _row_sequence(st)
        n = len(cell)
        idx = np.arange(parity, n, 2)
        idx = idx[mv[idx] & np.isfinite(ox[cell[idx]])]
        if len(idx) == 0:
            continue
        c = cell[idx]
        r = row[idx]
        has_l = (idx > 0) & (row[np.maximum(idx - 1, 0)] == r)
        has_r = (idx < n - 1) & (row[np.minimum(idx + 1, n - 1)] == r)
        # a neighbour may be a fixed block that overlaps the row's height but lies beyond its ends (rows cut
        # around a macro): the row's own ends bound the slide too
        lo = np.maximum(np.where(has_l, xs[np.maximum(idx - 1, 0)] + ws[np.maximum(idx - 1, 0)], st.row_x0[r]),
                        st.row_x0[r])
        hi = np.minimum(np.where(has_r, xs[np.minimum(idx + 1, n - 1)], st.row_x1[r]), st.row_x1[r])
        x0 = st.row_x0[r]
        a = x0 + np.ceil((lo - x0) / site - EPS) * site
        b = x0 + np.floor((hi - st.w[c] - x0) / site + EPS) * site
        want = ox[c] - st.w[c] / 2
        t = x0 + np.round((np.clip(want, a, np.maximum(a, b)) - x0) / site) * site
        t = np.clip(t, a, np.maximum(a, b))
        go = (b >= a - EPS) & (np.abs(t - st.x[c]) > EPS)
        c, t = c[go], t[go]
        if len(c) == 0:
            continue
        mc = c[:, None]
        d, pk, pn = batch_delta_chunked(st, mc, t[:, None], st.y[c][:, None])
        take = np.asarray(_independent(d, mc, pk, pn), dtype=np.int64)
        if len(take) and _apply_round(st, c[take], t[take], st.y[c[take]]):
            moved += len(take)
    return moved


# ------------------------------------------------------------------- vertical moves (rows by wirelength)
class _Segs:
    """Free row segments (legalize.build_segments) looked up by (row y, x); split rows share a y."""

    def __init__(self, netlist):
        from engine.place.legalize import build_segments

        sg = build_segments(netlist)
        self.x0, self.x1 = sg.x0, sg.x1
        self.levels = np.unique(sg.row_y)
        lv = np.searchsorted(self.levels, sg.y)
        self.base = float(min(sg.x0.min(), 0.0)) if len(sg.x0) else 0.0
        self.span = float(sg.x1.max() - self.base) + 1.0 if len(sg.x1) else 1.0
        self.key = lv * self.span + (sg.x0 - self.base)       # sorted: build_segments orders by row, then x

    def find(self, y: float, x: float) -> int:
        """Index of the segment at row y holding x, -1 if none."""
        lv = int(np.searchsorted(self.levels, y - 1e-6))
        if lv >= len(self.levels) or abs(self.levels[lv] - y) > 1e-6:
            return -1
        s = int(np.searchsorted(self.key, lv * self.span + (x - self.base), side="right")) - 1
        if s < 0 or int(self.key[s] // self.span) != lv or not (self.x0[s] - EPS <= x <= self.x1[s] + EPS):
            return -1
        return s


def _vertical_moves(st: _State, segs: _Segs, reach: float, max_moves: int | None = None,
                    deadline: float = float("inf")) -> int:
    """Cells change to the row above or below where that shortens their nets, the rows there re-packed.

    Snapping a global y to a row moves pins up to half a row blind to the nets (and an FS row mirrors them), so
    many cells would rather sit one row up or down, where there is seldom a gap that fits. Every cell whose
    own move (x kept) would gain is a candidate, best first: it is put into that row at its x and the cells
    around it there (within `reach` row heights, inside its free segment, between the nearest cells that stay)
    are re-packed by Abacus, cells not pushed keeping their place; if that does not pay, it trades rows with
    up to PARTNERS cells of that row near it (within EXCHANGE_REACH rows' height) that gain by coming the other
    way, both windows re-packed. A move is kept only if the exact HPWL of every net it touches goes down.
    The work is bounded by a count (the `max_moves` best candidates), not by the clock, so the result does not
    depend on how busy the machine is; `deadline` is only a safety stop. -> cells moved."""
    site = float(st.site[0])
    levels = segs.levels
    if len(levels) < 2:
        return 0
    mov = np.flatnonzero(st.movable)
    wq = np.ceil(st.w / site - EPS) * site
    half = reach * float(st.row_h[0])
    lv = np.clip(np.searchsorted(levels, st.y[mov] - 1e-6), 0, len(levels) - 1)
    cs, ts, ds = [], [], []
    for step in (1, -1):
        t = lv + step
        ok = (t >= 0) & (t < len(levels))
        c, ty = mov[ok], levels[t[ok]]
        if len(c) == 0:
            continue
        d, _, _ = batch_delta_chunked(st, c[:, None], st.x[c][:, None], ty[:, None])
        g = d < -EPS
        cs.append(c[g])
        ts.append(ty[g])
        ds.append(d[g])
    if not cs:
        return 0
    cand, ty, d = np.concatenate(cs), np.concatenate(ts), np.concatenate(ds)
    o = np.lexsort((cand, d))[:max_moves]                      # best gain first
    cand, ty, d = cand[o], ty[o], d[o]
    st.rebuild_rows()
    row_x = [st.x[np.asarray(r, dtype=np.int64)] if r else np.zeros(0) for r in st.row_cells]
    row_of_y = np.searchsorted(st.row_y, levels - 1e-6)       # the row (index) that holds each y's cells
    partners = _exchange_partners(st, cand, ty, d, PARTNERS, float(st.row_h[0]) * EXCHANGE_REACH)
    moved = 0
    done = np.zeros(len(st.x), dtype=bool)
    for k, (i, yt) in enumerate(zip(cand.tolist(), ty.tolist())):
        if k % 256 == 0 and time.perf_counter() > deadline:
            break
        if done[i] or abs(st.y[i] - yt) < EPS:
            continue
        r = int(row_of_y[int(np.searchsorted(levels, yt - 1e-6))])
        ri = int(st.row_of[i])
        got = _repack_window(st, segs, r, row_x, float(st.x[i]), half, (), (i,), wq, site)
        if got is not None and _commit_windows(st, [(r, *got)], {i: (ri, r)}, row_x):
            done[i] = True
            moved += 1
            continue
        for j in partners.get((i, yt), ()):
            if done[j] or int(st.row_of[j]) != r:
                continue
            a = _repack_window(st, segs, r, row_x, float(st.x[i]), half, (j,), (i,), wq, site)
            b = None if a is None else _repack_window(st, segs, ri, row_x, float(st.x[j]), half, (i,), (j,), wq,
                                                      site)
            if b is not None and _commit_windows(st, [(r, *a), (ri, *b)], {i: (ri, r), j: (r, ri)}, row_x):
                done[i] = done[j] = True
                moved += 2
                break
    return moved


def _exchange_partners(st: _State, cand: np.ndarray, ty: np.ndarray, d: np.ndarray, k: int,
                       reach: float) -> dict:
    """{(cell, target row y): up to k cells at that y, within `reach` of its x, that gain by moving to the
    cell's row y}, the best gainers first."""
    want: dict = {}
    for c, t, g in zip(cand.tolist(), ty.tolist(), d.tolist()):
        want.setdefault((round(float(st.y[c]), 6), round(t, 6)), []).append((float(st.x[c]), c, g))
    out: dict = {}
    for (yr, yt), lst in want.items():
        back = want.get((yt, yr))
        if not back:
            continue
        back = sorted(back)
        bx = np.asarray([b[0] for b in back])
        bc = [b[1] for b in back]
        bg = np.asarray([b[2] for b in back])
        for x, c, _ in lst:
            a, b = int(np.searchsorted(bx, x - reach)), int(np.searchsorted(bx, x + reach))
            if a < b:
                sel = a + np.argsort(bg[a:b], kind="stable")[:k]
                out[(c, float(st.y[bc[sel[0]]]))] = [bc[q] for q in sel.tolist()]
    return out


def _repack_window(st: _State, segs: _Segs, r: int, row_x: list, centre: float, half: float, remove: tuple,
                   add: tuple, wq: np.ndarray, site: float):
    """Row r with the cells `remove` taken out and `add` put in at their current x (their wishes): the movable
    cells within `half` of `centre` in its free segment, between the nearest cells that stay, re-packed by
    Abacus (cells not pushed keep their place). -> (cells, x) of the window, or None if they do not fit."""
    from engine.place.legalize import abacus_segment

    s = segs.find(float(st.row_y[r]), centre)
    if s < 0:
        return None
    sx0, sx1 = float(segs.x0[s]), float(segs.x1[s])
    cells = st.row_cells[r]
    xs = row_x[r]
    lo_k = int(np.searchsorted(xs, max(centre - half, sx0 - EPS)))
    hi_k = int(np.searchsorted(xs, min(centre + half, sx1 - EPS)))
    for k in range(lo_k, hi_k):                    # no fixed cell inside a free segment, but be safe
        if not st.movable[cells[k]]:
            if xs[k] <= centre:
                lo_k = k + 1
            else:
                hi_k = k
                break
    for c in remove:                               # a cell taken out must lie inside the window
        k = int(st.slot[c])
        if k < lo_k or k >= hi_k:
            return None
    lo = sx0 if lo_k == 0 else max(sx0, xs[lo_k - 1] + st.w[cells[lo_k - 1]])
    hi = sx1 if hi_k >= len(cells) else min(sx1, xs[hi_k])
    lo = sx0 + np.ceil((lo - sx0) / site - EPS) * site
    hi = sx0 + np.floor((hi - sx0) / site + EPS) * site
    keep = [c for c in cells[lo_k:hi_k] if c not in remove]
    members = np.asarray(keep + list(add), dtype=np.int64)
    ww = wq[members]
    if ww.sum() > hi - lo + EPS:
        return None
    tx = st.x[members]
    o = np.argsort(tx, kind="stable")
    px = np.empty(len(members))
    px[o] = abacus_segment(tx[o], ww[o], float(lo), float(hi), site)
    if px.min() < lo - EPS or (px + ww).max() > hi + EPS:
        return None
    return members, px


def _commit_windows(st: _State, parts: list, moved_rows: dict, row_x: list) -> bool:
    """Apply re-packed windows [(row, cells, x)] if the exact HPWL goes down; moved_rows {cell: (old, new)}."""
    cells = np.concatenate([p[1] for p in parts])
    nx = np.concatenate([p[2] for p in parts])
    ny = np.concatenate([np.full(len(p[1]), st.row_y[p[0]]) for p in parts])
    ch = (np.abs(nx - st.x[cells]) > EPS) | (np.abs(ny - st.y[cells]) > EPS)
    if not ch.any() or not _apply_round(st, cells[ch], nx[ch], ny[ch]):
        return False
    for c, (ro, rn) in moved_rows.items():
        st.row_cells[ro].remove(c)
        st.row_cells[rn].append(c)
    for r in {p[0] for p in parts} | {ro for ro, _ in moved_rows.values()}:
        cl = sorted(st.row_cells[r], key=lambda c: st.x[c])
        st.row_cells[r] = cl
        arr = np.asarray(cl, dtype=np.int64)
        row_x[r] = st.x[arr] if len(arr) else np.zeros(0)
        if len(arr):
            mv = st.movable[arr]
            st.slot[arr[mv]] = np.flatnonzero(mv)
            st.row_of[arr[mv]] = r
    return True


GAP_MOVE_BASE = 2000  # candidates for one-by-one gap moves per pass: 2,000 + 10% of the cells
GAIN_STOP = 1e-3      # a pass that gains less than this fraction of the HPWL ends detailed placement
VERTICAL_REACH = 10.0  # row heights either side of a vertical move that its re-pack may push (0: no vertical moves;
#                        on gen:5000 3 gave 0.35%, 10 0.83%, 30 1.03% in 0.4, 0.9, 2.5 s for three passes alone)
VERTICAL_BASE = 2000   # candidates for vertical moves per pass: 2,000 + 10% of the cells, best gains first
EXCHANGE_REACH = 3.0  # row heights in x within which a cell looks for a partner to trade rows with
PARTNERS = 3          # partners tried per cell (1: 0.15% less gain on gen:5000)
ROUNDS = 2            # rounds of the batched moves per pass (a third gained < 0.05% on gen:10000 for 1.6x the time)
WINDOW = 3            # cells per sliding window (4 gained 0.05% more on gen:10000 for 1.7x the time)


def detailed_place(netlist, x: np.ndarray, y: np.ndarray, passes: int = 2, time_limit_s: float = 60.0,
                   cancel=None, seed: int = 0):
    """Improve a legal placement; returns (x, y, DetailedStats). Stops early when a pass gains < GAIN_STOP.

    HPWL here (and in the stats) has each movable cell's pins under its row's orientation (N/FS) and fixed
    cells' under their own, as the cells will be drawn. Each pass: ROUNDS of independent-set matching, global
    swaps, sliding-window permutations, pair reorders and row shifting (all batched), vertical moves (in the
    first round), then one-by-one swaps and gap moves; every batch is applied only if the exact HPWL of the nets
    it touches goes down."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    rng = np.random.default_rng(seed)
    st = _State(netlist, x, y)
    before = st.total_hpwl()
    cur = before
    c = dict(swaps=0, gap_moves=0, reorders=0, ism=0, windows=0, shifts=0, vertical=0)
    segs = _Segs(netlist) if VERTICAL_REACH > 0 else None
    done = 0
    for _ in range(max(0, passes)):
        if time.perf_counter() > deadline or (cancel is not None and cancel()):
            break
        keep_x, keep_y = st.x.copy(), st.y.copy()
        for _round in range(ROUNDS):
            c["ism"] += _ism(st, rng)
            c["swaps"] += _batched_swaps(st)
            c["windows"] += _window_perm(st, WINDOW)
            c["reorders"] += _batched_reorder(st)
            c["shifts"] += _shift(st)
            if segs is not None and _round == 0:
                c["vertical"] += _vertical_moves(st, segs, VERTICAL_REACH, VERTICAL_BASE + len(st.x) // 10,
                                                 deadline)
            if time.perf_counter() > deadline or (cancel is not None and cancel()):
                break
        # then one-by-one moves into free gaps (and swaps) for what the batches left, within the time left
        st.rebuild_rows()
        sw, gm = _global_swap(st, GAP_MOVE_BASE + len(st.x) // 10, deadline)
        c["swaps"] += sw
        c["gap_moves"] += gm
        done += 1
        new = st.total_hpwl()
        if new > cur:   # every batch is checked exactly; this is the last guard
            st.set_pos(np.arange(len(st.x)), keep_x, keep_y)
            st.rebuild_rows()
            break
        gain = cur - new
        cur = new
        if gain < GAIN_STOP * max(before, 1e-9):
            break
    stats = DetailedStats(hpwl_before=before, hpwl_after=cur, passes=done, runtime_s=time.perf_counter() - t0,
                          **c)
    log.info("detailed placement: HPWL %.6g -> %.6g (%s, %.2fs)", before, cur, c, stats.runtime_s)
    return st.x, st.y, stats
