"""The verify step with real Icarus and Yosys: a sabotaged netlist is caught, a missing testbench is a skip,
a flop without reset shows up as x, and bad testbenches give clear messages instead of hangs."""
import json
import re
from pathlib import Path

import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.verify import (
    SimulationError,
    VerifyConfig,
    compare_outputs,
    dut_instance,
    simulate,
    tb_top_module,
    vcd_activity,
    verify_design,
)
from engine.pdk import load_pdk
from engine.runs import RunStore

CELLS = load_pdk().verilog_models_path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def counter_run(store):
    spec = resolve("counter")
    cfg = FlowConfig(design_files=spec.files, top=spec.top, clock_port="clk", testbench=spec.testbench)
    run = run_flow(cfg, store, steps=["synth", "verify"])
    assert run.status == "done", run.info().get("error")
    return run


def _write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text)
    return p


def test_sabotaged_netlist_gives_mismatches(counter_run, tmp_path):
    spec = resolve("counter")
    netlist = (counter_run.step_dir("synth") / "netlist.v").read_text()
    # Turn every XOR into an XNOR: the count sequence goes wrong but everything still compiles.
    wrong, n = re.subn(r"\bXOR2X1\b", "XNOR2X1", netlist)
    if n == 0:
        wrong, n = re.subn(r"\bNAND2X1\b", "NOR2X1", netlist)
    assert n > 0
    bad = _write(tmp_path, "netlist.v", wrong)
    report = verify_design(spec.files, spec.testbench, "counter", bad, CELLS, tmp_path / "out")
    assert report.status == "mismatch"
    c = report.comparison
    assert c.mismatches > 0 and c.tests == 298
    saved = json.loads((tmp_path / "out" / "mismatches.json").read_text())
    assert saved["mismatches"] == c.mismatches and saved["first"]
    first = saved["first"][0]
    assert first["rtl"] != first["gate"] and first["rtl"].startswith("OUT ")
    # The testbench's own check fails too on the sabotaged gates.
    assert report.gate.errors and not report.rtl.errors
    m = report.metrics()
    assert m["verify__mismatch__count"] == c.mismatches and m["verify__status"] == "mismatch"


def test_gate_level_with_the_cells_specify_delays_still_matches(counter_run, tmp_path):
    spec = resolve("counter")
    netlist = counter_run.step_dir("synth") / "netlist.v"
    report = verify_design(spec.files, spec.testbench, "counter", netlist, CELLS, tmp_path,
                           config=VerifyConfig(gate_delays=True, gate_vcd=False))
    assert report.status == "pass" and report.comparison.tests == 298
    assert not (tmp_path / "gate.vcd").exists() and not (tmp_path / "activity.json").exists()


def test_step_keeps_logs_vcd_and_reports(counter_run):
    d = counter_run.step_dir("verify")
    for name in ("rtl.log", "gate.log", "rtl.compile.log", "gate.compile.log", "mismatches.json", "verify.json",
                 "rtl.vcd"):
        assert (d / name).is_file(), name
    step = json.loads((d / "step.json").read_text())
    assert step["status"] == "done" and step["artefacts"]["vcd"] == "rtl.vcd"
    assert "agree on 298 output lines" in step["message"]
    rep = json.loads((d / "verify.json").read_text())
    assert rep["tb_top"] == "tb_counter" and rep["dut_instance"] == "dut" and rep["vcd_scope"] == "tb_counter.dut"
    # the VCD has the counter's output bus
    assert re.search(r"\$var \w+ 8 \S+ q \[7:0\] \$end", (d / "rtl.vcd").read_text()[:50_000])


def test_gate_level_activity_covers_the_netlist_nets(counter_run):
    d = counter_run.step_dir("verify")
    step = json.loads((d / "step.json").read_text())
    assert step["artefacts"]["gate_vcd"] == "gate.vcd" and step["artefacts"]["activity"] == "activity.json"
    act = json.loads((d / "activity.json").read_text())
    assert act["scope"] == "tb_counter.dut"
    nets = act["nets"]
    # only the design's own nets (depth 1), not the cells' insides
    assert not any("." in n for n in nets)
    # the clock toggles twice per 10 ns cycle with a 50 % duty; q[0] toggles about once per counted cycle
    assert nets["clk"]["duty"] == pytest.approx(0.5, abs=0.01)
    assert nets["clk"]["toggles_per_ns"] == pytest.approx(0.2, rel=0.01)
    assert 150 < nets["q[0]"]["toggles"] < 300
    assert nets["q[7]"]["toggles"] < nets["q[0]"]["toggles"]
    # every net of the mapped netlist that Yosys named in the JSON is there
    netlist = json.loads((counter_run.step_dir("synth") / "netlist.json").read_text())
    ports = netlist["modules"]["counter"]["ports"]
    for port, info in ports.items():
        width = len(info["bits"])
        names = [port] if width == 1 else [f"{port}[{i}]" for i in range(width)]
        assert all(n in nets for n in names), port


