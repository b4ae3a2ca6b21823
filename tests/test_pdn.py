"""The power grid: vdd/gnd rings, stripes and a followpin rail per row boundary in the DEF's SPECIALNETS, every
cell's power pins on a rail of their net, qrouter routing around it with no net open, and the GDSII drawing it.

The checks read the LEF's cells and layers themselves (not engine.flow.pdn's choices) wherever they can.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from engine.designs import resolve
from engine.errors import EngineError
from engine.flow.flow import run_flow
from engine.flow.pdn import build_grid, lef_vias, stripe_layer
from engine.flow.route import qrouter_def, restore_special_nets
from engine.io.def_io import SpecialNet, SpecialVia, SpecialWire, read_def, write_def
from engine.pdk import load_pdk
from engine.runs import RunStore

TOL = 1e-3


@pytest.fixture(scope="module")
def pdk():
    return load_pdk()


@pytest.fixture(scope="module")
def counter_run(tmp_path_factory):
    """The counter through floorplan, place, route and GDSII with the power grid (a few seconds)."""
    store = RunStore(tmp_path_factory.mktemp("pdn-runs"))
    run = run_flow(resolve("counter").flow_config(), store, steps=["synth", "floorplan", "place", "route", "gds"])
    assert run.status == "done", run.info().get("error")
    return run


def _grid(def_path, pdk):
    nl = read_def(def_path, pdk)
    return nl, {n.name: n for n in nl.special_nets or [] if n.use in ("POWER", "GROUND")}


def _power_pins(pdk):
    """(power pin, ground pin) names from the LEF's USE POWER / USE GROUND pins."""
    uses = {p.use: p.name for m in pdk.macros.values() for p in m.pins.values()}
    return uses["POWER"], uses["GROUND"]


def _rect(w: SpecialWire) -> tuple[float, float, float, float]:
    """A special wire as a rectangle: flush ends, ``width`` across."""
    h = w.width_um / 2
    if abs(w.y0 - w.y1) < TOL:  # horizontal
        return min(w.x0, w.x1), w.y0 - h, max(w.x0, w.x1), w.y0 + h
    return w.x0 - h, min(w.y0, w.y1), w.x0 + h, max(w.y0, w.y1)


def _overlap(a, b) -> bool:
    return a[0] < b[2] - TOL and b[0] < a[2] - TOL and a[1] < b[3] - TOL and b[1] < a[3] - TOL


