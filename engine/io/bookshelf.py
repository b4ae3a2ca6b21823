"""Bookshelf placement format (ISPD 2002/2005/2006/2011, ICCAD'04 IBM-MS): .aux, .nodes, .nets, .wts, .pl, .scl,
.shapes.

The variants differ in spelling (``NumNodes``/``numnodes``, ``SubrowOrigin``/``Subroworigin``, ``NumSites``/
``Numsites``), so keywords are matched case-insensitively; the .aux may list its files in any order; .wts,
.shapes and .scl are optional, and the .pl may list only the fixed nodes. Every malformed line raises
``BookshelfError`` naming ``file:line`` and what was expected.

Semantics kept in the Netlist:
- Bookshelf pin offsets are from the cell's centre; the Netlist's are from its lower-left corner, converted here.
- ``terminal`` nodes are fixed: zero-size ones become IO cells, sized ones fixed macros (obstacles);
  ``terminal_NI`` nodes (and ``/FIXED_NI`` in the .pl) are fixed but placeable over, so they are IO cells
  (``cell_is_io``: not an obstacle to legalisation) whatever their size. ``/FIXED`` in the .pl fixes a node.
- Movable nodes taller than a row are movable macros (type ``MACRO``); engine.place legalises them.
- .pl orientations (N, S, FN, FS, E, W, FE, FW) go to ``cell_orient`` as metadata; pin offsets stay those of
  the N node (the engine's convention, see engine/io/def_io.py).
- .wts lines naming a net set its weight; lines naming a node (ISPD 2005 node weights) are ignored.
- A node listed in .shapes (a non-rectangular fixed block) keeps its pins on a zero-size fixed anchor at its
  .pl position, and each rectangle becomes a pin-less fixed obstacle ``<node>/<shape name>``.
Units are whatever the benchmark uses (treated as microns).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.netlist import IO_TYPE, PIN_INOUT, PIN_INPUT, PIN_OUTPUT, Netlist, NetlistBuilder, Row

log = logging.getLogger(__name__)

_DIRS = {"I": PIN_INPUT, "O": PIN_OUTPUT, "B": PIN_INOUT}
_DIR_CHARS = {PIN_INPUT: "I", PIN_OUTPUT: "O", PIN_INOUT: "B"}
ORIENTATIONS = ("N", "S", "E", "W", "FN", "FS", "FE", "FW")
MAX_BOOKSHELF_BYTES = 2 * 1024**3
_EPS = 1e-9


class BookshelfError(EngineError):
    """A Bookshelf file is missing or malformed; the message starts with ``file:line``."""

    default_code = "input.invalid"


def _lines(path: Path):
    """Content lines with their numbers: no comments, no blank lines, no 'UCLA ...' / 'shapes 1.0' header."""
    if not path.is_file():
        raise BookshelfError(f"{path}: file not found (named by the .aux)")
    with open(path, errors="replace") as f:
        first = True
        for lineno, line in enumerate(f, 1):
            hash_at = line.find("#")
            if hash_at >= 0:
                line = line[:hash_at]
            line = line.strip()
            if not line:
                continue
            if first:
                first = False
                low = line.lower()
                if low.startswith("ucla") or low.startswith("shapes"):
                    continue
            yield lineno, line


def _tokens(line: str) -> list[str]:
    return line.replace(":", " : ").split()


def _num(path: Path, lineno: int, tok: str, what: str = "a number") -> float:
    try:
        v = float(tok)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        where = "" if what == "a number" else f" ({what})"
        raise BookshelfError(f"{path}:{lineno}: expected a number, found '{tok}'{where}")
    return v


def _count(path: Path, lineno: int, tok: list[str], what: str) -> int:
    """The value of a 'Key : N' header line."""
    if len(tok) != 3 or tok[1] != ":":
        raise BookshelfError(f"{path}:{lineno}: expected '{what} : <count>'")
    v = _num(path, lineno, tok[2], "a count")
    if v < 0 or v != int(v):
        raise BookshelfError(f"{path}:{lineno}: expected a whole count after '{what} :', found '{tok[2]}'")
    return int(v)


def _check_count(path: Path, header: tuple[int, int] | None, what: str, found: int) -> None:
    if header is not None and header[1] != found:
        raise BookshelfError(f"{path}:{header[0]}: {what} says {header[1]}, the file lists {found}")


# ------------------------------------------------------------------------------------------------ .aux
def _read_aux(aux_path: Path) -> dict[str, Path]:
    if not aux_path.is_file():
        raise BookshelfError(f"{aux_path}: .aux file not found")
    names: list[tuple[int, str]] = []
    seen_colon = False
    for lineno, line in _lines(aux_path):
        if ":" in line:
            if seen_colon:
                raise BookshelfError(f"{aux_path}:{lineno}: a second 'RowBasedPlacement :' line")
            seen_colon = True
            line = line.split(":", 1)[1]
        elif not seen_colon:
            raise BookshelfError(f"{aux_path}:{lineno}: expected 'RowBasedPlacement : a.nodes a.nets ...'")
        names += [(lineno, t) for t in line.split()]
    if not seen_colon:
        raise BookshelfError(f"{aux_path}:1: expected 'RowBasedPlacement : a.nodes a.nets ...'")
    files: dict[str, Path] = {}
    where: dict[str, int] = {}
    for lineno, name in names:
        suffix = Path(name).suffix.lower()
        if suffix in files:
            raise BookshelfError(f"{aux_path}:{lineno}: names two {suffix} files ({files[suffix].name}, {name})")
        files[suffix] = aux_path.parent / name
        where[suffix] = lineno
    for need in (".nodes", ".nets"):
        if need not in files:
            raise BookshelfError(f"{aux_path}:1: the .aux names no {need} file (expected 'RowBasedPlacement : "
                                 f"a.nodes a.nets a.wts a.pl a.scl')")
        if not files[need].is_file():
            raise BookshelfError(f"{aux_path}:{where[need]}: names {files[need].name}, which is not in "
                                 f"{aux_path.parent} (a {need} file is required)")
    for opt in (".wts", ".shapes", ".pl", ".scl"):
        if opt in files and not files[opt].is_file():
            log.warning("%s: named by %s but missing; read without it", files[opt], aux_path.name)
            del files[opt]
    total = sum(p.stat().st_size for p in files.values() if p.is_file())
    if total > MAX_BOOKSHELF_BYTES:
        raise BookshelfError(f"{aux_path}: {total / 1e9:.1f} GB of Bookshelf files; the limit is "
                             f"{MAX_BOOKSHELF_BYTES / 1e9:.0f} GB")
    return files


# ------------------------------------------------------------------------------------------------ .nodes
def _read_nodes(path: Path, b: NetlistBuilder) -> list[str]:
    """Adds every node to b; returns each node's kind ('', 'terminal' or 'terminal_ni')."""
    kinds: list[str] = []
    num_nodes = num_terms = None
    n_terms = 0
    for lineno, line in _lines(path):
        tok = _tokens(line)
        key = tok[0].lower()
        if key == "numnodes":
            num_nodes = (lineno, _count(path, lineno, tok, "NumNodes"))
            continue
        if key == "numterminals":
            num_terms = (lineno, _count(path, lineno, tok, "NumTerminals"))
            continue
        if len(tok) not in (3, 4):
            raise BookshelfError(f"{path}:{lineno}: expected 'name width height [terminal|terminal_NI]', "
                                 f"found '{line}'")
        w, h = _num(path, lineno, tok[1], "a width"), _num(path, lineno, tok[2], "a height")
        if w < 0 or h < 0:
            raise BookshelfError(f"{path}:{lineno}: node {tok[0]} has a negative size {w:g} x {h:g}")
        kind = tok[3].lower() if len(tok) == 4 else ""
        if kind not in ("", "terminal", "terminal_ni"):
            raise BookshelfError(f"{path}:{lineno}: expected 'terminal' or 'terminal_NI' after the size, "
                                 f"found '{tok[3]}'")
        is_term = kind != ""
        is_io = kind == "terminal_ni" or (is_term and w * h == 0)
        n_terms += is_term
        if tok[0] in b.cell_idx:
            raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is listed twice")
        b.add_cell(tok[0], IO_TYPE if is_io else ("MACRO" if is_term else "CELL"), w, h, fixed=is_term, io=is_io)
        kinds.append(kind)
    _check_count(path, num_nodes, "NumNodes", len(kinds))
    _check_count(path, num_terms, "NumTerminals", n_terms)
    if not kinds:
        raise BookshelfError(f"{path}: lists no nodes")
    return kinds


