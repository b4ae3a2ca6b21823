"""The flow's place step on a real design (counter: Yosys + floorplan + our placer), and `cda place RUN_ID`."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.errors import EngineError
from engine.flow.flow import run_flow
from engine.io.def_io import read_def
from engine.pdk import load_pdk
from engine.place.legalize import check_legality, oriented_hpwl
from engine.runs import RunStore


@pytest.fixture(scope="module")
def placed_run(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    d = resolve("counter")
    cfg = FlowConfig(design_files=d.files, top=d.top, clock_port=d.clock_port, clock_ns=d.clock_ns)
    cfg.place = {"frame_every": 5}
    run = run_flow(cfg, store, until="place")
    assert run.status == "done", run.info().get("error")
    return store, run


def test_place_step_writes_a_legal_def_frames_and_metrics(placed_run):
    store, run = placed_run
    pdk = load_pdk()
    folder = run.step_dir("place", create=False)
    placed = read_def(folder / "placed.def", pdk)
    fp = read_def(run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    assert check_legality(placed).ok
    assert placed.n_cells == fp.n_cells
    io = fp.cell_is_io
    idx = placed.index()
    order = np.array([idx[n] for n in fp.cell_names])
    np.testing.assert_allclose(placed.x[order][io], fp.x[io], atol=1e-3)      # IO pins did not move
    m = run.step_metrics("place")
    for key in ("placement__hpwl", "placement__hpwl__global", "placement__hpwl__legal", "placement__overflow",
                "placement__iterations", "placement__runtime_s"):
        assert key in m
    assert m["placement__overflow"] <= 0.10
    assert m["placement__hpwl"] == pytest.approx(oriented_hpwl(placed, orient=placed.cell_orient), rel=1e-3)
    frames = sorted((folder / "frames").glob("frame_*.npz"))
    assert len(frames) == m["placement__frames__count"] >= 2
    with np.load(frames[-1]) as z:
        assert {"x", "y", "cells", "density", "rudy", "hpwl", "overflow", "iteration", "core"} <= set(z.files)
    hist = (folder / "history.json").read_text()
    assert '"overflow"' in hist
    events = [e for e in run.events() if e.get("step") == "place" and e.get("kind", e.get("type")) == "progress"]
    assert events


def test_unknown_place_setting_is_refused_with_the_nearest_name(placed_run):
    store, run = placed_run
    cfg = FlowConfig.from_dict(run.config)
    # Strict config: the typo is refused when the config is built, before a run folder exists.
    with pytest.raises(EngineError, match="unknown key place.target_densty; did you mean place.target_density"):
        cfg.place = {"target_densty": 0.8}
    with pytest.raises(EngineError, match="did you mean place.target_density"):
        FlowConfig.from_dict({**run.config, "place": {"target_densty": 0.8}})


def test_cli_places_a_run(placed_run, tmp_path, capsys):
    from engine.cli import main

    store, run = placed_run
    assert main(["--runs-dir", str(store.root), "place", run.id, "--iterations", "200", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "placed.def").exists()
    assert "placement__hpwl" in capsys.readouterr().out
