"""Power grid (PDN): vdd/gnd rings around the core, vertical stripes across it and a followpin rail on every row
boundary, as DEF SPECIALNETS with the LEF's vias wherever two layers of one net cross.

Everything is read from the LEF: the rail layer, its width and which net lies at the bottom of a cell in N come
from the cells' own power pins (osu018: gnd on metal1 at y = 0, vdd at the top, each 0.6 um tall); the stripe
layer is the second vertical routing layer (the first stays free for reaching the cells' pins; metal4 on osu018),
the ring's horizontal sides take the horizontal layer above it (else the one below); widths and positions follow
those layers' pitch, width and spacing; vias are the LEF's VIA definitions (DEFAULT ones first) between adjacent
metals, stacked from the rail to the stripe.

Rows alternate N / FS (engine.flow.floorplan), so the boundary between two rows carries one net that both rows
share: one rail per boundary, rows + 1 rails in all. Every cell's vdd and gnd pins touch a rail by abutment, so the
special nets connect ``( * vdd )`` / ``( * gnd )`` as OpenROAD writes them.

The grid is built in the floorplan step (not a step of its own): it depends only on the die, the rows and the LEF,
all fixed there, and every later DEF (placed, routed, filled) carries it through ``Netlist.special_nets``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.errors import EngineError
from engine.io.def_io import SpecialNet, SpecialVia, SpecialWire
from engine.netlist import Netlist
from engine.pdk import Layer, LefVia, Pdk, read_lef

EPS = 1e-6


# ------------------------------------------------------------------------------------------------ LEF facts
@lru_cache(maxsize=8)
def _lef_vias(lef_path: str, mtime: float) -> tuple[tuple[LefVia, ...], float]:
    """The LEF's fixed VIA definitions and its MANUFACTURINGGRID (0.005 um when it gives none)."""
    lef = read_lef(lef_path)
    grid = lef["manufacturing_grid"]
    return tuple(lef["vias"]), grid if grid is not None else 0.005


def lef_vias(pdk: Pdk) -> tuple[LefVia, ...]:
    return _lef_vias(str(pdk.lef_path), pdk.lef_path.stat().st_mtime)[0]


def manufacturing_grid(pdk: Pdk) -> float:
    return _lef_vias(str(pdk.lef_path), pdk.lef_path.stat().st_mtime)[1]


def via_between(pdk: Pdk, lower: str, upper: str) -> str:
    """The LEF via joining two adjacent metals (a DEFAULT one when the LEF marks one)."""
    found = [v for v in lef_vias(pdk) if lower in v.layers and upper in v.layers]
    if not found:
        raise EngineError(f"{pdk.lef_path.name} defines no VIA between {lower} and {upper}, so the power grid "
                          "cannot join its layers", hint="set floorplan.power_grid = false to floorplan without a "
                          "power grid", code="floorplan.power_grid", knob="floorplan.power_grid")
    return sorted(found, key=lambda v: (not v.default, v.name))[0].name


@dataclass(frozen=True)
class RailSpec:
    layer: str  # the metal of the cells' rails
    width_um: float  # rail height as the cells draw it
    bottom_net: str  # the pin at the bottom edge of a cell in orientation N (osu018: gnd)
    top_net: str  # the pin at the top edge (osu018: vdd)
    power: str  # the USE POWER pin name (the vdd net)
    ground: str  # the USE GROUND pin name


