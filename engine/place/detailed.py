"""Detailed placement: global swap and local reorder on a legal placement; every move keeps it legal and
lowers the exact HPWL (moves are accepted only on a strictly negative HPWL change).

- Global swap (Pan et al., FastPlace-DP): each cell's optimal region is the median box of its nets' bounding
  boxes without it (computed for all cells at once per pass, vectorised); a cell away from its region is tried
  against the same-width cells nearest the region's centre on the rows there; the best improving swap wins.
- Local reorder: adjacent cells of a row exchange places inside the span they occupy (gaps are kept).
- Gap moves: a cell far from its optimal region moves into a free gap there.
Swaps and reorders are batched: all candidates are scored at once (ragged numpy gathers over the touched
nets), then the improving ones that share no net are applied together, whose HPWL changes then add up exactly
(an independent set, in the spirit of independent-set matching). Gap moves go one by one in the time left.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from engine.place.legalize import EPS, _sorted_rows

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
        self.pin_dx = np.asarray(netlist.pin_dx, dtype=np.float64)
        self.pin_dy = np.asarray(netlist.pin_dy, dtype=np.float64)
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
        rows = _sorted_rows(netlist)
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
        self.rebuild_rows()

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
        py = self.y[c] + self.pin_dy[pins]
        st = np.concatenate([[0], np.cumsum(lens)[:-1]])
        span = (np.maximum.reduceat(px, st) - np.minimum.reduceat(px, st) +
                np.maximum.reduceat(py, st) - np.minimum.reduceat(py, st))
        return float((span * self.net_weight[nets]).sum())

    def move_delta(self, cells, nx, ny) -> float:
        """HPWL change if cells moved to (nx, ny); positions are restored."""
        nets = self.nets_of(cells)
        before = self.nets_hpwl(nets)
        ox, oy = self.x[cells].copy(), self.y[cells].copy()
        self.x[cells], self.y[cells] = nx, ny
        after = self.nets_hpwl(nets)
        self.x[cells], self.y[cells] = ox, oy
        return after - before

    def optimal_centres(self):
        """(n,) x and y of the centre of each cell's optimal region (NaN for cells without nets).

        Per net the bounding box without the cell is taken from the two smallest and two largest pins."""
        n = self.nl.n_cells
        px = self.x[self.pin_cell] + self.pin_dx
        py = self.y[self.pin_cell] + self.pin_dy
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
    lo = st.row_x0[r] if k == 0 else xs[k - 1] + st.w[cells[k - 1]]
    hi = st.row_x1[r] if k == len(cells) else xs[k]
    if hi - lo < wi - EPS:
        return None
    site, x0 = st.site[r], st.row_x0[r]
    a = x0 + np.ceil((lo - x0) / site - EPS) * site
    b = x0 + np.floor((hi - wi - x0) / site + EPS) * site
    if b < a - EPS:
        return None
    t = x0 + np.round((min(max(want, a), b) - x0) / site) * site
    return float(min(max(t, a), b))


def _global_swap(st: _State, max_cells: int, deadline: float) -> tuple[int, int]:
    """Swaps with same-width cells and moves into free gaps near each cell's optimal region.

    The work is bounded by a count (``max_cells`` candidates, farthest from their optimal region first), not by
    the clock, so the result does not depend on how busy the machine is; ``deadline`` is only a safety stop."""
    ox, oy = st.optimal_centres()
    mov = np.flatnonzero(st.movable & np.isfinite(ox))
    rh = st.row_h[0]
    cx = st.x + st.w / 2
    cy = st.y + rh / 2
    dist = np.abs(ox[mov] - cx[mov]) + np.abs(oy[mov] - cy[mov])
    todo = mov[dist > 0.5 * rh]
    todo = todo[np.argsort(-(np.abs(ox[todo] - cx[todo]) + np.abs(oy[todo] - cy[todo])))]
    row_x = [st.x[np.asarray(r, dtype=np.int64)] if r else np.zeros(0) for r in st.row_cells]
    swaps = gap_moves = 0
    n_rows = len(st.row_y)
    for k, i in enumerate(todo[:max_cells].tolist()):
        if k % 256 == 0 and time.perf_counter() > deadline:
            break
        tr = int(np.clip(np.searchsorted(st.row_y, oy[i] - rh / 2), 0, n_rows - 1))
        best, best_move = -EPS, None
        wi = st.w[i]
        want = ox[i] - wi / 2
        for r in (tr, tr - 1, tr + 1):
            if r < 0 or r >= n_rows:
                continue
            cells = st.row_cells[r]
            s = int(np.searchsorted(row_x[r], want))
            for q in range(max(0, s - 2), min(len(cells), s + 3)):
                j = cells[q]
                if j == i or not st.movable[j] or abs(st.w[j] - wi) > EPS:
                    continue
                d = st.move_delta([i, j], [st.x[j], st.x[i]], [st.y[j], st.y[i]])
                if d < best:
                    best, best_move = d, ("swap", j)
            for q in range(max(0, s - 1), min(len(cells), s + 1) + 1):
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
            st.x[i], st.x[j] = st.x[j], st.x[i]
            st.y[i], st.y[j] = st.y[j], st.y[i]
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
            st.x[i], st.y[i] = nx, st.row_y[r]
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
    by = st.y[c] + st.pin_dy[pins]
    ax, ay = bx.copy(), by.copy()
    for slot in range(cells.shape[1]):
        m = cells[k_of, slot] == c
        ax[m] = nx[k_of[m], slot] + st.pin_dx[pins[m]]
        ay[m] = ny[k_of[m], slot] + st.pin_dy[pins[m]]
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
    take = _independent(delta, mc, pk, pn)
    for k in take:
        a, b = mc[k]
        st.x[a], st.x[b] = st.x[b], st.x[a]
        st.y[a], st.y[b] = st.y[b], st.y[a]
    return len(take)


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
        take = _independent(delta, mc, pk, pn)
        if take:
            t = np.asarray(take)
            st.x[mc[t, 0]] = nx[t, 0]
            st.x[mc[t, 1]] = nx[t, 1]
        moved += len(take)
    return moved


GAP_MOVE_BASE = 2000  # candidates for one-by-one gap moves per pass: 2,000 + 10% of the cells


def detailed_place(netlist, x: np.ndarray, y: np.ndarray, passes: int = 2, time_limit_s: float = 60.0,
                   cancel=None):
    """Improve a legal placement; returns (x, y, DetailedStats). Stops early when a pass gains < 0.1%."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    st = _State(netlist, x, y)
    before = float(netlist.hpwl(st.x, st.y))
    cur = before
    swaps = gap_moves = reorders = done = 0
    for _ in range(max(0, passes)):
        if time.perf_counter() > deadline or (cancel is not None and cancel()):
            break
        keep_x, keep_y = st.x.copy(), st.y.copy()
        for _round in range(3):
            swaps += _batched_swaps(st)
            reorders += _batched_reorder(st)
            if time.perf_counter() > deadline:
                break
        # then one-by-one moves into free gaps (and swaps) for what the batches left, within the time left
        st.rebuild_rows()
        sw, gm = _global_swap(st, GAP_MOVE_BASE + len(st.x) // 10, deadline)
        swaps, gap_moves = swaps + sw, gap_moves + gm
        done += 1
        new = float(netlist.hpwl(st.x, st.y))
        if new > cur:   # big nets are outside batched deltas: never accept a pass that made things worse
            st.x, st.y = keep_x, keep_y
            st.rebuild_rows()
            break
        gain = cur - new
        cur = new
        if gain < 1e-3 * max(before, 1e-9):
            break
    stats = DetailedStats(hpwl_before=before, hpwl_after=cur, swaps=swaps, gap_moves=gap_moves, reorders=reorders,
                          passes=done, runtime_s=time.perf_counter() - t0)
    log.info("detailed placement: HPWL %.6g -> %.6g (%d swaps, %d gap moves, %d reorders, %.2fs)", before, cur,
             swaps, gap_moves, reorders, stats.runtime_s)
    return st.x, st.y, stats
