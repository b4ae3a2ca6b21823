"""Fill: filler cells close every gap in every row before GDSII, so the wells and the power rails run unbroken
from one end of each row to the other.

The fillers are the library's spacer cells (LEF CLASS CORE SPACER, or a cell named FILL* with no signal pins;
osu018 has one, FILL, one site wide). Their widths come from the LEF; gaps are filled widest filler first, each
filler on the site grid and in its row's orientation. The fillers are added to the DEF's COMPONENTS as text, so
the routed DEF keeps its wires exactly as qrouter wrote them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.netlist import Netlist
from engine.pdk import Pdk

EPS = 1e-6


@dataclass
class FillResult:
    fills: list[tuple[str, str, float, float, str]] = field(default_factory=list)  # name, cell, x, y (um), orient
    row_um: float = 0.0  # total length of the rows
    cells_um: float = 0.0  # row length the design's cells (and fixed blocks) cover
    unfilled_um: float = 0.0  # gap length no filler fits (a gap narrower than the narrowest filler)

    @property
    def filled_fraction(self) -> float:
        """Fraction of the row length covered by cells and fillers together (1.0: every gap closed)."""
        return (self.row_um - self.unfilled_um) / self.row_um if self.row_um > 0 else 0.0


def filler_cells(pdk: Pdk) -> list[tuple[str, float]]:
    """(name, width_um) of the library's filler cells, widest first."""
    out = []
    for name, m in pdk.macros.items():
        spacer = "SPACER" in m.cls.upper() or name.upper().startswith("FILL")
        if spacer and not m.signal_pins and m.width_um > 0:
            out.append((name, m.width_um))
    return sorted(out, key=lambda t: (-t[1], t[0]))


def _row_blocks(netlist: Netlist, row, tol: float = 1e-4) -> list[tuple[float, float]]:
    """[x0, x1) intervals of the row that cells cover: cells on the row, and fixed blocks spanning it."""
    core = ~np.asarray(netlist.cell_is_io, dtype=bool) & (netlist.cell_w > EPS) & (netlist.cell_h > EPS)
    x, y, w, h = netlist.x, netlist.y, netlist.cell_w, netlist.cell_h
    hit = core & (y < row.y + row.height - tol) & (y + h > row.y + tol) & (x < row.x1 - tol) & (x + w > row.x0 + tol)
    return sorted((max(float(x[i]), row.x0), min(float(x[i] + w[i]), row.x1)) for i in np.flatnonzero(hit))


def fill_rows(netlist: Netlist, fillers: list[tuple[str, float]], prefix: str = "FILLER") -> FillResult:
    """Fillers for every gap of every row of a placed ``netlist`` (lower-left positions, row orientations)."""
    res = FillResult()
    taken = set(netlist.cell_names)
    for k, row in enumerate(sorted(netlist.rows, key=lambda r: (r.y, r.x0))):
        res.row_um += row.x1 - row.x0
        cur = row.x0
        gaps = []
        for b0, b1 in _row_blocks(netlist, row):
            if b0 > cur + EPS:
                gaps.append((cur, b0))
            res.cells_um += max(0.0, b1 - max(b0, cur))
            cur = max(cur, b1)
        if row.x1 > cur + EPS:
            gaps.append((cur, row.x1))
        for g0, g1 in gaps:
            # Start on the site grid (cells sit on sites, so a gap's ends normally are on it already).
            x = row.x0 + np.ceil((g0 - row.x0) / row.site_w - EPS) * row.site_w
            res.unfilled_um += x - g0
            for name, fw in fillers:
                while x + fw <= g1 + EPS:
                    fill_name = f"{prefix}_{k}_{int(round((x - row.x0) / row.site_w))}"
                    while fill_name in taken:
                        fill_name += "_"
                    taken.add(fill_name)
                    res.fills.append((fill_name, name, float(x), float(row.y), row.orient))
                    x += fw
            res.unfilled_um += max(0.0, g1 - x)
    return res


def add_fills_to_def(def_text: str, fills: list[tuple[str, str, float, float, str]], units: int) -> str:
    """The DEF with the fillers appended to COMPONENTS (the count updated); everything else kept as written."""
    m = re.search(r"^(\s*COMPONENTS\s+)(\d+)(\s*;)", def_text, re.M)
    end = re.search(r"^\s*END\s+COMPONENTS\b", def_text, re.M)
    if m is None or end is None:
        raise ValueError("the DEF has no COMPONENTS section")
    lines = "".join(f"- {name} {cell} + PLACED ( {int(round(x * units))} {int(round(y * units))} ) {orient} ;\n"
                    for name, cell, x, y, orient in fills)
    head = def_text[:m.start()] + m.group(1) + str(int(m.group(2)) + len(fills)) + m.group(3)
    return head + def_text[m.end():end.start()] + lines + def_text[end.start():]


def def_units(def_text: str) -> int:
    m = re.search(r"UNITS\s+DISTANCE\s+MICRONS\s+(\d+)", def_text)
    return int(m.group(1)) if m else 1000


def write_filled_def(def_path: str | Path, out_path: str | Path, netlist: Netlist, pdk: Pdk) -> FillResult:
    """Fill ``netlist``'s rows (read from ``def_path``) and write the DEF with its fillers to ``out_path``."""
    text = Path(def_path).read_text(errors="replace")
    res = fill_rows(netlist, filler_cells(pdk))
    Path(out_path).write_text(add_fills_to_def(text, res.fills, def_units(text)))
    return res
