"""Signoff checks: what a chip designer reads before tape-out, run on the final DEF, the LEF and the gate-level
netlist, each read here on its own (none of the placer's or the router's data structures is used).

The DEF checked is the gds step's ``filled.def`` when it exists (the routed DEF plus the filler cells, so fillers
are checked too), else the routed DEF, else (routing off) the placed one. Each check says what it looks at:

- **unconnected pins**: every signal pin of every placed cell's LEF macro that no DEF net names. An open output is
  expected (synthesis leaves unused outputs such as a half adder's carry open); an open input floats (an error).
- **power pins**: every power and ground pin of a placed cell is named by a SPECIALNETS entry (``( * vdd )`` names
  every cell's) and touches that net's grid: the net's wires and vias and all the cells' pins of it are joined
  where they touch on a layer, and each pin must be in the piece that holds most of the grid's wires.
- **unrouted and open nets**: per net with two or more terminals, the shapes of its routing (NETS wires with the
  LEF width and half-width end extension, the LEF VIAs' metal shapes, and the router's pin stubs the DEF keeps in
  SPECIALNETS under the net's name) and of its terminals (the LEF pin rectangles, placed and oriented; an IO pin's
  DEF rectangle) are joined into connected groups wherever two shapes on one layer touch or overlap (within 1
  DEF unit, found by a sweep along x);
  a via joins its layers. A net with no routing at all is unrouted; one whose terminals end up in more than one
  group is open (partly routed). Geometry only: no spacing or width rules (there is no DRC deck for osu018).
- **shorts**: every shape of the layout with the net it belongs to (wires and vias of every signal and special net,
  IO pins, the cells' pins: a power pin belongs to the special net that names it, a pin on no net to itself),
  swept along x per layer; two shapes of different nets that overlap by more than 1 DEF unit both ways short them.
- **pins off track**: a connected pin has an on-grid access point when a crossing of its layer's tracks (DEF
  TRACKS; the layer's own lines across its preferred direction, the nearest layer's the other way) lies inside
  one of its rectangles. A pin without one needs an off-grid stub from the router: a warning, not an error.
- **overlaps and row legality**: every placed cell sits in a ROW (its bottom on the row's y, inside the row's
  x-range), on the row's site grid, in an orientation the row allows (N rows take N, or FN for a macro with
  SYMMETRY Y; FS rows take FS, or S), with its height a multiple of the row's; every cell inside the DIEAREA; no
  two cells overlap (a sweep line over the cells' oriented outlines). Blocks (CLASS BLOCK) are checked for the die
  and for overlaps only.
- **antenna**: only when the LEF carries ANTENNA* data. With a layer's ANTENNAAREARATIO and the gate areas of the
  pins a net drives (ANTENNAGATEAREA), the estimate is each layer's metal area on the net over the net's gate area
  (all of the layer's metal, not only what is connected to the gate while that layer is etched: an upper bound);
  osu018's LEF has none, and the check says so instead of inventing numbers.
- **netlist vs layout** (connectivity LVS): the gate-level Verilog the later steps read (cts's, with the clock
  tree's buffers, else synthesis's) parsed here, against the DEF: the same instances with the same cells (fillers
  excepted), the same IO ports, and every net's set of (instance, pin) and port terminals reproduced by exactly one
  DEF net. Nets are compared by their terminals, not by their names; nets linked by a shared terminal form one
  group, and each group that is not a one-to-one match is one mismatch.

A failing check is a finding in checks.json, checks.txt and the metrics, not a failure of the step; the step fails
only when its inputs cannot be read.
"""
from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.io.lexer import TokenReader, tokenize
from engine.pdk import LefVia, Macro, Pdk, read_lef
from engine.runs import write_json

log = logging.getLogger(__name__)

DETAILS_KEPT = 50  # findings listed per check in checks.json (the counts are always complete)
PAIRS_PER_CHUNK = 2_000_000  # candidate shape pairs the shorts check tests in one numpy pass (memory ~ 100 MB)

Rect = tuple[str, float, float, float, float]  # (layer, x0, y0, x1, y1) in um
Terminal = tuple[str, str]  # (instance, pin); ("PIN", port) for an IO pin


class ChecksInputError(EngineError):
    """A DEF, LEF or Verilog file the checks cannot read."""

    default_code = "checks.unreadable"


# ================================================================================================ the DEF, read here
@dataclass
class DefRow:
    name: str
    site: str
    x: float
    y: float
    orient: str
    nx: int
    ny: int
    step_x: float
    step_y: float


@dataclass
class DefComponent:
    name: str
    cell: str
    status: str  # PLACED, FIXED, COVER or UNPLACED
    x: float
    y: float
    orient: str


@dataclass
class DefPin:
    name: str
    net: str
    direction: str
    rects: list[Rect] = field(default_factory=list)  # absolute, after placement
    placed: bool = False


@dataclass
class DefNet:
    name: str
    conns: list[Terminal] = field(default_factory=list)
    wires: list[Rect] = field(default_factory=list)  # each wire piece as its rectangle
    vias: list[tuple[str, float, float]] = field(default_factory=list)  # (via name, x, y)
    use: str = ""


@dataclass
class DefLayout:
    path: Path
    units: float = 1000.0
    die: tuple[float, float, float, float] | None = None
    rows: list[DefRow] = field(default_factory=list)
    tracks: list[tuple[str, float, int, float, tuple[str, ...]]] = field(default_factory=list)  # axis, start, n, step
    components: dict[str, DefComponent] = field(default_factory=dict)
    pins: dict[str, DefPin] = field(default_factory=dict)
    nets: dict[str, DefNet] = field(default_factory=dict)
    special: dict[str, DefNet] = field(default_factory=dict)


def read_layout(path: str | Path, pdk: Pdk) -> DefLayout:
    """The parts of a DEF the checks need, with every wire as a rectangle (regular wires get the LEF layer's width
    and half a width of extension at both ends, special wires their own width, flush)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ChecksInputError(f"cannot read {path}: {exc}") from None
    t = TokenReader(path, text, ChecksInputError)
    out = DefLayout(path)
    widths = {layer.name: layer.width_um or 0.0 for layer in pdk.layers}
    while t.peek() is not None:
        tok = t.next()
        if tok == "UNITS":
            out.units = t.number(t.statement()[-1])
        elif tok == "DIEAREA":
            vals = [t.number(v) / out.units for v in t.statement() if v not in "()"]
            xs, ys = vals[0::2], vals[1::2]
            out.die = (min(xs), min(ys), max(xs), max(ys))
        elif tok == "ROW":
            st = t.statement()
            nx = int(t.number(st[st.index("DO") + 1])) if "DO" in st else 1
            ny = int(t.number(st[st.index("BY") + 1])) if "BY" in st else 1
            sx = t.number(st[st.index("STEP") + 1]) / out.units if "STEP" in st else 0.0
            sy = t.number(st[st.index("STEP") + 2]) / out.units if "STEP" in st else 0.0
            out.rows.append(DefRow(st[0], st[1], t.number(st[2]) / out.units, t.number(st[3]) / out.units, st[4],
                                   nx, ny, sx, sy))
        elif tok == "TRACKS":
            st = t.statement()
            layers = tuple(st[st.index("LAYER") + 1:]) if "LAYER" in st else ()
            out.tracks.append((st[0], t.number(st[1]) / out.units, int(t.number(st[st.index("DO") + 1])),
                               t.number(st[st.index("STEP") + 1]) / out.units, layers))
        elif tok == "COMPONENTS":
            t.statement()
            while t.peek() != "END":
                st = t.statement()
                if len(st) < 3 or st[0] != "-":
                    raise t.error("a component must start with '-'")
                comp = DefComponent(st[1], st[2], "UNPLACED", 0.0, 0.0, "N")
                for key in ("PLACED", "FIXED", "COVER"):
                    if key in st:
                        k = st.index(key)
                        comp.status, comp.orient = key, st[k + 5]
                        comp.x, comp.y = t.number(st[k + 2]) / out.units, t.number(st[k + 3]) / out.units
                out.components[comp.name] = comp
            t.next(), t.next()
        elif tok == "PINS":
            t.statement()
            while t.peek() != "END":
                pin = _def_pin(t, t.statement(), out.units)
                out.pins[pin.name] = pin
            t.next(), t.next()
        elif tok in ("NETS", "SPECIALNETS"):
            special = tok == "SPECIALNETS"
            t.statement()
            while t.peek() != "END":
                net = _def_net(t, t.statement(), out.units, widths, special)
                target = out.special if special else out.nets
                if net.name in target:  # the same net written twice: keep all of it
                    target[net.name].conns += net.conns
                    target[net.name].wires += net.wires
                    target[net.name].vias += net.vias
                else:
                    target[net.name] = net
            t.next(), t.next()
        elif tok == "END":
            if t.peek() == "DESIGN":
                break
            t.next()
        elif tok in ("VIAS", "REGIONS", "GROUPS", "BLOCKAGES", "PROPERTYDEFINITIONS", "NONDEFAULTRULES",
                     "FILLS", "SCANCHAINS", "PINPROPERTIES", "STYLES"):
            t.skip_block(tok)
        else:
            t.i -= 1
            t.statement()
    return out


def _def_pin(t: TokenReader, st: list[str], units: float) -> DefPin:
    if len(st) < 2 or st[0] != "-":
        raise t.error("a pin must start with '-'")
    pin = DefPin(st[1], st[st.index("NET") + 1] if "NET" in st else st[1],
                 st[st.index("DIRECTION") + 1] if "DIRECTION" in st else "INOUT")
    shapes: list[Rect] = []
    at, orient = (0.0, 0.0), "N"
    for k, tok in enumerate(st):
        if tok == "LAYER" and k > 0 and st[k - 1] == "+":
            nums: list[float] = []
            j = k + 2
            while j < len(st) and len(nums) < 4 and st[j] != "+":
                if st[j] == "(":
                    nums += [t.number(v) / units for v in st[j + 1:j + 3]]
                    j += 4
                else:
                    j += 1  # MASK n, SPACING d, DESIGNRULEWIDTH d
            if len(nums) == 4:
                shapes.append((st[k + 1], min(nums[0], nums[2]), min(nums[1], nums[3]), max(nums[0], nums[2]),
                               max(nums[1], nums[3])))
        elif tok in ("PLACED", "FIXED", "COVER") and k > 0 and st[k - 1] == "+":
            at = (t.number(st[k + 2]) / units, t.number(st[k + 3]) / units)
            orient = st[k + 5] if k + 5 < len(st) else "N"
            pin.placed = True
    for layer, x0, y0, x1, y1 in shapes:
        (ax, ay), (bx, by) = _rotate(x0, y0, orient), _rotate(x1, y1, orient)
        pin.rects.append((layer, at[0] + min(ax, bx), at[1] + min(ay, by), at[0] + max(ax, bx),
                          at[1] + max(ay, by)))
    return pin


def _rotate(x: float, y: float, orient: str) -> tuple[float, float]:
    """A DEF pin's shape point about its own origin (the pin is placed at its origin, not at a lower-left)."""
    return {"N": (x, y), "S": (-x, -y), "W": (-y, x), "E": (y, -x), "FN": (-x, y), "FS": (x, -y),
            "FW": (y, x), "FE": (-y, -x)}.get(orient, (x, y))