# ------------------------------------------------------------------------------------------------ the DEF
def test_floorplan_def_has_vdd_and_gnd_special_nets_with_rings_stripes_and_rails(counter_run, pdk):
    nl, grid = _grid(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    vdd, gnd = _power_pins(pdk)
    assert set(grid) == {vdd, gnd}
    assert grid[vdd].use == "POWER" and grid[gnd].use == "GROUND"
    assert grid[vdd].conns == [("*", vdd)] and grid[gnd].conns == [("*", gnd)]  # every cell's pin, as OpenROAD
    text = (counter_run.step_dir("floorplan", create=False) / "floorplan.def").read_text()
    assert re.search(rf"^- {vdd} \( \* {vdd} \)", text, re.M)
    rows = sorted(nl.rows, key=lambda r: r.y)
    cx0, cy0, cx1, cy1 = nl.core
    stripe = stripe_layer(pdk).name
    assert pdk.layer(stripe).direction == "VERTICAL"
    metrics = counter_run.step_metrics("floorplan")
    rails = stripes = 0
    for net in grid.values():
        horiz = [w for w in net.wires if abs(w.y0 - w.y1) < TOL]
        vert = [w for w in net.wires if abs(w.x0 - w.x1) < TOL]
        # A ring: two vertical sides left and right of the core, two horizontal sides below and above it.
        ring_v = [w for w in vert if w.x0 < cx0 - TOL or w.x0 > cx1 + TOL]
        ring_h = [w for w in horiz if w.y0 < cy0 - 1.0 or w.y0 > cy1 + 1.0]
        assert sorted(w.x0 < cx0 for w in ring_v) == [False, True]
        assert sorted(w.y0 < cy0 for w in ring_h) == [False, True]
        for w in ring_v:  # each side spans the ring's height
            assert min(w.y0, w.y1) < cy0 and max(w.y0, w.y1) > cy1
        rails += sum(1 for w in horiz if cy0 - TOL <= w.y0 <= cy1 + TOL)
        inside = [w for w in vert if cx0 < w.x0 < cx1]
        assert inside and all(w.layer == stripe for w in inside)
        for w in inside:  # a stripe crosses the whole core
            assert min(w.y0, w.y1) < cy0 and max(w.y0, w.y1) > cy1
        stripes += len(inside)
    assert rails == len(rows) + 1 == metrics["floorplan__pdn__rail__count"]
    assert stripes == metrics["floorplan__pdn__stripe__count"] >= 2
    assert metrics["floorplan__pdn__ring__count"] == 2
    length = sum(abs(w.x1 - w.x0) + abs(w.y1 - w.y0) for n in grid.values() for w in n.wires)
    assert metrics["floorplan__pdn__wirelength_um"] == pytest.approx(length, rel=1e-4)


def test_rails_lie_on_every_row_edge_with_the_net_the_orientation_puts_there(counter_run, pdk):
    nl, grid = _grid(counter_run.step_dir("place", create=False) / "placed.def", pdk)
    vdd, gnd = _power_pins(pdk)
    rail_at = {}
    for net in grid.values():
        for w in net.wires:
            if abs(w.y0 - w.y1) < TOL and w.layer == "metal1":
                rail_at[round(w.y0, 3)] = (net.name, w)
    for r in nl.rows:
        bottom, top = (gnd, vdd) if r.orient == "N" else (vdd, gnd)  # osu018: gnd at the bottom of an N cell
        assert rail_at[round(r.y, 3)][0] == bottom, (r.y, r.orient)
        assert rail_at[round(r.y + r.height, 3)][0] == top, (r.y, r.orient)
        for y in (r.y, r.y + r.height):
            w = rail_at[round(y, 3)][1]
            assert min(w.x0, w.x1) <= r.x0 + TOL and max(w.x0, w.x1) >= r.x1 - TOL  # the whole row


def test_every_cells_power_pins_touch_a_rail_of_their_net(counter_run, pdk):
    """From the LEF's own pin shapes, flipped for FS: some vdd/gnd rectangle of each placed cell overlaps a grid
    wire of the same net on its layer, and none overlaps the other net's (no short)."""
    nl, grid = _grid(counter_run.step_dir("place", create=False) / "placed.def", pdk)
    vdd, gnd = _power_pins(pdk)
    rects = {name: [(w.layer, _rect(w)) for w in net.wires] for name, net in grid.items()}
    checked = 0
    for c in np.flatnonzero(~nl.cell_is_io):
        macro = pdk.macros[nl.cell_types[c]]
        x, y, h = float(nl.x[c]), float(nl.y[c]), macro.height_um
        for pin_name, other in ((vdd, gnd), (gnd, vdd)):
            boxes = []
            for layer, x0, y0, x1, y1 in macro.pins[pin_name].shapes:
                if nl.cell_orient[c] == "FS":
                    y0, y1 = h - y1, h - y0
                boxes.append((layer, (x + x0, y + y0, x + x1, y + y1)))
            assert any(lay == layer and _overlap(box, r) for layer, box in boxes for lay, r in rects[pin_name]), \
                (nl.cell_names[c], nl.cell_orient[c], pin_name)
            assert not any(lay == layer and _overlap(box, r) for layer, box in boxes for lay, r in rects[other]), \
                (nl.cell_names[c], pin_name, "touches", other)
            checked += 1
    assert checked == 2 * int((~nl.cell_is_io).sum()) > 100


def test_vias_join_rails_to_stripes_of_the_same_net_only(counter_run, pdk):
    nl, grid = _grid(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    known = {v.name for v in lef_vias(pdk)}
    stripe = stripe_layer(pdk).name
    cx0, _, cx1, _ = nl.core
    at = {}
    for net in grid.values():
        for v in net.vias:
            assert v.via in known  # a via the LEF defines
            at.setdefault((round(v.x, 3), round(v.y, 3)), set()).add((net.name, v.via))
    for net in grid.values():
        stripes = [w for w in net.wires if w.layer == stripe and abs(w.x0 - w.x1) < TOL and cx0 < w.x0 < cx1]
        for other in grid.values():
            rails = [w for w in other.wires if w.layer == "metal1"]
            for s in stripes:
                for r in rails:
                    vias = at.get((round(s.x0, 3), round(r.y0, 3)), set())
                    if other.name == net.name:  # a full stack from the rail up to the stripe
                        names = {v for _, v in vias}
                        layers = [layer.name for layer in pdk.routing_layers()]
                        need = layers[:layers.index(stripe) + 1]
                        got = set()
                        for v in lef_vias(pdk):
                            if v.name in names:
                                got |= set(v.layers) & set(layers)
                        assert set(need) <= got, (net.name, s.x0, r.y0)
                    else:
                        assert not vias, f"{net.name} stripe and {other.name} rail joined at {s.x0}, {r.y0}"


def test_the_grid_survives_placement_and_a_def_round_trip(counter_run, pdk, tmp_path):
    fp, g1 = _grid(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    pl, g2 = _grid(counter_run.step_dir("place", create=False) / "placed.def", pdk)
    assert g1 == g2
    write_def(pl, tmp_path / "again.def", pdk)
    _, g3 = _grid(tmp_path / "again.def", pdk)
    assert g3 == g2
    # and the signal netlist is untouched by it: no vdd/gnd net among the NETS
    assert not set(g1) & set(pl.net_names)


def test_no_grid_when_turned_off(tmp_path):
    cfg = resolve("counter").flow_config()
    cfg.floorplan.power_grid = False
    run = run_flow(cfg, RunStore(tmp_path), until="floorplan")
    assert run.status == "done", run.info().get("error")
    text = (run.step_dir("floorplan", create=False) / "floorplan.def").read_text()
    assert "SPECIALNETS" not in text
    assert not [k for k in run.step_metrics("floorplan") if "pdn" in k]


def test_vdd_and_gnd_shapes_keep_the_lef_spacing_from_each_other(counter_run, pdk):
    """No short and no spacing error inside the grid: wires and via pads of vdd against those of gnd, per layer."""
    _, grid = _grid(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    metals = {layer.name: layer.spacing_um or 0.0 for layer in pdk.routing_layers()}
    pads = {v.name: [r for r in v.rects if r[0] in metals] for v in lef_vias(pdk)}

    def shapes(net):
        out = [(w.layer, _rect(w)) for w in net.wires]
        out += [(lay, (v.x + x0, v.y + y0, v.x + x1, v.y + y1))
                for v in net.vias for lay, x0, y0, x1, y1 in pads[v.via]]
        return out

    vdd, gnd = _power_pins(pdk)
    a, b = shapes(grid[vdd]), shapes(grid[gnd])
    assert len(a) > 50 and len(b) > 50
    for la, ra in a:
        s = metals[la] - TOL
        grown = (ra[0] - s, ra[1] - s, ra[2] + s, ra[3] + s)
        assert not any(lb == la and _overlap(grown, rb) for lb, rb in b), (la, ra)


def test_a_signal_net_named_like_a_power_pin_is_refused(counter_run, pdk):
    from dataclasses import replace

    nl = read_def(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    vdd, _ = _power_pins(pdk)
    clashing = replace(nl, net_names=[vdd] + list(nl.net_names[1:]))
    with pytest.raises(EngineError, match=f"signal net named {vdd}"):
        build_grid(clashing, pdk)


def test_a_stripe_layer_that_is_not_vertical_is_refused_with_the_knob(counter_run, pdk):
    nl = read_def(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    horizontal = next(layer.name for layer in pdk.routing_layers() if layer.direction == "HORIZONTAL")
    with pytest.raises(EngineError, match="not a vertical routing layer") as exc:
        build_grid(nl, pdk, stripe_layer_name=horizontal)
    assert exc.value.knob == "floorplan.pdn_stripe_layer"


# ------------------------------------------------------------------------------------------------ qrouter
def _signal_shapes(def_text: str, pdk, units: int = 1000):
    """(net, layer, rect) of every wire and via pad in the routed DEF's NETS section."""
    sec = re.search(r"^NETS\s+\d+\s*;(.*?)^END NETS", def_text, re.S | re.M).group(1)
    width = {layer.name: layer.width_um for layer in pdk.routing_layers()}
    pads = {v.name: v.layers for v in lef_vias(pdk)}
    out = []
    for stmt in sec.split(";"):
        stmt = stmt.strip()
        if not stmt.startswith("-"):
            continue
        name = stmt.split()[1]
        for seg in re.split(r"\+\s*ROUTED\b|\bNEW\b", stmt)[1:]:
            toks = seg.split()
            layer, px, py = toks[0], None, None
            for m in re.finditer(r"\(\s*(\S+)\s+(\S+)\s*\)\s*(\w+)?", seg):
                x = px if m.group(1) == "*" else float(m.group(1)) / units
                y = py if m.group(2) == "*" else float(m.group(2)) / units
                h = width[layer] / 2
                if px is not None:
                    out.append((name, layer, (min(px, x) - h, min(py, y) - h, max(px, x) + h, max(py, y) + h)))
                if m.group(3) and m.group(3) in pads:
                    for lay in pads[m.group(3)]:
                        if lay in width:
                            out.append((name, lay, (x - 0.2, y - 0.2, x + 0.2, y + 0.2)))
                px, py = x, y
    return out


def test_qrouter_routes_every_net_around_the_grid(counter_run, pdk):
    metrics = counter_run.step_metrics("route")
    assert metrics["route__net__unrouted"] == 0
    routed = counter_run.step_dir("route", create=False) / "routed.def"
    text = routed.read_text()
    _, grid = _grid(routed, pdk)
    grid_rects = [(net.name, w.layer, _rect(w)) for net in grid.values() for w in net.wires]
    shapes = _signal_shapes(text, pdk)
    assert len(shapes) > 100
    stripe = stripe_layer(pdk).name
    assert any(layer == stripe for _, layer, _ in shapes)  # the router does use the stripes' layer
    # Not over the grid, and not nearer to it than the LEF's spacing for the layer.
    spacing = {layer.name: layer.spacing_um or 0.0 for layer in pdk.routing_layers()}
    hits = []
    for n, layer, r in shapes:
        s = spacing[layer] - TOL
        grown = (r[0] - s, r[1] - s, r[2] + s, r[3] + s)
        hits += [(n, layer, gn) for gn, gl, g in grid_rects if layer == gl and _overlap(grown, g)]
    assert not hits, f"signal wires over or too near the power grid: {hits[:5]}"


def test_routed_def_keeps_the_whole_grid_in_one_specialnets_section(counter_run, pdk):
    fp, g_fp = _grid(counter_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    text = (counter_run.step_dir("route", create=False) / "routed.def").read_text()
    assert len(re.findall(r"^SPECIALNETS\b", text, re.M)) == 1
    _, g_routed = _grid(counter_run.step_dir("route", create=False) / "routed.def", pdk)
    assert g_routed == g_fp  # also the wiring above the router's layers it never saw
    above = {layer.name for layer in pdk.routing_layers()[counter_run.config["route"]["layers"]:]}
    assert any(w.layer in above for n in g_fp.values() for w in n.wires)
    given = (counter_run.step_dir("route", create=False) / "route_in.def").read_text()
    assert not any(re.search(rf"^\s*(\+ ROUTED|NEW) {layer} ", given, re.M) for layer in above)
    # qrouter's copy has SPECIALNETS after NETS (it numbers nets in reading order)
    assert given.index("END NETS") < given.index("SPECIALNETS")


def test_qrouter_def_drops_wiring_above_the_layers_and_restore_puts_it_back(pdk):
    net = SpecialNet("vdd", "POWER", [("*", "vdd")],
                     wires=[SpecialWire("metal5", 1.7, 0, 5, 50, 5), SpecialWire("metal1", 0.6, 0, 10, 50, 10)],
                     vias=[SpecialVia("M5_M4", "metal4", 10, 5), SpecialVia("M2_M1", "metal1", 10, 10)])
    from engine.io.def_io import special_nets_lines

    placed = "\n".join(["NETS 1 ;", "- a ( PIN a ) ( u1 A ) ;", "END NETS", ""] + special_nets_lines([net])
                       + ["END DESIGN"])
    placed = placed.replace("NETS 1 ;", "\n".join(special_nets_lines([net])) + "\nNETS 1 ;", 1)
    placed = placed[:placed.rindex("SPECIALNETS 1")] + "END DESIGN\n"
    out = qrouter_def(placed, pdk, layers=4)
    sec = out[out.index("SPECIALNETS"):]
    assert "metal5" not in sec and "M5_M4" not in sec
    assert re.search(r"\+ ROUTED metal1 600 \( 0 10000 \) \( 50000 10000 \)", sec)
    assert "M2_M1" in sec and out.index("END NETS") < out.index("SPECIALNETS")
    routed = out + "SPECIALNETS 1 ;\n- a\n+ ROUTED metal2 400 ( 100 100 ) ( * 300 ) ;\nEND SPECIALNETS\n"
    back = restore_special_nets(routed, placed)
    assert back.count("SPECIALNETS ") == 1 and "SPECIALNETS 2 ;" in back
    assert "metal5 1700" in back and "M5_M4" in back and "( * 300 )" in back


# ------------------------------------------------------------------------------------------------ GDSII
def test_gds_draws_the_stripes_on_their_layer(counter_run, pdk):
    import json

    import klayout.db as db

    gds = counter_run.step_dir("gds", create=False) / "design.gds"
    table = json.loads((counter_run.step_dir("gds", create=False) / "layers.json").read_text())
    layout = db.Layout()
    layout.read(str(gds))
    top = layout.top_cell()
    stripe = stripe_layer(pdk).name
    num, dt = map(int, table[stripe].split("/"))
    li = layout.find_layer(num, dt)
    assert li is not None
    drawn = db.Region(top.begin_shapes_rec(li))
    _, grid = _grid(counter_run.step_dir("route", create=False) / "routed.def", pdk)
    dbu = layout.dbu
    n = 0
    for net in grid.values():
        for w in net.wires:
            if w.layer != stripe:
                continue
            x0, y0, x1, y1 = _rect(w)
            box = db.Region(db.Box(int(round(x0 / dbu)), int(round(y0 / dbu)), int(round(x1 / dbu)),
                                   int(round(y1 / dbu))))
            assert (box - drawn).is_empty(), f"{net.name} stripe at x = {w.x0} is not drawn on {stripe}"
            n += 1
    assert n >= 4  # stripes and the rings' vertical sides


# ------------------------------------------------------------------------------------------------ tie-offs
HOSTILE = __import__("pathlib").Path(__file__).resolve().parent / "designs" / "hostile_netlist"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A design with constant outputs (tie buffers whose A is 1'b0 / 1'b1), through routing."""
    from engine.config import FlowConfig

    cfg = FlowConfig(design_files=[str(HOSTILE / "hostile.v")], top="hostile")
    run = run_flow(cfg, RunStore(tmp_path_factory.mktemp("pdn-tie")), until="route")
    assert run.status == "done", run.info().get("error")
    return run


def _tied_in_verilog(netlist_v: str) -> dict[tuple[str, str], str]:
    """(instance, pin) -> "0"/"1" for every `.PIN(1'bV)` of the mapped netlist."""
    out = {}
    for m in re.finditer(r"^\s*\w+\s+(\S+)\s*\((.*?)\);", netlist_v, re.M | re.S):
        for pin, value in re.findall(r"\.(\w+)\(\s*1'b([01])\s*\)", m.group(2)):
            out[(m.group(1), pin)] = value
    return out


def _cell_shapes(nl, pdk, inst: str, pin: str):
    c = nl.cell_names.index(inst)
    macro = pdk.macros[nl.cell_types[c]]
    x, y, h = float(nl.x[c]), float(nl.y[c]), macro.height_um
    out = []
    for layer, x0, y0, x1, y1 in macro.pins[pin].shapes:
        if nl.cell_orient[c] == "FS":
            y0, y1 = h - y1, h - y0
        out.append((layer, (x + x0, y + y0, x + x1, y + y1)))
    return out


def _touch(a, b) -> bool:
    return a[0] <= b[2] + TOL and b[0] <= a[2] + TOL and a[1] <= b[3] + TOL and b[1] <= a[3] + TOL


def test_constant_inputs_are_wired_to_the_rail_of_their_value(hostile_run, pdk):
    tied = _tied_in_verilog((hostile_run.step_dir("synth", create=False) / "netlist.v").read_text())
    assert {"0", "1"} <= set(tied.values())  # the design ties pins both ways
    vdd, gnd = _power_pins(pdk)
    _, fp_grid = _grid(hostile_run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    for (inst, pin), value in tied.items():
        assert (inst, pin) in fp_grid[vdd if value == "1" else gnd].conns
    assert hostile_run.step_metrics("floorplan")["floorplan__pdn__tie__count"] == len(tied)
    assert hostile_run.step_metrics("route")["route__net__unrouted"] == 0
    routed = hostile_run.step_dir("route", create=False) / "routed.def"
    nl, grid = _grid(routed, pdk)
    text = routed.read_text()
    nets_sec = re.search(r"^NETS\s+(\d+)\s*;(.*?)^END NETS", text, re.S | re.M)
    assert not re.search(rf"^- ({vdd}|{gnd})\b", nets_sec.group(2), re.M)  # the tie wiring moved to SPECIALNETS
    assert int(nets_sec.group(1)) == nl.n_nets
    metals = {layer.name for layer in pdk.routing_layers()}
    pad_rects = {v.name: [r for r in v.rects if r[0] in metals] for v in lef_vias(pdk)}
    for (inst, pin), value in tied.items():
        net = grid[vdd if value == "1" else gnd]
        # Connectivity over the net's special wiring, the cells' pins of that net and the tied pin itself.
        shapes = [(w.layer, _rect(w), "rail" if w.layer == "metal1" and abs(w.x1 - w.x0) > 20 else "wire")
                  for w in net.wires]
        shapes += [(layer, r, "pin") for c in np.flatnonzero(~nl.cell_is_io)
                   if net.name in pdk.macros[nl.cell_types[c]].pins
                   for layer, r in _cell_shapes(nl, pdk, nl.cell_names[c], net.name)]
        tie = range(len(shapes), len(shapes) + len(_cell_shapes(nl, pdk, inst, pin)))
        shapes += [(layer, r, "tie") for layer, r in _cell_shapes(nl, pdk, inst, pin)]
        parent = list(range(len(shapes)))

        def find(i, parent=parent):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for v in net.vias:  # a via's pads on its metals, as the LEF draws them, joined by its cut
            pads = [len(shapes) + k for k in range(len(pad_rects[v.via]))]
            shapes += [(layer, (v.x + x0, v.y + y0, v.x + x1, v.y + y1), "via")
                       for layer, x0, y0, x1, y1 in pad_rects[v.via]]
            parent += pads
            for i in pads[1:]:
                parent[find(i)] = find(pads[0])
        for i in range(len(shapes)):
            for j in range(i + 1, len(shapes)):
                if shapes[i][0] == shapes[j][0] and _touch(shapes[i][1], shapes[j][1]):
                    parent[find(i)] = find(j)
        rails = {find(i) for i, s in enumerate(shapes) if s[2] == "rail"}
        assert any(find(i) in rails for i in tie), f"{inst}.{pin} is not wired to {net.name}"
