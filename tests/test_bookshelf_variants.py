"""The Bookshelf reader on every published spelling (ISPD 2002/2005/2006/2011, ICCAD'04 IBM-MS) and on broken files.

One small synthetic benchmark (a few dozen cells, a fixed block, pads, two movable macros) is written in each
variant's spelling; every variant must read to the same netlist. Each broken file must give a one-line
EngineError that names file:line.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError
from engine.io.bookshelf import BookshelfError, read_bookshelf, write_bookshelf
from engine.place.legalize import build_segments

ROW_H, SITE, N_ROWS, N_SITES = 12.0, 1.0, 10, 160


def _design(seed: int = 3) -> dict:
    """Nodes, nets (pin offsets from the node centre, as Bookshelf has them), positions and orientations."""
    rng = np.random.default_rng(seed)
    nodes = []  # (name, w, h, kind)
    for i in range(30):
        nodes.append((f"c{i}", float(rng.integers(2, 7)), ROW_H, ""))
    nodes += [("m0", 20.0, 3 * ROW_H, ""), ("m1", 16.0, 2 * ROW_H, "")]          # movable macros
    nodes.append(("b0", 30.0, 2 * ROW_H, "terminal"))                            # fixed block
    nodes += [(f"p{i}", 0.0, 0.0, "terminal") for i in range(6)]                   # pads
    pl = {}
    for name, *_ in nodes:
        if name == "b0":
            pl[name] = (60.0, 48.0, "N")
        elif name.startswith("p"):
            k = int(name[1:])
            pl[name] = (0.0 if k % 2 == 0 else float(N_SITES), 10.0 + 15.0 * k, "N")
        else:
            pl[name] = (float(rng.integers(0, 120)), ROW_H * float(rng.integers(0, 6)),
                        "FS" if rng.random() < 0.3 else "N")
    names = [n[0] for n in nodes]
    size = {n[0]: (n[1], n[2]) for n in nodes}
    nets = []  # (name, [(node, dir, dx, dy)])
    for j in range(40):
        deg = int(rng.integers(2, 6))
        members = rng.choice(len(names), size=deg, replace=False)
        pins = []
        for k, m in enumerate(members):
            node = names[int(m)]
            w, h = size[node]
            if rng.random() < 0.5 or w == 0:
                dx = dy = 0.0
            else:
                dx, dy = float(rng.integers(-int(w // 2), int(w // 2) + 1)), float(rng.integers(-5, 6))
            pins.append((node, "O" if k == 0 else "I", dx, dy))
        nets.append((f"n{j}", pins))
    return {"nodes": nodes, "nets": nets, "pl": pl}


# ------------------------------------------------------------------------------------------------ writers
def _write(folder: Path, name: str, files: dict[str, str], aux_order: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in files.items():
        (folder / f"{name}{suffix}").write_text(text)
    aux = folder / f"{name}.aux"
    aux.write_text("RowBasedPlacement : " + " ".join(f"{name}{s}" for s in aux_order) + "\n")
    return aux


def _scl(key: dict, orient: str, subrow_line) -> str:
    out = [f"UCLA scl 1.0\n# Created : today\n\n{key['numrows']} : {N_ROWS}\n"]
    for r in range(N_ROWS):
        out.append(f"{key['corerow']} Horizontal\n  {key['coordinate']} : {r * ROW_H:g}\n"
                   f"  {key['height']} : {ROW_H:g}\n  {key['sitewidth']} : {SITE:g}\n"
                   f"  {key['sitespacing']} : {SITE:g}\n  {key['siteorient']} : {orient}\n"
                   f"  {key['sitesymmetry']} : 1\n  {subrow_line(0, N_SITES)}\n{key['end']}\n")
    return "".join(out)


def write_ispd2005(d: dict, folder: Path) -> Path:
    """adaptec/bigblue spelling: named nets, offsets on every pin, node weights in .wts, /FIXED terminals."""
    nodes = ["UCLA nodes 1.0\n# Created : Nov 2005\n\n",
             f"NumNodes : {len(d['nodes'])}\nNumTerminals : {sum(1 for n in d['nodes'] if n[3])}\n"]
    nodes += [f"   {n}   {w:g}   {h:g}{'   terminal' if k else ''}\n" for n, w, h, k in d["nodes"]]
    nets = ["UCLA nets 1.0\n\n", f"NumNets : {len(d['nets'])}\nNumPins : {sum(len(p) for _, p in d['nets'])}\n\n"]
    for name, pins in d["nets"]:
        nets.append(f"NetDegree : {len(pins)}   {name}\n")
        nets += [f"   {n}  {dr} : {dx:.6f} {dy:.6f}\n" for n, dr, dx, dy in pins]
    wts = "UCLA wts 1.0\n\n" + "".join(f"   {n}   1\n" for n, *_ in d["nodes"])
    pl = ["UCLA pl 1.0\n\n"]
    kinds = {n: k for n, _, _, k in d["nodes"]}
    pl += [f"{n}\t{x:g}\t{y:g}\t: {o}{' /FIXED' if kinds[n] else ''}\n" for n, (x, y, o) in d["pl"].items()]
    keys = dict(numrows="NumRows", corerow="CoreRow", coordinate="Coordinate", height="Height",
                sitewidth="Sitewidth", sitespacing="Sitespacing", siteorient="Siteorient",
                sitesymmetry="Sitesymmetry", end="End")
    scl = _scl(keys, "1", lambda x, n: f"SubrowOrigin : {x:g}  NumSites : {n}")
    return _write(folder, "d", {".nodes": "".join(nodes), ".nets": "".join(nets), ".wts": wts,
                                ".pl": "".join(pl), ".scl": scl}, [".nodes", ".nets", ".wts", ".pl", ".scl"])


def write_ispd2006(d: dict, folder: Path) -> Path:
    """newblue spelling: colons without spaces, tabs, no .wts in the .aux, orientations spelled out."""
    nodes = ["UCLA nodes 1.0\n", f"NumNodes:{len(d['nodes'])}\nNumTerminals:{sum(1 for n in d['nodes'] if n[3])}\n"]
    nodes += [f"\t{n}\t{w:g}\t{h:g}{chr(9) + 'terminal' if k else ''}\n" for n, w, h, k in d["nodes"]]
    nets = ["UCLA nets 1.0\n", f"NumNets:{len(d['nets'])}\nNumPins:{sum(len(p) for _, p in d['nets'])}\n"]
    for name, pins in d["nets"]:
        nets.append(f"NetDegree:{len(pins)}\t{name}\n")
        nets += [f"\t{n}\t{dr}\t:\t{dx:g}\t{dy:g}\n" for n, dr, dx, dy in pins]
    kinds = {n: k for n, _, _, k in d["nodes"]}
    pl = ["UCLA pl 1.0\n"] + [f"{n} {x:g} {y:g} :{o}{' /FIXED' if kinds[n] else ''}\n"
                              for n, (x, y, o) in d["pl"].items()]
    keys = dict(numrows="NumRows", corerow="CoreRow", coordinate="Coordinate", height="Height",
                sitewidth="Sitewidth", sitespacing="Sitespacing", siteorient="Siteorient",
                sitesymmetry="Sitesymmetry", end="End")
    scl = _scl(keys, "N", lambda x, n: f"SubrowOrigin:{x:g}\tNumSites:{n}")
    return _write(folder, "d", {".nodes": "".join(nodes), ".nets": "".join(nets), ".pl": "".join(pl),
                                ".scl": scl}, [".nodes", ".nets", ".pl", ".scl"])


def write_iccad04(d: dict, folder: Path) -> Path:
    """IBM-MS (ICCAD'04 mixed-size) spelling: lower-case keywords, Subroworigin/Numsites, files in any order."""
    nodes = ["UCLA nodes 1.0\n", f"numnodes : {len(d['nodes'])}\nnumterminals : "
             f"{sum(1 for n in d['nodes'] if n[3])}\n"]
    nodes += [f"  {n} {w:g} {h:g}{' terminal' if k else ''}\n" for n, w, h, k in d["nodes"]]
    nets = ["UCLA nets 1.0\n", f"numnets : {len(d['nets'])}\nnumpins : {sum(len(p) for _, p in d['nets'])}\n"]
    for name, pins in d["nets"]:
        nets.append(f"netdegree : {len(pins)} {name}\n")
        nets += [f"  {n} {dr} : {dx:g} {dy:g}\n" for n, dr, dx, dy in pins]
    pl = ["UCLA pl 1.0\n"] + [f"{n} {x:g} {y:g} : {o}\n" for n, (x, y, o) in d["pl"].items()]
    keys = dict(numrows="numrows", corerow="corerow", coordinate="coordinate", height="height",
                sitewidth="sitewidth", sitespacing="sitespacing", siteorient="siteorient",
                sitesymmetry="sitesymmetry", end="end")
    scl = _scl(keys, "N", lambda x, n: f"Subroworigin : {x:g} Numsites : {n}")
    return _write(folder, "d", {".scl": scl, ".pl": "".join(pl), ".nets": "".join(nets),
                                ".nodes": "".join(nodes)}, [".scl", ".pl", ".nets", ".nodes"])


def write_ispd2002(d: dict, folder: Path) -> Path:
    """ISPD'02 IBM spelling: unnamed nets, offsets only where non-zero, orientation only where not N,
    Siteorient 1, and a .wts the .aux names but that is missing."""
    nodes = ["UCLA nodes 1.0\n", f"NumNodes : {len(d['nodes'])}\nNumTerminals : "
             f"{sum(1 for n in d['nodes'] if n[3])}\n"]
    nodes += [f"{n} {w:g} {h:g}{' terminal' if k else ''}\n" for n, w, h, k in d["nodes"]]
    nets = ["UCLA nets 1.0\n", f"NumNets : {len(d['nets'])}\nNumPins : {sum(len(p) for _, p in d['nets'])}\n"]
    for _name, pins in d["nets"]:
        nets.append(f"NetDegree : {len(pins)}\n")
        nets += [f"{n} {dr}{f' : {dx:g} {dy:g}' if dx or dy else ''}\n" for n, dr, dx, dy in pins]
    pl = ["UCLA pl 1.0\n"] + [f"{n} {x:g} {y:g}{'' if o == 'N' else f' : {o}'}\n"
                              for n, (x, y, o) in d["pl"].items()]
    keys = dict(numrows="NumRows", corerow="CoreRow", coordinate="Coordinate", height="Height",
                sitewidth="Sitewidth", sitespacing="Sitespacing", siteorient="Siteorient",
                sitesymmetry="Sitesymmetry", end="End")
    scl = _scl(keys, "1", lambda x, n: f"SubrowOrigin : {x:g} NumSites : {n}")
    return _write(folder, "d", {".nodes": "".join(nodes), ".nets": "".join(nets), ".pl": "".join(pl),
                                ".scl": scl}, [".nodes", ".nets", ".wts", ".pl", ".scl"])


VARIANTS = {"ispd2005": write_ispd2005, "ispd2006": write_ispd2006, "iccad04_ibm_ms": write_iccad04,
            "ispd2002": write_ispd2002}


def _canon(nl) -> dict:
    """The netlist with net names left out (ISPD'02 nets are unnamed)."""
    orient = nl.cell_orient or ["N"] * nl.n_cells
    cells = [(nl.cell_names[c], nl.cell_types[c], float(nl.cell_w[c]), float(nl.cell_h[c]), bool(nl.cell_fixed[c]),
              bool(nl.cell_is_io[c]), round(float(nl.x[c]), 6), round(float(nl.y[c]), 6), orient[c])
             for c in range(nl.n_cells)]
    nets = []
    for n in range(nl.n_nets):
        pins = nl.net_pins[nl.net_start[n]:nl.net_start[n + 1]]
        nets.append((tuple(sorted((nl.cell_names[nl.pin_cell[p]], round(float(nl.pin_dx[p]), 6),
                                   round(float(nl.pin_dy[p]), 6), int(nl.pin_dir[p])) for p in pins)),
                     float(nl.net_weight[n])))
    rows = sorted((r.y, r.x0, r.x1, r.site_w, r.height, r.orient) for r in nl.rows)
    return {"cells": sorted(cells), "nets": sorted(nets), "rows": rows, "core": nl.core, "die": nl.die}


def test_every_variant_reads_to_the_same_netlist(tmp_path: Path):
    d = _design()
    read = {v: read_bookshelf(write(d, tmp_path / v)) for v, write in VARIANTS.items()}
    ref = _canon(read["ispd2005"])
    for v, nl in read.items():
        assert _canon(nl) == ref, v
    nl = read["ispd2005"]
    # ... and that netlist is the design: sizes, pins (centre offsets -> lower-left), positions, rows.
    idx = nl.index()
    for name, w, h, kind in d["nodes"]:
        c = idx[name]
        assert (nl.cell_w[c], nl.cell_h[c]) == (w, h)
        assert nl.cell_fixed[c] == bool(kind)
        assert nl.cell_is_io[c] == (bool(kind) and w * h == 0)
        x, y, o = d["pl"][name]
        assert (nl.x[c], nl.y[c], nl.cell_orient[c]) == (x, y, o)
    size = {n: (w, h) for n, w, h, _ in d["nodes"]}
    want_pins = sorted((node, dx + size[node][0] / 2, dy + size[node][1] / 2) for _, pins in d["nets"]
                       for node, _, dx, dy in pins)
    got_pins = sorted((nl.cell_names[nl.pin_cell[p]], float(nl.pin_dx[p]), float(nl.pin_dy[p]))
                      for p in range(nl.n_pins))
    assert got_pins == want_pins
    assert nl.n_nets == len(d["nets"]) and nl.n_pins == sum(len(p) for _, p in d["nets"])
    assert len(nl.rows) == N_ROWS and nl.rows[0].num_sites == N_SITES and nl.core == (0, 0, N_SITES, N_ROWS * ROW_H)
    # movable macros: taller than a row, not terminals -> movable, typed MACRO; the fixed block stays fixed
    assert [nl.cell_types[idx[m]] for m in ("m0", "m1", "b0", "c0")] == ["MACRO", "MACRO", "MACRO", "CELL"]
    assert not nl.cell_fixed[idx["m0"]] and nl.cell_fixed[idx["b0"]]
    assert np.all(nl.net_weight == 1.0)   # the ISPD 2005 .wts holds node weights, which are not net weights


def test_write_then_read_keeps_the_netlist_and_orientations(tmp_path: Path):
    nl = read_bookshelf(write_ispd2005(_design(), tmp_path / "a"))
    back = read_bookshelf(write_bookshelf(nl, tmp_path / "b", "d"))
    assert _canon(back) == _canon(nl)
    assert "FS" in back.cell_orient and back.hpwl() == pytest.approx(nl.hpwl(), rel=1e-12)


# ------------------------------------------------------------------------------------------------ optional parts
def _mini(folder: Path, *, nodes: str, nets: str, pl: str | None = None, scl: str | None = None,
          wts: str | None = None, shapes: str | None = None, aux_extra: tuple[str, ...] = ()) -> Path:
    files = {".nodes": nodes, ".nets": nets}
    order = [".nodes", ".nets"]
    for suffix, text in ((".wts", wts), (".pl", pl), (".scl", scl), (".shapes", shapes)):
        if text is not None:
            files[suffix] = text
            order.append(suffix)
    return _write(folder, "x", files, order + list(aux_extra))


_SCL_4 = "".join(f"CoreRow Horizontal\n Coordinate : {10 * r}\n Height : 10\n Sitewidth : 1\n"
                 f" SubrowOrigin : 0 NumSites : 100\nEnd\n" for r in range(4))
_NODES = "NumNodes : 4\nNumTerminals : 2\na 4 10\nb 4 10\nblk 20 20 terminal\nio 0 0 terminal\n"
_NETS = "NumNets : 2\nNumPins : 5\nNetDegree : 3 n1\na O : 1 0\nb I\nblk I : -5 5\nNetDegree : 2 n2\nb O\nio I\n"
_PL = "a 1 0 : N\nb 5 0 : N\nblk 40 10 : N /FIXED\nio 0 15 : N /FIXED\n"


def test_net_weights_from_wts_node_weights_ignored(tmp_path: Path):
    wts = "UCLA wts 1.0\nNumNets:2\nn2 3.5\na 1\nblk 2\n"
    aux = _mini(tmp_path, nodes=_NODES, nets=_NETS, pl=_PL, scl=_SCL_4, wts=wts)
    nl = read_bookshelf(aux)
    assert dict(zip(nl.net_names, nl.net_weight.tolist())) == {"n1": 1.0, "n2": 3.5}


def test_pl_with_fixed_nodes_only_and_missing_pl(tmp_path: Path):
    nl = read_bookshelf(_mini(tmp_path / "a", nodes=_NODES, nets=_NETS, scl=_SCL_4,
                              pl="blk 40 10 : N /FIXED\nio 0 15 : N\n"))
    idx = nl.index()
    assert (nl.x[idx["blk"]], nl.y[idx["blk"]]) == (40, 10) and not nl.cell_fixed[idx["a"]]
    # terminals need a position: no .pl at all, or a .pl that leaves one out, is an error naming it
    with pytest.raises(BookshelfError, match=r"x\.aux: 2 terminals \(e\.g\. blk\) need positions"):
        read_bookshelf(_mini(tmp_path / "b", nodes=_NODES, nets=_NETS, scl=_SCL_4))
    with pytest.raises(BookshelfError, match=r"x\.pl: 1 terminals have no position \(e\.g\. io\)"):
        read_bookshelf(_mini(tmp_path / "c", nodes=_NODES, nets=_NETS, scl=_SCL_4, pl="blk 40 10 : N\n"))
    # a netlist of movable nodes needs no .pl; .wts/.shapes the .aux names but that are absent are skipped
    aux = _mini(tmp_path / "d", nodes="NumNodes : 2\na 1 10\nb 1 10\n", nets="NetDegree : 2\na\nb\n",
                aux_extra=(".wts", ".shapes"))
    assert read_bookshelf(aux).n_cells == 2


def test_terminal_ni_and_fixed_ni_are_fixed_but_placeable_over(tmp_path: Path):
    nodes = "NumNodes : 4\nNumTerminals : 2\na 4 10\nb 4 10\nni 30 10 terminal_NI\nblk 20 20 terminal\n"
    nets = "NetDegree : 3\na\nb\nni : 2 0\n"
    pl = "a 1 0 : N\nb 5 0 : N /FIXED_NI\nni 10 0 : N /FIXED_NI\nblk 60 0 : N /FIXED\n"
    nl = read_bookshelf(_mini(tmp_path, nodes=nodes, nets=nets, pl=pl, scl=_SCL_4))
    idx = nl.index()
    assert nl.cell_fixed[idx["ni"]] and nl.cell_is_io[idx["ni"]] and nl.cell_w[idx["ni"]] == 30
    assert nl.cell_fixed[idx["b"]] and nl.cell_is_io[idx["b"]]            # /FIXED_NI in the .pl
    assert nl.cell_fixed[idx["blk"]] and not nl.cell_is_io[idx["blk"]]
    segs = build_segments(nl)
    row0 = [(a, b) for a, b, y in zip(segs.x0, segs.x1, segs.y) if y == 0]
    assert row0 == [(0, 60), (80, 100)]      # only the terminal cuts the row; NI nodes can be placed over


def test_shapes_make_a_non_rectangular_block(tmp_path: Path):
    # an L-shaped block: 40 wide on rows 0-1, 10 wide on rows 2-3; the notch (50..80, rows 2-3) stays free
    nodes = "NumNodes : 3\nNumTerminals : 1\na 4 10\nb 4 10\nL 40 40 terminal\n"
    nets = "NetDegree : 3 n\na\nb\nL I : 0 0\n"
    pl = "a 1 0 : N\nb 5 0 : N\nL 40 0 : N /FIXED\n"
    shapes = ("shapes 1.0\nNumNonRectangularNodes : 1\nL : 2\n  Shape_0 40 0 40 20\n  Shape_1 40 20 10 20\n")
    nl = read_bookshelf(_mini(tmp_path, nodes=nodes, nets=nets, pl=pl, scl=_SCL_4, shapes=shapes))
    idx = nl.index()
    assert nl.n_cells == 5 and {"L/Shape_0", "L/Shape_1"} <= set(idx)
    assert nl.cell_w[idx["L"]] == 0 and nl.cell_fixed[idx["L"]]
    # L's pin is at its bounding box centre (40 + 20, 0 + 20), as the .nets says
    p = int(np.flatnonzero(nl.pin_cell == idx["L"])[0])
    assert (nl.x[idx["L"]] + nl.pin_dx[p], nl.y[idx["L"]] + nl.pin_dy[p]) == (60, 20)
    segs = build_segments(nl)
    by_row = {y: [(a, b) for a, b, yy in zip(segs.x0, segs.x1, segs.y) if yy == y] for y in (0, 20)}
    assert by_row[0] == [(0, 40), (80, 100)] and by_row[20] == [(0, 40), (50, 100)]


def test_a_core_row_with_several_subrows(tmp_path: Path):
    scl = ("NumRows : 1\nCoreRow Horizontal\n Coordinate : 0\n Height : 10\n Sitewidth : 2\n Sitespacing : 2\n"
           " SubrowOrigin : 0 NumSites : 10\n SubrowOrigin : 40 NumSites : 5\nEnd\n")
    nl = read_bookshelf(_mini(tmp_path, nodes="a 2 10\nb 2 10\n", nets="NetDegree : 2\na\nb\n", scl=scl))
    assert [(r.x0, r.x1, r.site_w) for r in nl.rows] == [(0, 20, 2), (40, 50, 2)]


# ------------------------------------------------------------------------------------------------ broken files
def _good(folder: Path) -> Path:
    return _mini(folder, nodes=_NODES, nets=_NETS, pl=_PL, scl=_SCL_4)


def _edit(folder: Path, suffix: str, text: str | None) -> None:
    p = folder / f"x{suffix}"
    if text is None:
        p.unlink()
    else:
        p.write_text(text)


BROKEN = {
    # name: (file, new text or None to delete, file:line the message names, words it says)
    "truncated nets": (".nets", _NETS[:_NETS.index("blk I")], r"x\.nets:5:", "ends inside net n1"),
    "truncated scl": (".scl", _SCL_4[:_SCL_4.rindex("End")], r"x\.scl:19:", "no 'End'"),
    "truncated nodes": (".nodes", _NODES[:_NODES.index("io 0")], r"x\.nodes:1:", "NumNodes says 4, the file lists 3"),
    "wrong net count": (".nets", _NETS.replace("NumNets : 2", "NumNets : 3"), r"x\.nets:1:", "NumNets says 3"),
    "wrong pin count": (".nets", _NETS.replace("NumPins : 5", "NumPins : 6"), r"x\.nets:2:", "NumPins says 6"),
    "wrong terminal count": (".nodes", _NODES.replace("NumTerminals : 2", "NumTerminals : 1"), r"x\.nodes:2:",
                             "NumTerminals says 1"),
    "too many pins": (".nets", _NETS.replace("NetDegree : 2 n2", "NetDegree : 1 n2"), r"x\.nets:9:",
                      "more pins than its NetDegree"),
    "too few pins": (".nets", _NETS.replace("NetDegree : 3 n1", "NetDegree : 4 n1"), r"x\.nets:7:",
                     "1 pins fewer than its NetDegree"),
    "non-number coordinate": (".pl", _PL.replace("b 5 0", "b 5 zero"), r"x\.pl:2:", "expected a number, found 'zero'"),
    "non-number size": (".nodes", _NODES.replace("b 4 10", "b 4x 10"), r"x\.nodes:4:", "found '4x' (a width)"),
    "non-number offset": (".nets", _NETS.replace("a O : 1 0", "a O : 1 y"), r"x\.nets:4:", "found 'y'"),
    "unknown node in net": (".nets", _NETS.replace("b I\n", "zz I\n"), r"x\.nets:5:", "node 'zz' is not in x.nodes"),
    "unknown node in pl": (".pl", _PL + "ghost 1 1 : N\n", r"x\.pl:5:", "node 'ghost' is not in x.nodes"),
    "bad orientation": (".pl", _PL.replace("a 1 0 : N", "a 1 0 : Q"), r"x\.pl:1:", "expected an orientation"),
    "bad pl flag": (".pl", _PL.replace("/FIXED\nio", "/FIX\nio"), r"x\.pl:3:", "expected '/FIXED' or '/FIXED_NI'"),
    "bad node kind": (".nodes", _NODES.replace("blk 20 20 terminal", "blk 20 20 fixed"), r"x\.nodes:5:",
                      "expected 'terminal' or 'terminal_NI'"),
    "negative size": (".nodes", _NODES.replace("a 4 10", "a -4 10"), r"x\.nodes:3:", "negative size"),
    "bad pin direction": (".nets", _NETS.replace("b I\n", "b X\n"), r"x\.nets:5:", "pin direction I, O or B"),
    "pin before netdegree": (".nets", "a I\n" + _NETS, r"x\.nets:1:", "expected 'NetDegree"),
    "duplicate node": (".nodes", _NODES.replace("b 4 10", "a 4 10"), r"x\.nodes:4:", "listed twice"),
    "vertical row": (".scl", _SCL_4.replace("Horizontal", "Vertical", 1), r"x\.scl:1:", "only horizontal rows"),
    "row without height": (".scl", _SCL_4.replace(" Height : 10\n", "", 1), r"x\.scl:5:", "without Height"),
    "bad site count": (".scl", _SCL_4.replace("NumSites : 100", "NumSites : lots", 1), r"x\.scl:5:",
                       "found 'lots'"),
    "subrow without numsites": (".scl", _SCL_4.replace(" NumSites : 100", "", 1), r"x\.scl:5:",
                                "SubrowOrigin : x NumSites : n"),
    "missing nodes": (".nodes", None, r"x\.aux:1:", "names x.nodes, which is not in"),
    "bad aux": (".aux", "x.nodes x.nets\n", r"x\.aux:1:", "expected 'RowBasedPlacement"),
    "aux without nets": (".aux", "RowBasedPlacement : x.nodes x.pl\n", r"x\.aux:1:", "names no .nets file"),
    "bad weight": (".wts", "n1 heavy\n", r"x\.wts:1:", "found 'heavy' (a weight)"),
    "shapes count short": (".shapes", "NumNonRectangularNodes : 1\nblk : 2\n Shape_0 40 10 10 20\n",
                           r"x\.shapes:3:", "1 of its shapes are missing"),
    "shapes on a movable node": (".shapes", "a : 1\n Shape_0 0 0 4 10\n", r"x\.shapes:1:", "is movable"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_gives_one_line_naming_file_and_line(tmp_path: Path, case: str):
    suffix, text, where, words = BROKEN[case]
    aux = _good(tmp_path)
    read_bookshelf(aux)                          # the unbroken benchmark reads
    if suffix in (".wts", ".shapes"):
        aux.write_text(f"RowBasedPlacement : x.nodes x.nets x.pl x.scl x{suffix}\n")
    _edit(tmp_path, suffix, text)
    with pytest.raises(EngineError) as info:
        read_bookshelf(aux)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert re.search(where, msg) and words in msg, msg
    assert re.match(r"^\S+\.(aux|nodes|nets|pl|scl|wts|shapes):\d+: ", msg), msg


def test_the_cli_shows_a_broken_benchmark_as_one_error_line(tmp_path: Path, capsys):
    from engine.cli import main

    aux = _good(tmp_path)
    _edit(tmp_path, ".pl", _PL.replace("b 5 0", "b 5 zero"))
    assert main(["place", str(aux)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(r"x\.pl:2: expected a number, found 'zero'", err)


def test_split_rows_round_trip(tmp_path: Path):
    scl = ("NumRows : 2\nCoreRow Horizontal\n Coordinate : 0\n Height : 10\n Sitewidth : 1\n"
           " SubrowOrigin : 0 NumSites : 30\n SubrowOrigin : 50 NumSites : 50\nEnd\n"
           "CoreRow Horizontal\n Coordinate : 10\n Height : 10\n Sitewidth : 1\n"
           " SubrowOrigin : 0 NumSites : 100\nEnd\n")
    nl = read_bookshelf(_mini(tmp_path / "a", nodes="a 2 10\nb 2 10\n", nets="NetDegree : 2\na\nb\n", scl=scl))
    assert len(nl.rows) == 3
    back = read_bookshelf(write_bookshelf(nl, tmp_path / "b", "x"))   # one CoreRow per Row, NumRows 3
    assert back.rows == nl.rows
