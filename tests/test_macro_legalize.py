"""Movable macros: the macro legaliser (grid, no overlap, least displacement), mixed-size place(), --fix-macros."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.io.bookshelf import read_bookshelf, write_bookshelf
from engine.netlist import NetlistBuilder, Row
from engine.place import PlaceConfig, place
from engine.place.errors import PlaceError
from engine.place.generate import generate_netlist
from engine.place.legalize import check_legality, legalize, oriented_hpwl
from engine.place.macros import check_macros, fix_macros, legalize_macros, movable_macros

ROW_H, SITE = 10.0, 1.0


def _floor(n_rows: int = 12, n_sites: int = 120, blocks=(), macros=(), cells: int = 0):
    """A netlist on n_rows x n_sites: fixed blocks (x, y, w, h), movable macros (x, y, w, h) at GP positions."""
    b = NetlistBuilder("m")
    for k, (x, y, w, h) in enumerate(blocks):
        b.add_cell(f"blk{k}", "MACRO", w, h, fixed=True, x=x, y=y)
    for k, (x, y, w, h) in enumerate(macros):
        b.add_cell(f"mac{k}", "MACRO", w, h, x=x, y=y)
    for k in range(cells):
        b.add_cell(f"c{k}", "CELL", 3.0, ROW_H, x=float(7 * k % n_sites), y=float(k % n_rows) * ROW_H)
    names = list(b.cell_idx)
    for k in range(len(names) - 1):
        b.add_pin(k, f"n{k}", 0.5, 0.5, "A", 2)
        b.add_pin(k + 1, f"n{k}", 0.5, 0.5, "B", 2)
    nl = b.build()
    nl.rows = [Row(y=r * ROW_H, x0=0.0, x1=n_sites * SITE, site_w=SITE, height=ROW_H,
                   orient="N" if r % 2 == 0 else "FS") for r in range(n_rows)]
    nl.core = nl.die = (0.0, 0.0, n_sites * SITE, n_rows * ROW_H)
    return nl


def _brute_force_cost(nl, i: int, tx: float, ty: float, others: list[tuple[float, float, float, float]]) -> float:
    """Reference: the least |dx| + |dy| over every (row, site) where macro i fits (slow, obvious)."""
    w, h = nl.cell_w[i], nl.cell_h[i]
    x1, y1 = nl.core[2], nl.core[3]
    best = np.inf
    for r in nl.rows:
        if r.y + h > y1 + 1e-9:
            continue
        for s in range(r.num_sites):
            x = r.x0 + s * r.site_w
            if x + w > x1 + 1e-9:
                break
            if any(x < ox + ow and ox < x + w and r.y < oy + oh and oy < r.y + h for ox, oy, ow, oh in others):
                continue
            best = min(best, abs(x - tx) + abs(r.y - ty))
    return best


def test_one_macro_goes_to_the_nearest_legal_spot(tmp_path: Path):
    rng = np.random.default_rng(0)
    for trial in range(12):
        blocks = [(float(rng.integers(0, 100)), ROW_H * float(rng.integers(0, 10)), float(rng.integers(5, 30)),
                   ROW_H * float(rng.integers(1, 4))) for _ in range(4)]
        mw, mh = float(rng.integers(8, 25)), ROW_H * float(rng.integers(2, 5))
        tx, ty = float(rng.uniform(-5, 110)), float(rng.uniform(-5, 100))
        nl = _floor(blocks=blocks, macros=[(tx, ty, mw, mh)])
        i = nl.index()["mac0"]
        x, y = legalize_macros(nl)
        assert check_macros(nl, x, y) == [], trial
        want = _brute_force_cost(nl, i, tx, ty, blocks)
        assert abs(x[i] - tx) + abs(y[i] - ty) == pytest.approx(want, abs=1e-9), trial
        # only the macro moved
        others = np.arange(nl.n_cells) != i
        assert np.array_equal(x[others], nl.x[others]) and np.array_equal(y[others], nl.y[others])


def test_many_macros_no_overlap_on_grid_biggest_first():
    rng = np.random.default_rng(1)
    # 14 macros piled near the centre (as global placement might leave them), a fixed block in the rows
    macros = [(55 + rng.normal(0, 8), 50 + rng.normal(0, 8), float(rng.integers(6, 20)),
               ROW_H * float(rng.integers(2, 4))) for _ in range(14)]
    nl = _floor(n_rows=14, n_sites=160, blocks=[(60.0, 40.0, 30.0, 30.0)], macros=macros, cells=40)
    mac = movable_macros(nl)
    assert len(mac) == 14                                    # 40 standard cells are not macros
    x, y = legalize_macros(nl)
    assert check_macros(nl, x, y) == []
    # the largest macro was placed first, so it moved no more than it would alone
    area = nl.cell_w[mac] * nl.cell_h[mac]
    big = int(mac[np.argmax(area)])
    alone = _brute_force_cost(nl, big, nl.x[big], nl.y[big], [(60.0, 40.0, 30.0, 30.0)])
    assert abs(x[big] - nl.x[big]) + abs(y[big] - nl.y[big]) == pytest.approx(alone)
    # then the cells legalise around the macros, fixed where they landed
    lg = nl.copy()
    lg.x, lg.y = x, y
    lg.cell_fixed[mac] = True
    cx, cy = legalize(lg)
    assert check_legality(lg, cx, cy).ok


def test_check_macros_finds_what_is_wrong():
    nl = _floor(blocks=[(50.0, 0.0, 20.0, 20.0)], macros=[(0.0, 0.0, 10.0, 20.0), (5.5, 30.0, 10.0, 20.0),
                                                          (55.0, 10.0, 10.0, 20.0), (0.0, 105.0, 10.0, 20.0)])
    probs = check_macros(nl, nl.x, nl.y)
    assert probs == ["mac1 x=5.5 is not on a site", "mac3 y=105 is not on a row", "mac2 overlaps blk0"]


def test_no_room_for_a_macro_says_what_to_do():
    nl = _floor(n_rows=4, n_sites=40, macros=[(0.0, 0.0, 30.0, 30.0), (5.0, 5.0, 30.0, 30.0)])
    with pytest.raises(PlaceError, match=r"no legal spot for movable macro mac\d") as info:
        legalize_macros(nl)
    assert "--fix-macros" in info.value.hint


def _mixed_size(n_cells: int = 500, n_macros: int = 6, seed: int = 4):
    """A generated netlist whose macros are movable, except the first, which stays fixed in the rows."""
    nl = generate_netlist(n_cells, seed=seed, n_macros=n_macros, macro_frac=0.2, utilization=0.55)
    mac = [i for i, t in enumerate(nl.cell_types) if t == "MACRO"]
    assert len(mac) >= 3
    nl.cell_fixed[mac[1:]] = False
    return nl, mac


def test_place_handles_movable_macros_and_fixed_ones():
    nl, mac = _mixed_size()
    assert set(movable_macros(nl).tolist()) == set(mac[1:])
    res = place(nl, PlaceConfig(max_iterations=250, detailed_passes=1))
    out = res.netlist
    assert res.legality.ok and res.metrics["placement__legal"]
    assert check_macros(out, out.x, out.y, np.asarray(mac[1:])) == []
    assert res.metrics["placement__macros__movable"] == len(mac) - 1
    assert (out.x[mac[0]], out.y[mac[0]]) == (nl.x[mac[0]], nl.y[mac[0]])      # the fixed macro stayed
    assert not out.cell_fixed[mac[1:]].any()                                     # the output keeps them movable
    # the macros moved from the core centre (where they start) during global placement
    assert np.ptp(out.x[mac[1:]]) > 0.1 * (nl.core[2] - nl.core[0])
    assert res.metrics["placement__hpwl"] == pytest.approx(oriented_hpwl(out, orient=out.cell_orient), rel=1e-6)


def test_multi_row_standard_cells_are_placed_as_macros():
    nl = generate_netlist(300, seed=2, utilization=0.5)
    row_h = nl.rows[0].height
    tall = np.arange(5)
    nl.cell_h[tall] = 2 * row_h                                 # double-height flops
    assert set(movable_macros(nl).tolist()) == set(tall.tolist())
    res = place(nl, PlaceConfig(max_iterations=200, detailed=False))
    assert res.legality.ok
    assert check_macros(res.netlist, res.netlist.x, res.netlist.y, tall) == []


def test_fix_macros_fixes_them_where_they_are():
    nl, mac = _mixed_size(300, 4, seed=5)
    fixed, n = fix_macros(nl)
    assert n == len(mac) - 1 and fixed.cell_fixed[mac].all() and not nl.cell_fixed[mac[1:]].any()
    assert len(movable_macros(fixed)) == 0


def test_cli_places_a_mixed_size_bookshelf_benchmark_with_and_without_fix_macros(tmp_path: Path, capsys):
    from engine.cli import main

    nl, mac = _mixed_size(300, 4, seed=5)
    aux = write_bookshelf(nl, tmp_path / "in", "ms")
    back = read_bookshelf(aux)
    assert [back.cell_types[i] for i in mac] == ["MACRO"] * len(mac) and not back.cell_fixed[mac[1:]].any()
    names = [nl.cell_names[i] for i in mac]
    # --fix-macros: the macros stay at their .pl positions, the cells are placed around them
    assert main(["place", str(aux), "--out", str(tmp_path / "fixed"), "--iterations", "200", "--fix-macros"]) == 0
    assert "fixed 3 movable macros" in capsys.readouterr().out
    placed = read_bookshelf(tmp_path / "fixed" / "ms.aux")
    idx = placed.index()
    for n, i in zip(names, mac):
        assert (placed.x[idx[n]], placed.y[idx[n]]) == pytest.approx((nl.x[i], nl.y[i]))
    assert check_legality(placed).ok
    # without it the placer places and legalises them
    assert main(["place", str(aux), "--out", str(tmp_path / "moved"), "--iterations", "200"]) == 0
    text = capsys.readouterr().out
    assert "placement__macros__movable" in text
    metrics = json.loads((tmp_path / "moved" / "metrics.json").read_text())
    assert metrics["placement__legal"] and metrics["placement__macros__movable"] == 3
    # --fix-macros is for Bookshelf input only
    assert main(["place", "last", "--fix-macros"]) == 1
    assert "--fix-macros applies to a Bookshelf" in capsys.readouterr().err


def test_terminal_ni_blocks_are_placed_over_a_terminal_is_not(tmp_path: Path):
    """A big terminal_NI (placeable over) draws cells onto it; the same block as a terminal keeps them off."""
    from engine.place.global_place import fixed_area_in_core

    base = generate_netlist(300, seed=9, utilization=0.35)
    x0, y0, x1, y1 = base.core
    share = {}
    for ni in (True, False):
        nl = base.copy()
        nl.cell_names = nl.cell_names + ["blk"]
        nl.cell_types = nl.cell_types + ["MACRO"]
        for arr, v in (("cell_w", (x1 - x0) / 2), ("cell_h", y1 - y0), ("x", x0), ("y", y0)):
            setattr(nl, arr, np.append(getattr(nl, arr), v))
        nl.cell_fixed = np.append(nl.cell_fixed, True)
        nl.cell_is_io = np.append(nl.cell_is_io, ni)
        assert fixed_area_in_core(nl, nl.core) == pytest.approx(0.0 if ni else (x1 - x0) / 2 * (y1 - y0))
        res = place(nl, PlaceConfig(max_iterations=250, detailed=False))
        assert res.legality.ok
        cells = np.flatnonzero(~nl.cell_fixed)
        share[ni] = float(np.mean(res.netlist.x[cells] < (x0 + x1) / 2))
    assert share[False] == 0.0 and share[True] > 0.3, share
