"""OpenSTA timing and power on a real routed run: figures consistent with the Liberty, a missed clock reported as
negative slack, clock ports found or refused, the SPEF read without complaint."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.spef import spef_name
from engine.flow.timing import Ports, find_clock, parse_paths
from engine.pdk import load_pdk
from engine.runs import RunStore


def _store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store")


def _config(design: str) -> FlowConfig:
    return resolve(design, []).flow_config()


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    store = _store(tmp_path_factory)
    run = run_flow(_config("counter"), store, until="timing")
    assert run.status == "done", run.info().get("error")
    return store, run


def _retime(store: RunStore, base, cfg: FlowConfig):
    """A new run holding copies of the base run's steps up to routing, then only the timing step run again."""
    run = store.create(cfg.to_dict(), design=cfg.top)
    for step in ("synth", "floorplan", "place", "route"):
        dst = run.step_dir(step)
        shutil.rmtree(dst)
        shutil.copytree(base.step_dir(step, create=False), dst)
    return run_flow(cfg, store, steps=["timing"], run=run)


# ------------------------------------------------------------------------------------------------ Liberty tables
def _block(text: str, start: int) -> str:
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j + 1]
    raise AssertionError("unbalanced Liberty block")


def _numbers(s: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", s)])


def liberty_delay(lib: str, cell: str, out_pin: str, related: str, table: str, cap: float, slew: float) -> float:
    """Bilinear interpolation (extrapolating at the edges, as STA does) of an NLDM delay table."""
    cell_txt = _block(lib, lib.index(f"cell ({cell})"))
    pin_txt = _block(cell_txt, re.search(rf"pin\s*\(\s*{re.escape(out_pin)}\s*\)", cell_txt).start())
    for tm in re.finditer(r"timing\s*\(\s*\)", pin_txt):
        t_txt = _block(pin_txt, tm.start())
        if f'related_pin : "{related}"' not in t_txt:
            continue
        tab = _block(t_txt, re.search(rf"{table}\s*\(", t_txt).start())
        caps = _numbers(re.search(r'index_1\s*\("([^"]*)"', tab).group(1))
        slews = _numbers(re.search(r'index_2\s*\("([^"]*)"', tab).group(1))
        values = _numbers(re.search(r"values\s*\((.*?)\);", tab, re.S).group(1).replace("\\", " "))
        values = values.reshape(len(caps), len(slews))
        i = int(np.clip(np.searchsorted(caps, cap) - 1, 0, len(caps) - 2))
        j = int(np.clip(np.searchsorted(slews, slew) - 1, 0, len(slews) - 2))
        u = (cap - caps[i]) / (caps[i + 1] - caps[i])
        v = (slew - slews[j]) / (slews[j + 1] - slews[j])
        return float((1 - u) * (1 - v) * values[i, j] + u * (1 - v) * values[i + 1, j]
                     + (1 - u) * v * values[i, j + 1] + u * v * values[i + 1, j + 1])
    raise AssertionError(f"no arc {related}->{out_pin} in {cell}")


def test_path_delay_is_the_sum_of_its_arcs_and_arcs_match_the_liberty(routed):
    _, run = routed
    data = json.loads((run.dir / "05-timing" / "paths.json").read_text())
    assert data["paths"], "no paths reported"
    lib = load_pdk().liberty_path.read_text()
    checked = 0
    for path in data["paths"]:
        pins = path["pins"]
        assert len(pins) >= 2
        # Arrival times grow by each increment from the launch (the input delay on an input port, the clock's
        # latency at a register), and the last pin's arrival is the path's data arrival time.
        launch = pins[0]["arrival_ns"] - pins[0]["delay_ns"]
        assert -1e-3 <= launch < 0.5 * 10.0  # within the generated SDC's 20% IO budget (+ clock latency)
        total = sum(p["delay_ns"] for p in pins)
        assert launch + total == pytest.approx(path["arrival_ns"], abs=1e-3 * len(pins))
        assert pins[-1]["arrival_ns"] == pytest.approx(path["arrival_ns"], abs=2e-4)
        for a, b in zip(pins, pins[1:]):
            assert b["arrival_ns"] == pytest.approx(a["arrival_ns"] + b["delay_ns"], abs=2e-4)
        assert path["slack_ns"] == pytest.approx(path["required_ns"] - path["arrival_ns"], abs=2e-4)
        # Every cell arc: the Liberty table at the reported load and input slew gives the reported delay.
        for a, b in zip(pins, pins[1:]):
            if b["cell"] == "port" or b["instance"] != a["instance"] or b["cap_pf"] is None or a["slew_ns"] is None:
                continue
            table = "cell_rise" if b["transition"] == "rise" else "cell_fall"
            want = liberty_delay(lib, b["cell"], b["pin_name"], a["pin_name"], table, b["cap_pf"], a["slew_ns"])
            # Wire resistance makes the driver see a little less than the total load (effective capacitance).
            assert b["delay_ns"] == pytest.approx(want, rel=0.06, abs=0.004), (b["pin"], want)
            checked += 1
    assert checked >= 5
    # Each pin carries a position on the placement so the cockpit can draw the path.
    assert all("x_um" in p and "y_um" in p for p in data["paths"][0]["pins"])


def test_spef_names_match_the_netlist(routed):
    _, run = routed
    log = (run.dir / "05-timing" / "sta.log").read_text()
    assert "not found" not in log
    spef = (run.dir / "05-timing" / "design.spef").read_text()
    assert spef.count("*D_NET") >= 50
    assert spef_name("u_rx.count[3]") == r"u_rx\.count[3]"
    assert spef_name("a/b") == r"a\/b"


def test_missing_the_clock_reports_negative_slack(routed):
    store, base = routed
    cfg = FlowConfig.from_dict(base.config)
    cfg.clock_ns = 0.5
    run = _retime(store, base, cfg)
    assert run.status == "done", run.info().get("error")
    m = run.metrics()["timing"]
    assert m["timing__setup__ws"] < 0
    assert m["timing__setup__tns"] < 0
    assert m["timing__clock_period_ns"] == 0.5
    # fmax follows from the slack: the period the worst path needs.
    assert m["timing__fmax_mhz"] == pytest.approx(1000 / (0.5 - m["timing__setup__ws"]), rel=1e-3)
    paths = json.loads((run.dir / "05-timing" / "paths.json").read_text())["paths"]
    assert paths[0]["met"] is False


def test_a_clock_port_that_does_not_exist_is_refused(routed):
    store, base = routed
    cfg = FlowConfig.from_dict(base.config)
    cfg.clock_port = "clk_main"
    run = _retime(store, base, cfg)
    info = run.info()
    assert run.status == "failed" and info["failed_step"] == "timing"
    assert "clk_main" in info["error"] and "clk" in info["error"]
    assert (run.dir / "04-route" / "routed.def").is_file()


def test_find_clock_rules():
    ports = Ports(inputs=["i_clk", "rst", "d"], outputs=["q"], widths={"i_clk": 1, "rst": 1, "d": 8, "q": 8},
                  clock_drivers=["i_clk"], has_flops=True)
    assert find_clock(ports, None) == ("i_clk", "name")
    odd = Ports(inputs=["tick", "d"], outputs=["q"], widths={"tick": 1, "d": 1, "q": 1}, clock_drivers=["tick"],
                has_flops=True)
    assert find_clock(odd, None)[0] == "tick"
    comb = Ports(inputs=["a"], outputs=["y"], widths={"a": 1, "y": 1}, clock_drivers=[], has_flops=False)
    assert find_clock(comb, None) == (None, "none")
    with pytest.raises(ValueError):
        find_clock(comb, "clk")


def test_parse_paths_reads_ports_and_cells():
    report = """Startpoint: a (input port clocked by vclk)
Endpoint: y (output port clocked by vclk)
Path Group: vclk
Path Type: max

      Cap      Slew     Delay      Time   Description
-------------------------------------------------------------------------------
             0.0000    0.0000    0.0000   clock vclk (rise edge)
                       0.0000    0.0000 ^ input external delay
   0.0100    0.0000    0.0000    0.0000 ^ a (in)
             0.0000    0.0000    0.0000 ^ _1_/A (INVX1)
   0.0200    0.0500    0.0400    0.0400 v _1_/Y (INVX1)
             0.0500    0.0000    0.0400 v y (out)
                                 0.0400   data arrival time

                                10.0000   data required time
-------------------------------------------------------------------------------
                                 9.9600   slack (MET)
"""
    (path,) = parse_paths(report)
    assert path["startpoint"] == "a" and path["endpoint"] == "y" and path["slack_ns"] == pytest.approx(9.96)
    assert [p["pin"] for p in path["pins"]] == ["a", "_1_/A", "_1_/Y", "y"]
    inv = path["pins"][2]
    assert inv["instance"] == "_1_" and inv["cell"] == "INVX1" and inv["transition"] == "fall"
    assert inv["cap_pf"] == pytest.approx(0.02) and inv["delay_ns"] == pytest.approx(0.04)


def test_flops_on_an_internal_clock_are_timed_without_a_crash(tmp_path_factory, tmp_path):
    src = tmp_path / "gated.v"
    src.write_text("module gated(input a, input b, input d, output reg q);\n  wire c = a & b;\n"
                   "  always @(posedge c) q <= d;\nendmodule\n")
    store = _store(tmp_path_factory)
    # Timing straight after synthesis: no placement, so no wire parasitics either.
    run = run_flow(FlowConfig(design_files=[str(src)], top="gated"), store, steps=["synth", "timing"])
    assert run.status == "done", run.info().get("error")
    m = run.metrics()["timing"]
    # No clock port: the IO paths are timed against a virtual clock; the flip-flop launches unclocked.
    assert m["timing__clock__port"] is None and "virtual clock" in m["timing__clock__found_by"]
    assert m["timing__parasitics"] == "none"
    assert m["power__total"] > 0
    data = json.loads((run.dir / "05-timing" / "paths.json").read_text())
    assert data["clock"] == "vclk"
    assert data["paths"][0]["endpoint"] == "q"
