"""graywolf (qflow's placer), driven headless through the .cel file we write: the benchmark's opponent."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.place.generate import generate_netlist
from engine.place.graywolf import run_graywolf, write_cel


def test_cel_file_lists_cells_then_pads(tmp_path):
    nl = generate_netlist(30, seed=1, n_io=4)
    write_cel(nl, tmp_path / "d.cel")
    text = (tmp_path / "d.cel").read_text()
    assert text.count("\ncell ") + text.startswith("cell ") == 30
    assert text.count("pad ") == 4
    assert text.index("pad 1 ") > text.rindex("cell ")


@pytest.mark.skipif(shutil.which("graywolf") is None, reason="graywolf not installed")
def test_graywolf_places_a_small_netlist(tmp_path):
    nl = generate_netlist(60, seed=2, n_io=6)
    r = run_graywolf(nl, tmp_path)
    mov = ~nl.cell_fixed
    assert np.isfinite(r.x).all() and np.isfinite(r.y).all()
    assert len(np.unique(np.round(r.y[mov], 3))) >= 2          # spread over several rows
    assert nl.hpwl(r.x, r.y) > 0 and r.runtime_s > 0
