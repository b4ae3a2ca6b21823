"""DEF writer and reader for the subset a flow needs: DIEAREA, ROW, TRACKS, COMPONENTS, PINS, SPECIALNETS, NETS.

Positions in the Netlist are lower-left corners in microns; DEF stores database units. Cell orientation is kept as
metadata (``cell_orient``); pin offsets in the Netlist are those of the unflipped (N) cell, as academic placers use.

Also, on the same tokenizer (engine.io.lexer): ``read_routing``, the wiring of a routed DEF (each net's routed
segments and vias, in DEF units, for wire lengths per layer), and ``def_layout``, where each statement of a DEF text
is (its lines), for the edits engine.flow.route makes to qrouter's input and output while keeping every other line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.io.lexer import TokenReader
from engine.netlist import IO_TYPE, PIN_INOUT, PIN_INPUT, PIN_OUTPUT, Netlist, NetlistBuilder, Row
from engine.pdk import Pdk

_DIR_NAME = {PIN_INPUT: "INPUT", PIN_OUTPUT: "OUTPUT", PIN_INOUT: "INOUT"}


@dataclass
class SpecialWire:
    """One straight piece of special wiring: a path of ``width_um`` on ``layer`` from (x0, y0) to (x1, y1), its
    ends flush with the points (DEF special wiring has no end extension)."""

    layer: str
    width_um: float
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass
class SpecialVia:
    """A via (a LEF VIA or a DEF VIAS name) placed at (x, y); ``layer`` is the route layer DEF writes before it."""

    via: str
    layer: str
    x: float
    y: float


@dataclass
class SpecialNet:
    """A SPECIALNETS entry: power and ground grids (``use`` POWER / GROUND), or a router's pin stubs (no use)."""

    name: str
    use: str = ""  # POWER, GROUND, SIGNAL or "" (not given)
    conns: list[tuple[str, str]] = field(default_factory=list)  # ("*", "vdd") connects every cell's vdd pin
    wires: list[SpecialWire] = field(default_factory=list)
    vias: list[SpecialVia] = field(default_factory=list)


def special_nets_lines(special: list[SpecialNet], units: int = 1000) -> list[str]:
    """The SPECIALNETS section as DEF lines (empty when there is nothing to write).

    Each wire and via is its own ``NEW layer width ( x y ) ...`` piece, and no ``+ SHAPE`` is written: qrouter
    reads the width right after the layer and ends a route at the first ``+`` it meets.
    """
    if not special:
        return []

    def dbu(v: float) -> int:
        return int(round(v * units))

    lines = [f"SPECIALNETS {len(special)} ;"]
    for net in special:
        head = f"- {def_escape(net.name)}" + "".join(f" ( {inst} {pin} )" for inst, pin in net.conns)
        pieces = [f"{w.layer} {dbu(w.width_um)} ( {dbu(w.x0)} {dbu(w.y0)} ) ( {dbu(w.x1)} {dbu(w.y1)} )"
                  for w in net.wires]
        pieces += [f"{v.layer} 0 ( {dbu(v.x)} {dbu(v.y)} ) {v.via}" for v in net.vias]
        # USE before the wiring: qrouter takes a '+' after the wiring for the start of another route.
        lines.append(head + (f" + USE {net.use}" if net.use else ""))
        for k, piece in enumerate(pieces):
            lines.append(("  + ROUTED " if k == 0 else "    NEW ") + piece)
        lines.append("  ;")
    lines.append("END SPECIALNETS")
    lines.append("")
    return lines


def def_escape(name: str) -> str:
    # DEF names are whitespace-free tokens; Yosys' escaped identifiers can hold odd characters but no spaces.
    return name.replace(" ", "_")


