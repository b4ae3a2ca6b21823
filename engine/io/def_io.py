"""DEF writer and reader for the subset a flow needs: DIEAREA, ROW, TRACKS, COMPONENTS, PINS, NETS.

Positions in the Netlist are lower-left corners in microns; DEF stores database units. Cell orientation is kept as
metadata (``cell_orient``); pin offsets in the Netlist are those of the unflipped (N) cell, as academic placers use.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.netlist import IO_TYPE, PIN_INOUT, PIN_INPUT, PIN_OUTPUT, Netlist, NetlistBuilder, Row
from engine.pdk import Pdk

_DIR_NAME = {PIN_INPUT: "INPUT", PIN_OUTPUT: "OUTPUT", PIN_INOUT: "INOUT"}


def def_escape(name: str) -> str:
    # DEF names are whitespace-free tokens; Yosys' escaped identifiers can hold odd characters but no spaces.
    return name.replace(" ", "_")


def write_def(netlist: Netlist, path: str | Path, pdk: Pdk | None = None, *, units: int = 1000,
              pin_layers: dict[str, str] | None = None, tracks: bool = True, placed: bool = True) -> Path:
    """Write ``netlist`` as DEF. ``pin_layers`` maps IO terminal name -> layer (default metal2)."""
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
        for layer in pdk.routing_layers():
            if not layer.pitch_um:
                continue
            off = layer.offset_um if layer.offset_um is not None else layer.pitch_um / 2
            # TRACKS X = vertical lines (for vertical layers), TRACKS Y = horizontal lines.
            for axis, lo, hi in (("X", x0, x1), ("Y", y0, y1)):
                start = lo + off
                count = int(np.floor((hi - start) / layer.pitch_um)) + 1
                if count > 0:
                    lines.append(f"TRACKS {axis} {dbu(start)} DO {count} STEP {dbu(layer.pitch_um)} "
                                 f"LAYER {layer.name} ;")
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
_TOKEN = re.compile(r"\(|\)|;|[^\s();]+")


class _DefTokens:
    def __init__(self, path: Path):
        self.path = path
        self.toks: list[tuple[int, str]] = []
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            self.toks.extend((lineno, t) for t in _TOKEN.findall(line))
        self.i = 0

    def error(self, msg: str) -> EngineError:
        line = self.toks[min(self.i, len(self.toks) - 1)][0] if self.toks else 1
        return EngineError(f"{self.path}:{line}: {msg}")

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def next(self) -> str:
        if self.i >= len(self.toks):
            raise self.error("unexpected end of file")
        self.i += 1
        return self.toks[self.i - 1][1]

    def statement(self) -> list[str]:
        out = []
        while True:
            t = self.next()
            if t == ";":
                return out
            out.append(t)

    def num(self, t: str) -> float:
        try:
            return float(t)
        except ValueError:
            raise self.error(f"expected a number, found '{t}'") from None


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
    while t.peek() is not None:
        tok = t.next()
        if tok == "DESIGN":
            name = t.statement()[0]
        elif tok == "UNITS":
            st = t.statement()
            units = t.num(st[-1])
        elif tok == "DIEAREA":
            st = [x for x in t.statement() if x not in "()"]
            vals = [t.num(v) / units for v in st]
            xs, ys = vals[0::2], vals[1::2]
            die = (min(xs), min(ys), max(xs), max(ys))
        elif tok == "ROW":
            st = t.statement()
            site, x, y, orient = st[1], t.num(st[2]) / units, t.num(st[3]) / units, st[4]
            nx = int(t.num(st[st.index("DO") + 1])) if "DO" in st else 1
            step = t.num(st[st.index("STEP") + 1]) / units if "STEP" in st else pdk.sites[site].width_um
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
                        x, y = t.num(st[k + 2]) / units, t.num(st[k + 3]) / units
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
                        x, y = t.num(st[k + 2]) / units, t.num(st[k + 3]) / units
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
                weight = t.num(st[st.index("WEIGHT") + 1]) if "WEIGHT" in st else 1.0
                nets.append((nname, conns, weight))
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
    if die is not None and rows:
        nl.core = (min(r.x0 for r in rows), min(r.y for r in rows), max(r.x1 for r in rows),
                   max(r.y + r.height for r in rows))
    nl.validate()
    return nl