# ------------------------------------------------------------------------------------------------ .nets
def _read_nets(path: Path, b: NetlistBuilder, nodes_name: str) -> None:
    current: str | None = None
    remaining = 0
    unnamed = 0
    n_nets = n_pins = 0
    num_nets = num_pins = None
    last_line = degree_line = 0
    cell_idx, cells, pins = b.cell_idx, b.cells, b.pins
    members: list[int] = []
    for lineno, line in _lines(path):
        last_line = lineno
        tok = _tokens(line)
        key = tok[0].lower() if tok[0][0] in "nN" else ""
        if key == "numnets":
            num_nets = (lineno, _count(path, lineno, tok, "NumNets"))
            continue
        if key == "numpins":
            num_pins = (lineno, _count(path, lineno, tok, "NumPins"))
            continue
        if key == "netdegree":
            if remaining:
                raise BookshelfError(f"{path}:{lineno}: net {current} (line {degree_line}) has {remaining} "
                                     f"pins fewer than its NetDegree")
            if len(tok) < 3 or tok[1] != ":" or len(tok) > 4:
                raise BookshelfError(f"{path}:{lineno}: expected 'NetDegree : <pins> [name]', found '{line}'")
            deg = _num(path, lineno, tok[2], "a pin count")
            if deg < 0 or deg != int(deg):
                raise BookshelfError(f"{path}:{lineno}: expected a whole pin count, found '{tok[2]}'")
            remaining = int(deg)
            if len(tok) == 4:
                current = tok[3]
            else:
                current = f"net{unnamed}"
                unnamed += 1
                while current in b.net_members:
                    current = f"net{unnamed}"
                    unnamed += 1
            if current in b.net_members:
                raise BookshelfError(f"{path}:{lineno}: net '{current}' is defined twice")
            members = b.net_members[current] = []
            degree_line = lineno
            n_nets += 1
            continue
        if current is None:
            raise BookshelfError(f"{path}:{lineno}: expected 'NetDegree : <pins> [name]' before pin lines, "
                                 f"found '{line}'")
        if remaining <= 0:
            raise BookshelfError(f"{path}:{lineno}: net {current} (line {degree_line}) has more pins than its "
                                 f"NetDegree")
        # a pin line, the hot path: 'node [I|O|B] [: dx dy]'
        cid = cell_idx.get(tok[0])
        if cid is None:
            raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is not in {nodes_name}")
        n_tok = len(tok)
        colon = 2 if n_tok == 5 else (1 if n_tok == 4 else n_tok)
        if n_tok > 5 or n_tok == 3 or (colon < n_tok and tok[colon] != ":"):
            raise BookshelfError(f"{path}:{lineno}: expected 'node [I|O|B] [: dx dy]', found '{line}'")
        direction = PIN_INOUT
        if colon == 2:
            direction = _DIRS.get(tok[1].upper(), -1)
            if direction < 0:
                raise BookshelfError(f"{path}:{lineno}: expected a pin direction I, O or B, found '{tok[1]}'")
        dx = _num(path, lineno, tok[colon + 1], "a pin x offset") if colon < n_tok else 0.0
        dy = _num(path, lineno, tok[colon + 2], "a pin y offset") if colon < n_tok else 0.0
        cell = cells[cid]
        members.append(len(pins))
        pins.append((cid, dx + cell[2] / 2, dy + cell[3] / 2, f"P{len(pins)}", direction))
        remaining -= 1
        n_pins += 1
    if remaining:
        raise BookshelfError(f"{path}:{last_line}: the file ends inside net {current} (line {degree_line}), "
                             f"{remaining} of its pins are missing")
    _check_count(path, num_nets, "NumNets", n_nets)
    _check_count(path, num_pins, "NumPins", n_pins)


