"""Detailed placement's vertical moves: a cell changes rows where its nets want it, the rows there re-packed."""
from __future__ import annotations

import numpy as np
import pytest

from engine.netlist import PIN_INPUT, PIN_OUTPUT, NetlistBuilder, Row
from engine.place import detailed as D
from engine.place.generate import generate_netlist
from engine.place.legalize import check_legality, legalize, oriented_hpwl

SITE, H = 0.8, 10.0


def _two_rows(row0: list[tuple[str, int]], row1: list[tuple[str, int]], sites: int, pulls: dict[str, float]):
    """Two rows of `sites` sites (N at y=0, FS at y=10), cells packed from the left of each row in the order
    given (name, width in sites); each cell in `pulls` has one net to a fixed terminal at (its x, that y)."""
    b = NetlistBuilder("two_rows")
    xs = {}
    for y, cells in ((0.0, row0), (H, row1)):
        x = 0.0
        for name, n in cells:
            i = b.add_cell(name, f"W{n}", n * SITE, H, x=x, y=y)
            xs[name] = (i, x, n)
            x += n * SITE
    for name, ty in pulls.items():
        i, x, n = xs[name]
        t = b.add_cell(f"pin_{name}", "PIN", 0.0, 0.0, fixed=True, io=True, x=x + n * SITE / 2, y=ty)
        b.add_pin(i, f"n_{name}", n * SITE / 2, H / 2, "A", PIN_INPUT)
        b.add_pin(t, f"n_{name}", 0.0, 0.0, "P", PIN_OUTPUT)
    nl = b.build()
    nl.rows = [Row(y=0.0, x0=0.0, x1=sites * SITE, site_w=SITE, height=H, orient="N"),
               Row(y=H, x0=0.0, x1=sites * SITE, site_w=SITE, height=H, orient="FS")]
    nl.core = (0.0, 0.0, sites * SITE, 2 * H)
    nl.die = nl.core
    return nl


def _run(nl, reach=10.0):
    st = D._State(nl, nl.x, nl.y)
    before = st.total_hpwl()
    moved = D._vertical_moves(st, D._Segs(nl), reach)
    return st, before, moved


def test_a_cell_moves_up_into_a_full_looking_row_by_pushing_its_neighbours():
    # row 1 is packed from the left with room only at its right end; u (row 0) is pulled up
    nl = _two_rows([("u", 2), ("a", 3)], [("b", 2), ("c", 2), ("d", 2)], sites=9, pulls={"u": 40.0})
    assert check_legality(nl).ok
    st, before, moved = _run(nl)
    u = nl.cell_names.index("u")
    assert moved == 1
    assert st.y[u] == pytest.approx(H)
    rep = check_legality(nl, st.x, st.y)
    assert rep.ok, rep.summary()
    after = oriented_hpwl(nl, st.x, st.y)
    assert after == pytest.approx(st.total_hpwl())
    assert after < before - 1.0                       # its net lost most of a row's height
    # the cells of row 1 kept their order, u among them next to its own x (0)
    row1 = [n for _, n in sorted((st.x[i], nl.cell_names[i]) for i in range(nl.n_cells)
                                 if st.y[i] == H and not nl.cell_is_io[i])]
    assert [n for n in row1 if n != "u"] == ["b", "c", "d"]
    assert st.x[u] <= 2 * SITE + 1e-9


def test_two_cells_of_different_widths_trade_rows_when_neither_fits_alone():
    # both rows full to the site (row 0: 7 of 7, row 1: 6 of 7): u (2 sites) wants up, d (1 site) wants down;
    # u alone does not fit in row 1, d alone not in row 0, the trade fits both
    nl = _two_rows([("u", 2), ("a", 3), ("e", 2)], [("d", 1), ("b", 3), ("c", 2)], sites=7,
                   pulls={"u": 60.0, "d": -40.0})
    u, d = nl.cell_names.index("u"), nl.cell_names.index("d")
    st, before, moved = _run(nl)
    assert moved == 2
    assert st.y[u] == pytest.approx(H) and st.y[d] == pytest.approx(0.0)
    rep = check_legality(nl, st.x, st.y)
    assert rep.ok, rep.summary()
    assert oriented_hpwl(nl, st.x, st.y) < before - 2 * H + 1.0


def test_no_move_when_nothing_gains():
    nl = _two_rows([("u", 2), ("a", 3)], [("b", 2)], sites=9, pulls={"u": -30.0})   # u is pulled down: stays
    st, before, moved = _run(nl)
    assert moved == 0
    np.testing.assert_array_equal(st.y, nl.y)
    assert st.total_hpwl() == pytest.approx(before)


@pytest.fixture(scope="module")
def macro_design():
    return generate_netlist(1500, seed=5, n_macros=3, utilization=0.7)


def _clumped(nl, seed):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = nl.core
    mov = ~nl.cell_fixed
    n = int(mov.sum())
    centres = rng.uniform([x0, y0], [x1, y1], size=(6, 2))
    k = rng.integers(0, len(centres), n)
    x, y = nl.x.copy(), nl.y.copy()
    x[mov] = np.clip(centres[k, 0] + rng.normal(0, 0.15 * (x1 - x0), n), x0, x1 - nl.cell_w[mov])
    y[mov] = np.clip(centres[k, 1] + rng.normal(0, 0.15 * (y1 - y0), n), y0, y1 - nl.cell_h[mov])
    return x, y


def test_vertical_moves_keep_legality_around_fixed_macros_and_never_lengthen_wires(macro_design):
    nl = macro_design
    assert (nl.cell_fixed & ~nl.cell_is_io).sum() == 3
    lx, ly = legalize(nl, *_clumped(nl, 2))
    st = D._State(nl, lx, ly)
    segs = D._Segs(nl)
    cur = st.total_hpwl()
    moved = 0
    for _ in range(3):
        moved += D._vertical_moves(st, segs, 10.0)
        new = st.total_hpwl()
        assert new <= cur + 1e-6
        cur = new
        rep = check_legality(nl, st.x, st.y)
        assert rep.ok, rep.summary()
    assert moved > 0
    assert cur == pytest.approx(oriented_hpwl(nl, st.x, st.y))
    np.testing.assert_array_equal(st.x[nl.cell_fixed], nl.x[nl.cell_fixed])
    np.testing.assert_array_equal(st.y[nl.cell_fixed], nl.y[nl.cell_fixed])


def test_detailed_place_is_deterministic_and_uses_vertical_moves(macro_design):
    nl = macro_design
    lx, ly = legalize(nl, *_clumped(nl, 3))
    a = D.detailed_place(nl, lx, ly, passes=2, time_limit_s=600)
    b = D.detailed_place(nl, lx, ly, passes=2, time_limit_s=600)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2].vertical > 0
    assert check_legality(nl, a[0], a[1]).ok
    assert a[2].hpwl_after < a[2].hpwl_before
