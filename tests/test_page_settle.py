"""Heavy artefacts are read once per run, not on every render: a page rendered again (a rerun, a second visitor)
parses no DEF, timing report, clock tree, log or layout picture a second time, and a file the flow rewrites is
read again. Reads are counted on the real readers, pages run through Streamlit's AppTest over a real counter run.
(How fast pages settle is measured by bench/bench_cockpit.py, not asserted here.)"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from page_helpers import app_page

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
WATCHED = ("paths.json", "tree.json", "sta.log", "layout.png", "design.gds", "routed.def", "cts.def", "placed.def",
           "floorplan.def", "congestion.npz")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A run store (as $CDA_RUNS_DIR) holding one counter run through GDSII: (root, run)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    root = tmp_path_factory.mktemp("settle-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CDA_RUNS_DIR", str(root))
    run = run_flow(resolve("counter").flow_config(), RunStore(root))
    assert run.status == "done", run.info().get("error")
    yield root, run
    mp.undo()


@pytest.fixture
def reads(monkeypatch):
    """Counts, by file name, the artefacts read through Path.read_text / read_bytes and the DEF reader."""
    import engine.io.def_io as def_io

    counts: Counter[str] = Counter()
    read_text, read_bytes, read_def = Path.read_text, Path.read_bytes, def_io.read_def

    def counted_text(self, *a, **kw):
        if self.name in WATCHED:
            counts[self.name] += 1
        return read_text(self, *a, **kw)

    def counted_bytes(self, *a, **kw):
        if self.name in WATCHED:
            counts[self.name] += 1
        return read_bytes(self, *a, **kw)

    def counted_def(path, *a, **kw):
        counts["read_def:" + Path(path).name] += 1
        return read_def(path, *a, **kw)

    monkeypatch.setattr(Path, "read_text", counted_text)
    monkeypatch.setattr(Path, "read_bytes", counted_bytes)
    monkeypatch.setattr(def_io, "read_def", counted_def)
    return counts


def _ok(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def test_timing_page_reads_its_artefacts_once(full_run, reads):
    _, run = full_run
    at = app_page(PAGES / "06_timing.py", run.id)
    _ok(at)
    first = dict(reads)
    # The first render read what the page shows: the routed layout, the worst paths and the clock tree.
    assert first.get("read_def:routed.def") == 1 and first.get("paths.json") == 1 and first.get("tree.json") == 1
    assert any("Clock tree" in m.value for m in at.markdown)
    at.run()  # the same visitor's rerun
    _ok(at)
    again = app_page(PAGES / "06_timing.py", run.id)  # another visitor
    _ok(again)
    assert dict(reads) == first, "a second render read an artefact again"
    # The flow rewrites the report: the next render reads the new version, once.
    paths = run.step_dir("timing", create=False) / "paths.json"
    later = paths.stat().st_mtime + 5
    os.utime(paths, (later, later))
    at.run()
    _ok(at)
    assert reads["paths.json"] == first["paths.json"] + 1
    assert reads["read_def:routed.def"] == first["read_def:routed.def"]


def test_gds_page_encodes_the_layout_picture_once(full_run, reads):
    _, run = full_run
    at = app_page(PAGES / "07_gdsii.py", run.id)
    _ok(at)
    assert reads["layout.png"] == 1
    at.run()
    _ok(at)
    app_page(PAGES / "07_gdsii.py", run.id)
    assert reads["layout.png"] == 1, "the layout picture was read again for a second render"
    # The GDS itself is read only when someone downloads it, not on every render.
    gds = next(b for b in at.get("download_button") if "Download" in b.proto.label)
    assert gds is not None and reads["design.gds"] == 0


def test_routing_page_parses_the_routed_def_once(full_run, reads):
    _, run = full_run
    at = app_page(PAGES / "05_routing.py", run.id)
    _ok(at)
    traces = [t for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    # both congestion maps (side by side in one chart) and the wires: nothing left out to be fast
    assert [t["type"] for t in traces].count("heatmap") >= 2
    assert any(str(t.get("name", "")).startswith("metal") for t in traces)
    first = dict(reads)
    at.run()
    _ok(at)
    app_page(PAGES / "05_routing.py", run.id)
    assert dict(reads) == first, "a second render read an artefact again"
    # ... and the routed DEF is read again once the flow rewrites it
    routed = run.step_dir("route", create=False) / "routed.def"
    later = routed.stat().st_mtime + 5
    os.utime(routed, (later, later))
    at.run()
    _ok(at)
    assert reads["read_def:routed.def"] == first.get("read_def:routed.def", 0) + 1