# ------------------------------------------------------------------------------------------------ .wts
def _read_wts(path: Path, b: NetlistBuilder) -> None:
    for lineno, line in _lines(path):
        tok = _tokens(line)
        if ":" in tok:      # a 'NumNets : n'-style header
            continue
        if len(tok) != 2:
            raise BookshelfError(f"{path}:{lineno}: expected 'name weight', found '{line}'")
        wt = _num(path, lineno, tok[1], "a weight")
        if wt < 0:
            raise BookshelfError(f"{path}:{lineno}: weight {wt:g} of '{tok[0]}' is negative")
        if tok[0] in b.net_members:
            b.net_weights[tok[0]] = wt
        # else: a node weight (ISPD 2005 lists one per node), which placement does not use


# ------------------------------------------------------------------------------------------------ .shapes
def _read_shapes(path: Path, b: NetlistBuilder, kinds: list[str], nodes_name: str) -> set[int]:
    """Splits each listed fixed node into a pin anchor plus one obstacle per rectangle; returns the anchors."""
    num = None
    current: str | None = None
    remaining = 0
    split: set[int] = set()
    last_line = head_line = 0
    for lineno, line in _lines(path):
        last_line = lineno
        tok = _tokens(line)
        if tok[0].lower() == "numnonrectangularnodes":
            num = (lineno, _count(path, lineno, tok, "NumNonRectangularNodes"))
            continue
        if len(tok) == 3 and tok[1] == ":":
            if remaining:
                raise BookshelfError(f"{path}:{lineno}: node {current} (line {head_line}) has {remaining} "
                                     f"shapes fewer than announced")
            cid = b.cell_idx.get(tok[0])
            if cid is None:
                raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is not in {nodes_name}")
            if not kinds[cid]:
                raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is movable; shapes are only for "
                                     f"terminals (fixed blocks)")
            n = _num(path, lineno, tok[2], "a shape count")
            if n < 1 or n != int(n):
                raise BookshelfError(f"{path}:{lineno}: expected a whole shape count >= 1, found '{tok[2]}'")
            if cid in split:
                raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is listed twice")
            current, remaining, head_line = tok[0], int(n), lineno
            name, ctype, _w, _h, fixed, io, x, y = b.cells[cid]
            b.cells[cid] = (name, ctype, 0.0, 0.0, fixed, io, x, y)   # pins keep their offsets (from lower-left)
            split.add(cid)
            continue
        if current is None or remaining <= 0:
            raise BookshelfError(f"{path}:{lineno}: expected 'node : <number of shapes>', found '{line}'")
        if len(tok) != 5:
            raise BookshelfError(f"{path}:{lineno}: expected 'shape_name x y width height', found '{line}'")
        sx, sy, sw, sh = (_num(path, lineno, t) for t in tok[1:])
        if sw < 0 or sh < 0:
            raise BookshelfError(f"{path}:{lineno}: shape {tok[0]} of {current} has a negative size")
        b.add_cell(f"{current}/{tok[0]}", "MACRO", sw, sh, fixed=True, io=kinds[b.cell_idx[current]] ==
                   "terminal_ni", x=sx, y=sy)
        kinds.append(kinds[b.cell_idx[current]])
        remaining -= 1
    if remaining:
        raise BookshelfError(f"{path}:{last_line}: the file ends inside node {current} (line {head_line}), "
                             f"{remaining} of its shapes are missing")
    _check_count(path, num, "NumNonRectangularNodes", len(split))
    return split


