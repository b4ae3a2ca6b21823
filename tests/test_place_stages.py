"""The place step saves each placer stage apart (stages.npz): the positions after global placement, after
legalisation (before detailed placement) and after detailed placement, with each stage's HPWL and the displacement
from the stage before, all checked against what the engine computes from the files themselves. The Placement page
(AppTest) shows the three stages from it, and still renders a run without it (an old run), saying so."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.io.def_io import read_def
from engine.pdk import load_pdk
from engine.place.legalize import check_legality, oriented_hpwl, row_orientations
from engine.runs import RunStore, read_json

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def placed(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CDA_RUNS_DIR", str(root))  # the pages' run store (AppTest below)
    store = RunStore(root)
    d = resolve("counter")
    cfg = FlowConfig(design_files=d.files, top=d.top, clock_port=d.clock_port, clock_ns=d.clock_ns)
    run = run_flow(cfg, store, until="place")
    assert run.status == "done", run.info().get("error")
    folder = run.step_dir("place", create=False)
    pdk = load_pdk()
    yield run, folder, read_def(folder / "placed.def", pdk), read_def(
        run.step_dir("floorplan", create=False) / "floorplan.def", pdk)
    mp.undo()


def test_stages_file_holds_global_legal_and_detailed_positions(placed):
    run, folder, final, fp = placed
    assert read_json(folder / "step.json")["artefacts"]["stages"] == "stages.npz"
    with np.load(folder / "stages.npz") as z:
        s = {k: z[k] for k in z.files}
    assert list(s["stages"]) == ["global", "legal", "detailed"]
    assert list(s["names"]) == list(fp.cell_names) == list(final.cell_names)
    mov = s["movable"]
    assert mov.sum() == (~fp.cell_fixed).sum() > 0
    # detailed = the placed.def positions (what the flow goes on with)
    np.testing.assert_allclose(s["x_detailed"], final.x, atol=1e-3)
    np.testing.assert_allclose(s["y_detailed"], final.y, atol=1e-3)
    # the legal stage is a legal placement of its own, and not the same as global or detailed
    legal = fp.copy()
    legal.x, legal.y = s["x_legal"].astype(np.float64), s["y_legal"].astype(np.float64)
    assert check_legality(legal).ok
    assert not np.allclose(s["x_global"][mov], s["x_legal"][mov])
    m = run.step_metrics("place")
    # each stage's HPWL is the engine's own measure of those positions
    assert float(s["hpwl_global"]) == m["placement__hpwl__global"]
    assert float(s["hpwl_global"]) == pytest.approx(fp.hpwl(s["x_global"].astype(float), s["y_global"].astype(float)),
                                                   rel=1e-4)
    assert float(s["hpwl_legal"]) == pytest.approx(oriented_hpwl(legal, legal.x, legal.y), rel=1e-4)
    orient = row_orientations(legal, final.x, final.y)
    assert float(s["hpwl_detailed"]) == pytest.approx(oriented_hpwl(final, final.x, final.y, orient), rel=1e-4)
    assert float(s["hpwl_detailed"]) <= float(s["hpwl_legal"]) + 1e-6   # detailed placement never makes it worse
    # displacement: per movable cell from the stage before, its mean and max as the placer reported them
    d = np.abs(s["x_legal"] - s["x_global"]) + np.abs(s["y_legal"] - s["y_global"])
    np.testing.assert_allclose(s["disp_legal"], d[mov], atol=1e-3)
    assert float(s["disp_legal_mean"]) == pytest.approx(m["placement__displacement__mean"], abs=2e-3)
    assert float(s["disp_legal_max"]) == pytest.approx(m["placement__displacement__max"], abs=2e-3)
    dd = (np.abs(s["x_detailed"] - s["x_legal"]) + np.abs(s["y_detailed"] - s["y_legal"]))[mov]
    assert int(s["disp_detailed_moved"]) == int((dd > 1e-3).sum())
    assert float(s["disp_detailed_max"]) == pytest.approx(float(dd.max()), abs=1e-3)


def _page(run_id: str):
    from page_helpers import app_page

    at = app_page(ROOT / "pages" / "04_placement.py", run_id)
    assert not at.exception, [e.value for e in at.exception]
    (comp,) = at.get("component_instance")
    table = next(t.value for t in at.table if "HPWL (µm)" in getattr(t.value, "columns", []))
    return at, json.loads(comp.proto.json_args), table


def test_placement_page_shows_global_legal_and_detailed_apart(placed):
    from cockpit.components import player

    run, folder, final, fp = placed
    at, args, table = _page(run.id)
    with np.load(folder / "stages.npz") as z:
        s = {k: z[k] for k in z.files}
    stage = args["stage"]
    assert stage["recorded"] and [e["name"] for e in stage["steps"]] == ["legal", "detailed"]
    box = args["base"]["box"]
    cells = np.asarray(np.load(sorted((folder / "frames").glob("*.npz"))[-1])["cells"], int)
    step_x = (box[2] - box[0]) / 65535
    for e, key in zip(stage["steps"], ("x_legal", "x_detailed"), strict=True):  # the player draws these positions
        got = player.dequantise_positions(e["x"], box[0], box[2])
        np.testing.assert_allclose(got, np.clip(s[key][cells], box[0], box[2]), atol=step_x / 2 + 1e-3)
        assert e["density"]["shape"] == list(np.load(sorted((folder / "frames").glob("*.npz"))[-1])["density"].shape)
    assert stage["steps"][0]["hpwl"] == round(float(s["hpwl_legal"]), 3)
    assert stage["detailed_moved"] == int(s["disp_detailed_moved"])
    # the table: three stages, each HPWL and its change, the displacement of legalisation (mean / max)
    assert list(table.index) == ["global placement", "legalisation (Tetris + Abacus)",
                                 "detailed placement (swap, reorder)"]
    g, lg, d = (float(s[k]) for k in ("hpwl_global", "hpwl_legal", "hpwl_detailed"))
    assert list(table["HPWL (µm)"]) == [round(g, 3), round(lg, 3), round(d, 3)]
    assert table["change"].iloc[1] == f"{100 * (lg - g) / g:+.1f} %"
    assert table["change"].iloc[2] == f"{100 * (d - lg) / lg:+.1f} %"
    mean, mx = float(s["disp_legal_mean"]), float(s["disp_legal_max"])
    assert table["moved (µm, mean / max)"].iloc[1] == f"{mean:.2f} / {mx:.2f}"
    assert "not recorded" not in " ".join(c.value for c in at.caption)


def test_a_run_without_stages_still_renders_and_says_so(placed):
    """An old run (no stages.npz): the page draws one combined stage from placed.def and says what is missing.
    Runs last in this module: it removes the file from the run."""
    run, folder, final, fp = placed
    (folder / "stages.npz").unlink()
    rec = read_json(folder / "step.json")
    rec["artefacts"].pop("stages")
    (folder / "step.json").write_text(json.dumps(rec))
    at, args, table = _page(run.id)
    stage = args["stage"]
    assert not stage["recorded"] and [e["name"] for e in stage["steps"]] == ["final"]
    assert len(table.index) == 3 and table["moved (µm, mean / max)"].iloc[2] == "not recorded for this run"
    assert any("not recorded for this run" in c.value for c in at.caption)
