"""GDSII with KLayout: the written file read back independently has the design's top cell, every netlist instance
with its LEF abstract, the routing on metal layers, and a rendered PNG."""
from __future__ import annotations

import json
import re

import klayout.db as db
import pytest
from PIL import Image

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.gds import count_instances
from engine.pdk import load_pdk
from engine.runs import RunStore


@pytest.fixture(scope="module")
def gds_run(tmp_path_factory):
    cfg = resolve("counter", []).flow_config()
    run = run_flow(cfg, RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store"), until="gds")
    assert run.status == "done", run.info().get("error")
    return run


def test_gds_reads_back_with_the_netlist_instances(gds_run):
    layout = db.Layout()
    layout.read(str(gds_run.dir / "06-gds" / "design.gds"))
    (top,) = layout.top_cells()
    assert top.name == "counter"
    pdk = load_pdk()
    n = count_instances(layout, set(pdk.macros) - {"FILL"})  # filler cells are counted apart (test_orient_fill)
    cts = gds_run.metrics()["cts"]  # the clock tree's and fanout repair's buffers are instances too
    assert n == gds_run.metrics()["synth"]["design__instance__count"] + cts["cts__buffer__count"] + \
        cts["cts__repair__buffer__count"]
    routed = (gds_run.dir / "04-route" / "routed.def").read_text()
    assert n == int(re.search(r"^COMPONENTS (\d+)", routed, re.M).group(1))
    # The cells are LEF abstracts: each library cell holds its pins (and outline), not transistors.
    inv = layout.cell("INVX1") or layout.cell(next(c for c in pdk.macros if layout.cell(c)))
    assert inv is not None and not inv.bbox().empty()
    # The routing sits in the top cell itself, on the metal layers (GDSII keeps layer numbers: see layers.json).
    layers = json.loads((gds_run.dir / "06-gds" / "layers.json").read_text())
    for name in ("metal1", "metal2"):
        number, datatype = (int(v) for v in layers[name].split("/"))
        li = layout.find_layer(number, datatype)
        assert li is not None and top.shapes(li).size() > 10, name


def test_gds_metrics_and_layer_table(gds_run):
    m = gds_run.metrics()["gds"]
    assert m["gds__top_cell"] == "counter"
    assert m["gds__file_bytes"] == (gds_run.dir / "06-gds" / "design.gds").stat().st_size
    x0, y0, x1, y1 = m["gds__bbox_um"]
    die_w = gds_run.metrics()["floorplan"]["floorplan__die__width_um"]
    assert x1 - x0 == pytest.approx(die_w, abs=2.0)  # the die, plus the half-width of edge pins
    layers = json.loads((gds_run.dir / "06-gds" / "layers.json").read_text())
    assert "metal1" in layers and "metal2" in layers and re.fullmatch(r"\d+/\d+", layers["metal2"])


def test_layout_png_is_rendered(gds_run):
    img = Image.open(gds_run.dir / "06-gds" / "layout.png")
    assert img.width == FlowConfig().gds.png_width
    assert img.height > 100
    # Not a blank picture: several colours (layers) are drawn.
    colours = img.convert("RGB").resize((200, 200)).getcolors(40000)
    assert colours is not None and len(colours) > 20
