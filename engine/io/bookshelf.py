"""Bookshelf placement format (ISPD/ICCAD contests): .aux, .nodes, .nets, .wts, .pl, .scl.

Bookshelf pin offsets are from the cell's centre; the Netlist's are from its lower-left corner, converted here.
Terminals that are zero-size (or marked ``terminal_NI``) become IO cells; sized terminals are fixed macros.
Units are whatever the benchmark uses (treated as microns).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.netlist import IO_TYPE, PIN_INOUT, PIN_INPUT, PIN_OUTPUT, Netlist, NetlistBuilder, Row

_DIRS = {"I": PIN_INPUT, "O": PIN_OUTPUT, "B": PIN_INOUT}
_DIR_CHARS = {PIN_INPUT: "I", PIN_OUTPUT: "O", PIN_INOUT: "B"}
MAX_BOOKSHELF_BYTES = 2 * 1024**3


def _lines(path: Path):
    """Content lines with their numbers: no comments, no blank lines, no 'UCLA' header."""
    if not path.is_file():
        raise EngineError(f"{path}: file not found (named by the .aux)")
    with open(path, errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            hash_at = line.find("#")
            if hash_at >= 0:
                line = line[:hash_at]
            line = line.strip()
            if not line or line.startswith("UCLA"):
                continue
            yield lineno, line


def _num(path: Path, lineno: int, tok: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise EngineError(f"{path}:{lineno}: expected a number, found '{tok}'") from None


def read_bookshelf(aux_path: str | Path) -> Netlist:
    aux_path = Path(aux_path)
    if not aux_path.is_file():
        raise EngineError(f"{aux_path}: .aux file not found")
    text = aux_path.read_text().split(":", 1)
    if len(text) != 2:
        raise EngineError(f"{aux_path}:1: expected 'RowBasedPlacement : a.nodes a.nets ...'")
    files = {Path(f).suffix: aux_path.parent / f for f in text[1].split()}
    for need in (".nodes", ".nets"):
        if need not in files:
            raise EngineError(f"{aux_path}: the .aux names no {need} file")
    total = sum(p.stat().st_size for p in files.values() if p.exists())
    if total > MAX_BOOKSHELF_BYTES:
        raise EngineError(f"{aux_path}: {total / 1e9:.1f} GB of Bookshelf files; the limit is "
                          f"{MAX_BOOKSHELF_BYTES / 1e9:.0f} GB")
    b = NetlistBuilder(aux_path.stem)
    nodes = files[".nodes"]
    for lineno, line in _lines(nodes):
        tok = line.split()
        if tok[0] in ("NumNodes", "NumTerminals"):
            continue
        if len(tok) < 3:
            raise EngineError(f"{nodes}:{lineno}: a node needs 'name width height [terminal]'")
        w, h = _num(nodes, lineno, tok[1]), _num(nodes, lineno, tok[2])
        kind = tok[3] if len(tok) > 3 else ""
        is_term = kind.startswith("terminal")
        is_io = is_term and (kind == "terminal_NI" or w * h == 0)
        b.add_cell(tok[0], IO_TYPE if is_io else ("MACRO" if is_term else "CELL"), w, h, fixed=is_term, io=is_io)
    nets = files[".nets"]
    current: str | None = None
    remaining = 0
    unnamed = 0
    for lineno, line in _lines(nets):
        tok = line.replace(":", " : ").split()
        if tok[0] in ("NumNets", "NumPins"):
            continue
        if tok[0] == "NetDegree":
            if remaining:
                raise EngineError(f"{nets}:{lineno}: net {current} has {remaining} pins fewer than its NetDegree")
            remaining = int(_num(nets, lineno, tok[2]))
            if len(tok) > 3:
                current = tok[3]
            else:
                current = f"net{unnamed}"
                unnamed += 1
            b.net_members.setdefault(current, [])
            continue
        if current is None or remaining <= 0:
            raise EngineError(f"{nets}:{lineno}: pin line outside a NetDegree block")
        cid = b.cell_idx.get(tok[0])
        if cid is None:
            raise EngineError(f"{nets}:{lineno}: node '{tok[0]}' is not in {nodes.name}")
        direction = _DIRS.get(tok[1], PIN_INOUT) if len(tok) > 1 else PIN_INOUT
        dx = dy = 0.0
        if ":" in tok:
            k = tok.index(":")
            dx, dy = _num(nets, lineno, tok[k + 1]), _num(nets, lineno, tok[k + 2])
        w, h = b.cells[cid][2], b.cells[cid][3]
        b.add_pin(cid, current, dx + w / 2, dy + h / 2, f"P{len(b.pins)}", direction)
        remaining -= 1
    if remaining:
        raise EngineError(f"{nets}: the last net {current} is missing {remaining} pins")
    if ".wts" in files and files[".wts"].exists():
        for lineno, line in _lines(files[".wts"]):
            tok = line.split()
            if len(tok) >= 2 and tok[0] in b.net_members:
                b.net_weights[tok[0]] = _num(files[".wts"], lineno, tok[1])
    nl = b.build()
    if ".pl" in files:
        pl = files[".pl"]
        idx = nl.index()
        for lineno, line in _lines(pl):
            tok = line.split()
            c = idx.get(tok[0])
            if c is None:
                raise EngineError(f"{pl}:{lineno}: node '{tok[0]}' is not in {nodes.name}")
            nl.x[c], nl.y[c] = _num(pl, lineno, tok[1]), _num(pl, lineno, tok[2])
            if "/FIXED" in tok or "/FIXED_NI" in tok:
                nl.cell_fixed[c] = True
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
    nl.validate()
    return nl


def _read_scl(path: Path) -> list[Row]:
    rows: list[Row] = []
    cur: dict = {}
    for lineno, line in _lines(path):
        tok = line.replace(":", " : ").split()
        key = tok[0]
        if key == "CoreRow":
            cur = {"orient": "N"}
        elif key == "Coordinate":
            cur["y"] = _num(path, lineno, tok[2])
        elif key == "Height":
            cur["h"] = _num(path, lineno, tok[2])
        elif key == "Sitewidth":
            cur["sw"] = _num(path, lineno, tok[2])
        elif key == "Sitespacing":
            cur["sp"] = _num(path, lineno, tok[2])
        elif key == "Siteorient":
            cur["orient"] = tok[2] if tok[2] in ("N", "FS", "S", "FN") else "N"
        elif key == "SubrowOrigin":
            cur["x"] = _num(path, lineno, tok[2])
            k = tok.index("NumSites")
            cur["n"] = int(_num(path, lineno, tok[k + 2]))
        elif key == "End":
            if not {"y", "h", "x", "n"} <= cur.keys():
                raise EngineError(f"{path}:{lineno}: row ends without Coordinate/Height/SubrowOrigin/NumSites")
            step = cur.get("sp") or cur.get("sw") or 1.0
            rows.append(Row(y=cur["y"], x0=cur["x"], x1=cur["x"] + cur["n"] * step, site_w=step, height=cur["h"],
                            orient=cur["orient"]))
    return rows


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
        for n in np.flatnonzero(netlist.net_weight != 1.0):
            f.write(f"  {netlist.net_names[n]} {netlist.net_weight[n]:.6g}\n")
    with open(out_dir / f"{name}.pl", "w") as f:
        f.write("UCLA pl 1.0\n\n")
        for c in range(netlist.n_cells):
            fixed = " /FIXED_NI" if netlist.cell_is_io[c] else (" /FIXED" if term[c] else "")
            f.write(f"  {netlist.cell_names[c]} {netlist.x[c]:.6f} {netlist.y[c]:.6f} : N{fixed}\n")
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