# ------------------------------------------------------------------------------------------------ .pl
def _read_pl(path: Path, nl: Netlist, nodes_name: str) -> np.ndarray:
    """Positions, /FIXED and orientations into nl; returns which cells the .pl placed."""
    idx = nl.index()
    seen = np.zeros(nl.n_cells, dtype=bool)
    orient = list(nl.cell_orient) if nl.cell_orient else ["N"] * nl.n_cells
    for lineno, line in _lines(path):
        tok = _tokens(line)
        c = idx.get(tok[0])
        if c is None:
            raise BookshelfError(f"{path}:{lineno}: node '{tok[0]}' is not in {nodes_name}")
        if len(tok) < 3:
            raise BookshelfError(f"{path}:{lineno}: expected 'name x y : orientation [/FIXED|/FIXED_NI]', "
                                 f"found '{line}'")
        x, y = _num(path, lineno, tok[1], "an x coordinate"), _num(path, lineno, tok[2], "a y coordinate")
        rest = tok[3:]
        if rest and rest[0] == ":":
            rest = rest[1:]
            if not rest or rest[0].upper() not in ORIENTATIONS:
                raise BookshelfError(f"{path}:{lineno}: expected an orientation ({', '.join(ORIENTATIONS)}) "
                                     f"after ':', found '{rest[0] if rest else ''}'")
            orient[c] = rest[0].upper()
            rest = rest[1:]
        for flag in rest:
            f = flag.upper()
            if f == "/FIXED":
                nl.cell_fixed[c] = True
            elif f == "/FIXED_NI":
                nl.cell_fixed[c] = True
                nl.cell_is_io[c] = True
            else:
                raise BookshelfError(f"{path}:{lineno}: expected '/FIXED' or '/FIXED_NI', found '{flag}'")
        nl.x[c], nl.y[c] = x, y
        seen[c] = True
    nl.cell_orient = orient
    return seen