_ROUTE_KEYS = ("ROUTED", "FIXED", "COVER", "NOSHIELD")


def _def_net(t: TokenReader, st: list[str], units: float, widths: dict[str, float], special: bool) -> DefNet:
    if len(st) < 2 or st[0] != "-":
        raise t.error("a net must start with '-'")
    net = DefNet(st[1])
    k = 2
    while k < len(st) and st[k] == "(":
        net.conns.append((st[k + 1], st[k + 2]))
        k = st.index(")", k) + 1
    while k < len(st):
        if st[k] == "+" and k + 1 < len(st):
            key = st[k + 1]
            if key == "USE" and k + 2 < len(st):
                net.use = st[k + 2]
                k += 3
                continue
            if key in _ROUTE_KEYS:
                k = _route(t, st, k + 2, units, widths, special, net)
                continue
        k += 1
    return net


def _route(t: TokenReader, st: list[str], k: int, units: float, widths: dict[str, float], special: bool,
           net: DefNet) -> int:
    """``layer [width] [+ SHAPE s] [TAPER ..] ( x y [ext] ) ( x y ) via NEW layer ...`` from st[k]."""
    while k < len(st):
        layer = st[k]
        k += 1
        width = widths.get(layer, 0.0)
        ext = width / 2  # regular wiring extends half its width past each end point
        if special:
            width, ext = t.number(st[k]) / units, 0.0
            k += 1
        while k < len(st):  # options before the points: TAPER, TAPERRULE r, STYLE n, MASK n, + SHAPE s
            if st[k] == "TAPER":
                k += 1
            elif st[k] in ("TAPERRULE", "STYLE", "MASK"):
                k += 2
            elif st[k] == "+" and k + 1 < len(st) and st[k + 1] in ("SHAPE", "STYLE", "MASK"):
                k += 3
            else:
                break
        prev: tuple[float, float] | None = None
        while k < len(st) and st[k] not in ("NEW", "+"):
            if st[k] == "(":
                close = st.index(")", k)
                vals = st[k + 1:close]
                if len(vals) < 2:
                    raise t.error(f"net {net.name}: a point needs two coordinates")
                if prev is None and "*" in vals[:2]:
                    raise t.error(f"net {net.name}: '*' in the first point of a {layer} route")
                x = prev[0] if prev is not None and vals[0] == "*" else t.number(vals[0]) / units
                y = prev[1] if prev is not None and vals[1] == "*" else t.number(vals[1]) / units
                if prev is not None and (x, y) != prev:
                    hw = width / 2
                    x0, x1 = sorted((prev[0], x))
                    y0, y1 = sorted((prev[1], y))
                    if y0 == y1:  # horizontal: extended along x
                        net.wires.append((layer, x0 - ext, y0 - hw, x1 + ext, y1 + hw))
                    elif x0 == x1:
                        net.wires.append((layer, x0 - hw, y0 - ext, x1 + hw, y1 + ext))
                    else:  # not DEF-legal; its bounding box keeps the connection honest enough
                        net.wires.append((layer, x0 - hw, y0 - hw, x1 + hw, y1 + hw))
                prev = (x, y)
                k = close + 1
            elif st[k] in ("RECT", "VIRTUAL"):
                close = st.index(")", k)
                if st[k] == "RECT" and prev is not None:
                    d = [t.number(v) / units for v in st[k + 2:close]]
                    if len(d) == 4:
                        net.wires.append((layer, prev[0] + min(d[0], d[2]), prev[1] + min(d[1], d[3]),
                                          prev[0] + max(d[0], d[2]), prev[1] + max(d[1], d[3])))
                elif st[k] == "VIRTUAL":
                    vals = st[k + 2:close]
                    if prev is not None and len(vals) >= 2:
                        prev = (prev[0] if vals[0] == "*" else t.number(vals[0]) / units,
                                prev[1] if vals[1] == "*" else t.number(vals[1]) / units)
                k = close + 1
            else:
                if prev is None:
                    raise t.error(f"net {net.name}: via {st[k]} before any point")
                net.vias.append((st[k], prev[0], prev[1]))
                k += 1
                if k < len(st) and st[k] in ("N", "S", "E", "W", "FN", "FS", "FE", "FW"):
                    k += 1  # a via's orientation (DEF 5.7); the LEF vias here are symmetric
        if k < len(st) and st[k] == "NEW":
            k += 1
            continue
        return k
    return k


# ================================================================================================ the LEF, read here
@lru_cache(maxsize=8)
def _lef_facts(lef_paths: tuple[str, ...], stamps: tuple[float, ...]) -> tuple[dict[str, LefVia], dict, set]:
    """(vias by name, antenna data, macros with SYMMETRY Y) of the LEF files."""
    vias: dict[str, LefVia] = {}
    for p in lef_paths:
        for v in read_lef(p).get("vias", []):
            vias.setdefault(v.name, v)
    antenna, sym_y = _antenna_and_symmetry(lef_paths)
    return vias, antenna, sym_y


def lef_facts(pdk: Pdk) -> tuple[dict[str, LefVia], dict, set]:
    paths = tuple(str(p) for p in pdk.lef_paths)
    return _lef_facts(paths, tuple(Path(p).stat().st_mtime for p in paths))


