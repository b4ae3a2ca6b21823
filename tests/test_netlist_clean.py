"""A netlist every tool reads: the synthesised netlist has no `assign` (OpenSTA rejects `assign {a, b} = ...`), its
constant and feed-through outputs are driven by real cells, its internal names need no escaping, OpenSTA and
Icarus read it, and its gate-level simulation matches the RTL on a design built to provoke all of these."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from engine.config import FlowConfig
from engine.flow.flow import run_flow
from engine.flow.synth import feed_cells
from engine.io.yosys_json import load_yosys_json, top_module
from engine.pdk import load_pdk
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "designs" / "hostile_netlist"
_INST_RE = re.compile(r"^\s*([A-Za-z_][\w$]*|\\\S+)\s+([A-Za-z_][\w$]*|\\\S+)\s*\(", re.M)


def sta_read(netlist_v: Path, top: str, workdir: Path) -> tuple[str, int]:
    """OpenSTA reads the Liberty and the netlist and links the top: (its log, instances it counted)."""
    pdk = load_pdk()
    tcl = workdir / "read.tcl"
    tcl.write_text(f"read_liberty {{{pdk.liberty_path}}}\nread_verilog {{{netlist_v}}}\nlink_design {top}\n"
                   'puts "INSTANCES [llength [get_cells *]]"\n')
    proc = subprocess.run(["sta", "-no_init", "-no_splash", "-exit", str(tcl)], capture_output=True, text=True,
                          timeout=120, cwd=workdir)
    out = proc.stdout + proc.stderr
    m = re.search(r"^INSTANCES (\d+)", out, re.M)
    return out, int(m.group(1)) if m else -1


def instances(netlist_text: str) -> dict[str, str]:
    """Instance name -> cell type, from a structural netlist."""
    return {name: ctype for ctype, name in _INST_RE.findall(netlist_text) if ctype not in ("module", "input",
                                                                                        "output", "wire")}


def driver_of(netlist_text: str, port: str) -> tuple[str, str]:
    """(cell type, input connection) of the cell whose Y drives ``port``."""
    for m in re.finditer(r"^\s*(\w+)\s+(\S+)\s*\((.*?)\);", netlist_text, re.M | re.S):
        if re.search(rf"\.Y\({re.escape(port)}\)", m.group(3)):
            a = re.search(r"\.A\(([^)]*)\)", m.group(3))
            return m.group(1), a.group(1).strip() if a else ""
    raise AssertionError(f"no cell drives {port}")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("netlist-clean")
    cfg = FlowConfig(design_files=[str(HOSTILE / "hostile.v")], top="hostile",
                     testbench=str(HOSTILE / "tb_hostile.v"))
    run = run_flow(cfg, RunStore(root / "runs"), steps=["synth", "verify"])
    assert run.status == "done", run.info().get("error")
    return run


def test_the_hostile_netlist_has_no_assign_and_no_escaped_internal_name(hostile_run):
    text = (hostile_run.step_dir("synth", create=False) / "netlist.v").read_text()
    assert not re.search(r"\bassign\b", text)
    assert "\\" not in text  # the kept wire `g[0].u.kept` was renamed; no port here needs escaping
    cells = instances(text)
    assert len(cells) == hostile_run.metrics()["synth"]["design__instance__count"]


def test_constants_and_feed_throughs_are_driven_by_real_cells(hostile_run):
    text = (hostile_run.step_dir("synth", create=False) / "netlist.v").read_text()
    assert driver_of(text, "zero") == ("BUFX2", "1'b0")
    assert driver_of(text, "one") == ("BUFX2", "1'b1")
    assert driver_of(text, "mixed[2]") == ("BUFX2", "1'b1")
    assert driver_of(text, "mixed[0]") == ("BUFX2", "1'b0")
    assert driver_of(text, "thru") == ("BUFX2", "a")
    for k, src in enumerate(["d[0]", "d[1]", "c[0]", "c[1]", "c[2]", "c[3]"]):
        assert driver_of(text, f"cat[{k}]") == ("BUFX2", src)
    for k in range(4):
        assert driver_of(text, f"slice[{k}]") == ("BUFX2", f"bus_in[{k + 3}]")
    # the two equal outputs: one is driven by the XOR, the other by a buffer from it (or both by buffers)
    t1, t2 = driver_of(text, "twin1"), driver_of(text, "twin2")
    assert "XOR2X1" in (t1[0], t2[0]) or t1[0] == t2[0] == "BUFX2"
    # those buffers are told apart from the design's logic (a design of constants only is still "no logic")
    _, module = top_module(load_yosys_json(hostile_run.step_dir("synth", create=False) / "netlist.json"), "hostile")
    feeds = feed_cells(module, "BUFX2")
    # zero, one, thru, twin2, cat (6), slice (4), mixed[2] and mixed[0]; the kept wire may add buffers of its own
    assert len(feeds) == 1 + 1 + 1 + 1 + 6 + 4 + 2
    assert hostile_run.metrics()["synth"]["synth__cell_types"]["BUFX2"] >= len(feeds)


def test_opensta_and_icarus_read_the_netlist(hostile_run, tmp_path):
    netlist_v = hostile_run.step_dir("synth", create=False) / "netlist.v"
    log, n = sta_read(netlist_v, "hostile", tmp_path)
    assert "Error" not in log and "error" not in log, log
    assert n == hostile_run.metrics()["synth"]["design__instance__count"]
    models = load_pdk().verilog_models_path
    proc = subprocess.run(["iverilog", "-T", "typ", "-o", str(tmp_path / "gate.vvp"), str(netlist_v), str(models)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_sta_check_catches_the_netlist_it_used_to_get(tmp_path):
    # What synthesis wrote before: OpenSTA stops at the concatenation (so the check above can fail).
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(a, b, c, d);\n  input a, b;\n  output c, d;\n  assign { c, d } = { a, b };\n"
                   "endmodule\n")
    log, _ = sta_read(bad, "bad", tmp_path)
    assert "syntax error" in log


def test_gate_level_matches_rtl_on_the_hostile_design(hostile_run):
    verify = hostile_run.metrics()["verify"]
    assert verify["verify__tests__count"] >= 60
    assert verify["verify__mismatch__count"] == 0


@pytest.mark.parametrize("design", ["counter", "alu", "gray_prio", "crc32"])
def test_example_designs_synthesise_assign_free_and_opensta_reads_them(design, tmp_path):
    folder = ROOT / "assets" / "designs" / design
    files = sorted(str(p) for p in folder.glob("*.v") if not p.name.startswith("tb_"))
    cfg = FlowConfig(design_files=files, top=design)
    run = run_flow(cfg, RunStore(tmp_path / "runs"), steps=["synth"])
    assert run.status == "done", run.info().get("error")
    netlist_v = run.step_dir("synth", create=False) / "netlist.v"
    assert not re.search(r"\bassign\b", netlist_v.read_text())
    log, n = sta_read(netlist_v, design, tmp_path)
    assert "Error" not in log, log
    assert n == run.metrics()["synth"]["design__instance__count"]


def test_the_hostile_design_goes_through_every_tool_to_gdsii(tmp_path):
    # qrouter reads the DEF made from the netlist, OpenSTA times it, KLayout writes it: tie and feed buffers are
    # cells like any other (a tie's input is the rail, so its A pin is on no routed net).
    cfg = FlowConfig(design_files=[str(HOSTILE / "hostile.v")], top="hostile", clock_port="clk")
    run = run_flow(cfg, RunStore(tmp_path / "runs"), until="gds")
    assert run.status == "done", run.info().get("error")
    m = run.metrics()
    assert m["route"]["route__net__unrouted"] == 0
    assert m["gds"]["gds__instance__count"] == m["synth"]["design__instance__count"] + \
        m["cts"]["cts__buffer__count"] + m["cts"]["cts__repair__buffer__count"]
    sta_log = (run.step_dir("timing", create=False) / "sta.log").read_text()
    assert "Error" not in sta_log and "syntax error" not in sta_log


def test_the_feed_buffer_comes_from_the_library():
    from engine.errors import EngineError
    from engine.flow.synth import feed_buffer
    from engine.pdk import Macro, MacroPin

    def buf(name: str, width: float, a: str = "A", y: str = "Y") -> Macro:
        return Macro(name, width, 10.0, pins={a: MacroPin(a, "INPUT"), y: MacroPin(y, "OUTPUT"),
                                              "vdd": MacroPin("vdd", "INOUT", "POWER")})

    assert feed_buffer(load_pdk().macros) == "BUFX2 A Y"
    # no BUFX2: the narrowest one-in one-out BUF* cell, with its own pin names
    assert feed_buffer({"BUF_X4": buf("BUF_X4", 4.0), "BUF_X1": buf("BUF_X1", 1.6, "I", "Z"),
                        "INV": buf("INV", 0.8)}) == "BUF_X1 I Z"
    with pytest.raises(EngineError) as exc:
        feed_buffer({"INVX1": buf("INVX1", 0.8)})
    assert exc.value.code == "tech.no_buffer"


def test_a_hierarchical_design_synthesised_without_flatten_is_one_mapped_module(tmp_path):
    """synth.flatten=False (an optimizer knob) maps each module on its own and flattens after mapping: uart's
    uart_rx / uart_tx used to be left as cells no library implements, and every such trial failed."""
    folder = ROOT / "assets" / "designs" / "uart"
    files = sorted(str(p) for p in folder.glob("*.v") if not p.name.startswith("tb_"))
    cfg = FlowConfig(design_files=files, top="uart")
    cfg.synth.flatten = False
    run = run_flow(cfg, RunStore(tmp_path / "runs"), steps=["synth"])
    assert run.status == "done", run.info().get("error")
    netlist_v = run.step_dir("synth", create=False) / "netlist.v"
    text = netlist_v.read_text()
    assert re.findall(r"^module (\S+)\(", text, re.M) == ["uart"]
    lib_cells = set(load_pdk().macros)
    assert set(instances(text).values()) <= lib_cells
    log, n = sta_read(netlist_v, "uart", tmp_path)
    assert "Error" not in log, log
    assert n == run.metrics()["synth"]["design__instance__count"]