# ------------------------------------------------------------------------------------------------ .scl
def _read_scl(path: Path) -> list[Row]:
    rows: list[Row] = []
    cur: dict | None = None
    subrows: list[tuple[float, int]] = []
    num_rows = None
    start_line = 0
    n_blocks = 0
    for lineno, line in _lines(path):
        tok = _tokens(line)
        key = tok[0].lower()
        if key == "numrows":
            num_rows = (lineno, _count(path, lineno, tok, "NumRows"))
            continue
        if key == "corerow":
            if cur is not None:
                raise BookshelfError(f"{path}:{lineno}: expected 'End' closing the row of line {start_line}")
            if len(tok) > 1 and tok[1].lower() != "horizontal":
                raise BookshelfError(f"{path}:{lineno}: only horizontal rows are supported, found '{tok[1]}'")
            cur, subrows, start_line = {"orient": "N"}, [], lineno
            n_blocks += 1
            continue
        if cur is None:
            raise BookshelfError(f"{path}:{lineno}: expected 'CoreRow Horizontal', found '{line}'")
        if key == "end":
            missing = [k for k, label in (("y", "Coordinate"), ("h", "Height")) if k not in cur]
            if missing or not subrows:
                need = [label for k, label in (("y", "Coordinate"), ("h", "Height")) if k in missing]
                need += [] if subrows else ["SubrowOrigin/NumSites"]
                raise BookshelfError(f"{path}:{lineno}: the row of line {start_line} ends without "
                                     f"{', '.join(need)}")
            step = cur.get("sp") or cur.get("sw") or 1.0
            for x0, n_sites in subrows:
                rows.append(Row(y=cur["y"], x0=x0, x1=x0 + n_sites * step, site_w=step, height=cur["h"],
                                orient=cur["orient"]))
            cur = None
            continue
        if len(tok) < 3 or tok[1] != ":":
            raise BookshelfError(f"{path}:{lineno}: expected 'Keyword : value', found '{line}'")
        if key == "coordinate":
            cur["y"] = _num(path, lineno, tok[2], "a row y coordinate")
        elif key == "height":
            cur["h"] = _num(path, lineno, tok[2], "a row height")
            if cur["h"] <= 0:
                raise BookshelfError(f"{path}:{lineno}: row height must be positive, found '{tok[2]}'")
        elif key in ("sitewidth", "sitespacing"):
            v = _num(path, lineno, tok[2], "a site width")
            if v <= 0:
                raise BookshelfError(f"{path}:{lineno}: {tok[0]} must be positive, found '{tok[2]}'")
            cur["sw" if key == "sitewidth" else "sp"] = v
        elif key == "siteorient":
            o = tok[2].upper()
            cur["orient"] = o if o in ("N", "FS", "S", "FN") else "N"   # ISPD'02 writes 0/1 here: N
        elif key == "subroworigin":
            x0 = _num(path, lineno, tok[2], "a subrow x origin")
            k = next((i for i, t in enumerate(tok) if t.lower() == "numsites"), None)
            if k is None or len(tok) < k + 3 or tok[k + 1] != ":":
                raise BookshelfError(f"{path}:{lineno}: expected 'SubrowOrigin : x NumSites : n', found '{line}'")
            n = _num(path, lineno, tok[k + 2], "a site count")
            if n < 1 or n != int(n):
                raise BookshelfError(f"{path}:{lineno}: expected a whole site count >= 1, found '{tok[k + 2]}'")
            subrows.append((x0, int(n)))
        # Sitesymmetry and unknown keys carry nothing the placer uses
    if cur is not None:
        raise BookshelfError(f"{path}:{start_line}: the row starting here has no 'End' (truncated file?)")
    _check_count(path, num_rows, "NumRows", n_blocks)
    return rows