def _antenna_and_symmetry(lef_paths: Iterable[str]) -> tuple[dict, set]:
    """ANTENNA* statements of the LEF (per routing layer, per macro pin) and the macros that may be mirrored
    about Y (SYMMETRY Y).

    {"layers": {layer: {keyword: value}}, "pins": {(macro, pin): {keyword: value}}}; both empty when the LEF has
    no antenna data (a comment that mentions antennas is not data: the lexer drops comments)."""
    layers: dict[str, dict[str, float]] = {}
    pins: dict[tuple[str, str], dict[str, float]] = {}
    sym_y: set[str] = set()
    for p in lef_paths:
        toks = [tok for _, tok in tokenize(Path(p).read_text(errors="replace"), p, ChecksInputError)]
        n = len(toks)
        macro = pin = layer = None
        for i, tok in enumerate(toks):
            nxt = toks[i + 1] if i + 1 < n else ""
            if tok == "MACRO":
                macro, pin = nxt, None
            elif tok == "END":
                if nxt == pin:
                    pin = None
                elif nxt == macro:
                    macro = pin = None
                elif nxt == layer:
                    layer = None
            elif tok == "PIN" and macro and pin is None:
                pin = nxt
            elif tok == "LAYER" and macro is None and i + 2 < n and toks[i + 2] != ";":
                layer = nxt  # a LAYER block (a LAYER statement inside a VIA or a PORT ends with ';')
            elif tok == "SYMMETRY" and macro and pin is None:
                j = i + 1
                while j < n and toks[j] != ";":
                    if toks[j] == "Y":
                        sym_y.add(macro)
                    j += 1
            elif tok.startswith("ANTENNA"):
                try:
                    value = float(nxt)
                except ValueError:
                    continue
                if macro and pin:
                    got = pins.setdefault((macro, pin), {})
                    got[tok] = got.get(tok, 0.0) + value  # one statement per layer or per port: they add up
                elif layer and macro is None:
                    layers.setdefault(layer, {})[tok] = value
    return {"layers": layers, "pins": pins}, sym_y


# ================================================================================================ geometry helpers
def oriented_size(macro: Macro, orient: str) -> tuple[float, float]:
    return (macro.height_um, macro.width_um) if orient in ("E", "W", "FE", "FW") else (macro.width_um,
                                                                                         macro.height_um)


def place_rect(macro: Macro, comp: DefComponent, x0: float, y0: float, x1: float,
               y1: float) -> tuple[float, float, float, float]:
    """A macro-relative rectangle in die coordinates: DEF places the lower-left of the oriented outline at
    (comp.x, comp.y)."""
    w, h = macro.width_um, macro.height_um
    pts = [_orient_point(x, y, w, h, comp.orient) for x, y in ((x0, y0), (x1, y1))]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return comp.x + min(xs), comp.y + min(ys), comp.x + max(xs), comp.y + max(ys)


def _orient_point(x: float, y: float, w: float, h: float, orient: str) -> tuple[float, float]:
    return {"N": (x, y), "S": (w - x, h - y), "FN": (w - x, y), "FS": (x, h - y), "W": (h - y, x),
            "E": (y, w - x), "FW": (y, x), "FE": (h - y, w - x)}.get(orient, (x, y))


def pin_rects(pdk: Pdk, layout: DefLayout, term: Terminal) -> list[Rect]:
    """The terminal's shapes in die coordinates ([] when the instance or the pin does not exist)."""
    inst, pin = term
    if inst == "PIN":
        p = layout.pins.get(pin)
        return list(p.rects) if p else []
    comp = layout.components.get(inst)
    macro = pdk.macros.get(comp.cell) if comp else None
    mpin = macro.pins.get(pin) if macro else None
    if comp is None or macro is None or mpin is None:
        return []
    out: list[Rect] = []
    for layer, x0, y0, x1, y1 in mpin.shapes:
        a, b, c, d = place_rect(macro, comp, x0, y0, x1, y1)
        out.append((layer, a, b, c, d))
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