def write_def(netlist: Netlist, path: str | Path, pdk: Pdk | None = None, *, units: int = 1000,
              pin_layers: dict[str, str] | None = None, tracks: bool = True, placed: bool = True) -> Path:
    """Write ``netlist`` as DEF. ``pin_layers`` maps IO terminal name -> layer (default metal2). The netlist's
    ``special_nets`` (the power grid) go to SPECIALNETS, before NETS as OpenROAD writes them."""
    path = Path(path)

    def dbu(v: float) -> int:
        return int(round(v * units))

    lines = ["VERSION 5.6 ;", 'DIVIDERCHAR "/" ;', 'BUSBITCHARS "[]" ;', f"DESIGN {def_escape(netlist.name)} ;",
             f"UNITS DISTANCE MICRONS {units} ;", ""]
    if netlist.die:
        x0, y0, x1, y1 = netlist.die
        lines.append(f"DIEAREA ( {dbu(x0)} {dbu(y0)} ) ( {dbu(x1)} {dbu(y1)} ) ;")
        lines.append("")
    for i, row in enumerate(netlist.rows):
        lines.append(f"ROW ROW_{i} {row.site} {dbu(row.x0)} {dbu(row.y)} {row.orient} DO {row.num_sites} BY 1 "
                     f"STEP {dbu(row.site_w)} 0 ;")
    if netlist.rows:
        lines.append("")
    if tracks and pdk is not None and netlist.die:
        x0, y0, x1, y1 = netlist.die
        for route_layer in pdk.routing_layers():
            if not route_layer.pitch_um:
                continue
            pitch = route_layer.pitch_um
            off = route_layer.offset_um if route_layer.offset_um is not None else pitch / 2
            # TRACKS X = vertical lines (for vertical layers), TRACKS Y = horizontal lines.
            for axis, lo, hi in (("X", x0, x1), ("Y", y0, y1)):
                start = lo + off
                count = int(np.floor((hi - start) / pitch)) + 1
                if count > 0:
                    lines.append(f"TRACKS {axis} {dbu(start)} DO {count} STEP {dbu(pitch)} "
                                 f"LAYER {route_layer.name} ;")
        lines.append("")
    core = np.flatnonzero(~netlist.cell_is_io)
    orient = netlist.cell_orient or ["N"] * netlist.n_cells
    lines.append(f"COMPONENTS {len(core)} ;")
    for c in core:
        name = def_escape(netlist.cell_names[c])
        if placed:
            status = "FIXED" if netlist.cell_fixed[c] else "PLACED"
            lines.append(f"- {name} {netlist.cell_types[c]} + {status} ( {dbu(netlist.x[c])} "
                         f"{dbu(netlist.y[c])} ) {orient[c]} ;")
        else:
            lines.append(f"- {name} {netlist.cell_types[c]} + UNPLACED ;")
    lines.append("END COMPONENTS")
    lines.append("")
    ios = np.flatnonzero(netlist.cell_is_io)
    pin_of_cell = {int(c): p for p, c in enumerate(netlist.pin_cell) if netlist.cell_is_io[c]}
    pin_net = netlist.pin_net()
    lines.append(f"PINS {len(ios)} ;")
    for c in ios:
        name = def_escape(netlist.cell_names[c])
        p = pin_of_cell.get(int(c))
        net = def_escape(netlist.net_names[pin_net[p]]) if p is not None and pin_net[p] >= 0 else name
        # The terminal's own direction is the reverse of the port's (an input port drives its net).
        port_dir = {PIN_OUTPUT: "INPUT", PIN_INPUT: "OUTPUT"}.get(int(netlist.pin_dir[p]) if p is not None else 2,
                                                                   "INOUT")
        layer = (pin_layers or {}).get(netlist.cell_names[c], "metal2")
        half = units * 0.15 if pdk is None else int(round(units * _pin_half_width(pdk, layer)))
        lines.append(f"- {name} + NET {net} + DIRECTION {port_dir} + USE SIGNAL")
        lines.append(f"  + LAYER {layer} ( {-int(half)} {-int(half)} ) ( {int(half)} {int(half)} )")
        lines.append(f"  + FIXED ( {dbu(netlist.x[c])} {dbu(netlist.y[c])} ) N ;")
    lines.append("END PINS")
    lines.append("")
    lines.extend(special_nets_lines(netlist.special_nets or [], units))
    lines.append(f"NETS {netlist.n_nets} ;")
    for n in range(netlist.n_nets):
        pins = netlist.net_pins[netlist.net_start[n]:netlist.net_start[n + 1]]
        terms = []
        for p in pins:
            c = netlist.pin_cell[p]
            if netlist.cell_is_io[c]:
                terms.append(f"( PIN {def_escape(netlist.cell_names[c])} )")
            else:
                terms.append(f"( {def_escape(netlist.cell_names[c])} {netlist.pin_names[p]} )")
        weight = f" + WEIGHT {int(round(netlist.net_weight[n]))}" if netlist.net_weight[n] != 1.0 else ""
        lines.append(f"- {def_escape(netlist.net_names[n])} " + " ".join(terms) + weight + " ;")
    lines.append("END NETS")
    lines.append("")
    lines.append("END DESIGN")
    path.write_text("\n".join(lines) + "\n")
    return path