def test_vcd_activity_on_a_known_waveform(tmp_path):
    vcd = _write(tmp_path, "w.vcd", """$timescale 1ps $end
$scope module tb $end
$var reg 1 ! clk $end
$scope module dut $end
$var wire 2 " bus [1:0] $end
$var wire 1 # \\esc.name $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
$dumpvars
0!
bx0 "
x#
$end
#1000
1!
b11 "
0#
#2000
0!
b01 "
#3000
1!
1#
#4000
0!
""")
    acts = vcd_activity(vcd, "tb.dut")
    assert set(acts) == {"bus[1]", "bus[0]", "esc.name"}
    assert acts["bus[1]"].toggles == 1 and acts["bus[1]"].duty == pytest.approx(0.25)
    assert acts["bus[0]"].toggles == 1 and acts["bus[0]"].duty == pytest.approx(0.75)  # 0 until 1 ns, then 1
    assert acts["esc.name"].toggles == 1 and acts["esc.name"].duty == pytest.approx(0.25)
    assert acts["bus[0]"].toggles_per_ns == pytest.approx(0.25)
    full = vcd_activity(vcd)
    assert full["tb.clk"].toggles == 4 and full["tb.clk"].duty == pytest.approx(0.5)


def test_no_testbench_is_a_clear_skip(store, tmp_path):
    spec = resolve("counter")
    cfg = FlowConfig(design_files=spec.files, top="counter", clock_port="clk", testbench=None)
    run = run_flow(cfg, store, steps=["synth", "verify"])
    assert run.status == "done"
    m = run.step_metrics("verify")
    assert m["verify__status"] == "no testbench" and m["verify__tests__count"] == 0
    step = json.loads((run.step_dir("verify") / "step.json").read_text())
    assert step["status"] == "skipped" and "no testbench" in step["message"]


RESETLESS = """module toggler(input wire clk, output reg q = 1'b0);
  always @(posedge clk) q <= ~q;
endmodule
"""
RESETLESS_TB = """`timescale 1ns/1ps
module tb_toggler;
  reg clk = 0; wire q; integer i;
  toggler dut (.clk(clk), .q(q));
  always #5 clk = ~clk;
  initial begin
    for (i = 0; i < 6; i = i + 1) begin @(negedge clk); $display("OUT %0d %b", i, q); end
    $finish;
  end
endmodule
"""


def test_flop_without_reset_is_a_mismatch_with_an_x_hint(store, tmp_path):
    # RTL starts from the declared value; the library's flip-flops have no reset and start as x.
    cfg = FlowConfig(design_files=[str(_write(tmp_path, "toggler.v", RESETLESS))], top="toggler",
                     clock_port="clk", testbench=str(_write(tmp_path, "tb_toggler.v", RESETLESS_TB)))
    run = run_flow(cfg, store, steps=["synth", "verify"])
    assert run.status == "done", run.info().get("error")
    m = run.step_metrics("verify")
    assert m["verify__status"] == "mismatch" and m["verify__mismatch__count"] == 6
    step = json.loads((run.step_dir("verify") / "step.json").read_text())
    assert "x" in step["message"] and "reset" in step["message"]
    # no OUT/PASS conventions needed beyond OUT lines; the gate run printed x
    gate = (run.step_dir("verify") / "gate.log").read_text()
    assert "OUT 0 x" in gate


def test_hierarchical_reference_fails_the_step_with_a_message(store, tmp_path):
    tb = RESETLESS_TB.replace('$display("OUT %0d %b", i, q);', '$display("OUT %0d %b %b", i, q, dut.q);')
    design = RESETLESS.replace("output reg q = 1'b0", "input wire rst, output reg q").replace(
        "q <= ~q;", "q <= rst ? 1'b0 : ~q;")
    tb = tb.replace("toggler dut (.clk(clk), .q(q));", "reg rst = 1; toggler dut (.clk(clk), .rst(rst), .q(q));")
    tb = tb.replace("integer i;", "integer i; wire probe = dut.never_there;")
    cfg = FlowConfig(design_files=[str(_write(tmp_path, "toggler.v", design))], top="toggler",
                     clock_port="clk", testbench=str(_write(tmp_path, "tb_toggler.v", tb)))
    run = run_flow(cfg, store, steps=["synth", "verify"])
    info = run.info()
    assert run.status == "failed" and info.get("failed_step") == "verify"
    assert "iverilog could not compile the rtl simulation" in info["error"]
    assert "tb_toggler.v" in info["error"]
    assert (run.step_dir("synth") / "netlist.v").exists()  # earlier artefacts kept


