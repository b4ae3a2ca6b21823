"""Demo mode's narration and the clock-tree step in the story (pure functions of the run's state), the demo's
auto-advance rule, and the names on timing paths (register, cell type, port) from the synthesised netlist."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cockpit import pathnames, story
from cockpit.story import STEP_STORY, demo_should_advance, done_text, step_lines, what_happened
from engine import diagnosis

ROOT = Path(__file__).resolve().parent.parent
PLANNED = ["synth", "floorplan", "place", "cts", "route", "timing", "gds", "verify"]
CTS_M = {"cts__buffer__count": 5, "cts__level__count": 2, "cts__sink__count": 24, "cts__skew_estimate_ns": 0.0123,
         "cts__repair__buffer__count": 3, "cts__repair__net__count": 1}


def _p(status, fraction=0.0, message="", seconds=None):
    return {"status": status, "fraction": fraction, "message": message, "seconds": seconds}


def _info(status, **kw):
    return {"status": status, "steps": PLANNED, **kw}


DONE_UP_TO_PLACE = {"synth": _p("done", 1.0), "floorplan": _p("done", 1.0), "place": _p("done", 1.0)}


def test_the_story_knows_the_clock_tree_step():
    cts = STEP_STORY["cts"]
    assert "CLKBUF" in cts.does and "bisection" in cts.does and "fanout" in cts.does
    assert "skew" in cts.look and "buffer count" in cts.look and "hold slack" in cts.look
    # every step of the flow up to GDSII has its two lines
    assert set(PLANNED[:-1]) <= set(STEP_STORY)
    # the Timing chapter mentions the clock tree, in its step line and its takeaway
    assert "clock tree" in STEP_STORY["timing"].does
    assert "clock tree" in story.chapter_of("6 · Timing").takeaway


def test_cts_lines_in_every_state():
    # queued
    _, happened, look = step_lines("cts", _info("queued"), {}, {})
    assert "queued" in happened and "queue" in look
    # running, on an earlier step: cts waits, and says where the run is
    prog = {"synth": _p("done", 1.0), "place": _p("running", 0.4, "iteration 80 of 200")}
    _, happened, _ = step_lines("cts", _info("running"), prog, {})
    assert "Clock tree has not started yet" in happened and "Placement" in happened and "40 %" in happened
    # running cts itself, with its progress
    prog = {**DONE_UP_TO_PLACE, "cts": _p("running", 0.5, "legalising 5 buffers")}
    does, happened, look = step_lines("cts", _info("running"), prog, {})
    assert does == STEP_STORY["cts"].does
    assert "Clock tree is running now (50 %: legalising 5 buffers)" in happened
    assert "update as Clock tree works" in look
    # done: the numbers from its metrics, and where the run carries on
    prog = {**DONE_UP_TO_PLACE, "cts": _p("done", 1.0, seconds=0.16), "route": _p("running", 0.3, "routing")}
    _, happened, look = step_lines("cts", _info("running"), prog, {"cts": CTS_M})
    assert "5 CLKBUF buffers in 2 level(s) driving 24 flip-flops" in happened
    assert "skew 0.0123 ns" in happened and "3 buffers on 1 nets" in happened
    assert "carries on with Routing (30 %: routing)" in happened
    assert look == STEP_STORY["cts"].look
    # failed in cts: the message, the diagnosis' cause and the knob
    info = _info("failed", failed_step="cts", error="no free site for 5 buffers", code="cts.no_room",
                 knob="floorplan.utilization")
    prog = {**DONE_UP_TO_PLACE, "cts": _p("running", 0.7)}
    _, happened, look = step_lines("cts", info, prog, {})
    assert happened.startswith("Clock tree failed: no free site for 5 buffers")
    assert diagnosis.lookup("cts.no_room").meaning in happened and "`floorplan.utilization`" in happened
    assert "red box" in look and "`floorplan.utilization` changed" in look
    # cancelled while it ran
    _, happened, _ = step_lines("cts", _info("cancelled"), {**DONE_UP_TO_PLACE, "cts": _p("running", 0.25)}, {})
    assert "Clock tree was cancelled while it ran (25 % done)" in happened


def test_routing_chapter_names_the_clock_tree_while_it_runs():
    prog = {**DONE_UP_TO_PLACE, "cts": _p("running", 0.6, "buffering clk")}
    text = what_happened("route", "running", prog.get("route"), prog, planned=PLANNED)
    assert text == "Routing has not started yet: the run is on Clock tree now (60 %: buffering clk)."


def test_cts_done_text_without_a_clock_or_repair():
    assert done_text("cts", {"cts__buffer__count": 0, "cts__repair__buffer__count": 0}).startswith(
        "there was no clock to buffer")
    text = done_text("cts", {**CTS_M, "cts__repair__buffer__count": 0})
    assert "no net needed fanout repair" in text
    assert "has 1 CLKBUF buffer in" in done_text("cts", {**CTS_M, "cts__buffer__count": 1})
    assert done_text("cts", {}) is None


def test_timing_done_text_mentions_hold_and_skew():
    text = done_text("timing", {"timing__setup__ws": -0.25, "timing__hold__ws": 0.05, "timing__clock__skew_ns": 0.02})
    assert "missed by 0.25 ns" in text and "hold slack 0.05 ns" in text and "clock skew 0.02 ns" in text


@pytest.mark.parametrize("run_status, step_status, waited, dwell, expected", [
    ("running", "done", 6.0, 5.0, True),      # step done, shown long enough
    ("running", "done", 2.0, 5.0, False),     # shown too briefly
    ("running", "running", 60.0, 5.0, False),  # the step still works
    ("queued", None, 60.0, 5.0, False),
    ("done", "reused", 5.0, 5.0, True),
    ("done", None, 9.0, 5.0, True),           # the run ended without this step: nothing to wait for
    ("failed", "failed", 60.0, 5.0, False),   # hold the chapter that shows why
    ("failed", None, 60.0, 5.0, False),
    ("cancelled", "cancelled", 60.0, 5.0, False),
])
def test_demo_auto_advance(run_status, step_status, waited, dwell, expected):
    assert demo_should_advance(run_status, step_status, waited, dwell) is expected


# ------------------------------------------------------------------------------------------------ path names
def _netlist():
    """A small Yosys JSON netlist: a vector register q[3:0] (one bit through hdlname after flattening), a flip-flop
    on an auto-named net only, a gate, a constant."""
    return {"modules": {
        "DFFPOSX1": {"cells": {}, "netnames": {}},
        "top": {"attributes": {"top": "00000000000000000000000000000001"},
                "cells": {
                    "_10_": {"type": "DFFPOSX1", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                             "connections": {"CLK": [2], "D": [7], "Q": [5]}},
                    "_11_": {"type": "DFFPOSX1", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                             "connections": {"CLK": [2], "D": [8], "Q": [9]}},
                    "_12_": {"type": "DFFPOSX1", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                             "connections": {"CLK": [2], "D": [8], "Q": [11]}},
                    "state_reg": {"type": "DFFPOSX1", "port_directions": {"Q": "output"},
                                  "connections": {"CLK": [2], "D": ["0"], "Q": [12]}},
                    "_20_": {"type": "NAND2X1", "port_directions": {"A": "input", "B": "input", "Y": "output"},
                             "connections": {"A": [5], "B": [9], "Y": [7]}},
                },
                "netnames": {
                    "q": {"hide_name": 0, "bits": [3, 4, 5, 6], "attributes": {}},
                    "_3_": {"hide_name": 0, "bits": [9], "attributes": {"hdlname": "u_core count"}},
                    "$auto$x": {"hide_name": 1, "bits": [5, 11], "attributes": {}},
                    "_4_": {"hide_name": 0, "bits": [12], "attributes": {}},
                    "clk": {"hide_name": 0, "bits": [2], "attributes": {}},
                }}}}


def test_register_names_from_the_q_nets():
    regs = pathnames.register_names(_netlist())
    # q's third bit; the hdlname of a flattened register; an auto-named Q net only: the instance's own public name
    assert regs == {"_10_": "q[2]", "_11_": "u_core.count", "state_reg": "state_reg"}
    assert "_12_" not in regs and "_20_" not in regs  # no readable name; not a flip-flop
    assert pathnames.cell_types(_netlist())["_20_"] == "NAND2X1"


def test_point_labels_say_register_cell_and_port():
    n = _netlist()
    regs, types = pathnames.register_names(n), pathnames.cell_types(n)
    kw = dict(registers=regs, types=types)
    assert pathnames.point_label("_10_", kind="rising edge-triggered flip-flop clocked by clk", **kw) == \
        "_10_ DFFPOSX1 · register q[2]"
    assert pathnames.point_label("_11_/D", cell="DFFPOSX1", **kw) == "_11_/D DFFPOSX1 · register u_core.count"
    assert pathnames.point_label("_20_/Y", cell="NAND2X1", **kw) == "_20_/Y NAND2X1"
    assert pathnames.point_label("up", kind="input port clocked by clk", **kw) == "port up"
    assert pathnames.point_label("wrap", cell="port", **kw) == "port wrap"
    assert pathnames.point_label("cts_clk_b1_0/A", cell="CLKBUF1", **kw) == "cts_clk_b1_0/A CLKBUF1"  # cts buffer


def test_register_names_of_a_real_synthesis(tmp_path):
    """Yosys on the counter example: each of its 8 flip-flops is named after a bit of `reg [7:0] q`."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    run = run_flow(resolve("counter").flow_config(), RunStore(tmp_path), until="synth")
    assert run.status == "done", run.info().get("error")
    netlist = json.loads((run.dir / "01-synth" / "netlist.json").read_text())
    types = pathnames.cell_types(netlist)
    flops = {k for k, t in types.items() if t.startswith("DFF")}
    regs = pathnames.register_names(netlist)
    assert len(flops) == 8 and set(regs) == flops
    assert sorted(regs.values()) == sorted(f"q[{i}]" for i in range(8))


