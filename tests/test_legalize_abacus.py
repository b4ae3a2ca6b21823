"""Abacus with row trials and the batched detailed-placement moves, against slow obvious references."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.netlist import Row
from engine.place import detailed as D
from engine.place.generate import generate_netlist
from engine.place.legalize import (
    AbacusRow,
    abacus_assign,
    abacus_segment,
    build_segments,
    check_legality,
    legalize,
    legalize_tetris,
    oriented_hpwl,
    prepare_inputs,
    row_orientations,
)


def _clumped(nl, seed=0, spread=0.15):
    """Overlapping positions around a few centres (a global placement before it has spread, only worse)."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = nl.core
    mov = ~nl.cell_fixed
    n = int(mov.sum())
    centres = rng.uniform([x0, y0], [x1, y1], size=(6, 2))
    k = rng.integers(0, len(centres), n)
    x, y = nl.x.copy(), nl.y.copy()
    x[mov] = np.clip(centres[k, 0] + rng.normal(0, spread * (x1 - x0), n), x0, x1 - nl.cell_w[mov])
    y[mov] = np.clip(centres[k, 1] + rng.normal(0, spread * (y1 - y0), n), y0, y1 - nl.cell_h[mov])
    return x, y


def _optimal_row(t, w, e, x0, x1):
    """Brute force: every split of the cells (kept in order) into runs of abutting cells, each run at its
    weighted-mean wish clamped to the row; the cheapest split whose runs do not overlap is the optimum of
    min sum e (x - t)^2 subject to order, no overlap and the row ends (its KKT points are such splits)."""
    n = len(t)
    best, best_x = np.inf, None
    for cuts in itertools.product([0, 1], repeat=n - 1):
        starts = [0] + [i + 1 for i, c in enumerate(cuts) if c]
        ends = starts[1:] + [n]
        x = np.empty(n)
        for a, b in zip(starts, ends):
            off = np.concatenate([[0.0], np.cumsum(w[a:b - 1])])
            pos = np.sum(e[a:b] * (t[a:b] - off)) / np.sum(e[a:b])
            pos = min(max(pos, x0), x1 - np.sum(w[a:b]))
            x[a:b] = pos + off
        if np.all(x[1:] >= x[:-1] + w[:-1] - 1e-9) and x[0] >= x0 - 1e-9 and x[-1] + w[-1] <= x1 + 1e-9:
            cost = float(np.sum(e * (x - t) ** 2))
            if cost < best - 1e-12:
                best, best_x = cost, x
    return best_x, best