def rail_spec(pdk: Pdk) -> RailSpec:
    """Rails as the core cells draw them: a power-pin rectangle spanning the cell's width at its bottom or top."""
    votes: Counter = Counter()
    names: dict[str, str] = {}
    for m in pdk.macros.values():
        if m.width_um <= 0 or m.height_um <= 0 or not m.cls.upper().startswith("CORE"):
            continue
        for pin in m.pins.values():
            use = pin.use.upper()
            if use not in ("POWER", "GROUND"):
                continue
            names.setdefault(use, pin.name)
            for layer, x0, y0, x1, y1 in pin.shapes:
                if x0 > EPS or x1 < m.width_um - EPS:
                    continue  # not a rail: it does not span the cell
                centre = (y0 + y1) / 2
                if abs(centre) < 0.25 * m.height_um:
                    votes[(layer, round(y1 - y0, 6), "bottom", pin.name)] += 1
                elif abs(centre - m.height_um) < 0.25 * m.height_um:
                    votes[(layer, round(y1 - y0, 6), "top", pin.name)] += 1
    sides: dict[str, tuple[str, float, str]] = {}
    for (layer, width, side, pin), _ in votes.most_common():
        sides.setdefault(side, (layer, width, pin))
    if "POWER" not in names or "GROUND" not in names or set(sides) != {"bottom", "top"} \
            or sides["bottom"][2] == sides["top"][2] or sides["bottom"][0] != sides["top"][0]:
        raise EngineError(f"the cells of {pdk.lef_path.name} have no power and ground rails spanning their width at "
                          "their bottom and top edges, so followpin rails cannot be placed",
                          hint="set floorplan.power_grid = false to floorplan without a power grid",
                          code="floorplan.power_grid", knob="floorplan.power_grid")
    return RailSpec(layer=sides["bottom"][0], width_um=max(sides["bottom"][1], sides["top"][1]),
                    bottom_net=sides["bottom"][2], top_net=sides["top"][2], power=names["POWER"],
                    ground=names["GROUND"])


def stripe_layer(pdk: Pdk, name: str = "") -> Layer:
    """The stripes' layer: ``name`` if given (a vertical routing layer), else the second vertical routing layer."""
    vertical = [layer for layer in pdk.routing_layers() if layer.direction == "VERTICAL" and layer.pitch_um]
    if name:
        match = [layer for layer in vertical if layer.name == name]
        if not match:
            raise EngineError(f"floorplan.pdn_stripe_layer is '{name}', which is not a vertical routing layer of "
                              f"{pdk.lef_path.name}", hint=f"choose one of {', '.join(v.name for v in vertical)}",
                              code="floorplan.power_grid", knob="floorplan.pdn_stripe_layer")
        return match[0]
    if not vertical:
        raise EngineError(f"{pdk.lef_path.name} has no vertical routing layer for power stripes",
                          hint="set floorplan.power_grid = false", code="floorplan.power_grid",
                          knob="floorplan.power_grid")
    return vertical[1] if len(vertical) > 1 else vertical[0]


def ring_h_layer(pdk: Pdk, vertical: Layer) -> Layer | None:
    """The horizontal layer for the ring's top and bottom sides: the one right above the stripes, else below."""
    layers = pdk.routing_layers()
    k = [layer.name for layer in layers].index(vertical.name)
    for j in (k + 1, k - 1):
        if 0 <= j < len(layers) and layers[j].direction == "HORIZONTAL" and layers[j].pitch_um:
            return layers[j]
    return None


def strap_width(layer: Layer, tracks: int, grid: float) -> float:
    """A strap covering ``tracks`` routing tracks, leaving the layer's spacing to the next track's wire."""
    pitch, spacing = layer.pitch_um or 1.0, layer.spacing_um or 0.0
    width = max(layer.width_um or 0.0, tracks * pitch - spacing)
    step = 2 * grid  # both edges on the manufacturing grid
    return round(math.floor(width / step + EPS) * step, 6)


def _on_tracks(v: float, layer: Layer, tracks: int) -> float:
    """The centre nearest ``v`` of a strap covering ``tracks`` whole tracks of ``layer``."""
    pitch = layer.pitch_um or 1.0
    off = (layer.offset_um if layer.offset_um is not None else pitch / 2) + (tracks - 1) * pitch / 2
    return round(off + round((v - off) / pitch) * pitch, 6)


