"""Technology loading: LEF (units, sites, layers, macros with pins and obstructions) and the Liberty path.

The default technology is Debian's ``qflow-tech-osu018`` (a real 0.18 um library with 6 metals).  Any folder
holding one ``*.lef`` (technology + cells) and one ``*.lib`` works; so do explicit paths.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.io.lexer import TokenReader

log = logging.getLogger(__name__)

DEFAULT_TECH_DIR = Path(os.environ.get("CDA_TECH_DIR", "/usr/share/qflow/tech/osu018"))


class LefError(EngineError):
    """A LEF file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class Site:
    name: str
    width_um: float
    height_um: float


@dataclass(frozen=True)
class Layer:
    name: str
    type: str  # ROUTING, CUT, MASTERSLICE, ...
    direction: str | None = None  # HORIZONTAL / VERTICAL for routing layers
    pitch_um: float | None = None
    offset_um: float | None = None
    width_um: float | None = None
    spacing_um: float | None = None
    res_per_sq: float | None = None  # ohm per square
    cap_per_sq_dist: float | None = None  # pF per um^2 (LEF CPERSQDIST)
    edge_cap: float | None = None  # pF per um of edge


@dataclass(frozen=True)
class LefVia:
    """A fixed VIA definition of the LEF (the power grid's vias between metals)."""

    name: str
    default: bool
    layers: tuple[str, ...]  # every layer the via draws on (metals and cut)
    rects: tuple[tuple[str, float, float, float, float], ...] = ()  # (layer, x0, y0, x1, y1) around its centre