# ================================================================================================ geometry, all at once
def sweep_pairs(boxes: np.ndarray, slack: float, band_um: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, each once, of the (n, 4) boxes (x0, y0, x1, y1) that overlap by more than
    ``slack`` both ways; a negative slack also takes boxes up to -slack apart (touching ones).

    The die is cut into horizontal bands ``band_um`` tall (a box goes to every band it reaches) and each band is
    swept along x: the candidates of a box are the boxes of its band whose left edge lies before its right edge,
    all tested at once in numpy, PAIRS_PER_CHUNK at a time. A pair is kept only in the band holding the bottom of
    its overlap, so it comes out once."""
    n = len(boxes)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    pad = max(-slack, 0.0)
    lo, hi = boxes[:, 1] - pad, boxes[:, 3] + pad
    if band_um <= 0:
        band_um = max(float(hi.max() - lo.min()), 1.0) + 1.0  # one band
    b0 = np.floor((lo - lo.min()) / band_um).astype(np.int64)
    b1 = np.floor((hi - lo.min()) / band_um).astype(np.int64)
    reps = b1 - b0 + 1
    idx = np.repeat(np.arange(n), reps)
    band = np.repeat(b0, reps) + (np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps))
    x0, x1 = boxes[idx, 0], boxes[idx, 2]
    span = float(boxes[:, 2].max() - boxes[:, 0].min()) + 2 * abs(slack) + 1.0
    key = band * span + (x0 - boxes[:, 0].min())  # (band, x0) as one sortable number
    order = np.argsort(key, kind="stable")
    idx, band, key = idx[order], band[order], key[order]
    x0, x1 = x0[order], x1[order]
    m = len(idx)
    ends = np.searchsorted(key, band * span + (x1 - boxes[:, 0].min()) - slack, side="left")
    counts = np.maximum(ends - np.arange(m) - 1, 0)
    cum = np.cumsum(counts)
    by0, by1 = boxes[:, 1], boxes[:, 3]
    out_i, out_j = [empty], [empty]
    start = 0
    while start < m:
        base = int(cum[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + PAIRS_PER_CHUNK, side="right")))
        c = counts[start:stop]
        pp = np.repeat(np.arange(start, stop), c)
        qq = pp + 1 + (np.arange(len(pp)) - np.repeat(cum[start:stop] - c - base, c))
        i, j = idx[pp], idx[qq]
        bottom = np.maximum(by0[i], by0[j])
        hit = ((np.minimum(x1[pp], x1[qq]) - x0[qq] > slack)
               & (np.minimum(by1[i], by1[j]) - bottom > slack) & (i != j)
               & (np.clip(np.floor((bottom - lo.min()) / band_um), np.maximum(b0[i], b0[j]),
                          np.minimum(b1[i], b1[j])) == band[pp]))
        out_i.append(i[hit])
        out_j.append(j[hit])
        start = stop
    return np.concatenate(out_i), np.concatenate(out_j)


def _oriented_pins(macro: Macro, orient: str) -> dict[str, tuple[Rect, ...]]:
    """Each pin's rectangles relative to the placement point of a cell in ``orient``."""
    return {name: tuple((layer, *place_rect(macro, DefComponent("", macro.name, "", 0.0, 0.0, orient),
                                             x0, y0, x1, y1)) for layer, x0, y0, x1, y1 in pin.shapes)
            for name, pin in macro.pins.items()}


@dataclass
class Geometry:
    """Every shape of the layout on one table: its layer, box, the net that owns it and its node (a wire, a
    via, or a pin), and the connected group of each node (nodes of one net join where their shapes touch)."""

    boxes: np.ndarray  # (S, 4)
    layer: np.ndarray  # (S,) int
    owner: np.ndarray  # (S,) int, index into owner_names
    node: np.ndarray  # (S,) int
    owner_names: list[str]
    labels: np.ndarray  # (nodes,) connected group
    terminal_node: dict[tuple[str, Terminal], int]  # (net, terminal) -> node
    wire_nodes: dict[str, list[int]]  # net -> its wire and via nodes (signal and special)
    shorts: dict[tuple[str, str], tuple[str, float, float]]  # net pair -> (layer, x, y) of the first overlap
    layer_names: list[str]


def build_geometry(layout: DefLayout, pdk: Pdk, tol_um: float) -> Geometry:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    vias, _, _ = lef_facts(pdk)
    rects: list[tuple[str, float, float, float, float]] = []
    owner: list[int] = []
    node: list[int] = []
    owner_ids: dict[str, int] = {}
    terminal_node: dict[tuple[str, Terminal], int] = {}
    wire_nodes: dict[str, list[int]] = defaultdict(list)
    n_nodes = 0

    def oid(name: str) -> int:
        return owner_ids.setdefault(name, len(owner_ids))

    def new_node() -> int:
        nonlocal n_nodes
        n_nodes += 1
        return n_nodes - 1

    def add_routing(name: str, net: DefNet) -> None:
        o = oid(name)
        for w in net.wires:
            k = new_node()
            wire_nodes[name].append(k)
            rects.append(w)
            owner.append(o)
            node.append(k)
        for via, x, y in net.vias:
            k = new_node()
            wire_nodes[name].append(k)
            v = vias.get(via)
            for lay, a, b, c, d in (v.rects if v else ()):
                rects.append((lay, x + a, y + b, x + c, y + d))
                owner.append(o)
                node.append(k)

    for name, net in layout.nets.items():
        add_routing(name, net)
    for name, net in layout.special.items():
        add_routing(name, net)
    net_of: dict[Terminal, list[str]] = defaultdict(list)
    for name, net in layout.nets.items():
        for t in dict.fromkeys(net.conns):
            net_of[t].append(name)
    star: dict[str, str] = {}
    for name, net in layout.special.items():
        for inst, pin in net.conns:
            if inst == "*":
                star[pin] = name
            else:
                net_of[(inst, pin)].append(name)

    def add_terminal(term: Terminal, shapes: Iterable[Rect], dx: float, dy: float) -> None:
        nets = net_of.get(term) or ([star[term[1]]] if term[1] in star and term[0] != "PIN" else [])
        shapes = list(shapes)
        for name in nets or [" ".join(term)]:  # a pin on no net owns itself
            k = new_node()
            terminal_node[(name, term)] = k
            o = oid(name)
            for lay, a, b, c, d in shapes:
                rects.append((lay, a + dx, b + dy, c + dx, d + dy))
                owner.append(o)
                node.append(k)

    for io in layout.pins.values():
        add_terminal(("PIN", io.name), io.rects, 0.0, 0.0)
    oriented: dict[tuple[str, str], dict[str, tuple[Rect, ...]]] = {}  # (cell, orient) -> pin rectangles
    for comp in layout.components.values():
        macro = pdk.macros.get(comp.cell)
        if macro is None:
            continue
        key = (comp.cell, comp.orient)
        if key not in oriented:
            oriented[key] = _oriented_pins(macro, comp.orient)
        for pin_name, shapes in oriented[key].items():
            add_terminal((comp.name, pin_name), shapes, comp.x, comp.y)
    for name, net in layout.nets.items():  # a terminal whose instance or pin the DEF lacks: a node of no shape
        for t in net.conns:
            if (name, t) not in terminal_node:
                terminal_node[(name, t)] = new_node()
    layer_names = sorted({r[0] for r in rects})
    layer_id = {name: k for k, name in enumerate(layer_names)}
    boxes = np.array([r[1:] for r in rects], dtype=np.float64).reshape(-1, 4)
    lay_arr = np.array([layer_id[r[0]] for r in rects], dtype=np.int64)
    own = np.asarray(owner, dtype=np.int64)
    nod = np.asarray(node, dtype=np.int64)
    names = list(owner_ids)
    band = 2 * float(pdk.site.height_um) if pdk.sites else 10.0
    edges_a, edges_b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    shorts: dict[tuple[str, str], tuple[str, float, float]] = {}
    for k, lname in enumerate(layer_names):
        sel = np.flatnonzero(lay_arr == k)
        i, j = sweep_pairs(boxes[sel], -tol_um, band)
        i, j = sel[i], sel[j]
        same = own[i] == own[j]
        edges_a.append(nod[i[same]])
        edges_b.append(nod[j[same]])
        d_i, d_j = i[~same], j[~same]
        deep = ((np.minimum(boxes[d_i, 2], boxes[d_j, 2]) - np.maximum(boxes[d_i, 0], boxes[d_j, 0]) > tol_um)
                & (np.minimum(boxes[d_i, 3], boxes[d_j, 3]) - np.maximum(boxes[d_i, 1], boxes[d_j, 1]) > tol_um))
        for a, b in zip(d_i[deep], d_j[deep]):
            pair = (min(names[own[a]], names[own[b]]), max(names[own[a]], names[own[b]]))
            shorts.setdefault(pair, (lname, round(float(max(boxes[a, 0], boxes[b, 0])), 3),
                                     round(float(max(boxes[a, 1], boxes[b, 1])), 3)))
    ea, eb = np.concatenate(edges_a), np.concatenate(edges_b)
    graph = coo_matrix((np.ones(len(ea), dtype=np.int8), (ea, eb)), shape=(n_nodes, n_nodes))
    labels = connected_components(graph, directed=False)[1] if n_nodes else np.zeros(0, dtype=np.int64)
    return Geometry(boxes, lay_arr, own, nod, names, labels, terminal_node, dict(wire_nodes), shorts, layer_names)


def check_power(layout: DefLayout, pdk: Pdk, geo: Geometry) -> Check:
    """Power and ground pins of placed cells: named by a special net (``( * vdd )`` names every cell's), and in
    the piece of that net's grid that holds most of its wires (the cells' own pins count: a cell reaches the rail
    through its neighbours' abutting pins too)."""
    found: list[str] = []
    islands = 0
    main: dict[str, int] = {}
    for name, net in layout.special.items():
        nodes = geo.wire_nodes.get(name, [])
        if net.conns and nodes:
            groups = np.bincount(geo.labels[np.asarray(nodes)])
            main[name] = int(np.argmax(groups))
            islands += int((groups > 0).sum()) - 1
    named: dict[Terminal, str] = {}
    star: dict[str, str] = {}
    for name, net in layout.special.items():
        for inst, pin in net.conns:
            if inst == "*":
                star.setdefault(pin, name)
            else:
                named.setdefault((inst, pin), name)
    supplies = set()
    for comp in layout.components.values():
        macro = pdk.macros.get(comp.cell)
        if macro is None:
            continue
        for mpin in macro.pins.values():
            if mpin.use not in ("POWER", "GROUND"):
                continue
            term = (comp.name, mpin.name)
            supply = named.get(term) or star.get(mpin.name)
            if supply is None or (supply, term) not in geo.terminal_node:
                found.append(f"{comp.name} {mpin.name} ({comp.cell}): no special net names it")
                continue
            supplies.add(supply)
            if supply not in main:
                found.append(f"{comp.name} {mpin.name} ({comp.cell}): {supply} has no wires")
            elif geo.labels[geo.terminal_node[(supply, term)]] != main[supply]:
                found.append(f"{comp.name} {mpin.name} ({comp.cell}): does not touch the {supply} grid")
    ties = 0
    for term, supply in named.items():  # tie-offs: signal pins a special net names (a constant input)
        if not _is_signal_pin(layout, pdk, term) or (supply, term) not in geo.terminal_node:
            continue
        ties += 1
        if supply not in main:
            found.append(f"{term[0]} {term[1]} (tied to {supply}): {supply} has no wires")
        elif geo.labels[geo.terminal_node[(supply, term)]] != main[supply]:
            found.append(f"{term[0]} {term[1]} (tied to {supply}): no wire joins it to the {supply} grid")
    return Check("power_pins", "Power pins unconnected", len(found), _status(len(found)),
                 "power and ground pins of placed cells, and signal pins tied to a supply, that no special net "
                 "names or that do not touch their net's grid (rails, stripes, vias)", found,
                 note=f"{len(supplies)} supply nets; {ties} tied signal pin(s); {islands} grid piece(s) apart "
                      "from the main one")


def check_routing(layout: DefLayout, geo: Geometry) -> tuple[Check, Check, dict]:
    """Unrouted nets and open (partly routed) nets, from the connected groups of each net's shapes."""
    unrouted: list[Any] = []
    opened: list[Any] = []
    checked = single = 0
    for net in layout.nets.values():
        if net.use in ("POWER", "GROUND"):
            continue
        terms = list(dict.fromkeys(net.conns))
        if len(terms) < 2:
            single += 1
            continue
        checked += 1
        if not geo.wire_nodes.get(net.name):
            unrouted.append(net.name)
            continue
        groups: dict[int, list[Terminal]] = defaultdict(list)
        for term in terms:
            groups[int(geo.labels[geo.terminal_node[(net.name, term)]])].append(term)
        if len(groups) > 1:
            parts = sorted(groups.values(), key=len, reverse=True)
            opened.append({"net": net.name, "terminals": len(terms), "groups": len(parts),
                           "cut_off": [" ".join(t) for part in parts[1:] for t in part][:20]})
    stats = {"nets_checked": checked, "single_terminal_nets": single}
    return (Check("unrouted_nets", "Unrouted nets", len(unrouted), _status(len(unrouted)),
                  "nets with two or more terminals and no routing at all", unrouted),
            Check("open_nets", "Open nets (partly routed)", len(opened), _status(len(opened)),
                  "routed nets whose wires, vias and pin shapes do not join all of the net's terminals", opened),
            stats)


def check_shorts(geo: Geometry) -> Check:
    """Shapes of two different nets that overlap (by more than the tolerance both ways) on one layer."""
    found = [f"{a} and {b} on {layer} at ({x:g}, {y:g})" for (a, b), (layer, x, y) in sorted(geo.shorts.items())]
    return Check("shorts", "Shorts", len(found), _status(len(found)),
                 "pairs of nets whose shapes (wires, vias, pins, power grid) overlap on one layer", found,
                 note=f"{len(geo.boxes)} shapes on {len(geo.layer_names)} layers")


# ================================================================================================ the checks
@dataclass
class Check:
    """One check's result: a count of findings, its status and the first findings themselves."""

    id: str
    name: str
    count: int | None  # None: the check could not run (status "n/a")
    status: str  # "pass", "fail", "warn" (a finding that is not an error) or "n/a"
    what: str  # what the check looks at, in one sentence
    details: list[Any] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "count": self.count, "status": self.status, "what": self.what,
                "note": self.note, "details": self.details[:DETAILS_KEPT]}