# ------------------------------------------------------------------------------------------------ the grid
@dataclass
class PowerGrid:
    nets: list[SpecialNet]
    rails: list[tuple[float, str]] = field(default_factory=list)  # (y, net) per row boundary, bottom up
    stripes: list[tuple[str, float]] = field(default_factory=list)  # (net, x) per stripe
    rings: bool = False
    stripe_layer: str = ""
    ring_layers: tuple[str, str] = ("", "")  # (vertical sides, horizontal sides)

    @property
    def wirelength_um(self) -> float:
        return sum(abs(w.x1 - w.x0) + abs(w.y1 - w.y0) for n in self.nets for w in n.wires)

    @property
    def via_count(self) -> int:
        return sum(len(n.vias) for n in self.nets)


def build_grid(netlist: Netlist, pdk: Pdk, *, stripe_pitch_um: float = 40.0, strap_tracks: int = 2,
               stripe_layer_name: str = "") -> PowerGrid:
    """The power grid of a floorplanned ``netlist`` (die, core and rows set)."""
    if not netlist.rows or netlist.core is None or netlist.die is None:
        raise EngineError("the power grid needs a floorplan (die, core and rows) first", code="floorplan.power_grid")
    rail = rail_spec(pdk)
    clash = sorted({rail.power, rail.ground} & set(netlist.net_names))
    if clash:
        raise EngineError(f"the design has a signal net named {clash[0]}, the name of the cells' power pins, so the "
                          "power grid and that net would be one net", hint=f"rename the port or wire {clash[0]} in "
                          "the Verilog, or set floorplan.power_grid = false", code="floorplan.power_grid",
                          knob="floorplan.power_grid")
    grid = manufacturing_grid(pdk)
    vlay = stripe_layer(pdk, stripe_layer_name)
    hlay = ring_h_layer(pdk, vlay)
    layers = [layer.name for layer in pdk.routing_layers()]
    if rail.layer not in layers or layers.index(rail.layer) >= layers.index(vlay.name):
        raise EngineError(f"the stripe layer {vlay.name} must lie above the rail layer {rail.layer}",
                          code="floorplan.power_grid", knob="floorplan.pdn_stripe_layer")
    stack = [via_between(pdk, layers[i], layers[i + 1])
             for i in range(layers.index(rail.layer), layers.index(vlay.name))]
    stack_layers = layers[layers.index(rail.layer):layers.index(vlay.name)]
    wv = strap_width(vlay, strap_tracks, grid)
    nets = {rail.power: SpecialNet(rail.power, "POWER", [("*", rail.power)]),
            rail.ground: SpecialNet(rail.ground, "GROUND", [("*", rail.ground)])}

    def via_stack(net: str, x: float, y: float) -> None:
        nets[net].vias.extend(SpecialVia(v, lay, x, y) for v, lay in zip(stack, stack_layers))

    # Rails: one per row boundary; the net there follows the orientation of the rows on either side.
    rows = sorted(netlist.rows, key=lambda r: r.y)
    flip = {"N": False, "FS": True, "S": True, "FN": False}
    boundary: dict[float, str] = {}
    for r in rows:
        if r.orient not in flip:
            raise EngineError(f"row at y = {r.y:g} um has orientation {r.orient}; the rails need N or FS rows",
                              code="floorplan.power_grid")
        lo, hi = (rail.top_net, rail.bottom_net) if flip[r.orient] else (rail.bottom_net, rail.top_net)
        for y, net in ((round(r.y, 6), lo), (round(r.y + r.height, 6), hi)):
            if boundary.setdefault(y, net) != net:
                raise EngineError(f"rows meeting at y = {y:g} um put {boundary[y]} and {net} on the same rail: rows "
                                  "must alternate N / FS", code="floorplan.power_grid")
    cx0, cy0, cx1, cy1 = netlist.core
    dx0, dy0, dx1, dy1 = netlist.die

    # Rings: gnd inside, vdd outside, in the core margin, when it is wide enough to leave the IO pins a track.
    rings = hlay is not None
    ring_x: dict[str, tuple[float, float]] = {}
    ring_y: dict[str, tuple[float, float]] = {}
    wh = strap_width(hlay, strap_tracks, grid) if hlay is not None else 0.0
    if hlay is not None:
        gap = 2 * max(vlay.pitch_um or 1.0, hlay.pitch_um or 1.0)
        wmax = max(wv, wh)
        for k, net in enumerate((rail.ground, rail.power)):
            off = gap + wmax / 2 + k * (wmax + gap)
            ring_x[net] = (_on_tracks(cx0 - off, vlay, strap_tracks), _on_tracks(cx1 + off, vlay, strap_tracks))
            ring_y[net] = (_on_tracks(cy0 - off, hlay, strap_tracks), _on_tracks(cy1 + off, hlay, strap_tracks))
        outer = rail.power
        room = max(vlay.pitch_um or 1.0, hlay.pitch_um or 1.0) + 1.0
        rings = (ring_x[outer][0] - wv / 2 >= dx0 + room and ring_x[outer][1] + wv / 2 <= dx1 - room
                 and ring_y[outer][0] - wh / 2 >= dy0 + room and ring_y[outer][1] + wh / 2 <= dy1 - room)
    if rings:
        assert hlay is not None
        top = via_between(pdk, *sorted((vlay.name, hlay.name), key=layers.index))
        top_layer = min((vlay.name, hlay.name), key=layers.index)
        for net in (rail.ground, rail.power):
            (xl, xr), (yb, yt) = ring_x[net], ring_y[net]
            for x in (xl, xr):
                nets[net].wires.append(SpecialWire(vlay.name, wv, x, yb - wh / 2, x, yt + wh / 2))
            for y in (yb, yt):
                nets[net].wires.append(SpecialWire(hlay.name, wh, xl - wv / 2, y, xr + wv / 2, y))
            nets[net].vias.extend(SpecialVia(top, top_layer, x, y) for x in (xl, xr) for y in (yb, yt))

    rail_list = sorted(boundary.items())
    # A rail runs where the rows on either side of its boundary run: rows cut around a macro (and its halo) cut
    # the rail there too, so no rail crosses a macro. Uncut rows give one rail from ring to ring.
    spans = rail_spans(rows)
    for y, net in rail_list:
        for a, b in spans[y]:
            left, right = a <= cx0 + EPS, b >= cx1 - EPS
            if rings:
                xl, xr = ring_x[net]
                a, b = (xl - wv / 2 if left else a), (xr + wv / 2 if right else b)
                if left:
                    via_stack(net, xl, y)
                if right:
                    via_stack(net, xr, y)
            nets[net].wires.append(SpecialWire(rail.layer, rail.width_um, a, y, b, y))

    # Stripes: vdd and gnd alternate, about stripe_pitch_um apart per net, on whole tracks of their layer.
    core_w = cx1 - cx0
    n = max(1, int(round(core_w / max(stripe_pitch_um, EPS))))
    stripes: list[tuple[str, float]] = []
    for i in range(n):
        for frac, net in ((0.25, rail.power), (0.75, rail.ground)):
            stripes.append((net, _on_tracks(cx0 + (i + frac) * core_w / n, vlay, strap_tracks)))
    # A hard macro that draws on the stripe layer (pins or obstructions there) cuts the stripes over it.
    clear = (vlay.spacing_um or 0.0) + wv / 2
    blocks = [(x0 - clear, y0 - clear, x1 + clear, y1 + clear)
              for x0, y0, x1, y1 in macro_blockages(netlist, pdk, vlay.name)]
    for net, x in stripes:
        if rings:
            yb, yt = ring_y[net]
            y0, y1 = yb - wh / 2, yt + wh / 2
        else:
            y0, y1 = cy0 - rail.width_um / 2, cy1 + rail.width_um / 2
        pieces = [(y0, y1)]
        for bx0, by0, bx1, by1 in blocks:
            if bx0 < x < bx1:
                pieces = [q for a, b in pieces for q in ((a, min(b, by0)), (max(a, by1), b)) if q[1] - q[0] > EPS]
        for a, b in pieces:
            nets[net].wires.append(SpecialWire(vlay.name, wv, x, a, x, b))
        if rings:
            nets[net].vias.extend(SpecialVia(top, top_layer, x, y) for y in (yb, yt)
                                  if any(a - EPS <= y <= b + EPS for a, b in pieces))
        for y, rnet in rail_list:
            if (rnet == net and any(a + wv / 2 <= x <= b - wv / 2 for a, b in spans[y])
                    and any(a - EPS <= y <= b + EPS for a, b in pieces)):
                via_stack(net, x, y)
    return PowerGrid(nets=[nets[rail.power], nets[rail.ground]], rails=rail_list, stripes=stripes, rings=rings,
                     stripe_layer=vlay.name, ring_layers=(vlay.name, hlay.name if hlay is not None else ""))


