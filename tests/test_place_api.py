"""place() end to end: global -> legal -> detailed, frames, progress, cancel, bad input; the CLI and the flow step."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from engine.errors import Cancelled
from engine.place import PlaceConfig, PlaceError, place
from engine.place.generate import generate_netlist
from engine.place.legalize import check_legality, oriented_hpwl

FAST = dict(max_iterations=1000, frame_every=20, detailed_time_limit_s=10)


@pytest.fixture(scope="module")
def placed():
    nl = generate_netlist(1200, seed=11, n_macros=2)
    frames, prog = [], []
    res = place(nl, PlaceConfig(**FAST), progress=lambda f, m: prog.append((f, m)), on_frame=frames.append)
    return nl, res, frames, prog


def test_place_reaches_target_overflow_and_is_legal(placed):
    nl, res, _, _ = placed
    m = res.metrics
    assert m["placement__overflow"] <= 0.10
    assert res.legality.ok and check_legality(res.netlist).ok
    assert m["placement__hpwl"] <= m["placement__hpwl__legal"]
    # input untouched, fixed cells (IO and macros) where they were
    fixed = nl.cell_fixed
    np.testing.assert_array_equal(res.netlist.x[fixed], nl.x[fixed])
    np.testing.assert_array_equal(res.netlist.y[fixed], nl.y[fixed])
    assert not np.shares_memory(res.netlist.x, nl.x)
    # far better than all cells on one random legal spot: compare with a legalised random scatter
    rng = np.random.default_rng(0)
    from engine.place.legalize import legalize
    x0, y0, x1, y1 = nl.core
    rx, ry = nl.x.copy(), nl.y.copy()
    mov = ~fixed
    rx[mov], ry[mov] = rng.uniform(x0, x1 - 20, mov.sum()), rng.uniform(y0, y1 - 10, mov.sum())
    rand_hpwl = nl.hpwl(*legalize(nl, rx, ry))
    assert m["placement__hpwl"] < 0.35 * rand_hpwl


def test_frames_and_progress(placed):
    nl, res, frames, prog = placed
    assert res.frames == len(frames) >= 2
    f = frames[-1]
    assert {"iteration", "hpwl", "overflow", "x", "y", "cells", "density", "rudy", "core"} <= set(f)
    assert f["x"].shape == f["y"].shape == f["cells"].shape
    assert f["density"].shape == f["rudy"].shape and f["density"].ndim == 2
    assert [fr["iteration"] for fr in frames] == sorted(fr["iteration"] for fr in frames)
    assert frames[0]["overflow"] > frames[-1]["overflow"]
    fracs = [p[0] for p in prog]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    assert res.history and len(res.history) == res.metrics["placement__iterations"]


def test_frames_subsample_above_the_limit():
    nl = generate_netlist(300, seed=1)
    frames = []
    place(nl, PlaceConfig(max_iterations=30, frame_every=10, frame_max_cells=50, detailed=False),
          on_frame=frames.append)
    assert all(len(f["x"]) == 50 for f in frames)
    assert len(set(frames[0]["cells"].tolist())) == 50


def test_cancel_stops_quickly():
    nl = generate_netlist(500, seed=2)
    ev = threading.Event()
    seen = []

    def on_frame(f):
        seen.append(f["iteration"])
        ev.set()

    with pytest.raises(Cancelled):
        place(nl, PlaceConfig(frame_every=5), cancel=ev, on_frame=on_frame)
    assert seen == [5]
    with pytest.raises(Cancelled):
        place(nl, PlaceConfig(), cancel=lambda: True)


@pytest.mark.parametrize("case, match", [
    ("no_movable", "no movable cells"),
    ("huge_cell", "larger than the core"),
    ("overfull", "utilisation"),
    ("nan", "NaN"),
    ("no_rows", "floorplan"),
])
def test_bad_input_gives_clear_errors(case, match):
    nl = generate_netlist(100, seed=3)
    if case == "no_movable":
        nl.cell_fixed = np.ones(nl.n_cells, dtype=bool)
    elif case == "huge_cell":
        nl.cell_w = nl.cell_w.copy()
        nl.cell_w[0] = 10 * (nl.core[2] - nl.core[0])
    elif case == "overfull":
        nl.cell_w = nl.cell_w * 3
    elif case == "nan":
        nl.x = nl.x.copy()
        nl.x[5] = np.nan
    elif case == "no_rows":
        nl.rows, nl.core = [], None
    with pytest.raises(PlaceError, match=match) as exc:
        place(nl, PlaceConfig(max_iterations=10))
    assert exc.value.message


def test_float64_and_explicit_threads_give_the_same_kind_of_result():
    nl = generate_netlist(300, seed=4)
    res = place(nl, PlaceConfig(dtype="float64", num_threads=1, max_iterations=400, detailed=False))
    assert res.legality.ok and res.metrics["placement__overflow"] <= 0.10
    with pytest.raises(PlaceError, match="dtype"):
        place(nl, PlaceConfig(dtype="float16"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_path_matches_cpu():
    nl = generate_netlist(500, seed=5)
    cpu = place(nl, PlaceConfig(max_iterations=300, detailed=False))
    gpu = place(nl, PlaceConfig(max_iterations=300, detailed=False, device="cuda"))
    assert gpu.legality.ok
    assert gpu.metrics["placement__hpwl"] == pytest.approx(cpu.metrics["placement__hpwl"], rel=0.1)


def test_cli_places_a_bookshelf_netlist(tmp_path, capsys):
    from engine.cli import main
    from engine.io.bookshelf import read_bookshelf, write_bookshelf

    nl = generate_netlist(200, seed=6, n_macros=1)
    aux = write_bookshelf(nl, tmp_path / "in", "g200")
    out = tmp_path / "out"
    assert main(["place", str(aux), "--out", str(out), "--iterations", "300", "--frames", "50"]) == 0
    text = capsys.readouterr().out
    assert "placement__hpwl" in text
    metrics = json.loads((out / "metrics.json").read_text())
    back = read_bookshelf(out / "g200.aux")
    assert check_legality(back).ok
    assert oriented_hpwl(back, orient=back.cell_orient) == pytest.approx(metrics["placement__hpwl"], rel=1e-3)
    assert list((out / "frames").glob("frame_*.npz"))
    assert main(["place", str(tmp_path / "missing.aux")]) == 1
    assert main(["place", "no-such-run"]) == 1
    assert "neither" in capsys.readouterr().err