def _pin_half_width(pdk: Pdk, layer: str) -> float:
    try:
        w = pdk.layer(layer).width_um or 0.3
    except KeyError:
        w = 0.3
    return w / 2


# ------------------------------------------------------------------------------------------------------ reader
class _DefTokens(TokenReader):
    def __init__(self, path: Path):
        super().__init__(path, path.read_text(errors="replace"))


def read_def(path: str | Path, pdk: Pdk) -> Netlist:
    """Read a DEF written by ``write_def`` (or by another tool, for the same subset) into a Netlist."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: DEF file not found")
    t = _DefTokens(path)
    units = 1000.0
    name = path.stem
    die = None
    rows: list[Row] = []
    comps: list[tuple[str, str, str, float, float, str]] = []
    pins: list[tuple[str, str, int, float, float]] = []
    nets: list[tuple[str, list[tuple[str, str]], float]] = []
    special: list[SpecialNet] = []
    while t.peek() is not None:
        tok = t.next()
        if tok == "DESIGN":
            name = t.statement()[0]
        elif tok == "UNITS":
            st = t.statement()
            units = t.number(st[-1])
        elif tok == "DIEAREA":
            st = [x for x in t.statement() if x not in "()"]
            vals = [t.number(v) / units for v in st]
            xs, ys = vals[0::2], vals[1::2]
            die = (min(xs), min(ys), max(xs), max(ys))
        elif tok == "ROW":
            st = t.statement()
            site, x, y, orient = st[1], t.number(st[2]) / units, t.number(st[3]) / units, st[4]
            nx = int(t.number(st[st.index("DO") + 1])) if "DO" in st else 1
            step = t.number(st[st.index("STEP") + 1]) / units if "STEP" in st else pdk.sites[site].width_um
            h = pdk.sites[site].height_um if site in pdk.sites else pdk.site.height_um
            rows.append(Row(y=y, x0=x, x1=x + nx * step, site_w=step, height=h, orient=orient, site=site))
        elif tok == "COMPONENTS":
            t.statement()
            while t.peek() != "END":
                st = t.statement()
                if not st or st[0] != "-":
                    raise t.error("a component must start with '-'")
                cname, ctype = st[1], st[2]
                status, x, y, orient = "UNPLACED", 0.0, 0.0, "N"
                for key in ("PLACED", "FIXED", "COVER"):
                    if key in st:
                        k = st.index(key)
                        status = key
                        x, y = t.number(st[k + 2]) / units, t.number(st[k + 3]) / units
                        orient = st[k + 5]
                comps.append((cname, ctype, status, x, y, orient))
            t.next(), t.next()
        elif tok == "PINS":
            t.statement()
            while t.peek() != "END":
                st = t.statement()
                pname = st[1]
                direction = st[st.index("DIRECTION") + 1] if "DIRECTION" in st else "INOUT"
                x = y = 0.0
                for key in ("PLACED", "FIXED", "COVER"):
                    if key in st:
                        k = st.index(key)
                        x, y = t.number(st[k + 2]) / units, t.number(st[k + 3]) / units
                netname = st[st.index("NET") + 1] if "NET" in st else pname
                pins.append((pname, netname, {"INPUT": PIN_INPUT, "OUTPUT": PIN_OUTPUT}.get(direction, PIN_INOUT),
                             x, y))
            t.next(), t.next()
        elif tok == "NETS":
            t.statement()
            while t.peek() != "END":
                st = t.statement()
                nname = st[1]
                conns = []
                k = 2
                while k < len(st) and st[k] == "(":
                    conns.append((st[k + 1], st[k + 2]))
                    k += 4
                weight = t.number(st[st.index("WEIGHT") + 1]) if "WEIGHT" in st else 1.0
                nets.append((nname, conns, weight))
            t.next(), t.next()
        elif tok == "SPECIALNETS":
            t.statement()
            while t.peek() != "END":
                special.append(_special_net(t, t.statement(), units))
            t.next(), t.next()
        elif tok == "END":
            if t.peek() == "DESIGN":
                break
            t.next()
        else:
            t.i -= 1
            t.statement()

    b = NetlistBuilder(name)
    io_net: dict[str, str] = {}
    for pname, netname, _direction, x, y in pins:
        b.add_cell(pname, IO_TYPE, 0.0, 0.0, fixed=True, io=True, x=x, y=y)
        io_net[pname] = netname
    orients = ["N"] * len(pins)
    for cname, ctype, status, x, y, orient in comps:
        macro = pdk.macro(ctype)
        b.add_cell(cname, ctype, macro.width_um, macro.height_um, fixed=status == "FIXED", x=x, y=y)
        orients.append(orient)
    pin_dir_of_io = {p[0]: p[2] for p in pins}
    for nname, conns, weight in nets:
        for inst, pin in conns:
            if inst == "PIN":
                cid = b.cell_idx.get(pin)
                if cid is None:
                    raise EngineError(f"{path}: net {nname} names PIN {pin}, which PINS does not define")
                # DEF says the port's direction; the terminal pin drives the net for an input port.
                d = pin_dir_of_io[pin]
                b.add_pin(cid, nname, 0.0, 0.0, pin, {PIN_INPUT: PIN_OUTPUT, PIN_OUTPUT: PIN_INPUT}.get(d, PIN_INOUT))
            else:
                cid = b.cell_idx.get(inst)
                if cid is None:
                    raise EngineError(f"{path}: net {nname} names component {inst}, which COMPONENTS lacks")
                ctype = b.cells[cid][1]
                mpin = pdk.macros[ctype].pins.get(pin)
                if mpin is None:
                    raise EngineError(f"{path}: net {nname}: cell {ctype} has no pin {pin}")
                dx, dy = mpin.center
                d = {"INPUT": PIN_INPUT, "OUTPUT": PIN_OUTPUT}.get(mpin.direction, PIN_INOUT)
                b.add_pin(cid, nname, dx, dy, pin, d)
        b.net_weights[nname] = weight
    # IO terminals whose net never appears in NETS still exist as terminals.
    nl = b.build()
    nl.die = die
    nl.rows = rows
    nl.cell_orient = orients
    nl.special_nets = special
    if die is not None and rows:
        nl.core = (min(r.x0 for r in rows), min(r.y for r in rows), max(r.x1 for r in rows),
                   max(r.y + r.height for r in rows))
    nl.validate()
    return nl


_ROUTE_KEYS = ("ROUTED", "FIXED", "COVER")


def _special_net(t: _DefTokens, st: list[str], units: float) -> SpecialNet:
    """One SPECIALNETS statement (``st``, without its ';'): connections, wires and vias."""
    if len(st) < 2 or st[0] != "-":
        raise t.error("a special net must start with '-'")
    net = SpecialNet(st[1])
    k = 2
    while k < len(st) and st[k] == "(":
        net.conns.append((st[k + 1], st[k + 2]))
        k += 4
    while k < len(st):
        if st[k] != "+":
            k += 1
            continue
        key = st[k + 1] if k + 1 < len(st) else ""
        if key == "USE":
            net.use = st[k + 2]
            k += 3
        elif key in _ROUTE_KEYS:
            k = _special_route(t, st, k + 2, units, net)
        else:
            k += 2
    return net


def _special_route(t: _DefTokens, st: list[str], k: int, units: float, net: SpecialNet) -> int:
    """Read ``layer width [+ SHAPE s] ( x y ) ( x y ) [via] NEW ...`` from st[k]; returns the index after it."""
    while k < len(st):
        layer, width = st[k], t.number(st[k + 1]) / units
        k += 2
        while k + 1 < len(st) and st[k] == "+" and st[k + 1] in ("SHAPE", "STYLE", "MASK"):
            k += 3
        px: float | None = None
        py: float | None = None
        while k < len(st) and st[k] not in ("NEW", "+"):
            if st[k] == "(":
                if px is None or py is None:
                    if "*" in st[k + 1:k + 3]:  # '*' repeats the previous point's coordinate: there is none
                        raise t.error(f"special net {net.name}: '*' in the first point of a {layer} route")
                    px, py = t.number(st[k + 1]) / units, t.number(st[k + 2]) / units
                else:
                    x = px if st[k + 1] == "*" else t.number(st[k + 1]) / units
                    y = py if st[k + 2] == "*" else t.number(st[k + 2]) / units
                    if (x, y) != (px, py):
                        net.wires.append(SpecialWire(layer, width, px, py, x, y))
                    px, py = x, y
                k = st.index(")", k) + 1
            else:
                if px is None or py is None:
                    raise t.error(f"special net {net.name}: via {st[k]} before any point")
                net.vias.append(SpecialVia(st[k], layer, px, py))
                k += 1
        if k < len(st) and st[k] == "NEW":
            k += 1
            continue
        return k
    return k


# ---------------------------------------------------------------------------------------------- routed wiring
@dataclass
class RoutedVia:
    """A via (a LEF VIA or a DEF VIAS name) in a net's wiring, at (x_dbu, y_dbu) in DEF units."""

    via: str
    x_dbu: float
    y_dbu: float


