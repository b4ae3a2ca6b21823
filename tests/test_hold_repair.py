"""Hold repair after the clock tree (engine.flow.hold), on the real flow: counter with zero input delay races its
inputs against the clock tree's latency (hold about -0.17 ns). With the repair the delay buffers go in front of
the flip-flops, OpenSTA's routed hold slack turns positive, setup keeps its sign, routing finishes and the
gate-level simulation still matches the RTL; without it the violation reaches the timing step."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.flow.hold import chain_delay_ns, choose_chain

SDC = """create_clock -name clk -period {period} [get_ports clk]
set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]
set_output_delay {out} -clock clk [all_outputs]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from engine.runs import RunStore

    return RunStore(tmp_path_factory.mktemp("hold-runs"))


def _run(store, sdc_path: Path, until: str = "verify", **cts):
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    cfg = resolve("counter").flow_config()
    cfg.timing.sdc = str(sdc_path)
    for k, v in cts.items():
        setattr(cfg.cts, k, v)
    run = run_flow(cfg, store, until=until)
    assert run.status == "done", run.info().get("error")
    return run


@pytest.fixture(scope="module")
def zero_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("sdc") / "zero_in.sdc"
    path.write_text(SDC.format(period=10, out=2))
    return path


@pytest.fixture(scope="module")
def repaired(store, zero_in):
    return _run(store, zero_in)


# ------------------------------------------------------------------------------------------------ choice
def test_the_chain_is_the_least_area_one_that_covers_the_need():
    from engine.flow.cts import buffer_cells
    from engine.pdk import load_pdk

    cells = buffer_cells(load_pdk(), "BUFX2,BUFX4,CLKBUF1,CLKBUF2,CLKBUF3", "cts.hold_buffers")
    load = 0.028  # a DFFPOSX1 D pin
    cell, n = choose_chain(cells, 0.1, load)
    assert (cell.name, n) == ("BUFX2", 1)  # the smallest buffer already covers 0.1 ns
    for need in (0.3, 0.6, 1.0):
        cell, n = choose_chain(cells, need, load)
        assert chain_delay_ns(cell, n, load) >= need
        # no other cell or count that covers the need is smaller
        for other in cells:
            for k in range(1, 9):
                if chain_delay_ns(other, k, load) >= need:
                    assert other.area * k >= cell.area * n
    assert choose_chain(cells, 50.0, load) is None  # 50 ns is no hold race a chain should bridge
    # a measured scale below 1 (buffers faster than the table's estimate) asks for more delay
    cell, n = choose_chain(cells, 0.3, load, scale=0.5)
    assert chain_delay_ns(cell, n, load) * 0.5 >= 0.3


def test_hold_knobs_are_registered_and_ranged():
    from engine.config import FlowConfig
    from engine.errors import EngineError
    from engine.registry.knobs import KNOBS

    cfg = FlowConfig.from_dict({"cts": {"hold_margin_ns": 0.1, "hold_repair": "false"}})
    assert cfg.cts.hold_margin_ns == 0.1 and cfg.cts.hold_repair is False
    assert KNOBS["cts.hold_margin_ns"].default == 0.05 and KNOBS["cts.hold_repair"].default is True
    with pytest.raises(EngineError, match="out of range"):
        FlowConfig.from_dict({"cts": {"hold_margin_ns": -1}})


# ------------------------------------------------------------------------------------------------ the flow
def test_hold_repair_fixes_the_input_race(repaired):
    m = repaired.metrics()
    c, t = m["cts"], m["timing"]
    margin = 0.05
    assert c["cts__hold__ws_before"] < -0.1  # the race is there before the repair
    assert c["cts__hold__endpoint__count"] > 0 and c["cts__hold__buffer__count"] > 0
    assert c["cts__hold__ws_after"] >= margin - 1e-6 and c["cts__hold__endpoint__left"] == 0
    assert c["cts__hold__setup_ws_before"] > 0 and c["cts__hold__setup_ws_after"] > 0
    # OpenSTA in the timing step, on the routed wires, agrees: hold met, setup still met
    assert t["timing__hold__ws"] >= 0 and t["timing__hold__tns"] == 0
    assert t["timing__setup__ws"] > 0
    assert m["route"]["route__net__unrouted"] == 0
    assert m["verify"]["verify__status"] == "pass" and m["verify"]["verify__mismatch__count"] == 0
    assert m["gds"]["gds__instance__count"] == m["cts"]["cts__cell__count"]


_INST = re.compile(r"(?ms)^\s*([A-Za-z_]\w*)\s+([A-Za-z_][\w$]*)\s*\((.*?)\);")
_PIN = re.compile(r"\.(\w+)\(\s*([^()]*?)\s*\)")


