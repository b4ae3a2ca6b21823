"""Legalization (Tetris + Abacus) and detailed placement, proven by the legality checker."""
from __future__ import annotations

import numpy as np
import pytest

from engine.netlist import Row
from engine.place.detailed import detailed_place
from engine.place.errors import PlaceError
from engine.place.generate import generate_netlist
from engine.place.legalize import abacus_segment, check_legality, legalize, oriented_hpwl


def _scatter(nl, seed=0):
    """Overlapping random positions (what a global placement hands over, only worse)."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = nl.core
    mov = ~nl.cell_fixed
    x, y = nl.x.copy(), nl.y.copy()
    x[mov] = rng.uniform(x0, x1 - nl.cell_w[mov])
    y[mov] = rng.uniform(y0, y1 - nl.cell_h[mov])
    return x, y


@pytest.fixture(scope="module")
def with_macros():
    return generate_netlist(1500, seed=5, n_macros=3, utilization=0.7)


def test_legalize_gives_a_legal_placement_around_macros(with_macros):
    nl = with_macros
    x, y = _scatter(nl)
    assert not check_legality(nl, x, y).ok
    lx, ly = legalize(nl, x, y)
    rep = check_legality(nl, lx, ly)
    assert rep.ok, rep.summary()
    fixed = nl.cell_fixed
    np.testing.assert_array_equal(lx[fixed], nl.x[fixed])
    np.testing.assert_array_equal(ly[fixed], nl.y[fixed])
    # displacement stays local: mean under a few rows
    mov = ~fixed
    assert np.mean(np.abs(lx[mov] - x[mov]) + np.abs(ly[mov] - y[mov])) < 40.0


def test_detailed_placement_lowers_hpwl_and_keeps_legality(with_macros):
    nl = with_macros
    lx, ly = legalize(nl, *_scatter(nl, 1))
    before = oriented_hpwl(nl, lx, ly)                                   # pins under their rows' N/FS
    dx, dy, st = detailed_place(nl, lx, ly, passes=2, time_limit_s=30)
    assert check_legality(nl, dx, dy).ok
    assert oriented_hpwl(nl, dx, dy) < before
    assert st.hpwl_before == pytest.approx(before)
    assert st.hpwl_after == pytest.approx(oriented_hpwl(nl, dx, dy))
    assert st.moves > 0


def test_checker_finds_each_kind_of_violation(with_macros):
    nl = with_macros
    x, y = legalize(nl, *_scatter(nl, 2))
    mov = np.flatnonzero(~nl.cell_fixed)
    a, b = mov[0], mov[1]
    site = nl.rows[0].site_w
    bad_x = x.copy()
    bad_x[a] += site / 3                                                 # off the site grid
    assert check_legality(nl, bad_x, y).off_site >= 1
    bad_y = y.copy()
    bad_y[a] += 1.0                                                      # between rows
    assert check_legality(nl, x, bad_y).off_row == 1
    ox, oy = x.copy(), y.copy()
    ox[b], oy[b] = ox[a], oy[a]                                          # two cells on the same spot
    rep = check_legality(nl, ox, oy)
    assert rep.overlaps >= 1 and not rep.ok and "overlaps" in rep.summary()
    m = nl.cell_types.index("MACRO")
    mx, my = x.copy(), y.copy()
    mx[a], my[a] = nl.x[m], nl.y[m]                                      # on top of a macro
    assert check_legality(nl, mx, my).overlaps >= 1
    out = x.copy()
    out[a] = nl.rows[0].x1 + 10 * site                                   # past the row end
    assert check_legality(nl, out, y).outside == 1


def test_abacus_is_optimal_on_small_cases():
    # no conflict: everyone gets its wish (snapped to sites)
    np.testing.assert_allclose(abacus_segment(np.array([0.0, 4.0, 9.6]), np.array([2.0, 2.0, 2.0]), 0, 20, 0.8),
                               [0.0, 4.0, 9.6])
    # two cells wanting the same spot share the displacement (clustered around the mean)
    got = abacus_segment(np.array([8.0, 8.0]), np.array([4.0, 4.0]), 0.0, 40.0, 0.8)
    assert got[1] - got[0] == pytest.approx(4.0)
    assert got[0] == pytest.approx(5.6) or got[0] == pytest.approx(6.4)
    # clamped by the segment end and packed
    got = abacus_segment(np.array([30.0, 31.0, 32.0]), np.array([4.0, 4.0, 4.0]), 0.0, 36.0, 0.8)
    np.testing.assert_allclose(got, [24.0, 28.0, 32.0])


def test_legalize_refuses_overfull_rows():
    nl = generate_netlist(200, seed=1, utilization=0.95)
    nl.rows = nl.rows[: len(nl.rows) // 2]                               # half the rows: cannot fit
    with pytest.raises(PlaceError, match="utilization|utilisation|row length"):
        legalize(nl, *_scatter(nl))


def test_legalize_refuses_multirow_movable_cells():
    nl = generate_netlist(100, seed=1)
    nl.cell_h = nl.cell_h.copy()
    nl.cell_h[0] = 25.0
    with pytest.raises(PlaceError, match="multi-row"):
        legalize(nl, *_scatter(nl))


def test_split_rows_and_checker_on_handmade_rows():
    nl = generate_netlist(20, seed=2, n_io=2)
    # every row cut in two at a site boundary: the legalizer and the checker treat them as separate rows
    rows = []
    for r in nl.rows:
        mid = r.x0 + (r.num_sites // 2) * r.site_w
        rows += [Row(y=r.y, x0=r.x0, x1=mid, site_w=r.site_w, height=r.height),
                 Row(y=r.y, x0=mid, x1=r.x1, site_w=r.site_w, height=r.height)]
    nl.rows = rows
    lx, ly = legalize(nl, *_scatter(nl, 3))
    assert check_legality(nl, lx, ly).ok
