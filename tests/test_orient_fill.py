"""Cells take their row's orientation (N/FS alternate, so the rails of neighbouring rows abut): in the placed DEF,
through qrouter's routed DEF, and in the GDSII; and filler cells close every gap in every row before GDSII."""
from __future__ import annotations

import klayout.db as db
import numpy as np
import pytest

from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.spef import oriented_pin_positions
from engine.io.def_io import read_def
from engine.netlist import Row
from engine.pdk import load_pdk
from engine.runs import RunStore

TOL = 1e-3


@pytest.fixture(scope="module")
def counter_run(tmp_path_factory):
    cfg = resolve("counter", []).flow_config()
    run = run_flow(cfg, RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store"), until="gds")
    assert run.status == "done", run.info().get("error")
    return run


def row_of(netlist, i: int) -> Row:
    """The row cell ``i`` sits on (its y on the row's y, its extent inside the row)."""
    x, y, w = netlist.x[i], netlist.y[i], netlist.cell_w[i]
    for r in netlist.rows:
        if abs(r.y - y) < TOL and x >= r.x0 - TOL and x + w <= r.x1 + TOL:
            return r
    raise AssertionError(f"{netlist.cell_names[i]} at ({x}, {y}) is on no row")


def _check_orientations(netlist) -> int:
    """Every standard cell has its row's orientation; returns how many sit in FS rows."""
    fs = 0
    for i in np.flatnonzero(~netlist.cell_is_io):
        r = row_of(netlist, int(i))
        assert netlist.cell_orient[i] == r.orient, (netlist.cell_names[i], netlist.cell_orient[i], r.orient)
        fs += r.orient == "FS"
    return fs


def test_every_placed_cell_has_its_rows_orientation(counter_run):
    pdk = load_pdk()
    placed = read_def(counter_run.step_dir("place", create=False) / "placed.def", pdk)
    assert {r.orient for r in placed.rows} == {"N", "FS"}
    assert 0 < _check_orientations(placed) < int((~placed.cell_is_io).sum())


def test_qrouter_keeps_the_orientations_and_the_gds_mirrors_fs_cells(counter_run):
    pdk = load_pdk()
    routed = read_def(counter_run.step_dir("route", create=False) / "routed.def", pdk)
    _check_orientations(routed)
    orient = {routed.cell_names[i]: routed.cell_orient[i] for i in np.flatnonzero(~routed.cell_is_io)}
    layout = db.Layout()
    layout.read(str(counter_run.step_dir("gds", create=False) / "design.gds"))
    top = layout.top_cell()
    seen = 0
    for inst in top.each_inst():
        name = layout.cell(inst.cell_index).name
        if name not in pdk.macros:
            continue  # vias
        # DEF FS is a mirror about the x axis: KLayout's transformation is a mirror with no rotation.
        m = pdk.macros[name]
        bottom = db.DBox(0, 0, m.width_um, m.height_um).transformed(inst.dcplx_trans).bottom  # outline, not rails
        row = next(r for r in routed.rows if abs(r.y - bottom) < TOL)
        assert inst.dcplx_trans.is_mirror() == (row.orient == "FS"), (name, row.orient)
        seen += 1
    assert seen >= len(orient)


def test_fs_pin_offsets_are_mirrored_in_y(counter_run):
    # Timing and parasitics read pin positions through oriented_pin_positions: in an FS row a pin at height dy
    # of the N cell sits at h - dy.
    pdk = load_pdk()
    placed = read_def(counter_run.step_dir("place", create=False) / "placed.def", pdk)
    px, py = oriented_pin_positions(placed)
    for p in range(placed.n_pins):
        c = placed.pin_cell[p]
        if placed.cell_is_io[c]:
            continue
        dy = placed.pin_dy[p]
        want = placed.cell_h[c] - dy if placed.cell_orient[c] == "FS" else dy
        assert py[p] == pytest.approx(placed.y[c] + want)
        assert px[p] == pytest.approx(placed.x[c] + placed.pin_dx[p])


# ---- fill ------------------------------------------------------------------------------------------------------
def _check_rows_covered_exactly(netlist, fill_types: set[str]) -> int:
    """In every row, cells and fillers tile [x0, x1] with no overlap and no gap; fillers in the row's orientation.
    Returns the number of fillers."""
    n_fill = 0
    for r in netlist.rows:
        on = [i for i in np.flatnonzero(~netlist.cell_is_io)
              if abs(netlist.y[i] - r.y) < TOL and netlist.x[i] >= r.x0 - TOL and netlist.x[i] < r.x1 - TOL]
        on.sort(key=lambda i: netlist.x[i])
        cur = r.x0
        for i in on:
            assert netlist.x[i] == pytest.approx(cur, abs=TOL), (r.y, netlist.cell_names[i], cur)  # no gap/overlap
            cur = netlist.x[i] + netlist.cell_w[i]
            if netlist.cell_types[i] in fill_types:
                assert netlist.cell_orient[i] == r.orient
                n_fill += 1
        assert cur == pytest.approx(r.x1, abs=TOL)
    return n_fill


def test_fillers_close_every_gap_of_every_row(counter_run):
    from engine.flow.fill import filler_cells

    pdk = load_pdk()
    fillers = filler_cells(pdk)
    assert [name for name, _ in fillers] == ["FILL"]
    fill_w = fillers[0][1]
    assert fill_w == pytest.approx(pdk.macros["FILL"].width_um) and fill_w == pytest.approx(pdk.site.width_um)
    filled = read_def(counter_run.step_dir("gds", create=False) / "filled.def", pdk)
    _check_orientations(filled)
    n_fill = _check_rows_covered_exactly(filled, {"FILL"})
    # the fillers cover exactly what the design's cells leave free
    placed = read_def(counter_run.step_dir("cts", create=False) / "cts.def", pdk)  # placed + clock buffers
    free = sum(r.x1 - r.x0 for r in placed.rows) - float(placed.cell_w[~placed.cell_is_io].sum())
    assert n_fill == round(free / fill_w) > 0
    m = counter_run.metrics()["gds"]
    assert m["fill__cell__count"] == n_fill and m["fill__filled_fraction"] == pytest.approx(1.0)
    # the GDSII holds them, apart from the design's cells
    from engine.flow.gds import count_instances

    layout = db.Layout()
    layout.read(str(counter_run.step_dir("gds", create=False) / "design.gds"))
    assert count_instances(layout, {"FILL"}) == n_fill
    assert count_instances(layout, set(pdk.macros) - {"FILL"}) == counter_run.metrics()["cts"][
        "cts__cell__count"]  # the synthesised cells and the clock tree's buffers


def test_fill_rows_uses_the_widest_filler_first_and_steps_around_blocks():
    from engine.flow.fill import fill_rows
    from engine.netlist import NetlistBuilder

    b = NetlistBuilder("t")
    b.add_cell("a", "INVX1", 1.6, 10.0, x=0.8, y=0.0)       # row 0: sites 1-2
    b.add_cell("blk", "RAM", 4.0, 20.0, fixed=True, x=4.0, y=0.0)  # a block over both rows: sites 5-9
    b.add_cell("c", "INVX1", 1.6, 10.0, x=9.6, y=10.0)      # row 1: sites 12-13
    nl = b.build()
    nl.rows = [Row(y=0.0, x0=0.0, x1=12.0, site_w=0.8, height=10.0, orient="N", site="core"),
               Row(y=10.0, x0=0.0, x1=12.0, site_w=0.8, height=10.0, orient="FS", site="core")]
    res = fill_rows(nl, [("FILL2", 1.6), ("FILL", 0.8)])
    by_row = {0.0: [], 10.0: []}
    for _, cell, x, y, orient in res.fills:
        by_row[y].append((round(x, 3), cell, orient))
    # row 0: gaps 0-0.8 (FILL), 2.4-4.0 (FILL2), 8.0-12.0 (FILL2, FILL2, FILL)
    assert sorted(by_row[0.0]) == [(0.0, "FILL", "N"), (2.4, "FILL2", "N"), (8.0, "FILL2", "N"),
                                   (9.6, "FILL2", "N"), (11.2, "FILL", "N")]
    # row 1: 0-4.0 (FILL2 x2 + FILL), block, 8.0-9.6 (FILL2), c, 11.2-12.0 (FILL)
    assert sorted(by_row[10.0]) == [(0.0, "FILL2", "FS"), (1.6, "FILL2", "FS"), (3.2, "FILL", "FS"),
                                    (8.0, "FILL2", "FS"), (11.2, "FILL", "FS")]
    assert res.unfilled_um == pytest.approx(0.0) and res.filled_fraction == pytest.approx(1.0)
    assert len({name for name, *_ in res.fills}) == len(res.fills)