# ------------------------------------------------------------------------------------------------ reader
def read_bookshelf(aux_path: str | Path) -> Netlist:
    """Read a Bookshelf benchmark named by its .aux. Raises BookshelfError (an EngineError) on bad input."""
    aux_path = Path(aux_path)
    files = _read_aux(aux_path)
    b = NetlistBuilder(aux_path.stem)
    nodes = files[".nodes"]
    kinds = _read_nodes(nodes, b)
    n_nodes = len(kinds)
    _read_nets(files[".nets"], b, nodes.name)
    if ".wts" in files:
        _read_wts(files[".wts"], b)
    shape_anchor = _read_shapes(files[".shapes"], b, kinds, nodes.name) if ".shapes" in files else set()
    nl = b.build()
    terms = np.array([bool(k) for k in kinds[:n_nodes]])
    if ".pl" in files:
        # A shape-split anchor takes its .pl position (its pins hang off it); the rectangles keep theirs.
        seen = _read_pl(files[".pl"], nl, nodes.name)
        seen[n_nodes:] = True
        for i in sorted(shape_anchor):
            if not seen[i]:
                raise BookshelfError(f"{files['.pl']}: node {nl.cell_names[i]} has shapes but no position")
        unplaced = np.flatnonzero(~seen[:n_nodes] & terms)
        if len(unplaced):
            raise BookshelfError(f"{files['.pl']}: {len(unplaced)} terminals have no position (e.g. "
                                 f"{nl.cell_names[int(unplaced[0])]}); fixed nodes need a line 'name x y : N'")
    elif terms.any():
        raise BookshelfError(f"{aux_path}: {int(terms.sum())} terminals (e.g. "
                             f"{nl.cell_names[int(np.flatnonzero(terms)[0])]}) need positions, and the .aux "
                             f"names no .pl file")
    if ".scl" in files:
        nl.rows = _read_scl(files[".scl"])
        if nl.rows:
            x0 = min(r.x0 for r in nl.rows)
            x1 = max(r.x1 for r in nl.rows)
            y0 = min(r.y for r in nl.rows)
            y1 = max(r.y + r.height for r in nl.rows)
            nl.core = (x0, y0, x1, y1)
            fixed = nl.cell_fixed
            if fixed.any():
                x0 = min(x0, float(nl.x[fixed].min()))
                y0 = min(y0, float(nl.y[fixed].min()))
                x1 = max(x1, float((nl.x + nl.cell_w)[fixed].max()))
                y1 = max(y1, float((nl.y + nl.cell_h)[fixed].max()))
            nl.die = (x0, y0, x1, y1)
            row_h = min(r.height for r in nl.rows)
            for c in np.flatnonzero(~nl.cell_fixed & (nl.cell_h > row_h + _EPS)):
                nl.cell_types[int(c)] = "MACRO"          # a movable macro (taller than a row)
    nl.validate()
    return nl