def macro_blockages(netlist: Netlist, pdk: Pdk, layer: str) -> list[tuple[float, float, float, float]]:
    """Placed rectangles of the hard macros (pdk.block_names) that draw on ``layer`` (a pin or an obstruction
    there): their whole outline, since a stripe over the block would short what it draws (orientation N)."""
    out = []
    for c, t in enumerate(netlist.cell_types):
        m = pdk.macros.get(t) if t in pdk.block_names else None
        if m is None:
            continue
        shapes = [*m.obstructions, *(s for p in m.pins.values() for s in p.shapes)]
        if any(s[0] == layer for s in shapes):
            x, y = float(netlist.x[c]), float(netlist.y[c])
            out.append((x, y, x + m.width_um, y + m.height_um))
    return out


def rail_spans(rows) -> dict[float, list[tuple[float, float]]]:
    """Per row boundary y, the merged x intervals of the rows touching it (from below or above)."""
    raw: dict[float, list[tuple[float, float]]] = {}
    for r in rows:
        for y in (round(r.y, 6), round(r.y + r.height, 6)):
            raw.setdefault(y, []).append((r.x0, r.x1))
    out: dict[float, list[tuple[float, float]]] = {}
    for y, ivs in raw.items():
        merged: list[list[float]] = []
        for a, b in sorted(ivs):
            if merged and a <= merged[-1][1] + EPS:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[y] = [(a, b) for a, b in merged]
    return out


