"""SPEF (IEEE 1481 standard parasitic exchange format): the writer the timing step uses and a reader for the subset
it writes and the common tools write (header, *NAME_MAP, *PORTS, *D_NET with *CONN, *CAP, *RES, *END).

Names in a Spef are as SPEF writes them (``spef_name`` escapes a netlist name). The reader converts capacitance to
pF and resistance to ohm from the file's *C_UNIT and *R_UNIT, resolves *NAME_MAP references (``*12``, ``*12:A``),
and raises an EngineError naming the file and the line for a file it cannot read.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError
from engine.io.lexer import TokenReader, tokenize_spef

_SPEF_PLAIN = re.compile(r"[A-Za-z0-9_]")


def spef_name(name: str) -> str:
    """A netlist name as SPEF writes it: a trailing [n] stays a bus bit, every other special character is escaped."""
    m = re.match(r"^(.*)\[(\d+)\]$", name)
    base, bit = (m.group(1), f"[{m.group(2)}]") if m else (name, "")
    base = base.lstrip("\\")
    return "".join(c if _SPEF_PLAIN.match(c) else "\\" + c for c in base) + bit


@dataclass
class SpefConn:
    """One *CONN entry: a port (``kind`` "P") or an instance pin ("I", ``inst:pin``) and its direction I, O or B."""

    kind: str
    name: str
    direction: str


@dataclass
class SpefNet:
    """One *D_NET: its total capacitance, connections, ground capacitances (node, pF), couplings (node, node, pF)
    and resistances (node, node, ohm)."""

    name: str
    total_c_pf: float
    conns: list[SpefConn] = field(default_factory=list)
    caps: list[tuple[str, float]] = field(default_factory=list)
    couplings: list[tuple[str, str, float]] = field(default_factory=list)
    res: list[tuple[str, str, float]] = field(default_factory=list)
    line: int = 0  # where its *D_NET is, for messages


@dataclass
class Spef:
    design: str
    ports: list[tuple[str, str]] = field(default_factory=list)  # (name, direction I / O / B)
    nets: list[SpefNet] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)  # keyword without '*' -> its value, as written

    def net(self, name: str) -> SpefNet:
        for n in self.nets:
            if n.name == name:
                return n
        raise KeyError(name)


def write_spef(path: str | Path, spef: Spef, program: str = "cda") -> Path:
    """Write ``spef`` (capacitance in pF, resistance in ohm, time in ns), each value to 6 significant digits."""
    path = Path(path)
    lines = ['*SPEF "IEEE 1481-1998"', f'*DESIGN "{spef.design}"', f'*DATE "{time.strftime("%a %b %d %H:%M:%S %Y")}"',
             '*VENDOR "CDA Cockpit"', f'*PROGRAM "{program}"', '*VERSION "1.0"', '*DESIGN_FLOW "PIN_CAP NONE"',
             "*DIVIDER /", "*DELIMITER :", "*BUS_DELIMITER [ ]", "*T_UNIT 1 NS", "*C_UNIT 1 PF", "*R_UNIT 1 OHM",
             "*L_UNIT 1 HENRY", ""]
    if spef.ports:
        lines.append("*PORTS")
        lines.extend(f"{name} {direction}" for name, direction in spef.ports)
        lines.append("")
    for net in spef.nets:
        lines.append(f"*D_NET {net.name} {net.total_c_pf:.6g}")
        lines.append("*CONN")
        lines.extend(f"*{c.kind} {c.name} {c.direction}" for c in net.conns)
        lines.append("*CAP")
        k = 0
        for node, c in net.caps:
            k += 1
            lines.append(f"{k} {node} {c:.6g}")
        for a, b, c in net.couplings:
            k += 1
            lines.append(f"{k} {a} {b} {c:.6g}")
        lines.append("*RES")
        for k, (a, b, r) in enumerate(net.res, 1):
            lines.append(f"{k} {a} {b} {r:.6g}")
        lines.append("*END")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------------ reader
_KEYWORD = re.compile(r"^\*[A-Z][A-Z_0-9]*$")  # *D_NET, *CAP, ...; a name-map reference is '*' and digits
_C_UNITS = {"PF": 1.0, "FF": 1e-3}  # -> pF
_R_UNITS = {"OHM": 1.0, "KOHM": 1e3}  # -> ohm
_CONN_ATTRS = {"*C": 2, "*L": 1, "*S": 2, "*D": 1}  # a connection's attributes and the values each takes
_OTHER_NETS = ("*R_NET", "*D_PNET", "*R_PNET")  # reduced / physical nets: passed over to their *END


class _SpefTokens(TokenReader):
    def __init__(self, path: Path):
        text = path.read_text(errors="replace")
        super().__init__(path, text, tokens=tokenize_spef(text, path))

    def line(self) -> int:
        """The line of the token just read."""
        return self.toks[max(self.i - 1, 0)][0] if self.toks else 1

    def at_keyword(self) -> bool:
        tok = self.peek()
        return tok is not None and bool(_KEYWORD.match(tok))

    def args(self) -> list[str]:
        """The tokens up to the next keyword (or the end of the file)."""
        out = []
        while self.peek() is not None and not self.at_keyword():
            out.append(self.next())
        return out

    def value(self, tok: str, what: str, line: int) -> float:
        try:
            return float(tok)
        except ValueError:
            raise self.error(f"expected {what}, found '{tok}'", line) from None


def read_spef(path: str | Path) -> Spef:
    """Read a SPEF file (the subset in the module's doc) into a Spef, values in pF and ohm."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: SPEF file not found")
    t = _SpefTokens(path)
    spef = Spef(design="")
    c_scale, r_scale = 1.0, 1.0
    names: dict[str, str] = {}
    if t.peek() != "*SPEF":
        raise t.error("not a SPEF file: it does not start with *SPEF", t.toks[0][0] if t.toks else 1)
    while t.peek() is not None:
        kw = t.next()
        line = t.line()
        if not _KEYWORD.match(kw):
            raise t.error(f"expected a SPEF keyword (*D_NET, *PORTS, ...), found '{kw}'", line)
        if kw == "*D_NET":
            spef.nets.append(_d_net(t, line, c_scale, r_scale, names))
        elif kw in _OTHER_NETS:
            while t.peek() is not None and t.peek() != "*END":
                t.next()
            if t.peek() is None:
                raise t.error(f"{kw} opened here is never closed by *END", line)
            t.next()
        elif kw == "*NAME_MAP":
            vals = t.args()
            if len(vals) % 2:
                raise t.error("*NAME_MAP holds pairs '*index name'", t.line())
            names.update((vals[k], vals[k + 1]) for k in range(0, len(vals), 2))
        elif kw == "*PORTS":
            spef.ports = _ports(t, names)
        elif kw in ("*C_UNIT", "*R_UNIT"):
            vals = t.args()
            table = _C_UNITS if kw == "*C_UNIT" else _R_UNITS
            if len(vals) != 2 or vals[1].upper() not in table:
                raise t.error(f"{kw} must be '<number> {' | '.join(table)}'", line)
            scale = t.value(vals[0], f"the {kw} multiplier", line) * table[vals[1].upper()]
            if kw == "*C_UNIT":
                c_scale = scale
            else:
                r_scale = scale
            spef.header[kw[1:]] = " ".join(vals)
        else:
            spef.header[kw[1:]] = " ".join(t.args())
    spef.design = spef.header.get("DESIGN", "").strip('"')
    return spef


def _resolve(names: dict[str, str], tok: str) -> str:
    """A *NAME_MAP reference (``*12`` or ``*12:A``) as the name it stands for; any other name as it is."""
    if not tok.startswith("*") or not names:
        return tok
    head, sep, pin = tok.partition(":")
    return names.get(head, head) + sep + pin


def _ports(t: _SpefTokens, names: dict[str, str]) -> list[tuple[str, str]]:
    ports: list[tuple[str, str]] = []
    while True:
        vals = t.args()
        if len(vals) % 2:
            raise t.error("*PORTS holds pairs 'name direction'", t.line())
        ports += [(_resolve(names, vals[k]), vals[k + 1]) for k in range(0, len(vals), 2)]
        if t.peek() not in _CONN_ATTRS:
            return ports
        _skip_attr(t)


def _skip_attr(t: _SpefTokens) -> None:
    """Pass over a connection attribute (``*C x y``, ``*L c``, ``*S a b``, ``*D cell``) and its values."""
    kw = t.next()
    for _ in range(_CONN_ATTRS[kw]):
        if t.peek() is None or t.at_keyword():
            raise t.error(f"{kw} needs {_CONN_ATTRS[kw]} value(s)", t.line())
        t.next()


def _d_net(t: _SpefTokens, line: int, c_scale: float, r_scale: float, names: dict[str, str]) -> SpefNet:
    """``*D_NET name total_cap`` and its sections, up to its *END."""
    head = t.args()
    if len(head) != 2:
        raise t.error("*D_NET must read '*D_NET name total_capacitance'", line)
    net = SpefNet(_resolve(names, head[0]), t.value(head[1], "the net's total capacitance", line) * c_scale,
                  line=line)
    while True:
        if t.peek() is None:
            raise t.error(f"*D_NET {net.name} opened here is never closed by *END", line)
        kw = t.next()
        at = t.line()
        if kw == "*END":
            return net
        if kw == "*D_NET":
            raise t.error(f"*D_NET {net.name} (line {line}) is not closed by *END before the next *D_NET", at)
        if kw == "*CONN":
            while t.peek() in ("*P", "*I"):
                kind = t.next()[1]
                vals = t.args()
                if len(vals) != 2:
                    raise t.error(f"*{kind} must read '*{kind} name direction'", t.line())
                net.conns.append(SpefConn(kind, _resolve(names, vals[0]), vals[1]))
                while t.peek() in _CONN_ATTRS:
                    _skip_attr(t)
        elif kw in ("*CAP", "*RES", "*INDUC"):
            for entry_line, vals in _entries(t):
                if kw == "*INDUC":
                    continue
                if kw == "*CAP" and len(vals) == 3:
                    net.caps.append((_resolve(names, vals[1]), t.value(vals[2], "a capacitance", entry_line)
                                     * c_scale))
                elif kw == "*CAP" and len(vals) == 4:
                    net.couplings.append((_resolve(names, vals[1]), _resolve(names, vals[2]),
                                          t.value(vals[3], "a capacitance", entry_line) * c_scale))
                elif kw == "*RES" and len(vals) == 4:
                    net.res.append((_resolve(names, vals[1]), _resolve(names, vals[2]),
                                    t.value(vals[3], "a resistance", entry_line) * r_scale))
                else:
                    form = "'id node cap' or 'id node node cap'" if kw == "*CAP" else "'id node node value'"
                    raise t.error(f"a {kw} entry of net {net.name} must read {form}, not '{' '.join(vals)}'",
                                  entry_line)
        else:
            raise t.error(f"{kw} in *D_NET {net.name}: expected *CONN, *CAP, *RES or *END", at)


def _entries(t: _SpefTokens) -> list[tuple[int, list[str]]]:
    """The numbered entries of a *CAP / *RES / *INDUC section up to the next keyword, one per line as every writer
    puts them (a value and a node name cannot be told apart otherwise)."""
    out: list[tuple[int, list[str]]] = []
    while t.peek() is not None and not t.at_keyword():
        line = t.toks[t.i][0]
        vals = []
        while t.i < len(t.toks) and t.toks[t.i][0] == line and not t.at_keyword():
            vals.append(t.next())
        if not vals[0].isdigit():
            raise t.error(f"an entry must start with its number, not '{vals[0]}'", line)
        out.append((line, vals))
    return out