def test_abacus_on_one_row_is_the_optimal_quadratic_placement():
    rng = np.random.default_rng(3)
    for _ in range(60):
        n = int(rng.integers(1, 7))
        w = rng.integers(1, 5, n) * 0.8
        x0, x1 = 0.0, float(np.ceil((w.sum() + rng.uniform(0, 8)) / 0.8) * 0.8)
        t = np.sort(rng.uniform(-3, x1 + 3, n))
        e = rng.uniform(0.5, 3.0, n)
        row = AbacusRow(x0, x1)
        for i in range(n):
            row.add(i, float(t[i]), float(w[i]), float(e[i]))
        got = row.positions(w, None)
        ref, ref_cost = _optimal_row(t, w, e, x0, x1)
        assert float(np.sum(e * (got - t) ** 2)) == pytest.approx(ref_cost, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(got, ref, atol=1e-7)
        # on sites: each cluster moves by at most half a site, the row stays legal
        snapped = abacus_segment(t, w, x0, x1, 0.8, weight=e)
        q = snapped / 0.8
        np.testing.assert_allclose(q, np.round(q), atol=1e-9)
        assert np.all(np.abs(snapped - got) <= 0.4 + 1e-9)
        assert np.all(snapped[1:] >= snapped[:-1] + w[:-1] - 1e-9)
        assert snapped[0] >= x0 - 1e-9 and snapped[-1] + w[-1] <= x1 + 1e-9


def test_a_trial_is_what_adding_the_cell_gives():
    rng = np.random.default_rng(4)
    row = AbacusRow(0.0, 200.0)
    for i in range(40):
        xi, wi = float(rng.uniform(0, 180)), float(rng.integers(1, 6) * 0.8)
        before = (list(row.cx), list(row.cw))
        want = row.trial(xi, wi, wi)
        assert (row.cx, row.cw) == before                             # a trial changes nothing
        row.add(i, xi, wi, wi)
        assert row.cx[-1] + row.cw[-1] - wi == pytest.approx(want)    # the new cell ends its cluster


def test_quadratic_trial_cost_is_the_rise_of_the_segment_cost():
    rng = np.random.default_rng(5)
    row = AbacusRow(0.0, 120.0)
    ts, ws = [], []

    def seg_cost():
        x = row.positions(np.asarray(ws), None)
        return float(np.sum(np.asarray(ws) * (x - np.asarray(ts)) ** 2)) if ts else 0.0

    for i in range(30):
        xi, wi = float(rng.uniform(0, 110)), float(rng.integers(1, 5) * 0.8)
        before = seg_cost()
        rise = row.trial_cost(xi, wi, wi)
        row.add(i, xi, wi, wi)
        ts.append(xi)
        ws.append(wi)
        assert rise == pytest.approx(seg_cost() - before, rel=1e-9, abs=1e-7)


@pytest.fixture(scope="module")
def macro_design():
    nl = generate_netlist(1200, seed=7, n_macros=4, utilization=0.7)
    return nl


def test_legal_around_fixed_macros_with_split_segments(macro_design):
    nl = macro_design
    segs = build_segments(nl)
    assert np.any(np.diff(segs.start) > 1)                             # macros cut some rows in two
    x, y = _clumped(nl, 1)
    lx, ly = legalize(nl, x, y)
    rep = check_legality(nl, lx, ly)
    assert rep.ok, rep.summary()
    np.testing.assert_array_equal(lx[nl.cell_fixed], nl.x[nl.cell_fixed])
    np.testing.assert_array_equal(ly[nl.cell_fixed], nl.y[nl.cell_fixed])
    # cells sit beside the macros on the cut rows, not only on free rows
    mov = ~nl.cell_fixed
    cut_rows = segs.row_y[np.diff(segs.start) > 1]
    assert np.isin(np.round(ly[mov], 6), np.round(cut_rows, 6)).sum() > 50
    # every cell takes its row's orientation, alternating N / FS
    orient = row_orientations(nl, lx, ly)
    rows = sorted(nl.rows, key=lambda r: r.y)
    by_y = {round(r.y, 6): r.orient for r in rows}
    assert all(orient[i] == by_y[round(ly[i], 6)] for i in np.flatnonzero(mov))


def _abacus(nl, x, y, cost):
    x, y, mov, segs, _site, w, gx, gy = prepare_inputs(nl, x, y)
    seg_of, nx = abacus_assign(segs, gx, gy, w, 6, cost=cost)
    x[mov], y[mov] = nx, segs.y[seg_of]
    return x, y


def test_displacement_and_wirelength_on_par_with_tetris(macro_design):
    # Measured on 12 clumped cases: Abacus (own-move cost) moves cells 0.98-1.07x as far as Tetris +
    # per-segment Abacus and gives 0.997-1.014x its HPWL. It is not better on displacement: this guards the
    # parity; the brief's "no worse" is not met (see the report).
    nl = macro_design
    mov = ~nl.cell_fixed
    ratios = []
    for seed, spread in ((0, 0.05), (1, 0.25), (3, 0.05), (5, 0.25)):
        x, y = _clumped(nl, seed, spread=spread)
        ax, ay = _abacus(nl, x, y, "cell")
        qx, qy = _abacus(nl, x, y, "quadratic")
        tx, ty = legalize_tetris(nl, x, y)
        for cx, cy in ((ax, ay), (qx, qy), (tx, ty)):
            assert check_legality(nl, cx, cy).ok
        da = np.abs(ax[mov] - x[mov]) + np.abs(ay[mov] - y[mov])
        dt = np.abs(tx[mov] - x[mov]) + np.abs(ty[mov] - y[mov])
        ratios.append(da.mean() / dt.mean())
        assert oriented_hpwl(nl, ax, ay) <= 1.02 * oriented_hpwl(nl, tx, ty)
        # legalize returns the candidate with the least HPWL
        lx, ly = legalize(nl, x, y)
        best = min(oriented_hpwl(nl, cx, cy) for cx, cy in ((ax, ay), (qx, qy), (tx, ty)))
        assert oriented_hpwl(nl, lx, ly) == pytest.approx(best)
    assert max(ratios) <= 1.08 and np.mean(ratios) <= 1.03


def test_split_rows_leave_the_hole_between_them_empty():
    nl = generate_netlist(150, seed=9, utilization=0.5)
    rows = []
    for r in nl.rows:                                                   # a 4-site hole in every row
        mid = r.x0 + (r.num_sites // 2) * r.site_w
        rows += [Row(y=r.y, x0=r.x0, x1=mid, site_w=r.site_w, height=r.height, orient=r.orient),
                 Row(y=r.y, x0=mid + 4 * r.site_w, x1=r.x1, site_w=r.site_w, height=r.height, orient=r.orient)]
    nl.rows = rows
    lx, ly = legalize(nl, *_clumped(nl, 2))
    assert check_legality(nl, lx, ly).ok
    mid_lo = np.asarray([r.x1 for r in rows[0::2]]).min()
    w = nl.cell_w
    assert not np.any((lx < mid_lo + 4 * rows[0].site_w - 1e-6) & (lx + w > mid_lo + 1e-6) & ~nl.cell_fixed)


# ----------------------------------------------------------------------------------------- detailed placement
def test_oriented_hpwl_mirrors_pins_on_fs_rows():
    nl = generate_netlist(100, seed=3)
    lx, ly = legalize(nl, *_clumped(nl, 0))
    orient = row_orientations(nl, lx, ly)
    assert "FS" in orient and "N" in orient
    # by hand: pin y = cell y + (h - dy) on FS rows
    pc = nl.pin_cell
    flip = np.asarray([orient[c] == "FS" for c in pc])
    py = ly[pc] + np.where(flip, nl.cell_h[pc] - nl.pin_dy, nl.pin_dy)
    px = lx[pc] + nl.pin_dx
    ref = 0.0
    for n in range(nl.n_nets):
        p = nl.net_pins[nl.net_start[n]:nl.net_start[n + 1]]
        if len(p):
            ref += nl.net_weight[n] * (np.ptp(px[p]) + np.ptp(py[p]))
    assert oriented_hpwl(nl, lx, ly) == pytest.approx(ref)
    assert oriented_hpwl(nl, lx, ly) != pytest.approx(nl.hpwl(lx, ly))


def test_every_move_keeps_legality_and_never_lengthens_wires(macro_design):
    nl = macro_design
    lx, ly = legalize(nl, *_clumped(nl, 3))
    st = D._State(nl, lx, ly)
    rng = np.random.default_rng(0)
    cur = st.total_hpwl()
    assert cur == pytest.approx(oriented_hpwl(nl, lx, ly))
    moved = 0
    for _ in range(2):
        for op in (lambda: D._ism(st, rng), lambda: D._batched_swaps(st), lambda: D._window_perm(st),
                   lambda: D._batched_reorder(st), lambda: D._shift(st)):
            moved += op()
            new = st.total_hpwl()
            assert new <= cur + 1e-6
            cur = new
            rep = check_legality(nl, st.x, st.y)
            assert rep.ok, rep.summary()
    assert moved > 0
    assert cur == pytest.approx(oriented_hpwl(nl, st.x, st.y))
    np.testing.assert_array_equal(st.x[nl.cell_fixed], nl.x[nl.cell_fixed])


def test_detailed_place_gains_and_stays_legal_with_macros(macro_design):
    nl = macro_design
    lx, ly = legalize(nl, *_clumped(nl, 4))
    before = oriented_hpwl(nl, lx, ly)
    dx, dy, st = D.detailed_place(nl, lx, ly, passes=2, time_limit_s=60)
    assert check_legality(nl, dx, dy).ok
    after = oriented_hpwl(nl, dx, dy)
    assert after < before
    assert st.hpwl_after == pytest.approx(after)
    assert st.ism + st.windows > 0


def test_ism_assignment_is_optimal_against_brute_force():
    nl = generate_netlist(80, seed=11, utilization=0.6)
    lx, ly = legalize(nl, *_clumped(nl, 5))
    st = D._State(nl, lx, ly)
    rng = np.random.default_rng(1)
    widths, counts = np.unique(np.round(st.w[st.movable], 6), return_counts=True)
    wsel = widths[np.argmax(counts)]
    same = np.flatnonzero(st.movable & (np.abs(st.w - wsel) < 1e-6))
    pick = D._independent_cells(st, same, rng)[:6]
    assert len(pick) >= 4
    # the chosen cells share no net
    nets = [set(st.pair_net[st.cn_start[c]:st.cn_start[c + 1]].tolist()) for c in pick]
    assert all(not (a & b) for a, b in itertools.combinations(nets, 2))
    cost, off = D.ism_costs(st, pick, np.zeros(len(pick), dtype=np.int64))
    m = cost[off[0]:off[1]].reshape(len(pick), len(pick))
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(m)
    slots_x, slots_y = st.x[pick].copy(), st.y[pick].copy()
    base = st.total_hpwl()
    best = np.inf
    for perm in itertools.permutations(range(len(pick))):
        p = np.asarray(perm)
        st.set_pos(pick, slots_x[p], slots_y[p])            # cell k goes to the slot of cell perm[k]
        total = st.total_hpwl()
        # separable: the whole netlist's change is the sum of the matrix entries
        assert total - base == pytest.approx(m[np.arange(len(p)), p].sum() - np.trace(m), abs=1e-6)
        best = min(best, total)
    st.set_pos(pick, slots_x, slots_y)
    assert base + m[r, c].sum() - np.trace(m) == pytest.approx(best, abs=1e-6)


def test_window_deltas_are_exact(macro_design):
    nl = macro_design
    lx, ly = legalize(nl, *_clumped(nl, 6))
    st = D._State(nl, lx, ly)
    cell, row, xs, ws, mv = D._row_sequence(st)
    s = np.flatnonzero((row[:-2] == row[2:]) & mv[:-2] & mv[1:-1] & mv[2:])[:40:3]
    win = np.stack([cell[s], cell[s + 1], cell[s + 2]], 1)
    perms = D._perms(3)
    rng = np.random.default_rng(0)
    cand_slot = np.broadcast_to(perms, (len(s), 6, 3)).copy()
    cand_x = xs[s][:, None, None] + rng.integers(0, 30, (len(s), 6, 3)) * 0.8   # any positions: deltas only
    got = D.window_deltas(st, win, cand_slot, cand_x)
    for k in range(len(s)):
        for c in range(6):
            cells = win[k, cand_slot[k, c]]
            ref = st.move_delta(cells, cand_x[k, c], st.y[cells])
            assert got[k, c] == pytest.approx(ref, abs=1e-6)
