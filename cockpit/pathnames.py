"""Names a person can read on a timing path: which register a flip-flop instance holds, which cell type an
instance is, which point is a port.

Yosys names the cells it maps `_552_`; the register's name survives on the net its Q output drives (the netnames of
01-synth/netlist.json: the net's own name, or its `hdlname` attribute once the hierarchy is flattened, with the
bit's index for a vector). Pure functions of the JSON netlist and OpenSTA's path points (engine.flow.timing's
paths.json); no streamlit.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

_AUTO = re.compile(r"^(\$|_\d+_$)")  # Yosys' own names: $auto$..., $procdff$..., _123_
_Q_PINS = ("Q", "QN", "Q_N")


def top_module(netlist: Mapping) -> tuple[str, dict] | None:
    """The netlist's top module (attribute top=1; else the module with the most cells)."""
    mods = netlist.get("modules") or {}
    if not mods:
        return None
    for name, m in mods.items():
        top = (m.get("attributes") or {}).get("top")
        if top is not None and int(str(top), 2 if set(str(top)) <= {"0", "1"} else 10) == 1:
            return name, m
    name = max(mods, key=lambda k: len(mods[k].get("cells") or {}))
    return name, mods[name]


def _bit_name(name: str, info: Mapping, bit) -> str:
    attrs = info.get("attributes") or {}
    base = str(attrs["hdlname"]).replace(" ", ".") if attrs.get("hdlname") else name
    bits = list(info.get("bits") or [])
    if len(bits) <= 1:
        return base
    pos = bits.index(bit)
    offset = int(info.get("offset") or 0)
    index = offset + (len(bits) - 1 - pos if info.get("upto") else pos)
    return f"{base}[{index}]"


def register_names(netlist: Mapping) -> dict[str, str]:
    """instance name -> register name for every flip-flop or latch of the top module (a cell with a clock-like
    input and a Q output), from the net its Q drives; an instance whose own name is readable keeps it."""
    top = top_module(netlist)
    if top is None:
        return {}
    _, mod = top
    named: dict = {}  # bit -> readable net name; the shortest public one wins
    for name, info in (mod.get("netnames") or {}).items():
        public = bool((info.get("attributes") or {}).get("hdlname")) or not _AUTO.match(name)
        if not public:
            continue
        for bit in info.get("bits") or []:
            if isinstance(bit, str):  # a constant "0"/"1"/"x"
                continue
            label = _bit_name(name, info, bit)
            if bit not in named or len(label) < len(named[bit]):
                named[bit] = label
    out: dict[str, str] = {}
    for inst, cell in (mod.get("cells") or {}).items():
        conns = cell.get("connections") or {}
        q = next((p for p in _Q_PINS if p in conns), None)
        if q is None:
            continue
        dirs = cell.get("port_directions") or {}
        if dirs and dirs.get(q) != "output":
            continue
        bits = [b for b in conns[q] if not isinstance(b, str)]
        reg = named.get(bits[0]) if bits else None
        if reg is None and not _AUTO.match(inst):
            reg = inst
        if reg is not None:
            out[inst] = reg
    return out


def cell_types(netlist: Mapping) -> dict[str, str]:
    """instance name -> library cell type of the top module."""
    top = top_module(netlist)
    return {k: str(v.get("type", "")) for k, v in ((top[1].get("cells") or {}) if top else {}).items()}


def point_label(name: str | None, *, cell: str | None = None, kind: str = "", registers: Mapping[str, str] = {},
                types: Mapping[str, str] = {}) -> str:
    """One point of a timing path as a person reads it: "port up", "_174_ DFFPOSX1 · register count[3]",
    "_112_ NAND3X1". ``name`` is an instance, a pin (inst/PIN) or a port; ``cell`` the cell type OpenSTA reports
    ("port" for a port), ``kind`` its startpoint/endpoint kind ("input port clocked by clk")."""
    if not name:
        return ""
    inst, _, pin = str(name).rpartition("/") if "/" in str(name) else (str(name), "", "")
    if cell == "port" or "port" in kind or (cell is None and inst not in types and inst not in registers):
        return f"port {name}"
    ctype = cell or types.get(inst, "")
    text = f"{inst}/{pin}" if pin else inst
    if ctype:
        text += f" {ctype}"
    if inst in registers:
        text += f" · register {registers[inst]}"
    return text