def grid_metrics(grid: PowerGrid) -> dict:
    return {
        "floorplan__pdn__stripe__count": len(grid.stripes),
        "floorplan__pdn__rail__count": len(grid.rails),
        "floorplan__pdn__ring__count": 2 if grid.rings else 0,
        "floorplan__pdn__wirelength_um": round(grid.wirelength_um, 3),
        "floorplan__pdn__via__count": grid.via_count,
    }


# ------------------------------------------------------------------------------------------------ tie-offs
def constant_pins(netlist_json: str | Path, top: str | None = None) -> list[tuple[str, str, str]]:
    """(instance, pin, "0" or "1") of every cell input Yosys tied to a constant (``.S(1'b1)``, a tie buffer's A).

    engine.io.yosys_json leaves these pins off every net; the grid connects them to gnd / vdd."""
    from engine.io.yosys_json import load_yosys_json, top_module

    _, module = top_module(load_yosys_json(netlist_json), top)
    out = []
    for cname, cell in module.get("cells", {}).items():
        for pin, bits in cell.get("connections", {}).items():
            if len(bits) == 1 and bits[0] in ("0", "1"):
                out.append((cname, pin, bits[0]))
    return out


def tie_constants(grid: PowerGrid, pins: list[tuple[str, str, str]], cell_names: set[str]) -> int:
    """List the constant pins among the grid nets' connections (1 -> the power net, 0 -> ground); -> how many.

    The connection is logical here; the route step has qrouter wire each pin to its own cell's power pin on
    the rail (engine.flow.route.tie_net_lines)."""
    power = next(n for n in grid.nets if n.use == "POWER")
    ground = next(n for n in grid.nets if n.use == "GROUND")
    n = 0
    for inst, pin, value in pins:
        if inst in cell_names:
            (power if value == "1" else ground).conns.append((inst, pin))
            n += 1
    return n