def test_testbench_without_finish_is_stopped(tmp_path):
    design = _write(tmp_path, "toggler.v", RESETLESS)
    tb = _write(tmp_path, "tb_toggler.v", RESETLESS_TB.replace("$finish;", "").replace(
        "for (i = 0; i < 6; i = i + 1)", "forever"))
    res = simulate([design], tb, "toggler", tmp_path / "out", config=VerifyConfig(timeout_s=1.5, max_log_mb=0.5))
    assert not res.ok and res.returncode == -9
    assert "$finish" in res.message or "runaway" in res.message
    with pytest.raises(SimulationError):
        verify_design([design], tb, "toggler", design, CELLS, tmp_path / "out2",
                      config=VerifyConfig(timeout_s=1.5, max_log_mb=0.5))


def test_testbench_without_dumpfile_still_gets_a_vcd_and_all_lines_compared(tmp_path):
    design = _write(tmp_path, "toggler.v", RESETLESS)
    tb = _write(tmp_path, "tb_plain.v", RESETLESS_TB.replace("OUT ", "t=").replace("tb_toggler", "tb_plain"))
    res = simulate([design], tb, "toggler", tmp_path / "out", vcd=tmp_path / "out" / "w.vcd")
    assert res.ok and res.vcd and Path(res.vcd).stat().st_size > 0
    assert res.compared == ["t=0 1", "t=1 0", "t=2 1", "t=3 0", "t=4 1", "t=5 0"]


def test_compare_and_parsing_helpers(tmp_path):
    c = compare_outputs(["OUT 1 a", "OUT 2 b", "OUT 3 c"], ["OUT 1 a", "OUT 2 B"])
    assert (c.tests, c.mismatches, c.gate_lines) == (3, 2, 2)
    assert c.first == [{"index": 1, "rtl": "OUT 2 b", "gate": "OUT 2 B"}, {"index": 2, "rtl": "OUT 3 c", "gate": None}]
    tb = _write(tmp_path, "tb.v", "// module fake;\nmodule helper(input a); endmodule\n"
                                  "module tb_top;\n  helper h (.a(1'b0));\n  my_design #(.W(4)) u_dut (.x(1'b0));\n"
                                  "endmodule\n")
    assert tb_top_module(tb) == "tb_top"
    assert dut_instance(tb, "my_design") == "u_dut" and dut_instance(tb, "other") == ""


def test_missing_iverilog_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    spec = resolve("counter")
    with pytest.raises(Exception) as exc:
        simulate(spec.files, spec.testbench, "counter", tmp_path / "out")
    assert "iverilog" in str(exc.value) and "not installed" in str(exc.value)


def test_memory_images_and_includes_next_to_the_testbench(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    design = _write(src, "adder.v", "`include \"widths.vh\"\nmodule adder(input [`W-1:0] a, b, "
                                    "output [`W-1:0] y);\n  assign y = a + b;\nendmodule\n")
    _write(src, "widths.vh", "`define W 8\n")
    _write(src, "vectors.hex", "01\n7f\nff\n")
    tb = _write(src, "tb_adder.v", """module tb_adder;
  reg [7:0] mem [0:2]; reg [7:0] a, b; wire [7:0] y; integer i;
  adder dut (.a(a), .b(b), .y(y));
  initial begin
    $readmemh("vectors.hex", mem);
    for (i = 0; i < 3; i = i + 1) begin a = mem[i]; b = 8'd1; #1 $display("OUT %0d %h", i, y); end
    $finish;
  end
endmodule
""")
    res = simulate([design], tb, "adder", tmp_path / "out")
    assert res.ok, res.message
    assert res.compared == ["OUT 0 02", "OUT 1 80", "OUT 2 00"]


def test_testbench_failures_on_matching_runs_are_reported(store, tmp_path):
    design = RESETLESS.replace("output reg q = 1'b0", "input wire rst, output reg q").replace(
        "q <= ~q;", "q <= rst ? 1'b0 : ~q;")
    tb = RESETLESS_TB.replace("toggler dut (.clk(clk), .q(q));",
                              "reg rst = 1; toggler dut (.clk(clk), .rst(rst), .q(q));")
    tb = tb.replace("$finish;", "$display(\"ERROR expected q to stay high\"); $display(\"FAIL toggler\"); $finish;")
    tb = tb.replace("begin @(negedge clk);", "begin @(negedge clk); rst = 0;")
    cfg = FlowConfig(design_files=[str(_write(tmp_path, "toggler.v", design))], top="toggler", clock_port="clk",
                     testbench=str(_write(tmp_path, "tb_toggler.v", tb)))
    run = run_flow(cfg, store, steps=["synth", "verify"])
    assert run.status == "done"
    m = run.step_metrics("verify")
    assert m["verify__status"] == "rtl fails its testbench" and m["verify__mismatch__count"] == 0
    assert m["verify__rtl__errors"] == 2 and m["verify__gate__errors"] == 2
    step = json.loads((run.step_dir("verify") / "step.json").read_text())
    assert "testbench reports 2 failures" in step["message"]