# ------------------------------------------------------------------------------------------------ on the pages
def _opener_text(at) -> str:
    return " ".join(m.value for m in at.markdown if "What just happened" in m.value or "What to look at" in m.value)


def test_chapter_pages_name_the_clock_tree_while_it_runs(tmp_path, monkeypatch):
    from page_helpers import app_page

    from engine.runs import RunStore

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    run = RunStore(tmp_path).create({}, "counter")
    run.update_info(steps=PLANNED)
    run.set_status("running")  # this process owns it: alive, so it stays running
    for step in ("synth", "floorplan", "place"):
        run.event("step_start", step=step)
        run.event("step_end", step=step, status="done", seconds=1.0)
    run.event("step_start", step="cts")
    run.event("progress", step="cts", fraction=0.5, message="legalising 3 buffers")
    for page, title in (("05_routing.py", "Routing"), ("06_timing.py", "Timing & power")):
        at = app_page(ROOT / "pages" / page, run.id)
        assert not at.exception
        assert f"{title} has not started yet: the run is on Clock tree now (50 %: legalising 3 buffers)" in \
            _opener_text(at)


def test_timing_page_path_table_names_registers_and_ports(tmp_path, monkeypatch):
    """A real counter run through timing: every start and end point of the path table is a port or a flip-flop
    with its cell type and the register bit (q[i]) it holds."""
    from page_helpers import app_page

    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    run = run_flow(resolve("counter").flow_config(), RunStore(tmp_path), until="timing")
    assert run.status == "done", run.info().get("error")
    at = app_page(ROOT / "pages" / "06_timing.py", run.id)
    assert not at.exception
    table = next(df.value for df in at.dataframe if "from" in df.value.columns)
    points = list(table["from"]) + list(table["to"])
    assert points
    flop = re.compile(r"^_\d+_ DFF\w+ · register q\[[0-7]\]$")
    assert all(p.startswith("port ") or flop.match(p) for p in points), points
    assert any(flop.match(p) for p in points) and any(p.startswith("port ") for p in points)
    stages = next(df.value for df in at.dataframe if "pin" in df.value.columns)
    # each stage names its pin and cell type (a flip-flop's also its register), a port says so
    assert all(re.match(r"^(port \S+|\S+/\S+ [A-Z]\w+( · register q\[[0-7]\])?)$", p) for p in stages["pin"]), \
        list(stages["pin"])
    assert "clock tree" in _opener_text(at).lower() or "skew" in _opener_text(at)
