"""Synthesis with real Yosys onto osu018, the Netlist built from it, and DEF/Bookshelf round trips."""
import re
from pathlib import Path

import numpy as np
import pytest

from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.io.bookshelf import read_bookshelf, write_bookshelf
from engine.io.def_io import read_def, write_def
from engine.io.yosys_json import netlist_from_yosys_json
from engine.pdk import load_pdk
from engine.runs import RunStore


@pytest.fixture(scope="module")
def alu_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run = run_flow(resolve("alu").flow_config(), store, until="floorplan")
    assert run.status == "done", run.info().get("error")
    return run


def test_mapped_cells_exist_in_liberty(alu_run):
    pdk = load_pdk()
    liberty = pdk.liberty_path.read_text()
    types = alu_run.step_metrics("synth")["synth__cell_types"]
    assert sum(types.values()) == alu_run.step_metrics("synth")["design__instance__count"] > 20
    for t in types:
        assert re.search(rf"cell\s*\(\s*{t}\s*\)", liberty), f"{t} is not a Liberty cell"


def test_pin_count_matches_yosys_netlist(alu_run):
    """Count pin connections in Yosys' own Verilog netlist, independently of the JSON reader."""
    pdk = load_pdk()
    nl = netlist_from_yosys_json(alu_run.dir / "01-synth" / "netlist.json", pdk)
    text = (alu_run.dir / "01-synth" / "netlist.v").read_text()
    conns = re.findall(r"\.(\w+)\(([^)]*)\)", text)
    counted = sum(1 for _pin, net in conns if net.strip() and not re.fullmatch(r"1'b[01x]", net.strip()))
    cell_pins = int((~nl.cell_is_io[nl.pin_cell]).sum())
    assert cell_pins == counted
    assert nl.n_cells - int(nl.cell_is_io.sum()) == alu_run.step_metrics("synth")["design__instance__count"]
    # Every net with a driver has exactly one output pin (a mapped netlist has no multiple drivers).
    drivers = np.bincount(nl.pin_net()[nl.pin_dir == 1], minlength=nl.n_nets)
    assert drivers.max() == 1


def test_floorplan_rows_fit_core_and_pins_on_tracks(alu_run):
    pdk = load_pdk()
    nl = read_def(alu_run.dir / "02-floorplan" / "floorplan.def", pdk)
    m = alu_run.step_metrics("floorplan")
    x0, y0, x1, y1 = nl.core
    dx0, dy0, dx1, dy1 = nl.die
    assert dx0 <= x0 < x1 <= dx1 and dy0 <= y0 < y1 <= dy1
    assert len(nl.rows) == m["floorplan__row__count"]
    for i, row in enumerate(nl.rows):
        assert x0 <= row.x0 and row.x1 <= x1 and y0 <= row.y and row.y + row.height <= y1 + 1e-9
        assert row.height == pytest.approx(pdk.site.height_um)
        if i:
            assert row.y == pytest.approx(nl.rows[i - 1].y + row.height)  # abutting rows
    site_area = sum((r.x1 - r.x0) * r.height for r in nl.rows)
    assert nl.cell_area() / site_area == pytest.approx(m["floorplan__utilization"], rel=1e-3)
    assert abs(m["floorplan__utilization"] - 0.6) < 0.06
    # IO pins sit on the die edge, on a routing track of the layer they use.
    for c in np.flatnonzero(nl.cell_is_io):
        x, y = nl.x[c], nl.y[c]
        on_lr = x in (dx0, dx1)
        assert on_lr or y in (dy0, dy1)
        layer = pdk.layer("metal3" if on_lr else "metal2")
        coord = y if on_lr else x
        k = (coord - layer.offset_um) / layer.pitch_um
        assert abs(k - round(k)) < 1e-6
    positions = {(round(nl.x[c], 3), round(nl.y[c], 3)) for c in np.flatnonzero(nl.cell_is_io)}
    assert len(positions) == int(nl.cell_is_io.sum())  # no two pins on one spot


def _scatter(nl, seed=1):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = nl.core
    mov = ~nl.cell_fixed
    nl.x[mov] = np.round(rng.uniform(x0, x1 - 5, mov.sum()) / 0.8) * 0.8
    nl.y[mov] = nl.rows[0].y + 10 * rng.integers(0, len(nl.rows), mov.sum())
    return nl


def test_def_round_trip_keeps_hpwl(alu_run, tmp_path: Path):
    pdk = load_pdk()
    nl = _scatter(read_def(alu_run.dir / "02-floorplan" / "floorplan.def", pdk))
    hpwl = nl.hpwl()
    assert hpwl > 0
    write_def(nl, tmp_path / "a.def", pdk)
    back = read_def(tmp_path / "a.def", pdk)
    assert back.hpwl() == pytest.approx(hpwl, rel=1e-12)
    assert back.cell_names == nl.cell_names and back.n_nets == nl.n_nets and back.n_pins == nl.n_pins
    assert sorted(back.net_names) == sorted(nl.net_names)
    assert back.die == nl.die and len(back.rows) == len(nl.rows)


def test_bookshelf_round_trip_keeps_hpwl(alu_run, tmp_path: Path):
    pdk = load_pdk()
    nl = _scatter(read_def(alu_run.dir / "02-floorplan" / "floorplan.def", pdk), seed=7)
    nl.net_weight[:3] = 2.0
    aux = write_bookshelf(nl, tmp_path, "alu")
    assert {p.suffix for p in tmp_path.iterdir()} >= {".aux", ".nodes", ".nets", ".pl", ".scl", ".wts"}
    back = read_bookshelf(aux)
    assert back.hpwl() == pytest.approx(nl.hpwl(), rel=1e-9)
    assert back.n_cells == nl.n_cells and back.n_nets == nl.n_nets
    assert np.array_equal(back.cell_is_io, nl.cell_is_io)
    assert len(back.rows) == len(nl.rows) and back.rows[0].num_sites == nl.rows[0].num_sites
    # And the Bookshelf netlist goes back out as DEF with the same HPWL.
    write_def(back, tmp_path / "b.def")


def test_bookshelf_errors_name_file_and_line(tmp_path: Path):
    (tmp_path / "x.aux").write_text("RowBasedPlacement : x.nodes x.nets x.pl\n")
    (tmp_path / "x.nodes").write_text("UCLA nodes 1.0\nNumNodes : 1\n  a 1 ten\n")
    (tmp_path / "x.nets").write_text("UCLA nets 1.0\n")
    with pytest.raises(Exception, match=r"x.nodes:3: expected a number, found 'ten'"):
        read_bookshelf(tmp_path / "x.aux")