@dataclass
class MacroPin:
    name: str
    direction: str = "INPUT"
    use: str = "SIGNAL"
    shapes: list[tuple[str, float, float, float, float]] = field(default_factory=list)

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the pin's largest rectangle (um, relative to the macro's lower-left): a stable access point."""
        if not self.shapes:
            return (0.0, 0.0)
        _, x0, y0, x1, y1 = max(self.shapes, key=lambda s: (s[3] - s[1]) * (s[4] - s[2]))
        return ((x0 + x1) / 2, (y0 + y1) / 2)


@dataclass
class Macro:
    name: str
    width_um: float = 0.0
    height_um: float = 0.0
    cls: str = "CORE"
    site: str | None = None
    pins: dict[str, MacroPin] = field(default_factory=dict)
    obstructions: list[tuple[str, float, float, float, float]] = field(default_factory=list)

    @property
    def signal_pins(self) -> list[MacroPin]:
        return [p for p in self.pins.values() if p.use not in ("POWER", "GROUND")]


@dataclass
class Pdk:
    name: str
    lef_path: Path
    liberty_path: Path | None
    verilog_models_path: Path | None
    dbu_per_micron: int
    sites: dict[str, Site]
    layers: list[Layer]
    macros: dict[str, Macro]
    # Hard macros the user brought (engine.config FlowConfig.macros): their LEFs and Liberty files, and the names
    # of the MACROs those LEFs define (merged into ``macros`` above, so every reader of the technology sees them).
    macro_lefs: tuple[Path, ...] = ()
    macro_libs: tuple[Path, ...] = ()
    block_names: frozenset[str] = frozenset()

    @property
    def lef_paths(self) -> list[Path]:
        """The technology LEF, then each macro LEF: what qrouter and KLayout read."""
        return [self.lef_path, *self.macro_lefs]

    @property
    def liberty_paths(self) -> list[Path]:
        """The standard-cell Liberty, then each macro Liberty: what Yosys and OpenSTA read."""
        return ([self.liberty_path] if self.liberty_path else []) + list(self.macro_libs)

    @property
    def site(self) -> Site:
        """The core site the rows are made of (the first CORE-class site, else the first one)."""
        if not self.sites:
            raise EngineError(f"{self.lef_path}: no SITE defined; rows cannot be built")
        return next(iter(self.sites.values()))

    def routing_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.type == "ROUTING"]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def macro(self, name: str) -> Macro:
        try:
            return self.macros[name]
        except KeyError:
            raise EngineError(
                f"cell '{name}' is not in {self.lef_path.name}; the library has: {', '.join(sorted(self.macros))}"
            ) from None


# ----------------------------------------------------------------------------------------------------------------
# LEF reader: engine.io.lexer's tokens (with their lines), and a small recursive reader over the statements we need.


class _Reader(TokenReader):
    def __init__(self, path: Path, text: str):
        super().__init__(path, text, LefError)


def read_lef(path: str | Path, into: dict | None = None) -> dict:
    """Parse a LEF file into {'dbu': int, 'sites': {...}, 'layers': [...], 'macros': {...}, 'vias': [...],
    'manufacturing_grid': float | None}."""
    path = Path(path)
    if not path.is_file():
        raise LefError(f"{path}: LEF file not found")
    r = _Reader(path, path.read_text(errors="replace"))
    out: dict[str, Any] = into if into is not None else {"dbu": 1000, "sites": {}, "layers": [], "macros": {}}
    out.setdefault("vias", [])
    out.setdefault("manufacturing_grid", None)
    while r.peek() is not None:
        tok = r.next()
        if tok == "UNITS":
            while r.peek() != "END":
                st = r.statement()
                if st[:2] == ["DATABASE", "MICRONS"]:
                    out["dbu"] = int(r.number(st[2]))
            r.next(), r.next()
        elif tok == "SITE":
            name = r.next()
            w = h = None
            while r.peek() != "END":
                st = r.statement()
                if st and st[0] == "SIZE":
                    if len(st) != 4 or st[2] != "BY":
                        raise r.error("SIZE must read 'SIZE w BY h ;'")
                    w, h = r.number(st[1]), r.number(st[3])
            r.next(), r.next()
            if w is None or h is None:
                raise r.error(f"SITE {name} has no SIZE")
            out["sites"][name] = Site(name, w, h)
        elif tok == "LAYER":
            out["layers"].append(_read_layer(r))
        elif tok == "MACRO":
            m = _read_macro(r)
            out["macros"][m.name] = m
        elif tok == "VIA":
            out["vias"].append(_read_via(r))
        elif tok in ("VIARULE", "NONDEFAULTRULE"):
            r.skip_block(r.next())
        elif tok == "MANUFACTURINGGRID":
            st = r.statement()
            if out["manufacturing_grid"] is None and len(st) == 1:
                out["manufacturing_grid"] = r.number(st[0])
        elif tok in ("SPACING", "PROPERTYDEFINITIONS"):
            r.skip_block(tok)
        elif tok == "END":
            if r.peek() == "LIBRARY":
                r.next()
                break
            raise r.error(f"unexpected 'END {r.peek()}'")
        else:
            # A simple statement we do not need (VERSION, BUSBITCHARS, ...).
            r.i -= 1
            r.statement()
    return out


def _read_via(r: _Reader) -> LefVia:
    """``VIA name [DEFAULT]`` (a header without ';', so: the rest of its line), then LAYER and RECT statements."""
    header_line = r.toks[r.i - 1][0]
    name = r.next()
    header = []
    while r.i < len(r.toks) and r.toks[r.i][0] == header_line:
        header.append(r.next())
    layers: list[str] = []
    rects: list[tuple[str, float, float, float, float]] = []
    while True:
        tok = r.peek()
        if tok is None:
            raise r.error(f"VIA {name} is never closed by 'END {name}'", header_line)
        if tok == "END":
            r.next()
            end = r.next()
            if end != name:
                raise r.error(f"VIA {name} closed by 'END {end}'")
            return LefVia(name, "DEFAULT" in header, tuple(layers), tuple(rects))
        st = r.statement()
        if len(st) == 2 and st[0] == "LAYER":
            layers.append(st[1])
        elif len(st) == 5 and st[0] == "RECT" and layers:
            x0, y0, x1, y1 = (r.number(v) for v in st[1:])
            rects.append((layers[-1], x0, y0, x1, y1))


def _read_layer(r: _Reader) -> Layer:
    name = r.next()
    kw: dict = {"name": name, "type": "UNKNOWN"}
    while True:
        if r.peek() == "END":
            r.next()
            end = r.next()
            if end != name:
                raise r.error(f"LAYER {name} closed by 'END {end}'")
            break
        st = r.statement()
        if not st:
            continue
        key = st[0]
        if key == "TYPE":
            kw["type"] = st[1]
        elif key == "DIRECTION":
            kw["direction"] = st[1]
        elif key == "PITCH":
            kw["pitch_um"] = r.number(st[1])
        elif key == "OFFSET":
            kw["offset_um"] = r.number(st[1])
        elif key == "WIDTH":
            kw["width_um"] = r.number(st[1])
        elif key == "SPACING" and len(st) == 2:
            kw["spacing_um"] = r.number(st[1])
        elif key == "RESISTANCE" and len(st) >= 3 and st[1] == "RPERSQ":
            kw["res_per_sq"] = r.number(st[2])
        elif key == "CAPACITANCE" and len(st) >= 3 and st[1] == "CPERSQDIST":
            kw["cap_per_sq_dist"] = r.number(st[2])
        elif key == "EDGECAPACITANCE":
            kw["edge_cap"] = r.number(st[1])
    return Layer(**kw)


def _read_rects(r: _Reader, stop: str) -> list[tuple[str, float, float, float, float]]:
    shapes, layer = [], None
    while r.peek() != stop:
        st = r.statement()
        if not st:
            continue
        if st[0] == "LAYER":
            layer = st[1]
        elif st[0] == "RECT":
            nums = [r.number(t) for t in st[1:] if t not in ("MASK",)][-4:]
            if len(nums) != 4:
                raise r.error("RECT needs four numbers")
            x0, y0, x1, y1 = nums
            shapes.append((layer or "", min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    r.next()
    return shapes


def _read_macro(r: _Reader) -> Macro:
    name = r.next()
    m = Macro(name)
    while True:
        tok = r.peek()
        if tok is None:
            raise r.error(f"MACRO {name} is never closed by 'END {name}'")
        if tok == "END":
            r.next()
            end = r.next()
            if end != name:
                raise r.error(f"MACRO {name} closed by 'END {end}'")
            return m
        if tok == "PIN":
            r.next()
            pin = MacroPin(r.next())
            while True:
                if r.peek() == "END":
                    r.next()
                    end = r.next()
                    if end != pin.name:
                        raise r.error(f"PIN {pin.name} of {name} closed by 'END {end}'")
                    break
                if r.peek() == "PORT":
                    r.next()
                    pin.shapes.extend(_read_rects(r, "END"))
                    continue
                st = r.statement()
                if st and st[0] == "DIRECTION":
                    pin.direction = st[1]
                elif st and st[0] == "USE":
                    pin.use = st[1]
            m.pins[pin.name] = pin
        elif tok == "OBS":
            r.next()
            m.obstructions.extend(_read_rects(r, "END"))
        else:
            st = r.statement()
            if st[0] == "SIZE":
                if len(st) != 4 or st[2] != "BY":
                    raise r.error("SIZE must read 'SIZE w BY h ;'")
                m.width_um, m.height_um = r.number(st[1]), r.number(st[3])
            elif st[0] == "CLASS":
                m.cls = st[1]
            elif st[0] == "SITE":
                m.site = st[1]


@lru_cache(maxsize=8)
def _load_cached(lef: str, lib: str | None, verilog: str | None, mtime: float) -> Pdk:
    data = read_lef(lef)
    lef_path = Path(lef)
    if not data["macros"]:
        raise LefError(f"{lef_path}: no MACRO found; is this a technology-only LEF? Give the cell LEF too.")
    return Pdk(
        name=lef_path.parent.name,
        lef_path=lef_path,
        liberty_path=Path(lib) if lib else None,
        verilog_models_path=Path(verilog) if verilog else None,
        dbu_per_micron=data["dbu"],
        sites=data["sites"],
        layers=data["layers"],
        macros=data["macros"],
    )


def load_pdk(path: str | Path | None = None, lef: str | Path | None = None, liberty: str | Path | None = None,
             *, macros: Sequence[dict] = ()) -> Pdk:
    """Load a technology folder (default: Debian's osu018), or an explicit LEF/Liberty pair; ``macros`` (the flow
    config's [{"lef": ..., "lib": ...}]) adds hard macros to it (`with_macros`)."""
    base = _load_base(path, lef, liberty)
    return with_macros(base, macros) if macros else base


def _load_base(path: str | Path | None, lef: str | Path | None, liberty: str | Path | None) -> Pdk:
    folder = Path(path) if path else DEFAULT_TECH_DIR
    if lef is None:
        if not folder.is_dir():
            raise EngineError(
                f"technology folder {folder} not found; install Debian's qflow-tech-osu018 (make setup) "
                "or point CDA_TECH_DIR at a folder holding a .lef and a .lib"
            )
        lefs = sorted(folder.glob("*stdcells.lef")) or sorted(folder.glob("*.lef"))
        if not lefs:
            raise LefError(f"{folder}: no .lef file in the technology folder")
        lef = lefs[0]
    lef = Path(lef)
    if liberty is None:
        libs = sorted(lef.parent.glob("*.lib"))
        liberty = libs[0] if libs else None
    verilog = next(iter(sorted(lef.parent.glob("*stdcells.v"))), None)
    if not lef.is_file():
        raise LefError(f"{lef}: LEF file not found")
    return _load_cached(str(lef), str(liberty) if liberty else None, str(verilog) if verilog else None,
                        lef.stat().st_mtime)


def with_macros(pdk: Pdk, macros: Sequence[dict]) -> Pdk:
    """``pdk`` with the MACROs of each macro LEF (sizes, pins, obstructions) merged into its cells, and the macro
    Liberty files listed for synthesis and timing. A LEF that defines no MACRO, or one named like a library
    cell, is an error naming the file."""
    key = tuple((str(Path(m["lef"]).resolve()), str(Path(m["lib"]).resolve()) if m.get("lib") else "")
                for m in macros)  # absolute: the tools run in their step folders
    stamps = tuple(Path(p).stat().st_mtime if Path(p).is_file() else 0.0 for pair in key for p in pair if p)
    cache_key = (id(pdk), key, stamps)
    hit = _MERGED.get(cache_key)
    if hit is None or hit[0] is not pdk:
        if len(_MERGED) > 16:
            _MERGED.clear()
        hit = _MERGED[cache_key] = (pdk, _merged(pdk, key))
    return hit[1]


_MERGED: dict[tuple, tuple[Pdk, Pdk]] = {}  # (id of the base, macro files, their mtimes) -> (base, merged)


def _merged(pdk: Pdk, key: tuple[tuple[str, str], ...]) -> Pdk:
    merged = dict(pdk.macros)
    blocks: set[str] = set()
    for lef, lib in key:
        lef_path = Path(lef)
        if not lef_path.is_file():
            raise LefError(f"macro LEF {lef} not found (--macro-lef)")
        data = read_lef(lef_path, {"dbu": pdk.dbu_per_micron, "sites": {}, "layers": [], "macros": {}})
        if not data["macros"]:
            raise LefError(f"{lef_path}: no MACRO found; a macro LEF defines the block (MACRO name ... CLASS "
                           "BLOCK ; SIZE w BY h ; PINs ; OBS ; END name)")
        for name, m in data["macros"].items():
            if name in pdk.macros:
                raise LefError(f"{lef_path}: MACRO {name} has the name of a cell of {pdk.lef_path.name}; rename it")
            if m.width_um <= 0 or m.height_um <= 0:
                raise LefError(f"{lef_path}: MACRO {name} has no SIZE")
            known = {layer.name for layer in pdk.layers}
            odd = sorted({s[0] for p in m.pins.values() for s in p.shapes if s[0]} - known)
            if odd:
                raise LefError(f"{lef_path}: MACRO {name} draws on layer(s) {', '.join(odd)}, which "
                               f"{pdk.lef_path.name} does not define")
            merged[name] = m
            blocks.add(name)
        if lib and not Path(lib).is_file():
            raise EngineError(f"macro Liberty {lib} not found (--macro-lib)")
    import dataclasses

    return dataclasses.replace(pdk, macros=merged, macro_lefs=tuple(Path(lef) for lef, _ in key),
                               macro_libs=tuple(Path(lib) for _, lib in key if lib),
                               block_names=frozenset(blocks))


# ----------------------------------------------------------------------------------------------------------------
# Liberty: what buffering needs to know of a cell (area, pin capacitances and limits, function, drive), nothing more.
# OpenSTA reads the whole file for timing; this reader lets the clock-tree step choose a buffer by its numbers.


@dataclass(frozen=True)
class LibertyPin:
    name: str
    direction: str  # input / output / inout
    capacitance_pf: float = 0.0
    max_capacitance_pf: float | None = None  # output pins: the largest load the library characterised
    function: str | None = None  # output pins: the Boolean function ("A" for a buffer)
    clock: bool = False  # a clock pin of a flip-flop or latch


@dataclass(frozen=True)
class LibertyCell:
    name: str
    area: float
    pins: dict[str, LibertyPin]
    drive_kohm: float | None = None  # slope of the A->Y delay over load (ns/pF): the output resistance
    intrinsic_ns: float | None = None  # the delay at the smallest characterised load
    max_input_slew_ns: float | None = None  # the largest input transition the delay tables are characterised for

    @property
    def inputs(self) -> list[LibertyPin]:
        return [p for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self) -> list[LibertyPin]:
        return [p for p in self.pins.values() if p.direction == "output"]

    @property
    def is_buffer(self) -> bool:
        """One input, one output, and the output's function is that input (no inversion)."""
        ins, outs = self.inputs, self.outputs
        return len(ins) == 1 and len(outs) == 1 and (outs[0].function or "").strip("() ") == ins[0].name


def _liberty_block_end(text: str, open_at: int) -> int:
    """Index just past the '}' that closes the '{' at ``open_at``."""
    depth = 0
    for k in range(open_at, len(text)):
        ch = text[k]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def _liberty_groups(text: str, kind: str) -> list[tuple[str, str]]:
    """(name, body) of each top-level ``kind (name) { body }`` group in ``text``."""
    import re

    out: list[tuple[str, str]] = []
    pos = 0
    pat = re.compile(rf"\b{kind}\s*\(\s*\"?([^\"\)]*)\"?\s*\)\s*\{{")
    while True:
        m = pat.search(text, pos)
        if m is None:
            return out
        end = _liberty_block_end(text, m.end() - 1)
        out.append((m.group(1).strip(), text[m.end():end - 1]))
        pos = end


def _liberty_attr(body: str, name: str) -> str | None:
    """A simple attribute ``name : value ;`` of this group, not of a nested one."""
    import re

    depth, flat = 0, []
    for ch in body:  # drop nested groups so a timing table's attribute is not taken for the pin's
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            flat.append(ch)
    m = re.search(rf"(?m)^\s*{name}\s*:\s*\"?([^\";]*)\"?\s*;", "".join(flat))
    return m.group(1).strip() if m else None


def _liberty_table(body: str) -> tuple[list[float], list[float], list[list[float]]] | None:
    import re

    def floats(s: str) -> list[float]:
        return [float(v) for v in re.findall(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", s)]

    i1 = re.search(r"index_1\s*\(\s*\"([^\"]*)\"", body)
    i2 = re.search(r"index_2\s*\(\s*\"([^\"]*)\"", body)
    vals = re.search(r"values\s*\((.*?)\)\s*;", body, re.S)
    if not (i1 and vals):
        return None
    idx1, idx2 = floats(i1.group(1)), floats(i2.group(1)) if i2 else [0.0]
    flat = floats(vals.group(1).replace("\\", " "))
    if len(flat) != len(idx1) * len(idx2):
        return None
    return idx1, idx2, [flat[r * len(idx2):(r + 1) * len(idx2)] for r in range(len(idx1))]


@lru_cache(maxsize=4)
def read_liberty_cells(path: str) -> dict[str, LibertyCell]:
    """The cells of a Liberty file: area, pins (direction, capacitance, max_capacitance, function) and, for a
    single-input cell, its drive (output resistance) and intrinsic delay read from the cell_rise/cell_fall tables
    (osu018's index_1 is the output load, index_2 the input slew)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise EngineError(f"cannot read the Liberty file {path}: {exc}") from None
    import re

    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    cells: dict[str, LibertyCell] = {}
    for cname, body in _liberty_groups(text, "cell"):
        pins: dict[str, LibertyPin] = {}
        drive = intrinsic = slew = None
        for pname, pbody in _liberty_groups(body, "pin"):
            def num(key: str, pb: str = pbody) -> float | None:
                v = _liberty_attr(pb, key)
                try:
                    return float(v) if v is not None else None
                except ValueError:
                    return None

            direction = (_liberty_attr(pbody, "direction") or "input").lower()
            pins[pname] = LibertyPin(pname, direction, num("capacitance") or 0.0, num("max_capacitance"),
                                     _liberty_attr(pbody, "function"),
                                     (_liberty_attr(pbody, "clock") or "").lower() == "true")
            if direction == "output":
                slopes, bases, slews = [], [], []
                for kind in ("cell_rise", "cell_fall"):
                    for _, tbody in _liberty_groups(pbody, kind):
                        table = _liberty_table(tbody)
                        if table is None or len(table[0]) < 2:
                            continue
                        loads, in_slews, rows = table
                        mid = len(in_slews) // 2
                        slopes.append((rows[-1][mid] - rows[0][mid]) / (loads[-1] - loads[0]))
                        bases.append(rows[0][mid] - slopes[-1] * loads[0])
                        slews.append(max(in_slews))
                        break
                if slopes and drive is None:
                    drive, intrinsic = sum(slopes) / len(slopes), sum(bases) / len(bases)
                    slew = max(slews)
        area = _liberty_attr(body, "area")
        cells[cname] = LibertyCell(cname, float(area) if area else 0.0, pins, drive, intrinsic, slew)
    return cells


def liberty_cells(pdk: Pdk) -> dict[str, LibertyCell]:
    """The technology's Liberty cells (empty when it has no .lib)."""
    return read_liberty_cells(str(pdk.liberty_path)) if pdk.liberty_path else {}
