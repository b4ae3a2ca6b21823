"""Run graywolf (TimberWolf, qflow's placer) headless on our Netlist, for benchmarks.

We write what qflow's blif2cel.tcl writes: a .cel file (cells with sizes and pins in centimicrons, relative to
the cell centre; IO terminals as pads, which graywolf places on the periphery itself) and the technology's
.par file, run `graywolf -n NAME`, and read the placed cells back from NAME.pl1.
"""
from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.place.errors import PlaceError

log = logging.getLogger(__name__)
UNITS = 100  # centimicrons, as qflow's osu018.par says
DEFAULT_PAR = Path("/usr/share/qflow/tech/osu018/osu018.par")


@dataclass
class GraywolfResult:
    x: np.ndarray            # (C,) lower-left x of every cell (IO pads at graywolf's pad positions)
    y: np.ndarray
    runtime_s: float
    log_path: Path
    cpu_s: float = 0.0       # CPU seconds of graywolf and its child processes (load-independent)


def write_cel(netlist, path: Path) -> None:
    """Cells first, then pads (graywolf's grammar wants that order). Names are c<index>, pads twpin_p<index>,
    signals n<net index>, so that no Verilog escape reaches graywolf's parser."""
    pin_net = netlist.pin_net()
    cells: list[str] = []
    pads: list[str] = []
    order = np.argsort(netlist.pin_cell, kind="stable")
    starts = np.searchsorted(netlist.pin_cell[order], np.arange(netlist.n_cells + 1))
    index = 0
    pad = 1
    for c in range(netlist.n_cells):
        pins = [p for p in order[starts[c]:starts[c + 1]] if pin_net[p] >= 0]
        if netlist.cell_is_io[c]:
            if pins:
                pads += [f"pad {pad} name twpin_p{c}", "corners 4 -40 -50 -40 50 40 50 40 -50",
                         f"pin name p{c} signal n{pin_net[pins[0]]} layer 1 0 0", ""]
                pad += 1
            continue
        if netlist.cell_fixed[c]:
            raise PlaceError("graywolf bench: fixed macros are not converted (use netlists without macros)")
        w = int(round(netlist.cell_w[c] * UNITS))
        h = int(round(netlist.cell_h[c] * UNITS))
        cells.append(f"cell {index} c{c}")
        cells.append(f"left {-(w // 2)} right {w - w // 2} bottom {-(h // 2)} top {h - h // 2}")
        for k, p in enumerate(pins):
            px = int(round(netlist.pin_dx[p] * UNITS)) - w // 2
            py = int(round(netlist.pin_dy[p] * UNITS)) - h // 2
            cells.append(f"pin name p{k} signal n{pin_net[p]} layer 1 {px} {py}")
        index += 1
    path.write_text("\n".join(cells + [""] + pads) + "\n")


def run_graywolf(netlist, workdir: Path, par: Path = DEFAULT_PAR, timeout_s: float = 3600.0) -> GraywolfResult:
    exe = shutil.which("graywolf")
    if exe is None:
        raise PlaceError("graywolf is not installed (Debian package graywolf)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = "design"
    write_cel(netlist, workdir / f"{name}.cel")
    shutil.copy(par, workdir / f"{name}.par")
    log_path = workdir / "graywolf.log"
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as logf:
        # graywolf runs TimberWolfSC through a shell: own session, so a timeout stops the whole group
        proc = subprocess.Popen([exe, "-n", name], cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    runtime = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    pl1 = workdir / f"{name}.pl1"
    if not pl1.exists():
        raise PlaceError(f"graywolf produced no {pl1.name}; see {log_path}", log_path=str(log_path))
    x = np.asarray(netlist.x, dtype=np.float64).copy()
    y = np.asarray(netlist.y, dtype=np.float64).copy()
    for line in pl1.read_text().splitlines():
        tok = line.split()
        if len(tok) < 5:
            continue
        nm = tok[0][len("twpin_p"):] if tok[0].startswith("twpin_p") else tok[0][1:]
        if not nm.isdigit() or int(nm) >= netlist.n_cells:
            continue
        c = int(nm)
        x0, y0, x1, y1 = (float(v) / UNITS for v in tok[1:5])
        x[c], y[c] = (x0, y0) if not netlist.cell_is_io[c] else ((x0 + x1) / 2, (y0 + y1) / 2)
    return GraywolfResult(x=x, y=y, runtime_s=runtime, log_path=log_path, cpu_s=cpu_s)