def _status(count: int, error: bool = True) -> str:
    return "pass" if count == 0 else "fail" if error else "warn"


def is_filler(macro: Macro) -> bool:
    return not macro.signal_pins and ("SPACER" in macro.cls.upper() or macro.name.upper().startswith("FILL")
                                      or not macro.pins)


def check_unconnected(layout: DefLayout, pdk: Pdk) -> tuple[Check, Check]:
    """Open inputs (an error) and open outputs (expected): signal pins of placed cells on no net."""
    on_net: set[Terminal] = {c for net in layout.nets.values() for c in net.conns}
    on_net |= {c for net in layout.special.values() for c in net.conns if c[0] != "*"}  # tie-offs to vdd / gnd
    inputs: list[str] = []
    outputs: list[str] = []
    for comp in layout.components.values():
        macro = pdk.macros.get(comp.cell)
        if macro is None:
            continue
        for pin in macro.signal_pins:
            if (comp.name, pin.name) not in on_net:
                (outputs if pin.direction == "OUTPUT" else inputs).append(f"{comp.name} {pin.name} ({comp.cell})")
    return (Check("unconnected_inputs", "Floating inputs", len(inputs), _status(len(inputs)),
                  "signal inputs (and inouts) of placed cells that no net connects: they would float", inputs),
            Check("unconnected_outputs", "Open outputs", len(outputs), "pass" if not outputs else "warn",
                  "cell outputs on no net: expected where synthesis left an output unused", outputs))