@dataclass
class RoutedSegment:
    """One piece of a net's wiring in a routed DEF (a ``+ ROUTED`` or ``NEW`` piece): a path on ``layer`` through
    ``points_dbu`` (DEF units, '*' resolved to the previous point's coordinate) and the vias placed along it.

    ``width_dbu`` is given in SPECIALNETS only (regular wiring takes the layer's width)."""

    layer: str
    points_dbu: list[tuple[float, float]] = field(default_factory=list)
    vias: list[RoutedVia] = field(default_factory=list)
    width_dbu: float | None = None

    @property
    def length_dbu(self) -> float:
        """Manhattan length of the path, in DEF units."""
        length = 0.0
        for (x0, y0), (x1, y1) in zip(self.points_dbu, self.points_dbu[1:]):
            length += abs(x1 - x0) + abs(y1 - y0)
        return length


@dataclass
class NetRouting:
    """The wiring of one NETS or SPECIALNETS entry (``special``); no ``segments`` when it is not routed."""

    name: str
    special: bool
    line: int  # where the entry starts, for messages
    segments: list[RoutedSegment] = field(default_factory=list)


@dataclass
class RoutedDef:
    """What read_routing returns: DEF units per micron and every net entry, NETS then SPECIALNETS in file order."""

    units: int
    nets: list[NetRouting]