def _instances(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    return {m.group(2): (m.group(1), dict(_PIN.findall(m.group(3)))) for m in _INST.finditer(text)
            if m.group(1) not in ("module", "input", "output", "wire")}


def test_the_buffers_delay_the_violating_flip_flop_inputs(repaired):
    from engine.io.def_io import read_def
    from engine.pdk import load_pdk
    from engine.place.legalize import check_legality

    folder = repaired.step_dir("cts")
    report = json.loads((folder / "hold" / "hold.json").read_text())
    violating = {p[0] for p in report["before"]["pins"] if p[1] < 0.05}
    assert violating and len(report["buffers"]) == repaired.metrics()["cts"]["cts__hold__buffer__count"]
    final = _instances((folder / "netlist.v").read_text())
    before = _instances((folder / "hold" / "round0.v").read_text())  # the clock-tree netlist, before the repair
    driver = {pins["Y"]: name for name, (cell, pins) in final.items() if name.startswith("hold_")}
    assert len(driver) == len(report["buffers"])
    # Transparent: every pin of every cell is fed, through hold buffers only, from the net it had before.
    chained = set()
    for inst, (cell, pins) in before.items():
        assert final[inst][0] == cell
        for pin, net in pins.items():
            now, depth = final[inst][1][pin], 0
            while now in driver:
                assert final[driver[now]][0] in ("BUFX2", "BUFX4", "CLKBUF1", "CLKBUF2", "CLKBUF3")
                now = final[driver[now]][1]["A"]
                depth += 1
            assert now == net, (inst, pin, now, net)
            if depth:
                chained.add((inst, pin))
    # Each violating input is delayed: a chain in front of its D pin, or one on the input port its race starts at.
    ports_chained = {b["in_net"] for b in report["buffers"]}
    for pin in violating:
        inst, _, name = pin.rpartition("/")
        assert (inst, name) in chained or report["before"]["starts"].get(pin) in ports_chained, pin
    placed = read_def(folder / "cts.def", load_pdk())
    assert check_legality(placed).ok
    row_h = 10.0
    for b in report["buffers"]:  # next to the sink (or the port) they delay
        assert abs(b["x"] - b["sink_xy"][0]) + abs(b["y"] - b["sink_xy"][1]) <= 4 * row_h, b


def test_without_repair_the_violation_reaches_timing(store, zero_in, repaired):
    run = _run(store, zero_in, until="timing", hold_repair=False)
    m = run.metrics()
    assert m["timing"]["timing__hold__ws"] < -0.1  # the same race, unrepaired, is what OpenSTA reports
    assert "cts__hold__buffer__count" not in m["cts"]
    assert "hold_" not in (run.step_dir("cts") / "netlist.v").read_text()


def test_setup_pays_for_no_buffer_it_cannot_afford(store, tmp_path, repaired):
    """A period where the flip-flop inputs have less setup slack than the hold shortfall: the repair leaves
    them, and setup keeps its sign."""
    report = json.loads((repaired.step_dir("cts") / "hold" / "hold.json").read_text())
    pins = report["before"]["pins"]
    # the period at which the worst D pin is left with 0.1 ns of setup slack; the others keep up to ~0.7 ns
    period = round(10.0 - min(p[2] for p in pins) + 0.1, 3)
    sdc = tmp_path / "tight.sdc"
    sdc.write_text(SDC.format(period=period, out=0))
    run = _run(store, sdc, until="cts")
    c = run.metrics()["cts"]
    assert c["cts__hold__ws_before"] < -0.1 and 0 < c["cts__hold__setup_ws_before"] < 0.3
    assert c["cts__hold__setup_ws_after"] >= 0
    assert c["cts__hold__endpoint__left"] > 0  # the pins without setup room are left short
    hold = json.loads((run.step_dir("cts") / "hold" / "hold.json").read_text())
    assert "setup slack" in hold["stopped"]
    left = {p[0] for p in hold["after"]["pins"] if p[1] < 0.05}
    tight = {p[0] for p in hold["before"]["pins"] if p[2] < 0.3}
    assert left and left <= tight  # only the pins setup could not pay for stay short


def test_the_timing_page_names_the_hold_buffers(repaired, store, monkeypatch):
    from page_helpers import app_page

    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    at = app_page(Path(__file__).resolve().parent.parent / "pages" / "06_timing.py", repaired.id)
    assert not at.exception, [e.value for e in at.exception]
    n = repaired.metrics()["cts"]["cts__hold__buffer__count"]
    assert any(f"after {n} hold buffers" in m.value for m in at.markdown)