def _track_sets(layout: DefLayout, pdk: Pdk) -> dict[str, dict[str, tuple[float, int, float]]]:
    """layer -> {"X": (start, count, step), "Y": ...}: DEF TRACKS, else the LEF pitch and offset over the die."""
    out: dict[str, dict[str, tuple[float, int, float]]] = defaultdict(dict)
    for axis, start, count, step, layers in layout.tracks:
        for layer in layers:
            out[layer].setdefault(axis, (start, count, step))
    if not layout.tracks and layout.die:
        x0, y0, x1, y1 = layout.die
        for lay in pdk.routing_layers():
            if lay.pitch_um:
                off = lay.offset_um if lay.offset_um is not None else lay.pitch_um / 2
                out[lay.name]["X"] = (x0 + off, int((x1 - x0 - off) // lay.pitch_um) + 1, lay.pitch_um)
                out[lay.name]["Y"] = (y0 + off, int((y1 - y0 - off) // lay.pitch_um) + 1, lay.pitch_um)
    return out


def _grid_for(layer: str, tracks: dict, order: list[str], lines: dict[str, str], axis: str
              ) -> tuple[float, int, float] | None:
    """The routing grid's coordinates along ``axis`` ("X": vertical track lines) at a pin on ``layer``: the layer's
    own tracks when it runs that way (a horizontal layer's "TRACKS Y"), else those of the nearest layer that does,
    the one above first (a metal1 pin is reached by a via from metal2). A layer's tracks across its preferred
    direction (write_def writes both) are not where the router runs, so they are not used. ``lines`` maps a
    layer to the axis of its own track lines (from its LEF DIRECTION)."""
    def own(name: str) -> tuple[float, int, float] | None:
        want = lines.get(name)
        if want is not None and want != axis:
            return None
        return tracks.get(name, {}).get(axis)

    if own(layer) is not None:
        return own(layer)
    if layer not in order:
        return None
    i = order.index(layer)
    for d in range(1, len(order)):
        for j in (i + d, i - d):
            if 0 <= j < len(order) and own(order[j]) is not None:
                return own(order[j])
    return None


def _on_grid(lo: float, hi: float, grid: tuple[float, int, float], eps: float = 1e-6) -> bool:
    start, count, step = grid
    if step <= 0:
        return False
    k = max(0, math.ceil((lo - start) / step - eps))
    return k < count and start + k * step <= hi + eps


def check_tracks(layout: DefLayout, pdk: Pdk) -> Check:
    """Connected pins with no crossing of routing tracks inside any of their rectangles on a routing layer."""
    tracks = _track_sets(layout, pdk)
    order = [layer.name for layer in pdk.routing_layers()]
    lines = {layer.name: {"HORIZONTAL": "Y", "VERTICAL": "X"}[layer.direction]
             for layer in pdk.routing_layers() if layer.direction in ("HORIZONTAL", "VERTICAL")}
    off: list[Any] = []
    seen: set[Terminal] = set()
    for net in layout.nets.values():
        for term in net.conns:
            if term in seen:
                continue
            seen.add(term)
            ok = False
            for layer, x0, y0, x1, y1 in pin_rects(pdk, layout, term):
                gx, gy = _grid_for(layer, tracks, order, lines, "X"), _grid_for(layer, tracks, order, lines, "Y")
                if gx and gy and _on_grid(x0, x1, gx) and _on_grid(y0, y1, gy):
                    ok = True
                    break
            if not ok:
                off.append(" ".join(term) + (f" ({layout.components[term[0]].cell})"
                                             if term[0] in layout.components else ""))
    io = sum(t.startswith("PIN ") for t in off)
    return Check("pins_off_track", "Pins off track", len(off), "pass" if not off else "warn",
                 "connected pins with no routing-track crossing inside their shapes (the router reaches them with "
                 "an off-grid stub)", off, note=f"{len(off)} of {len(seen)} connected pins: {io} IO pins, "
                 f"{len(off) - io} cell pins")


def check_placement(layout: DefLayout, pdk: Pdk, tol_um: float) -> tuple[Check, Check, Check]:
    """Row legality, cells inside the die, overlaps (a sweep line over the oriented outlines)."""
    _, _, sym_y = lef_facts(pdk)
    rows_at: dict[int, list[DefRow]] = defaultdict(list)
    for row in layout.rows:
        rows_at[round(row.y / tol_um)].append(row)
    allowed = {"N": {"N"}, "FS": {"FS"}, "S": {"S"}, "FN": {"FN"}}
    mirror = {"N": "FN", "FS": "S", "S": "FS", "FN": "N"}
    bad_rows: list[Any] = []
    outside: list[Any] = []
    boxes: list[tuple[float, float, float, float, str]] = []
    for comp in layout.components.values():
        macro = pdk.macros.get(comp.cell)
        if macro is None:
            bad_rows.append(f"{comp.name} ({comp.cell}): the cell is not in the LEF")
            continue
        if comp.status == "UNPLACED":
            bad_rows.append(f"{comp.name} ({comp.cell}): unplaced")
            continue
        w, h = oriented_size(macro, comp.orient)
        x1, y1 = comp.x + w, comp.y + h
        boxes.append((comp.x, comp.y, x1, y1, comp.name))
        if layout.die is not None:
            d = layout.die
            if comp.x < d[0] - tol_um or comp.y < d[1] - tol_um or x1 > d[2] + tol_um or y1 > d[3] + tol_um:
                outside.append(f"{comp.name} ({comp.cell}) at ({comp.x:g}, {comp.y:g})")
        if macro.cls.upper().startswith(("BLOCK", "PAD", "RING", "COVER")) or comp.name in pdk.block_names \
                or comp.cell in pdk.block_names:
            continue
        why = _row_problem(comp, macro, w, h, rows_at, tol_um, allowed, mirror, sym_y, pdk)
        if why:
            bad_rows.append(f"{comp.name} ({comp.cell}): {why}")
    for pin in layout.pins.values():
        if layout.die is not None and pin.placed:
            d = layout.die
            for _, a, b, c, e in pin.rects:
                if (a + c) / 2 < d[0] - tol_um or (a + c) / 2 > d[2] + tol_um or (b + e) / 2 < d[1] - tol_um \
                        or (b + e) / 2 > d[3] + tol_um:
                    outside.append(f"PIN {pin.name} at ({(a + c) / 2:g}, {(b + e) / 2:g})")
                    break
    overlaps = sweep_overlaps(boxes, tol_um)
    return (Check("row_violations", "Row legality", len(bad_rows), _status(len(bad_rows)),
                  "every cell placed in a row, on its site grid, in an orientation the row allows", bad_rows),
            Check("outside_die", "Inside the die", len(outside), _status(len(outside)),
                  "cells and IO pins inside the DIEAREA", outside),
            Check("overlaps", "Overlapping cells", len(overlaps), _status(len(overlaps)),
                  "pairs of placed cells whose outlines overlap (fillers and blocks included)", overlaps))


def _row_problem(comp: DefComponent, macro: Macro, w: float, h: float, rows_at: dict, tol: float, allowed: dict,
                 mirror: dict, sym_y: set[str], pdk: Pdk) -> str:
    rows = rows_at.get(round(comp.y / tol), [])
    if not rows:
        return f"its bottom (y = {comp.y:g}) is on no row"
    row = next((r for r in rows if r.x - tol <= comp.x and comp.x + w <= r.x + max(r.nx, 1) * r.step_x + tol),
               None)
    if row is None:
        return f"x = {comp.x:g} .. {comp.x + w:g} is outside the row(s) at y = {comp.y:g}"
    if row.step_x > 0:
        sites = (comp.x - row.x) / row.step_x
        if abs(sites - round(sites)) * row.step_x > tol:
            return f"x = {comp.x:g} is off the site grid of {row.name} (step {row.step_x:g})"
    ok = set(allowed.get(row.orient, {row.orient}))
    if macro.name in sym_y and row.orient in mirror:
        ok.add(mirror[row.orient])
    if comp.orient not in ok:
        return f"orientation {comp.orient} in row {row.name} ({row.orient}); the row takes {'/'.join(sorted(ok))}"
    site = pdk.sites.get(row.site)
    site_h = site.height_um if site else None
    if site_h and abs(h / site_h - round(h / site_h)) * site_h > tol:
        return f"height {h:g} is not a multiple of the row height {site_h:g}"
    return ""


def sweep_overlaps(boxes: list[tuple[float, float, float, float, str]], tol: float) -> list[str]:
    """Pairs of boxes whose interiors overlap by more than ``tol`` in both x and y (engine.flow.checks.sweep_pairs
    over the cells' outlines)."""
    if len(boxes) < 2:
        return []
    arr = np.array([b[:4] for b in boxes], dtype=np.float64)
    i, j = sweep_pairs(arr, tol, 2 * float(np.median(arr[:, 3] - arr[:, 1])))
    out = []
    for a, b in sorted(zip(i.tolist(), j.tolist()), key=lambda p: (boxes[min(p)][0], min(p), max(p))):
        a, b = min(a, b), max(a, b)
        dx = min(arr[a, 2], arr[b, 2]) - max(arr[a, 0], arr[b, 0])
        dy = min(arr[a, 3], arr[b, 3]) - max(arr[a, 1], arr[b, 1])
        first, second = sorted((a, b), key=lambda k: (boxes[k][0], boxes[k][1]))
        out.append(f"{boxes[first][4]} and {boxes[second][4]} ({dx * dy:.3g} um^2)")
    return out


def check_antenna(layout: DefLayout, pdk: Pdk) -> Check:
    """The per-layer partial-area estimate, only with the LEF's own antenna data."""
    _, antenna, _ = lef_facts(pdk)
    what = ("per net and metal layer, the layer's metal area on the net over the gate area the net drives, "
            "against the layer's ANTENNAAREARATIO")
    ratios = {layer: v["ANTENNAAREARATIO"] for layer, v in antenna["layers"].items()
              if math.isfinite(v.get("ANTENNAAREARATIO", math.nan))}
    if not antenna["pins"] or not ratios:
        missing = "antenna data" if not antenna["layers"] and not antenna["pins"] else \
            ("gate areas (ANTENNAGATEAREA)" if not antenna["pins"] else "layer ratios (ANTENNAAREARATIO)")
        return Check("antenna", "Antenna (estimate)", None, "n/a", what,
                     note=f"not available: the LEF has no {missing}")
    found: list[Any] = []
    for net in layout.nets.values():
        gate = 0.0
        for inst, pin in net.conns:
            comp = layout.components.get(inst)
            if comp is not None:
                gate += antenna["pins"].get((comp.cell, pin), {}).get("ANTENNAGATEAREA", 0.0)
        if gate <= 0:
            continue
        stub = layout.special.get(net.name)
        area: dict[str, float] = defaultdict(float)
        for layer, x0, y0, x1, y1 in net.wires + (stub.wires if stub else []):
            area[layer] += (x1 - x0) * (y1 - y0)
        for layer, a in area.items():
            limit = ratios.get(layer)
            if limit is not None and a / gate > limit:
                found.append(f"{net.name} on {layer}: ratio {a / gate:.3g} over {limit:g}")
    return Check("antenna", "Antenna (estimate)", len(found), _status(len(found)), what, found,
                 note="an upper bound: all of a layer's metal on the net is counted, not only what the gate sees "
                      "while that layer is etched")


# ================================================================================================ Verilog, read here
_VERILOG_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/|\(\*.*?\*\)", re.S)
_ID = r"(?:\\\S+|[A-Za-z_][\w$]*)"
_RANGE = re.compile(r"\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\]")
_INSTANCE = re.compile(rf"^({_ID})\s*(?:#\s*\(.*?\)\s*)?({_ID})\s*(?:\[[^\]]*\]\s*)?\((.*)\)$", re.S)
_NAMED = re.compile(r"\.\s*([A-Za-z_][\w$]*|\\\S+)\s*\(")
_DECL = ("input", "output", "inout", "wire", "reg", "tri", "supply0", "supply1", "wand", "wor")


@dataclass
class VerilogNetlist:
    top: str
    ports: dict[str, str]  # port bit ("q[3]") -> "input" / "output" / "inout"
    instances: dict[str, str]  # instance -> cell
    conns: dict[Terminal, str]  # (instance, pin) -> net bit (aliases resolved); "1'b0"/"1'b1" for constants
    port_nets: dict[str, str] = field(default_factory=dict)  # port bit -> its net (itself unless assigned)


def _plain(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def read_verilog_netlist(path: str | Path, top: str | None = None) -> VerilogNetlist:
    """The top module of a structural (gate-level) Verilog netlist: ports bit by bit, instances with their named
    connections, ``assign`` aliases merged. Raises ChecksInputError naming what it cannot read."""
    path = Path(path)
    try:
        text = _VERILOG_COMMENTS.sub(" ", path.read_text(errors="replace"))
    except OSError as exc:
        raise ChecksInputError(f"cannot read {path}: {exc}") from None
    modules = list(re.finditer(rf"\bmodule\s+({_ID})(.*?)\bendmodule\b", text, re.S))
    if not modules:
        raise ChecksInputError(f"{path.name}: no module ... endmodule")
    mod = next((m for m in modules if _plain(m.group(1)) == top), None) if top else modules[-1]
    if mod is None:
        raise ChecksInputError(f"{path.name}: no module {top}; it has {', '.join(_plain(m.group(1)) for m in modules)}")
    body = mod.group(2)
    header_end = body.find(";")
    widths: dict[str, tuple[int, int]] = {}
    ports: dict[str, str] = {}
    aliases: list[tuple[str, str]] = []
    instances: dict[str, str] = {}
    raw: list[tuple[str, str, str]] = []  # (instance, pin, expression)
    header = body[:header_end].strip().lstrip("#").strip()
    header = header[1:-1] if header.startswith("(") and header.endswith(")") else header
    # ANSI-style ports declare direction and range in the header: "input [3:0] a, b, output y" -> statements
    ansi: list[str] = []
    for part in header.split(","):
        part = part.strip()
        if part.split(None, 1)[:1] and part.split(None, 1)[0] in ("input", "output", "inout"):
            ansi.append(part)
        elif ansi and part:
            ansi[-1] += ", " + part
    for stmt in ansi + body[header_end + 1:].split(";"):
        stmt = stmt.strip()
        if not stmt:
            continue
        word = stmt.split(None, 1)[0]
        if word in _DECL:
            rest = stmt[len(word):].strip()
            rest = re.sub(r"^(?:wire|reg|signed)\b\s*", "", rest)
            rng = _RANGE.match(rest)
            hi_lo = (int(rng.group(1)), int(rng.group(2))) if rng else None
            names = rest[rng.end():] if rng else rest
            for name in (_plain(n.strip()) for n in names.split(",") if n.strip()):
                if hi_lo:
                    widths[name] = hi_lo
                if word in ("input", "output", "inout"):
                    for bit in _bits_of(name, widths):
                        ports[bit] = word
            continue
        if word == "assign":
            lhs, _, rhs = stmt[len(word):].partition("=")
            left, right = _expr_bits(lhs, widths), _expr_bits(rhs, widths)
            if len(left) != len(right):
                raise ChecksInputError(f"{path.name}: assign of {len(right)} bits to {len(left)}: {stmt[:80]}")
            aliases += list(zip(left, right))
            continue
        m = _INSTANCE.match(stmt)
        if m is None:
            raise ChecksInputError(f"{path.name}: cannot read the statement '{stmt[:80]}'")
        cell, inst, conns = _plain(m.group(1)), _plain(m.group(2)), m.group(3)
        if cell in ("module", "endmodule", "always", "initial"):
            raise ChecksInputError(f"{path.name}: behavioural code ('{cell}') in a gate-level netlist")
        instances[inst] = cell
        for pin, expr in _named_connections(conns, path):
            raw.append((inst, pin, expr))
    # assign aliases: one name per connected group of bits (a port's name wins, so terminals read naturally)
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    for a, b in aliases:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb in ports or rb.startswith("1'b"):
                ra, rb = rb, ra
            parent[rb] = ra
    conns_out: dict[Terminal, str] = {}
    for inst, pin, expr in raw:
        bits = _expr_bits(expr, widths)
        if not bits:
            continue  # .A() : an explicitly open pin
        if len(bits) != 1:
            raise ChecksInputError(f"{path.name}: {inst}.{pin} connects {len(bits)} bits; cell pins take one")
        conns_out[(inst, pin)] = find(bits[0])
    return VerilogNetlist(_plain(mod.group(1)), ports, instances, conns_out, {b: find(b) for b in ports})


def _named_connections(text: str, path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while True:
        m = _NAMED.search(text, pos)
        if m is None:
            if text[pos:].strip(" \n\t,"):
                raise ChecksInputError(f"{path.name}: positional connections are not read: '{text[pos:][:60]}'")
            return out
        if text[pos:m.start()].strip(" \n\t,"):
            raise ChecksInputError(f"{path.name}: positional connections are not read: '{text[pos:m.start()][:60]}'")
        depth, k = 1, m.end()
        while k < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            k += 1
        out.append((_plain(m.group(1)), text[m.end():k - 1].strip()))
        pos = k


def _bits_of(name: str, widths: dict[str, tuple[int, int]]) -> list[str]:
    """Every bit of a declared name, most significant first (Verilog's order in a concatenation)."""
    if name not in widths:
        return [name]
    hi, lo = widths[name]
    step = -1 if hi >= lo else 1
    return [f"{name}[{i}]" for i in range(hi, lo + step, step)]


def _expr_bits(expr: str, widths: dict[str, tuple[int, int]]) -> list[str]:
    """The bits of a connection expression: a name, a bit or part select, a constant or a concatenation."""
    expr = expr.strip()
    if not expr:
        return []
    if expr.startswith("{") and expr.endswith("}"):
        parts, depth, cur = [], 0, ""
        for ch in expr[1:-1]:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        parts.append(cur)
        return [b for p in parts for b in _expr_bits(p, widths)]
    const = re.fullmatch(r"(\d+)?\s*'\s*([bBdDhH])\s*([0-9a-fA-FxXzZ_]+)", expr)
    if const:
        n = int(const.group(1) or 32)
        base = {"b": 2, "d": 10, "h": 16}[const.group(2).lower()]
        digits = const.group(3).replace("_", "")
        if re.search(r"[xXzZ]", digits):
            return ["1'bx"] * n
        value = int(digits, base)
        return [f"1'b{(value >> i) & 1}" for i in range(n - 1, -1, -1)]
    if re.fullmatch(r"\d+", expr):
        return [f"1'b{(int(expr) >> i) & 1}" for i in range(31, -1, -1)]
    m = re.fullmatch(rf"({_ID})\s*(?:\[\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?\])?", expr)
    if m is None:
        raise ChecksInputError(f"cannot read the connection '{expr[:60]}'")
    name = _plain(m.group(1))
    if m.group(2) is None:
        return _bits_of(name, widths)
    if m.group(3) is None:
        return [f"{name}[{int(m.group(2))}]"]
    a, b = int(m.group(2)), int(m.group(3))
    step = -1 if a >= b else 1
    return [f"{name}[{i}]" for i in range(a, b + step, step)]


def _is_signal_pin(layout: DefLayout, pdk: Pdk, term: Terminal) -> bool:
    """Whether a special net's ``( inst pin )`` is a cell's signal pin (a tie-off), not its power pin."""
    comp = layout.components.get(term[0])
    macro = pdk.macros.get(comp.cell) if comp else None
    pin = macro.pins.get(term[1]) if macro else None
    return pin is not None and pin.use not in ("POWER", "GROUND")


def check_lvs(layout: DefLayout, pdk: Pdk, netlist: VerilogNetlist) -> Check:
    """Connectivity LVS: instances, ports and nets (as sets of terminals) of the Verilog against the DEF."""
    findings: list[Any] = []
    # instances and cells
    fillers = 0
    for name, cell in netlist.instances.items():
        comp = layout.components.get(name)
        if comp is None:
            findings.append({"kind": "instance missing from the layout", "instance": name, "cell": cell})
        elif comp.cell != cell:
            findings.append({"kind": "different cell", "instance": name, "netlist": cell, "layout": comp.cell})
    for name, comp in layout.components.items():
        if name not in netlist.instances:
            macro = pdk.macros.get(comp.cell)
            if macro is not None and is_filler(macro):
                fillers += 1
            else:
                findings.append({"kind": "instance not in the netlist", "instance": name, "cell": comp.cell})
    # ports
    for bit, direction in netlist.ports.items():
        pin = layout.pins.get(bit)
        if pin is None:
            findings.append({"kind": "port missing from the layout", "port": bit})
        elif pin.direction.lower() != direction:
            findings.append({"kind": "port direction", "port": bit, "netlist": direction,
                             "layout": pin.direction.lower()})
    for bit in layout.pins:
        if bit not in netlist.ports:
            findings.append({"kind": "IO pin not a port of the netlist", "port": bit})
    # nets: terminals on each side, then groups of nets linked by a shared terminal
    port_nets = netlist.port_nets or {b: b for b in netlist.ports}
    v_terms: dict[str, set[Terminal]] = defaultdict(set)
    for term, vnet in netlist.conns.items():
        v_terms[vnet].add(term)
    for bit, vnet in port_nets.items():
        v_terms[vnet].add(("PIN", bit))
    d_terms: dict[str, set[Terminal]] = {}
    d_of: dict[Terminal, list[str]] = defaultdict(list)
    for net in layout.nets.values():
        if net.use in ("POWER", "GROUND"):
            continue
        d_terms[net.name] = set(net.conns)
        for t in net.conns:
            d_of[t].append(net.name)
    # tie-offs: a constant input of the netlist is a signal pin the supply net of its value names in the layout
    tie_of: dict[Terminal, tuple[str, str]] = {}  # tied signal pin -> (special net, the constant it stands for)
    for net in layout.special.values():
        if net.use in ("POWER", "GROUND"):
            for t in net.conns:
                if t[0] != "*" and _is_signal_pin(layout, pdk, t):
                    tie_of.setdefault(t, (net.name, "1'b1" if net.use == "POWER" else "1'b0"))
    for c in [n for n in v_terms if n.startswith("1'b")]:
        for t in sorted(v_terms[c]):
            if t in tie_of:
                if tie_of[t][1] != c:
                    findings.append({"kind": "constant tied to the wrong supply", "terminal": " ".join(t),
                                     "netlist": c, "layout": tie_of[t][0]})
                v_terms[c].discard(t)  # settled here, not by the net comparison below
        if not v_terms[c]:
            del v_terms[c]
    for t, (supply, _) in sorted(tie_of.items()):
        if not netlist.conns.get(t, "").startswith("1'b"):
            findings.append({"kind": "tied to a supply in the layout, not a constant in the netlist",
                             "terminal": " ".join(t), "layout": supply,
                             "netlist": netlist.conns.get(t, "(on no net)")})
    v_of: dict[Terminal, str] = {t: n for n, ts in v_terms.items() for t in ts}
    keys = [("V", n) for n in v_terms] + [("D", n) for n in d_terms]
    index = {k: i for i, k in enumerate(keys)}
    uf = _UnionFind(len(keys))
    for t, dnets in d_of.items():
        for other in dnets[1:]:
            uf.union(index[("D", dnets[0])], index[("D", other)])
        if t in v_of:
            uf.union(index[("V", v_of[t])], index[("D", dnets[0])])
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for k in keys:
        groups[uf.find(index[k])].append(k)
    net_groups = 0
    for members in groups.values():
        vn = [n for side, n in members if side == "V"]
        dn = [n for side, n in members if side == "D"]
        vt: set[Terminal] = set().union(*(v_terms[n] for n in vn)) if vn else set()
        dt: set[Terminal] = set().union(*(d_terms[n] for n in dn)) if dn else set()
        const = any(n.startswith("1'b") for n in vn)
        if len(vn) == 1 and len(dn) == 1 and v_terms[vn[0]] == d_terms[dn[0]] and not const:
            continue
        if not const and len(vn) <= 1 and len(dn) <= 1 and len(vt | dt) <= 1:
            continue  # a single open pin on one side or both: an open pin, not a connectivity difference
        dup = sorted(" ".join(t) for t in dt if len(d_of.get(t, [])) > 1)
        net_groups += 1
        findings.append({"kind": "pins tied to a constant in the netlist, on no net in the layout" if const and not dn
                         else "net differs", "netlist_nets": sorted(vn)[:10], "layout_nets": sorted(dn)[:10],
                         "only_in_netlist": sorted(" ".join(t) for t in vt - dt)[:20],
                         "only_in_layout": sorted(" ".join(t) for t in dt - vt)[:20],
                         **({"on_two_layout_nets": dup[:20]} if dup else {})})
    return Check("lvs", "Netlist vs layout", len(findings), _status(len(findings)),
                 "the gate-level netlist's instances, ports and nets (compared by their terminals) against the DEF",
                 findings, note=f"{len(netlist.instances)} instances, {len(v_terms)} netlist nets, {len(d_terms)} "
                                f"layout nets; {fillers} filler cells are layout-only by design; {net_groups} net "
                                "group(s) differ")


# ================================================================================================ report
@dataclass
class ChecksReport:
    def_path: str
    netlist_path: str
    routed: bool
    checks: list[Check]
    stats: dict[str, Any]

    def by_id(self, cid: str) -> Check:
        return next(c for c in self.checks if c.id == cid)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def metrics(self) -> dict[str, Any]:
        def count(cid: str) -> int:
            c = self.by_id(cid)
            return int(c.count or 0)

        m: dict[str, Any] = {
            "checks__unconnected_inputs": count("unconnected_inputs"),
            "checks__unconnected_outputs": count("unconnected_outputs"),
            "checks__power_pins_unconnected": count("power_pins"),
            "checks__pins_off_track": count("pins_off_track"),
            "checks__overlaps": count("overlaps"),
            "checks__row_violations": count("row_violations"),
            "checks__outside_die": count("outside_die"),
            "checks__lvs_mismatches": count("lvs"),
            "checks__shorts": count("shorts"),
            "checks__failed__count": len(self.failed),
            "checks__status": "pass" if not self.failed else "fail: " + ", ".join(c.name for c in self.failed),
            "checks__routed": self.routed,
        }
        if self.routed:
            m["checks__unrouted_nets"] = count("unrouted_nets")
            m["checks__open_nets"] = count("open_nets")
        antenna = self.by_id("antenna")
        m["checks__antenna__status"] = antenna.note if antenna.status == "n/a" else antenna.status
        if antenna.count is not None:
            m["checks__antenna_violations"] = antenna.count
        return m

    def as_dict(self) -> dict:
        return {"def": self.def_path, "netlist": self.netlist_path, "routed": self.routed, "stats": self.stats,
                "cells_are_abstracts": True, "checks": [c.as_dict() for c in self.checks]}

    def text(self) -> str:
        lines = [f"Signoff checks of {Path(self.def_path).name} against {Path(self.netlist_path).name}", ""]
        w = max(len(c.name) for c in self.checks)
        for c in self.checks:
            count = "-" if c.count is None else str(c.count)
            lines.append(f"  {c.name:<{w}}  {count:>6}  {c.status.upper():<4}  {c.note or c.what}")
        lines += ["", "The osu018 cells are LEF abstracts (outline, pins, obstructions), not transistor layouts: "
                      "these checks cover placement, routing connectivity and netlist connectivity; DRC and LVS "
                      "on cell geometry need the cells' full layouts.", ""]
        for c in self.checks:
            if c.details:
                lines.append(f"{c.name}: first {min(len(c.details), 20)} of {c.count}")
                lines += [f"  {d}" for d in c.details[:20]]
        return "\n".join(lines) + "\n"


def run_checks(def_path: str | Path, netlist_path: str | Path, pdk: Pdk, *, top: str | None = None,
               routed: bool = True, tol_um: float | None = None) -> ChecksReport:
    """Every check on one DEF and one gate-level netlist (engine.flow.checks' docstring says what each does)."""
    layout = read_layout(def_path, pdk)
    netlist = read_verilog_netlist(netlist_path, top)
    tol = tol_um if tol_um is not None else 1.0 / layout.units  # one DEF database unit
    missing = sorted({c.cell for c in layout.components.values() if c.cell not in pdk.macros})
    if missing:
        raise ChecksInputError(f"{Path(def_path).name} places cells the LEF lacks: {', '.join(missing[:10])}")
    inputs, outputs = check_unconnected(layout, pdk)
    geo = build_geometry(layout, pdk, tol)
    power = check_power(layout, pdk, geo)
    if routed:
        unrouted, opened, stats = check_routing(layout, geo)
    else:
        why = "not run: routing is off, the DEF has no wires"
        unrouted = Check("unrouted_nets", "Unrouted nets", None, "n/a", "nets with no routing", note=why)
        opened = Check("open_nets", "Open nets (partly routed)", None, "n/a", "nets not fully joined", note=why)
        stats = {}
    rows, outside, overlaps = check_placement(layout, pdk, tol)
    checks = [inputs, outputs, power, unrouted, opened, check_shorts(geo), check_tracks(layout, pdk), overlaps, rows,
              outside, check_antenna(layout, pdk), check_lvs(layout, pdk, netlist)]
    stats.update({"components": len(layout.components), "nets": len(layout.nets), "io_pins": len(layout.pins),
                  "rows": len(layout.rows), "tolerance_um": tol})
    return ChecksReport(str(def_path), str(netlist_path), routed, checks, stats)


# ================================================================================================ the step
class ChecksStep(Step):
    id = "checks"
    inputs = (Input("synth", "netlist_v"), Input("cts", "netlist_v", required=False),
              Input("place", "def"), Input("cts", "def", required=False), Input("route", "def", required=False),
              Input("gds", "filled_def", required=False))
    outputs = ("report", "text")
    uses = ("tech_dir", "top")
    version = 3  # 3: shorts and power-grid connectivity, tracks in each layer's preferred direction

    def run(self, ctx: StepContext) -> StepResult:
        from engine.flow.cts import netlist_v_path
        from engine.flow.route import placed_def_path

        routed = ctx.has_artefact("route", "def")
        if ctx.has_artefact("gds", "filled_def"):
            def_path = ctx.artefact("gds", "filled_def")
        elif routed:
            def_path = ctx.artefact("route", "def")
        else:
            def_path = placed_def_path(ctx)
        netlist_v = netlist_v_path(ctx)
        top = ctx.metrics("synth").get("design__top") or ctx.config.top or None
        ctx.progress(0.1, f"reading {def_path.name}, the LEF and {netlist_v.name}")
        try:
            report = run_checks(def_path, netlist_v, ctx.pdk, top=top, routed=routed)
        except EngineError as exc:
            raise ctx.fail(f"the checks cannot read their inputs: {exc.message}", code="checks.unreadable",
                           hint="run the flow again from synthesis; if it persists, report it with the run folder") \
                from None
        write_json(ctx.step_dir / "checks.json", report.as_dict())
        (ctx.step_dir / "checks.txt").write_text(report.text())
        failed = report.failed
        n = sum(c.status != "n/a" for c in report.checks)
        if failed:
            message = f"{len(failed)} of {n} checks found errors: " + ", ".join(f"{c.count} {c.name.lower()}"
                                                                                for c in failed)
        else:
            message = f"no errors in {n} checks"
        warns = [c for c in report.checks if c.status == "warn"]
        if warns:
            message += "; warnings: " + ", ".join(f"{c.count} {c.name.lower()}" for c in warns)
        return StepResult(metrics=report.metrics(), artefacts={"report": "checks.json", "text": "checks.txt"},
                          message=message)
