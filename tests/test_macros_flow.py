"""Hard macros end to end: a design instantiating a RAM-like block (tests/data/macros/sram_stub.lef/.lib, 40 x 40 um,
pins on metal2/metal3, obstructions on metal1-3) goes synth -> floorplan -> place -> cts -> route -> timing -> gds
with the block one fixed instance; the LEF-only and black-box paths; the message for a module nothing defines.

All runs use the real tools (Yosys, qrouter, OpenSTA, KLayout) on a 46-cell design, a few seconds each.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.errors import EngineError
from engine.flow.flow import run_flow
from engine.io.def_io import read_def
from engine.pdk import load_pdk
from engine.runs import RunStore

DATA = Path(__file__).resolve().parent / "data" / "macros"
LEF, LIB = DATA / "sram_stub.lef", DATA / "sram_stub.lib"
TOP_V, MODEL_V = DATA / "macro_top.v", DATA / "sram_model.v"
HALO = 10.0  # FloorplanConfig.macro_halo_um's default


def _config(**kw) -> FlowConfig:
    cfg = FlowConfig(design_files=[str(TOP_V)], top="macro_top", clock_port="clk")
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


def _pdk(with_lib: bool = True):
    return load_pdk(macros=[{"lef": str(LEF), "lib": str(LIB) if with_lib else ""}])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("macro_runs"))


@pytest.fixture(scope="module")
def macro_run(store):
    run = run_flow(_config(macros=[{"lef": str(LEF), "lib": str(LIB)}]), store, until="gds")
    info = run.info()
    assert info["status"] == "done", (info.get("failed_step"), info.get("error"), info.get("hint"))
    return run


def _macro_rect(netlist, name: str = "u_ram") -> tuple[float, float, float, float]:
    c = netlist.cell_names.index(name)
    return (float(netlist.x[c]), float(netlist.y[c]), float(netlist.x[c] + netlist.cell_w[c]),
            float(netlist.y[c] + netlist.cell_h[c]))


def _overlaps(a, b, eps: float = 1e-6) -> bool:
    return a[0] < b[2] - eps and b[0] < a[2] - eps and a[1] < b[3] - eps and b[1] < a[3] - eps


# ------------------------------------------------------------------------------------------- missing module
def test_missing_module_names_the_module_and_the_flags_that_supply_it(store):
    run = run_flow(_config(), store, until="synth")
    info = run.info()
    assert info["status"] == "failed" and info["failed_step"] == "synth"
    assert info["code"] == "synth.missing_module"
    assert "'sram_stub'" in info["error"] and "u_ram" in info["error"] and "macro_top" in info["error"]
    for flag in ("--macro-lef", "--macro-lib", "--blackbox"):
        assert flag in info["hint"], info["hint"]
    # Every flag the hint names is one `cda flow run` has.
    from engine.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["flow", "run", str(TOP_V), "--macro-lef", str(LEF), "--macro-lib", str(LIB),
                              "--blackbox", "sram_stub"])
    assert args.macro_lefs == [str(LEF)] and args.macro_libs == [str(LIB)] and args.blackbox == ["sram_stub"]


# ------------------------------------------------------------------------------------------- the whole flow
def test_synthesis_keeps_the_macro_one_instance(macro_run):
    netlist_v = (macro_run.step_dir("synth", create=False) / "netlist.v").read_text()
    assert netlist_v.count("sram_stub u_ram") == 1
    script = (macro_run.step_dir("synth", create=False) / "synth.ys").read_text()
    assert f'read_liberty -lib "{LIB}"' in script
    m = macro_run.step_metrics("synth")
    assert m["design__instance__count__macro"] == 1
    assert m["synth__cell_types"]["sram_stub"] == 1


def test_floorplan_fixes_the_macro_and_cuts_rows_and_rails_around_it(macro_run):
    pdk = _pdk()
    fp = read_def(macro_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    c = fp.cell_names.index("u_ram")
    assert fp.cell_fixed[c] and fp.cell_types[c] == "sram_stub"
    assert (fp.cell_w[c], fp.cell_h[c]) == (40.0, 40.0)
    rect = _macro_rect(fp)
    cx0, cy0, cx1, cy1 = fp.core
    assert cx0 - 1e-6 <= rect[0] and rect[2] <= cx1 + 1e-6 and cy0 - 1e-6 <= rect[1] and rect[3] <= cy1 + 1e-6
    # The core is the standard cells at the utilisation plus the macro with its halo: not smaller.
    std_area = fp.cell_area() - 1600.0
    assert (cx1 - cx0) * (cy1 - cy0) >= std_area / 0.6 + (40 + HALO) ** 2 - 1e-6
    halo = (rect[0] - HALO, rect[1] - HALO, rect[2] + HALO, rect[3] + HALO)
    assert fp.rows, "no rows"
    for r in fp.rows:
        assert not _overlaps((r.x0, r.y, r.x1, r.y + r.height), halo), f"row at y={r.y} crosses the macro halo"
    # Rows beside the macro are shorter than the core (cut), the others span it.
    assert min(r.x1 - r.x0 for r in fp.rows) < (cx1 - cx0) - 40
    assert max(r.x1 - r.x0 for r in fp.rows) == pytest.approx(cx1 - cx0)
    # No power rail (the metal1 followpins) through the macro.
    rails = [w for n in fp.special_nets or [] for w in n.wires if w.layer == "metal1"]
    assert rails
    for w in rails:
        box = (min(w.x0, w.x1), min(w.y0, w.y1) - w.width_um / 2, max(w.x0, w.x1), max(w.y0, w.y1) + w.width_um / 2)
        assert not _overlaps(box, rect), f"rail {w} crosses the macro"
    m = macro_run.step_metrics("floorplan")
    assert m["floorplan__macro__count"] == 1 and m["floorplan__macro__area_um2"] == 1600.0


def test_no_cell_or_clock_buffer_sits_on_the_macro(macro_run):
    from engine.place.legalize import check_legality

    pdk = _pdk()
    for step, name in (("place", "placed.def"), ("cts", None)):
        folder = macro_run.step_dir(step, create=False)
        path = folder / name if name else next(folder.glob("*.def"))
        nl = read_def(path, pdk)
        rep = check_legality(nl)
        assert rep.ok, (step, rep.summary())
        rect = _macro_rect(nl)
        c = nl.cell_names.index("u_ram")
        assert nl.cell_fixed[c]
        for i in np.flatnonzero(~nl.cell_fixed & ~nl.cell_is_io):
            box = (nl.x[i], nl.y[i], nl.x[i] + nl.cell_w[i], nl.y[i] + nl.cell_h[i])
            assert not _overlaps(box, rect), (step, nl.cell_names[i])
    assert macro_run.step_metrics("cts")["cts__buffer__count"] >= 1


def test_routing_reaches_every_macro_pin(macro_run):
    m = macro_run.step_metrics("route")
    assert m["route__net__unrouted"] == 0
    route_dir = macro_run.step_dir("route", create=False)
    cfg = (route_dir / "route.cfg").read_text()
    assert f"read_lef {LEF}" in cfg
    assert "Could not find a macro definition" not in (route_dir / "qrouter.log").read_text()
    # Every net on a macro pin is routed (has wiring in the routed DEF).
    from engine.flow.spef import read_routed_wires

    pdk = _pdk()
    routed = route_dir / "routed.def"
    nl = read_def(routed, pdk)
    c = nl.cell_names.index("u_ram")
    pins = np.flatnonzero(nl.pin_cell == c)
    assert len(pins) == 8
    wires, _ = read_routed_wires(routed, {layer.name for layer in pdk.routing_layers()})
    pin_net = {}
    for n in range(nl.n_nets):
        for p in nl.net_pins[nl.net_start[n]:nl.net_start[n + 1]]:
            pin_net[int(p)] = nl.net_names[n]
    for p in pins:
        net = pin_net[int(p)]
        assert net in wires and sum(wires[net].length_um.values()) > 0, f"{nl.pin_names[p]} net {net} unrouted"


def test_timing_reads_the_macro_liberty_and_times_through_it(macro_run):
    tdir = macro_run.step_dir("timing", create=False)
    assert f"read_liberty {LIB}" in (tdir / "sta.tcl").read_text()
    log = (tdir / "sta.log").read_text()
    assert "Creating black box" not in log
    # The read path CLK -> Q of the macro (1.2 ns in its Liberty) is a timed startpoint.
    assert "u_ram/Q" in log
    m = macro_run.step_metrics("timing")
    assert m["timing__constrained"] and m["timing__setup__ws"] > 0


def test_the_gds_draws_the_macro_as_its_lef_outline(macro_run):
    import klayout.db as db

    layout = db.Layout()
    layout.read(str(macro_run.step_dir("gds", create=False) / "design.gds"))
    cell = layout.cell("sram_stub")
    assert cell is not None, "no sram_stub cell in the GDS"
    box = cell.dbbox()
    assert (box.width(), box.height()) == (pytest.approx(40.0), pytest.approx(40.0))
    top = layout.top_cell()
    insts = [i for i in top.each_inst() if layout.cell(i.cell_index).name == "sram_stub"]
    assert len(insts) == 1
    fp = read_def(macro_run.step_dir("floorplan", create=False) / "floorplan.def", _pdk())
    x0, y0, _, _ = _macro_rect(fp)
    placed = insts[0].dbbox()
    assert (placed.left, placed.bottom) == (pytest.approx(x0), pytest.approx(y0))
    # Drawn from its LEF: the outline, 4 pins on metal2 and 4 on metal3, obstructions on metal1-3
    # (layers.json maps the LEF/DEF layer names to the GDS layer/datatype numbers).
    names = json.loads((macro_run.step_dir("gds", create=False) / "layers.json").read_text())
    count = {}
    for li in layout.layer_indexes():
        info = layout.get_info(li)
        count[f"{info.layer}/{info.datatype}"] = cell.shapes(li).size()
    shapes = {name: count.get(num, 0) for name, num in names.items()}
    assert shapes["OUTLINE"] == 1
    assert shapes["metal2.PIN"] == 4 and shapes["metal3.PIN"] == 4, shapes
    assert all(shapes[f"{m}.OBS"] >= 1 for m in ("metal1", "metal2", "metal3")), shapes


# ------------------------------------------------------------------------------------------- LEF only, blackbox
def test_a_lef_without_liberty_becomes_a_box_with_the_lef_pins(store):
    run = run_flow(_config(macros=[{"lef": str(LEF), "lib": ""}]), store, until="floorplan")
    assert run.info()["status"] == "done", run.info().get("error")
    stubs = (run.step_dir("synth", create=False) / "macro_stubs.v").read_text()
    assert "module sram_stub" in stubs and "output Q0" in stubs and "input CLK" in stubs and "(* blackbox *)" in stubs
    assert "sram_stub u_ram" in (run.step_dir("synth", create=False) / "netlist.v").read_text()
    assert run.step_metrics("floorplan")["floorplan__macro__count"] == 1


def test_a_bus_port_of_a_macro_is_one_lef_pin_per_bit(store, tmp_path):
    """A[1:0] in the stub (from LEF pins A[0], A[1]) is connected as one port in Verilog and one pin per bit in
    the DEF, where qrouter reaches both."""
    lef = tmp_path / "sram_bus.lef"
    text = LEF.read_text()
    for k in (0, 1):
        text = text.replace(f"PIN A{k}\n", f"PIN A[{k}]\n").replace(f"END A{k}\n", f"END A[{k}]\n")
    lef.write_text(text)
    top = tmp_path / "bus_top.v"
    top.write_text(TOP_V.read_text().replace(".A0(a_r[0]), .A1(a_r[1])", ".A(a_r)"))
    run = run_flow(_config(design_files=[str(top)], macros=[{"lef": str(lef), "lib": ""}]), store, until="route")
    assert run.info()["status"] == "done", run.info().get("error")
    assert "input [1:0] A" in (run.step_dir("synth", create=False) / "macro_stubs.v").read_text()
    routed = (run.step_dir("route", create=False) / "routed.def").read_text()
    assert "( u_ram A[0] )" in routed and "( u_ram A[1] )" in routed
    assert run.step_metrics("route")["route__net__unrouted"] == 0


def test_blackbox_keeps_a_module_the_design_defines_as_one_instance(store):
    files = [str(TOP_V), str(MODEL_V)]
    # Without --blackbox the model is synthesised into cells: no sram_stub instance, more flip-flops.
    plain = run_flow(_config(design_files=files), store, until="synth")
    assert plain.info()["status"] == "done", plain.info().get("error")
    pm = plain.step_metrics("synth")
    assert "sram_stub" not in pm["synth__cell_types"]
    boxed = run_flow(_config(design_files=files, blackbox=["sram_stub"], macros=[{"lef": str(LEF), "lib": ""}]),
                     store, until="floorplan")
    assert boxed.info()["status"] == "done", boxed.info().get("error")
    bm = boxed.step_metrics("synth")
    assert bm["synth__cell_types"]["sram_stub"] == 1
    assert bm["design__instance__count__sequential"] < pm["design__instance__count__sequential"]
    assert "blackbox sram_stub" in (boxed.step_dir("synth", create=False) / "synth.ys").read_text()
    # A black box with no LEF has no size to floorplan: one message naming the flag that gives it.
    nolef = run_flow(_config(design_files=files, blackbox=["sram_stub"]), store, until="synth")
    info = nolef.info()
    assert info["status"] == "failed" and "sram_stub" in info["error"] and "--macro-lef" in info["hint"]
    # A black box the design does not define has no ports: the message says to give its LEF.
    ghost = run_flow(_config(blackbox=["sram_stub"]), store, until="synth")
    assert ghost.info()["status"] == "failed" and "--macro-lef" in ghost.info()["hint"]


# ------------------------------------------------------------------------------------------- config, CLI, checks
def test_macro_settings_load_strictly_and_are_validated(tmp_path):
    from engine.validate import InvalidInput, validate_flow_config

    cfg = FlowConfig.from_dict({"macros": [{"lef": str(LEF), "lib": str(LIB)}], "blackbox": ["ram_a"]})
    assert cfg.macros == [{"lef": str(LEF), "lib": str(LIB)}] and cfg.blackbox == ["ram_a"]
    with pytest.raises(EngineError, match="did you mean macros.lef"):
        FlowConfig.from_dict({"macros": [{"lfe": str(LEF)}]})
    with pytest.raises(EngineError, match="no LEF"):
        FlowConfig.from_dict({"macros": [{"lib": str(LIB)}]})
    with pytest.raises(InvalidInput, match="not found"):
        validate_flow_config(FlowConfig(macros=[{"lef": str(tmp_path / "nope.lef"), "lib": ""}]))
    with pytest.raises(InvalidInput, match="--blackbox"):
        validate_flow_config(FlowConfig(blackbox=["ram; shell rm -rf /"]))
    bad = tmp_path / 'we"ird.lef'
    bad.write_text(LEF.read_text())
    with pytest.raises(InvalidInput, match="double quote"):
        validate_flow_config(FlowConfig(macros=[{"lef": str(bad), "lib": ""}]))
    # --set reaches the same fields.
    from engine.config import apply_settings

    cfg = FlowConfig.from_dict(apply_settings(FlowConfig().to_dict(), ["blackbox=ram_a,ram_b",
                                                                        f"macros={LEF}",
                                                                        "floorplan.macro_halo_um=4"]))
    assert cfg.blackbox == ["ram_a", "ram_b"] and cfg.macros == [{"lef": str(LEF), "lib": ""}]
    assert cfg.floorplan.macro_halo_um == 4.0
    with pytest.raises(EngineError, match="out of range"):
        FlowConfig.from_dict({"floorplan": {"macro_halo_um": -1}})


def test_cli_flags_and_design_json_give_the_macros(tmp_path):
    from engine.cli import build_parser
    from engine.flow.cli import build_config

    args = build_parser().parse_args(["flow", "run", str(TOP_V), "--top", "macro_top", "--macro-lef", str(LEF),
                                      "--macro-lib", str(LIB), "--blackbox", "other_box"])
    cfg = build_config(args)
    assert cfg.macros == [{"lef": str(LEF), "lib": str(LIB)}] and cfg.blackbox == ["other_box"]
    args = build_parser().parse_args(["flow", "run", str(TOP_V), "--macro-lib", str(LIB)])
    with pytest.raises(EngineError, match="--macro-lib"):
        build_config(args)
    # design.json: paths relative to the design folder.
    folder = tmp_path / "ramdesign"
    folder.mkdir()
    (folder / "macro_top.v").write_text(TOP_V.read_text())
    (folder / "ip").mkdir()
    (folder / "ip" / "sram_stub.lef").write_text(LEF.read_text())
    (folder / "design.json").write_text(json.dumps({"top": "macro_top", "macros": [{"lef": "ip/sram_stub.lef"}],
                                                    "blackbox": []}))
    from engine.designs import resolve

    cfg = resolve(str(folder)).flow_config()
    assert cfg.macros == [{"lef": str((folder / "ip" / "sram_stub.lef").resolve()), "lib": ""}]


def test_a_macro_lef_must_define_a_block_with_a_new_name(tmp_path):
    empty = tmp_path / "empty.lef"
    empty.write_text("VERSION 5.7 ;\nEND LIBRARY\n")
    with pytest.raises(EngineError, match="no MACRO found"):
        load_pdk(macros=[{"lef": str(empty), "lib": ""}])
    clash = tmp_path / "clash.lef"
    clash.write_text(LEF.read_text().replace("sram_stub", "INVX1"))
    with pytest.raises(EngineError, match="INVX1 has the name of a cell"):
        load_pdk(macros=[{"lef": str(clash), "lib": ""}])
    pdk = _pdk()
    m = pdk.macros["sram_stub"]
    assert m.cls == "BLOCK" and len(m.pins) == 8 and {s[0] for s in m.obstructions} == {"metal1", "metal2", "metal3"}
    assert pdk.block_names == {"sram_stub"} and pdk.lef_paths[-1] == LEF and pdk.liberty_paths[-1] == LIB
    assert "sram_stub" not in load_pdk().macros  # the base technology is not changed


def test_floorplan_places_several_macros_without_overlap():
    from engine.flow.floorplan import macro_cells, make_floorplan

    pdk = _pdk()
    nl = _inverters_and(pdk, 3)
    make_floorplan(nl, pdk, 0.6, 1.0, 12.0, halo_um=HALO)
    blocks = macro_cells(nl, pdk)
    assert len(blocks) == 3 and nl.cell_fixed[blocks].all()
    rects = [_macro_rect(nl, nl.cell_names[c]) for c in blocks]
    cx0, cy0, cx1, cy1 = nl.core
    for i, a in enumerate(rects):
        assert cx0 - 1e-6 <= a[0] and a[2] <= cx1 + 1e-6 and cy0 - 1e-6 <= a[1] and a[3] <= cy1 + 1e-6
        # x on the site grid and y on the track grid: the LEF's pins stay on the router's tracks
        assert abs((a[0] / 0.8) - round(a[0] / 0.8)) < 1e-6 and abs(a[1] - round(a[1])) < 1e-6
        for bb in rects[i + 1:]:
            grown = (a[0] - HALO + 1e-3, a[1] - HALO + 1e-3, a[2] + HALO - 1e-3, a[3] + HALO - 1e-3)
            assert not _overlaps(grown, bb)
    for r in nl.rows:
        for a in rects:
            assert not _overlaps((r.x0, r.y, r.x1, r.y + r.height), a)


def test_detailed_placement_keeps_cells_inside_cut_rows(macro_run):
    from engine.place.api import place
    from engine.place.config import PlaceConfig

    fp = read_def(macro_run.step_dir("floorplan", create=False) / "floorplan.def", _pdk())
    # rows cut around the macro are shorter than the core: detailed placement must keep every cell inside its
    # row (a fixed block beside a row once let cells slide past the row's start)
    res = place(fp, PlaceConfig(detailed=True))
    assert res.legality is not None and res.legality.ok, res.legality


def _inverters_and(pdk, n_macros: int, n_inv: int = 60):
    from engine.netlist import NetlistBuilder

    b = NetlistBuilder("blocks")
    inv = pdk.macros["INVX1"]
    for k in range(n_macros):
        b.add_cell(f"ram{k}", "sram_stub", 40.0, 40.0)
    for k in range(n_inv):
        c = b.add_cell(f"i{k}", "INVX1", inv.width_um, inv.height_um)
        b.add_pin(c, f"n{k}", 0.0, 0.0, "A", 0)
        b.add_pin(c, f"n{k + 1}", 0.0, 0.0, "Y", 1)
    return b.build()


def test_power_stripes_cross_a_macro_only_when_it_leaves_their_layer_free(tmp_path):
    from engine.flow.floorplan import make_floorplan
    from engine.flow.pdn import build_grid

    def stripes_over_macro(lef: Path) -> tuple[int, int]:
        pdk = load_pdk(macros=[{"lef": str(lef), "lib": ""}])
        nl = _inverters_and(pdk, 1, 200)
        make_floorplan(nl, pdk, 0.6, 1.0, 12.0, halo_um=HALO)
        grid = build_grid(nl, pdk, stripe_pitch_um=20.0)
        rect = _macro_rect(nl, "ram0")
        m4 = [w for n in grid.nets for w in n.wires if w.layer == grid.stripe_layer and w.x0 == w.x1]
        beside = [w for w in m4 if rect[0] < w.x0 < rect[2]]
        crossing = [w for w in beside if _overlaps((w.x0 - w.width_um / 2, min(w.y0, w.y1), w.x0 + w.width_um / 2,
                                                    max(w.y0, w.y1)), rect)]
        return len(beside), len(crossing)

    # sram_stub draws on metal1-3 only: the metal4 stripes run over it.
    beside, crossing = stripes_over_macro(LEF)
    assert beside >= 1 and crossing == beside
    # With an obstruction on metal4 too, every stripe over the block is cut around it (and still exists beside).
    m4 = tmp_path / "sram_m4.lef"
    obs_m4 = "    LAYER metal4 ;\n      RECT 0.00 0.00 40.00 40.00 ;\n  END\nEND sram_stub"
    m4.write_text(LEF.read_text().replace("  END\nEND sram_stub", obs_m4))
    assert "LAYER metal4" in m4.read_text()
    beside, crossing = stripes_over_macro(m4)
    assert beside >= 2 and crossing == 0


def test_the_cockpit_reads_a_macro_runs_layout(macro_run):
    import cockpit.data as data

    for step in ("floorplan", "place", "route"):
        lay = data.layout(macro_run, step)
        assert lay is not None, step
        k = lay.names.index("u_ram")
        assert lay.types[k] == "sram_stub" and lay.is_fixed[k] and (lay.w[k], lay.h[k]) == (40.0, 40.0)
