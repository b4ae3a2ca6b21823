"""Routing: the DEF qrouter is given, its log read for failures, routed wires measured, RUDY congestion saved, and
a real qrouter run on the counter that leaves no net open."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.route import parse_qrouter_log, qrouter_def
from engine.flow.spef import read_routed_wires
from engine.pdk import load_pdk
from engine.runs import RunStore


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    cfg = resolve("counter", []).flow_config()
    store = RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store")
    run = run_flow(cfg, store, until="route")
    assert run.status == "done", run.info().get("error")
    return store, run


def test_qrouter_gets_one_track_line_per_layer_and_open_net_statements():
    pdk = load_pdk()
    src = """NETS 1 ;
- n1 ( PIN a ) ( _1_ A ) ;
END NETS
TRACKS X 400 DO 10 STEP 800 LAYER metal2 ;
TRACKS Y 400 DO 10 STEP 800 LAYER metal2 ;
TRACKS X 500 DO 10 STEP 1000 LAYER metal1 ;
TRACKS Y 500 DO 10 STEP 1000 LAYER metal1 ;
"""
    out = qrouter_def(src, pdk)
    assert "TRACKS X 400 DO 10 STEP 800 LAYER metal2" in out  # metal2 is vertical: X lines
    assert "TRACKS Y 400" not in out
    assert "TRACKS Y 500 DO 10 STEP 1000 LAYER metal1" in out  # metal1 is horizontal: Y lines
    assert "TRACKS X 500" not in out
    lines = out.splitlines()
    i = lines.index("- n1 ( PIN a ) ( _1_ A )")
    assert lines[i + 1].strip() == ";"


def test_qrouter_log_failures_are_named_with_a_reason():
    log = """There are 12 nets in this design.
Error: Node up/up of net "up" has no taps!
----------------------------------------------
Final: Failed net routes: 2
List of failed nets follows:
 up
 _15_

----------------------------------------------
"""
    rep = parse_qrouter_log(log)
    assert rep.nets == 12 and rep.finished
    assert rep.failed == ["up", "_15_"]
    assert "access point" in rep.reasons["up"]
    assert "congestion" in rep.reasons["_15_"]
    ok = parse_qrouter_log("There are 3 nets in this design.\nFinal: No failed routes!\n")
    assert ok.failed == [] and ok.finished


def test_routed_wire_lengths_and_vias_from_def(tmp_path):
    d = tmp_path / "r.def"
    d.write_text("""UNITS DISTANCE MICRONS 1000 ;
NETS 1 ;
- n1 ( PIN a ) ( _1_ A )
+ ROUTED metal1 ( 1000 2000 ) M2_M1
  NEW metal2 ( 1000 2000 ) ( * 7000 ) M3_M2
  NEW metal3 ( 1000 7000 ) ( 4000 * ) ( 4000 * ) ;
END NETS
""")
    wires, units = read_routed_wires(d)
    assert units == 1000
    w = wires["n1"]
    assert w.length_um == {"metal2": pytest.approx(5.0), "metal3": pytest.approx(3.0)}
    assert w.vias == 2


def test_counter_routes_every_net(routed):
    _, run = routed
    m = run.metrics()["route"]
    assert m["route__net__unrouted"] == 0 and m["route__failures"] == []
    text = (run.dir / "04-route" / "routed.def").read_text()
    nets = re.search(r"^NETS \d+ ;(.*?)^END NETS", text, re.S | re.M).group(1).split(";")
    multi_pin = [n for n in nets if n.count("(") - n.count("ROUTED") >= 2 and n.strip().startswith("-")]
    assert multi_pin
    for stmt in multi_pin:
        assert "+ ROUTED" in stmt, stmt[:80]
    # Routed wire is at least the placement's half-perimeter estimate (a Steiner tree cannot be shorter).
    hpwl = run.metrics()["place"]["placement__hpwl"]
    assert m["route__wirelength"] >= 0.95 * hpwl
    assert sum(m["route__wirelength__per_layer"].values()) == pytest.approx(m["route__wirelength"], rel=1e-3)


def test_congestion_map_saved_with_figures(routed):
    _, run = routed
    m = run.metrics()["route"]
    data = np.load(run.dir / "04-route" / "congestion.npz")
    ratio = data["ratio"]
    assert ratio.ndim == 2 and ratio.shape[0] == ratio.shape[1] and (ratio >= 0).all()
    assert float(ratio.max()) == pytest.approx(m["route__rudy__max"], abs=1e-3)
    assert float((ratio > 1).mean()) == pytest.approx(m["route__rudy__overflow"], abs=1e-3)
    # Demand integrates to the placement's wire: RUDY spreads each net's HPWL over its box.
    x0, y0, x1, y1 = data["region"]
    bin_area = (x1 - x0) * (y1 - y0) / ratio.size
    total = float(data["demand"].sum() * bin_area)
    assert total == pytest.approx(run.metrics()["place"]["placement__hpwl"], rel=0.05)


def test_routing_off_still_gives_congestion(routed):
    store, base = routed
    cfg = FlowConfig.from_dict(base.config)
    cfg.route.enabled = False
    run = store.create(cfg.to_dict(), design=cfg.top)
    for step in ("synth", "floorplan", "place"):
        dst = run.step_dir(step)
        shutil.rmtree(dst)
        shutil.copytree(base.step_dir(step, create=False), dst)
    run = run_flow(cfg, store, steps=["route", "gds"], run=run)
    assert run.status == "done", run.info().get("error")
    m = run.metrics()
    assert "route__rudy__max" in m["route"] and "route__wirelength" not in m["route"]
    assert not (run.dir / "04-route" / "routed.def").exists()
    assert m["gds"]["gds__routed"] is False
    assert m["gds"]["gds__instance__count"] == m["synth"]["design__instance__count"]