def write_bookshelf(netlist: Netlist, out_dir: str | Path, name: str | None = None) -> Path:
    """Write .aux/.nodes/.nets/.wts/.pl/.scl; returns the .aux path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or netlist.name
    term = netlist.cell_fixed
    with open(out_dir / f"{name}.nodes", "w") as f:
        f.write("UCLA nodes 1.0\n\n")
        f.write(f"NumNodes : {netlist.n_cells}\nNumTerminals : {int(term.sum())}\n")
        for c in range(netlist.n_cells):
            kind = ""
            if netlist.cell_is_io[c]:
                kind = " terminal_NI"
            elif term[c]:
                kind = " terminal"
            f.write(f"  {netlist.cell_names[c]} {netlist.cell_w[c]:.6g} {netlist.cell_h[c]:.6g}{kind}\n")
    with open(out_dir / f"{name}.nets", "w") as f:
        f.write("UCLA nets 1.0\n\n")
        f.write(f"NumNets : {netlist.n_nets}\nNumPins : {len(netlist.net_pins)}\n")
        for n in range(netlist.n_nets):
            pins = netlist.net_pins[netlist.net_start[n]:netlist.net_start[n + 1]]
            f.write(f"NetDegree : {len(pins)} {netlist.net_names[n]}\n")
            for p in pins:
                c = netlist.pin_cell[p]
                dx = netlist.pin_dx[p] - netlist.cell_w[c] / 2
                dy = netlist.pin_dy[p] - netlist.cell_h[c] / 2
                f.write(f"  {netlist.cell_names[c]} {_DIR_CHARS[int(netlist.pin_dir[p])]} : {dx:.6g} {dy:.6g}\n")
    with open(out_dir / f"{name}.wts", "w") as f:
        f.write("UCLA wts 1.0\n\n")
        for net_id in np.flatnonzero(netlist.net_weight != 1.0):
            f.write(f"  {netlist.net_names[net_id]} {netlist.net_weight[net_id]:.6g}\n")
    orient = netlist.cell_orient or ["N"] * netlist.n_cells
    with open(out_dir / f"{name}.pl", "w") as f:
        f.write("UCLA pl 1.0\n\n")
        for c in range(netlist.n_cells):
            fixed = " /FIXED_NI" if netlist.cell_is_io[c] else (" /FIXED" if term[c] else "")
            o = orient[c] if orient[c] in ORIENTATIONS else "N"
            f.write(f"  {netlist.cell_names[c]} {netlist.x[c]:.6f} {netlist.y[c]:.6f} : {o}{fixed}\n")
    with open(out_dir / f"{name}.scl", "w") as f:
        f.write("UCLA scl 1.0\n\n")
        f.write(f"NumRows : {len(netlist.rows)}\n\n")
        for row in netlist.rows:
            f.write("CoreRow Horizontal\n")
            f.write(f"  Coordinate : {row.y:.6f}\n  Height : {row.height:.6g}\n  Sitewidth : {row.site_w:.6g}\n")
            f.write(f"  Sitespacing : {row.site_w:.6g}\n  Siteorient : {row.orient}\n  Sitesymmetry : Y\n")
            f.write(f"  SubrowOrigin : {row.x0:.6f} NumSites : {row.num_sites}\nEnd\n")
    aux = out_dir / f"{name}.aux"
    aux.write_text(f"RowBasedPlacement : {name}.nodes {name}.nets {name}.wts {name}.pl {name}.scl\n")
    return aux