# A regular wire's optional words before its points, with the count of values each takes.
_NET_WIRE_OPTIONS = {"TAPER": 0, "TAPERRULE": 1, "STYLE": 1}
# A special wire's '+ NAME value' options between its width and its points.
_SPECIAL_WIRE_OPTIONS = ("SHAPE", "STYLE", "MASK")
_WIRING_KEYS = ("ROUTED", "FIXED", "COVER", "NOSHIELD")
_ORIENTS = ("N", "S", "E", "W", "FN", "FS", "FE", "FW")


def read_routing(path: str | Path) -> RoutedDef:
    """The wiring of a routed DEF (qrouter's, or any DEF with wiring): every NETS and SPECIALNETS entry's routed
    segments and vias. A malformed file raises an EngineError naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: DEF file not found", hint="route the design first (the 'route' step)")
    t = _DefTokens(path)
    units = 1000
    nets: list[NetRouting] = []
    while t.peek() is not None:
        tok = t.next()
        if tok == "UNITS":
            st = t.statement()
            if len(st) < 3 or st[:2] != ["DISTANCE", "MICRONS"]:
                raise t.error("UNITS must read 'UNITS DISTANCE MICRONS <units> ;'", t.toks[t.i - 1][0])
            units = int(t.number(st[2]))
            if units <= 0:
                raise t.error(f"UNITS DISTANCE MICRONS must be positive, not {st[2]}", t.toks[t.i - 1][0])
        elif tok in ("NETS", "SPECIALNETS"):
            t.statement()
            while t.peek() != "END":
                if t.peek() is None:
                    raise t.error(f"section {tok} is never closed by 'END {tok}'")
                base = t.i
                nets.append(_Wiring(t, base, t.statement(), tok == "SPECIALNETS").net())
            t.next()
            if t.peek() != tok:
                raise t.error(f"section {tok} is closed by 'END {t.peek()}'")
            t.next()
        elif tok == "END":
            if t.peek() == "DESIGN":
                break
            t.next()
        else:
            t.i -= 1
            t.statement()
    return RoutedDef(units, nets)


def read_net_routing(text: str, path: str | Path = "<text>", special: bool = False) -> NetRouting:
    """The wiring of one NETS (or, ``special``, SPECIALNETS) entry given as text, ``- name ... ;``."""
    t = TokenReader(path, text)
    if t.peek() is None:
        raise t.error("no net entry in the text")
    return _Wiring(t, 0, t.statement(), special).net()


class _Wiring:
    """One NETS / SPECIALNETS statement (``st``, without its ';', whose first token is ``t.toks[base]``) read into
    a NetRouting: the pieces after each + ROUTED (FIXED, COVER, NOSHIELD); connections and options passed over."""

    def __init__(self, t: TokenReader, base: int, st: list[str], special: bool):
        self.t, self.base, self.st, self.special = t, base, st, special
        self.name = st[1] if len(st) > 1 else "?"

    def error(self, k: int, msg: str) -> EngineError:
        """An error at the line of st[k] (of the statement's last token past its end)."""
        k = min(k, len(self.st) - 1) if self.st else 0
        return self.t.error(f"{'special net' if self.special else 'net'} {self.name}: {msg}",
                            self.t.toks[self.base + k][0])

    def net(self) -> NetRouting:
        st = self.st
        if len(st) < 2 or st[0] != "-":
            raise self.error(0, "an entry must start with '- name'")
        if "-" in st[1:]:  # '-' starts an entry: this one lacks its ';'
            raise self.error(st.index("-", 1), "a new entry '- ...' starts before this one's ';'")
        net = NetRouting(st[1], self.special, self.t.toks[self.base][0])
        k = 2
        while k < len(st):
            if st[k] == "+" and k + 1 < len(st) and st[k + 1] in _WIRING_KEYS:
                k = self.pieces(k + 2, net)
            elif st[k] == "(":  # a connection ( inst pin ) or an option's parenthesised value: not wiring
                k = self.close(k) + 1
            else:
                k += 1
        return net

    def close(self, k: int) -> int:
        """Index of the ')' that closes the '(' at st[k]."""
        try:
            return self.st.index(")", k)
        except ValueError:
            raise self.error(k, "'(' is never closed by ')'") from None

    def coord(self, k: int) -> float:
        try:
            return float(self.st[k])
        except ValueError:
            raise self.error(k, f"expected a coordinate, found '{self.st[k]}'") from None

    def pieces(self, k: int, net: NetRouting) -> int:
        """Read ``layer [width] [options] ( x y [ext] ) ... [via] NEW ...`` from st[k]; returns the index after."""
        st = self.st
        while True:
            if k >= len(st) or st[k] in ("+", "NEW", "(", ")", "*"):
                raise self.error(k, "a wiring piece without its layer")
            seg = RoutedSegment(st[k])
            k += 1
            if self.special:
                if k >= len(st):
                    raise self.error(k, f"special wiring on {seg.layer} without its width")
                try:
                    seg.width_dbu = float(st[k])
                except ValueError:
                    raise self.error(k, f"expected the width of the {seg.layer} wire, found '{st[k]}'") from None
                k += 1
                while k + 1 < len(st) and st[k] == "+" and st[k + 1] in _SPECIAL_WIRE_OPTIONS:
                    k += 3
            else:
                while k < len(st) and st[k] in _NET_WIRE_OPTIONS:
                    k += 1 + _NET_WIRE_OPTIONS[st[k]]
            while k < len(st) and st[k] not in ("NEW", "+"):
                if st[k] == "(":
                    k = self.point(k, seg)
                elif st[k] == "MASK":
                    k += 2
                elif st[k] == "RECT":  # a patch of metal at the last point: no wire length
                    k = self.close(k + 1) + 1
                elif st[k] == "VIRTUAL":  # a jump to the next point without wire: the path starts again there
                    net.segments.append(seg)
                    seg = RoutedSegment(seg.layer, [seg.points_dbu[-1]] if seg.points_dbu else [],
                                        width_dbu=seg.width_dbu)
                    k = self.point(k + 1, seg, jump=True)
                elif st[k] in _ORIENTS and seg.vias:  # a via's orientation (DEF 5.8)
                    k += 1
                elif st[k] == ")":
                    raise self.error(k, "')' without its '('")
                else:
                    if not seg.points_dbu:
                        raise self.error(k, f"via {st[k]} on {seg.layer} before any point")
                    x, y = seg.points_dbu[-1]
                    seg.vias.append(RoutedVia(st[k], x, y))
                    k += 1
            net.segments.append(seg)
            if k < len(st) and st[k] == "NEW":
                k += 1
                continue
            return k

    def point(self, k: int, seg: RoutedSegment, jump: bool = False) -> int:
        """Read the point ``( x y [ext] )`` at st[k] onto ``seg`` (a ``jump`` replaces its last point)."""
        st = self.st
        if k >= len(st) or st[k] != "(":
            raise self.error(k, f"expected a point '( x y )' on {seg.layer}")
        end = self.close(k)
        n = end - k - 1
        if n not in (2, 3):
            raise self.error(k, f"a point on {seg.layer} is '( x y )' or '( x y ext )', not "
                                f"'( {' '.join(st[k + 1:end])} )'")
        if seg.points_dbu:
            px, py = seg.points_dbu[-1]
            x = px if st[k + 1] == "*" else self.coord(k + 1)
            y = py if st[k + 2] == "*" else self.coord(k + 2)
        elif "*" in st[k + 1:k + 3]:  # '*' repeats the previous point's coordinate: there is none
            raise self.error(k, f"'*' in the first point of a {seg.layer} wire")
        else:
            x, y = self.coord(k + 1), self.coord(k + 2)
        if jump and seg.points_dbu:
            seg.points_dbu[-1] = (x, y)
        else:
            seg.points_dbu.append((x, y))
        return end + 1


# ---------------------------------------------------------------------------------------------- layout of the text
@dataclass
class DefStatement:
    """A statement of a DEF text, located: its tokens, each with its line index (0-based, into
    ``text.splitlines()``), the ';' left out, and the lines of its first token and of its ';'."""

    tokens: list[tuple[int, str]]
    first: int
    last: int

    @property
    def words(self) -> list[str]:
        return [w for _, w in self.tokens]

    def words_on(self, line: int) -> list[str]:
        """The statement's tokens on line ``line``."""
        return [w for i, w in self.tokens if i == line]


@dataclass
class DefSection:
    """A section ``NAME count ; - entry ; ... END NAME`` (NETS, SPECIALNETS, COMPONENTS, PINS, VIAS, ...)."""

    name: str
    header: DefStatement
    end: int  # the line index of its 'END NAME'
    entries: list[DefStatement]


@dataclass
class DefLayout:
    """Where each statement of a DEF text is: sections with their entries, and the statements outside them
    (DESIGN, UNITS, DIEAREA, ROW, TRACKS, ...) in file order. For editing a DEF's text a line at a time."""

    sections: list[DefSection]
    statements: list[DefStatement]
    path: str = "<text>"  # where the text came from, for messages

    def section(self, name: str) -> DefSection | None:
        """The first section called ``name``."""
        return next((s for s in self.sections if s.name == name), None)

    @property
    def units(self) -> int:
        """DEF units per micron (UNITS DISTANCE MICRONS; 1000 when the text does not say)."""
        for st in self.statements:
            words = st.words
            if len(words) >= 4 and words[:3] == ["UNITS", "DISTANCE", "MICRONS"]:
                try:
                    return int(float(words[3]))
                except ValueError:
                    raise EngineError(f"{self.path}:{st.first + 1}: UNITS DISTANCE MICRONS is not a number: "
                                      f"'{words[3]}'") from None
        return 1000


def def_layout(text: str, path: str | Path = "<text>") -> DefLayout:
    """Locate every statement of a DEF ``text`` (all of it, also past END DESIGN). A section is a statement
    followed by '- ' entries (or by its END at once); a malformed text raises an EngineError naming the line."""
    t = TokenReader(path, text)

    def located(start: int) -> DefStatement:
        toks = [(line - 1, w) for line, w in t.toks[start:t.i - 1]]  # the ';' (at t.i - 1) left out
        return DefStatement(toks, t.toks[start][0] - 1, t.toks[t.i - 1][0] - 1)

    sections: list[DefSection] = []
    statements: list[DefStatement] = []
    while t.peek() is not None:
        if t.peek() == "END":  # END DESIGN, or the END of a block read as statements (PROPERTYDEFINITIONS)
            t.next()
            if t.peek() is not None:
                t.next()
            continue
        start = t.i
        t.statement()
        head = located(start)
        name = head.words[0] if head.words else ""
        opens = t.peek() == "-" or (t.peek() == "END" and t.i + 1 < len(t.toks) and t.toks[t.i + 1][1] == name)
        if not opens:
            statements.append(head)
            continue
        entries = []
        while t.peek() != "END":
            if t.peek() is None:
                raise t.error(f"section {name} opened here is never closed by 'END {name}'", head.first + 1)
            start = t.i
            t.statement()
            entries.append(located(start))
        end = t.toks[t.i][0] - 1
        t.next()
        if t.peek() != name:
            raise t.error(f"section {name} (line {head.first + 1}) is closed by 'END {t.peek()}'")
        t.next()
        sections.append(DefSection(name, head, end, entries))
    return DefLayout(sections, statements, str(path))
