"""Hostile and unusual input through the whole flow: tri-states kept and verified, tool resource limits, the
validation that runs before any tool, and quoting of paths in the Yosys script."""
from __future__ import annotations

import json

import pytest

from engine.config import FlowConfig
from engine.errors import EngineError
from engine.flow.flow import run_flow
from engine.runs import RunStore

TRI = """module tri_top(input clk, input oe, input d, input ld, inout pad, output q);
  reg r = 0;
  always @(posedge clk) if (ld) r <= pad;
  assign pad = oe ? d : 1'bz;
  assign q = r;
endmodule
"""

TRI_TB = """`timescale 1ns/1ps
module tb_tri;
  reg clk = 0, oe = 0, d = 0, drive = 0, ext = 0, ld = 1;
  wire pad, q;
  assign pad = drive ? ext : 1'bz;   // the outside world drives the pad while the chip listens
  // the flop loads the pad only while someone drives it (a floating pad is x in gates, z in RTL)
  tri_top dut (.clk(clk), .oe(oe), .d(d), .ld(ld), .pad(pad), .q(q));
  always #5 clk = ~clk;
  integer i;
  initial begin
    for (i = 0; i < 40; i = i + 1) begin
      @(negedge clk);
      if (i >= 4) $display("OUT %0d pad=%b q=%b", i, pad, q);  // after the first load
      oe = i[1]; d = i[0]; drive = ~i[1] & i[2]; ext = i[3]; ld = i[1] | i[2];
    end
    $finish;
  end
endmodule
"""


def test_tristate_port_is_mapped_onto_tbuf_and_verified(tmp_path):
    (tmp_path / "tri.v").write_text(TRI)
    (tmp_path / "tb_tri.v").write_text(TRI_TB)
    cfg = FlowConfig(design_files=[str(tmp_path / "tri.v")], top="tri_top", testbench=str(tmp_path / "tb_tri.v"))
    run = run_flow(cfg, RunStore(tmp_path / "runs"), steps=["synth", "verify"])
    assert run.status == "done", run.info().get("error")
    synth = run.metrics()["synth"]
    assert synth["synth__cell_types"].get("TBUFX1", 0) + synth["synth__cell_types"].get("TBUFX2", 0) == 1
    assert any("tri-state" in w for w in synth["synth__design_warnings"])
    netlist = (run.step_dir("synth", create=False) / "netlist.v").read_text()
    assert ".EN(oe)" in netlist  # the enable is kept, not optimised away as don't-care
    verify = run.metrics()["verify"]
    assert verify["verify__mismatch__count"] == 0 and verify["verify__tests__count"] >= 30 - 4
    # z on the pad is compared too: the RTL run prints z when nobody drives it
    rtl_log = next((run.step_dir("verify", create=False)).rglob("rtl.log")).read_text()
    assert "pad=z" in rtl_log


def test_bad_names_are_refused_before_a_run_folder_exists(tmp_path):
    (tmp_path / "a.v").write_text("module a(input x, output y); assign y = ~x; endmodule\n")
    store = RunStore(tmp_path / "runs")
    for field, value in [("top", "a; exec touch /tmp/x"), ("clock_port", "c}]"), ("top", "a\nb")]:
        cfg = FlowConfig(design_files=[str(tmp_path / "a.v")])
        setattr(cfg, field, value)
        with pytest.raises(EngineError, match="not a Verilog identifier"):
            run_flow(cfg, store)
    assert not list((tmp_path / "runs").glob("2*"))


def test_escaped_identifier_top_is_accepted(tmp_path):
    from engine.validate import verilog_identifier

    assert verilog_identifier("\\cpu.core ", "top") == "\\cpu.core"
    assert verilog_identifier("cpu_top$1", "top") == "cpu_top$1"
    with pytest.raises(EngineError):
        verilog_identifier("\\cpu;core", "top")


def test_synth_script_quotes_every_path():
    from engine.flow.synth import synth_script

    text = synth_script(["/d/my dir/a;b#c.v", "/d/x.sv"], "top", "/lib dir/x.lib", flatten=True, abc="default",
                        clock_ns=10, include_dirs=["/d/my dir"])
    assert 'read_verilog -I "/d/my dir" "/d/my dir/a;b#c.v"' in text
    assert 'read_verilog -sv -I "/d/my dir" "/d/x.sv"' in text
    assert 'read_liberty -lib "/lib dir/x.lib"' in text
    with pytest.raises(EngineError, match="double quote"):
        synth_script(['/d/a"b.v'], "top", "/l.lib", flatten=True, abc="default", clock_ns=10, include_dirs=[])


def test_tool_cpu_limit_names_the_knob(tmp_path):
    """A tool that burns CPU past its limit is stopped by the kernel (RLIMIT_CPU) and the step names the knob."""
    from engine.flow.base import StepContext
    from engine.pdk import load_pdk

    store = RunStore(tmp_path / "runs")
    run = store.create(FlowConfig().to_dict(), design="spin")
    step_dir = run.step_dir("synth")
    from engine.flow.limits import LimitsConfig

    cfg = FlowConfig(limits=LimitsConfig(wall_factor=60.0))  # the CPU cap, not the wall-clock net, must stop it
    ctx = StepContext(run=run, config=cfg, pdk=load_pdk(None), step_id="synth", step_dir=step_dir)
    with pytest.raises(EngineError) as err:
        ctx.tool(["python3", "-c", "while True: pass"], "spin.log", timeout=1.0)
    assert "CPU-time limit of 1 s" in err.value.message and "synth.timeout_s" in err.value.message


def test_design_json_fields_are_checked(tmp_path):
    from engine.designs import resolve

    (tmp_path / "a.v").write_text("module a(input x, output y); assign y = ~x; endmodule\n")
    for meta, words in [({"top": 5}, "'top' must be str"), ({"clock_ns": -1}, "out of range"),
                        ({"flow_overrides": []}, "must be dict"), ({"clock_port": "a b"}, "clock port")]:
        (tmp_path / "design.json").write_text(json.dumps(meta))
        with pytest.raises(EngineError, match=words):
            resolve(str(tmp_path))


def test_cpu_budgets_scale_with_the_design():
    from engine.flow.limits import LimitsConfig, design_scale

    cfg = LimitsConfig()
    assert design_scale(cfg, 5_000, 20_000) == 1.0  # small designs keep the step's own timeout_s
    assert design_scale(cfg, 100_000, 20_000) == 5.0  # a 100k-net core gets 5x without a knob turned
    assert design_scale(LimitsConfig(scale_with_design=False), 100_000, 20_000) == 1.0


def test_a_clean_exit_is_never_a_limit_stop(tmp_path):
    """A tool that exits 0 is not 'stopped by the memory limit' because its log happens to say "out of memory"."""
    from engine.flow.base import StepContext
    from engine.pdk import load_pdk

    run = RunStore(tmp_path / "runs").create(FlowConfig().to_dict(), design="echo")
    ctx = StepContext(run=run, config=FlowConfig(), pdk=load_pdk(None), step_id="synth",
                      step_dir=run.step_dir("synth"))
    proc = ctx.tool(["python3", "-c", "print('warning: out of memory in a comment; std::bad_alloc')"], "echo.log")
    assert proc.returncode == 0 and "out of memory" in proc.stdout
