"""The run store, step reuse, bad input to synthesis, and the `cda` CLI, with real Yosys."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main as cda
from engine.config import FlowConfig
from engine.flow.cli import parse_clock
from engine.flow.flow import run_flow
from engine.runs import RunStore

COUNTER = "module c(input clk, input rst, output reg [3:0] q);\n" \
          "always @(posedge clk) if (rst) q <= 0; else q <= q + 1;\nendmodule\n"


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _synth(store, tmp_path, text, top="", name="d.v"):
    return run_flow(FlowConfig(design_files=[_write(tmp_path, name, text)], top=top), store, until="synth")


def test_run_folder_events_and_index(store, tmp_path):
    run = _synth(store, tmp_path, COUNTER, top="c")
    assert run.status == "done"
    info = json.loads((run.dir / "run.json").read_text())
    assert info["config"]["top"] == "c" and info["status"] == "done" and "finished" in info
    assert (run.dir / "01-synth" / "netlist.v").exists() and (run.dir / "01-synth" / "yosys.log").exists()
    kinds = [e["kind"] for e in run.events()]
    assert kinds[0] == "created" and "step_start" in kinds and "step_end" in kinds
    assert run.progress()["synth"]["status"] == "done"
    listed = store.list()
    assert listed[0]["id"] == run.id and listed[0]["status"] == "done"
    # The index is derived: rebuilding it from the folders finds the same run.
    store.db_path.unlink()
    fresh = RunStore(store.root)
    assert fresh.reindex() == 1 and fresh.list()[0]["id"] == run.id


def test_repeated_run_reuses_synthesis(store, tmp_path):
    first = _synth(store, tmp_path, COUNTER, top="c")
    second = _synth(store, tmp_path, COUNTER, top="c")
    assert second.id != first.id
    ends = {e["step"]: e for e in second.events() if e["kind"] == "step_end"}
    assert ends["synth"]["status"] == "reused" and ends["synth"]["reused_from"] == first.id
    netlist = "01-synth/netlist.json"
    assert (second.dir / netlist).read_text() == (first.dir / netlist).read_text()
    # A change in the Verilog is a new input: synthesis runs again.
    third = _synth(store, tmp_path, COUNTER.replace("q + 1", "q + 2"), top="c")
    ends = {e["step"]: e for e in third.events() if e["kind"] == "step_end"}
    assert ends["synth"]["status"] == "done"


def test_syntax_error_shows_yosys_line(store, tmp_path):
    run = _synth(store, tmp_path, "module m(input a, output y);\n  assign y = a &;\nendmodule\n", name="bad.v")
    info = run.info()
    assert info["status"] == "failed" and info["failed_step"] == "synth"
    assert "bad.v line 2" in info["error"] and "syntax error" in info["error"]
    assert Path(info["log"]).exists()  # the log is kept


def test_unknown_top_lists_modules(store, tmp_path):
    text = "module a(input x, output y); assign y = x; endmodule\nmodule b(input x, output y); a u(x, y); endmodule\n"
    run = _synth(store, tmp_path, text, top="nope")
    assert run.status == "failed"
    assert "'nope' not found" in run.info()["error"] and "a, b" in run.info()["error"]


def test_empty_design_says_so(store, tmp_path):
    run = _synth(store, tmp_path, "module e(input x, output y); assign y = 1'b0; endmodule\n")
    assert run.status == "failed" and "no logic after synthesis" in run.info()["error"]


def test_combinational_loop_is_named(store, tmp_path):
    text = "module lp(input a, output y); wire w1, w2; assign w1 = a & w2; assign w2 = ~w1; assign y = w2; endmodule\n"
    run = _synth(store, tmp_path, text)
    assert run.status == "failed" and "combinational loop" in run.info()["error"] and "w1" in run.info()["error"]


def test_latches_map_onto_library_latch(store, tmp_path):
    text = "module lt(input en, input d, output reg q); always @(*) if (en) q = d; endmodule\n"
    run = _synth(store, tmp_path, text)
    assert run.status == "done", run.info().get("error")
    assert "LATCH" in run.step_metrics("synth")["synth__cell_types"]


def test_missing_file_and_bad_utilisation(store, tmp_path):
    run = run_flow(FlowConfig(design_files=[str(tmp_path / "none.v")]), store, until="synth")
    assert run.status == "failed" and "not found" in run.info()["error"]
    cfg = FlowConfig(design_files=[_write(tmp_path, "c.v", COUNTER)], top="c")
    cfg.floorplan.utilization = 1.3
    run = run_flow(cfg, store, until="floorplan")
    assert run.status == "failed" and run.info()["failed_step"] == "floorplan"
    assert "utilisation" in run.info()["error"]
    assert (run.dir / "01-synth" / "netlist.v").exists()  # what finished is kept


def test_cancel_before_a_step_marks_cancelled(store, tmp_path):
    run = run_flow(FlowConfig(design_files=[_write(tmp_path, "c.v", COUNTER)], top="c"), store, until="floorplan",
                   cancel=lambda: True)
    assert run.status == "cancelled"


@pytest.mark.parametrize("text,ns", [("10ns", 10.0), ("2500ps", 2.5), ("100MHz", 10.0), ("4", 4.0)])
def test_parse_clock(text, ns):
    assert parse_clock(text) == pytest.approx(ns)


def test_cli_flow_run_and_runs(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert cda(["--runs-dir", runs, "flow", "run", "counter", "--until", "floorplan", "--utilization", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "synth" in out and "floorplan" in out and "status: done" in out and "utilization=0.49" in out
    assert cda(["--runs-dir", runs, "runs", "list"]) == 0
    assert "counter" in capsys.readouterr().out
    assert cda(["--runs-dir", runs, "runs", "show", "last"]) == 0
    assert "floorplan__utilization" in capsys.readouterr().out
    assert cda(["--runs-dir", runs, "runs", "show", "no-such-run"]) == 1
    assert "no run" in capsys.readouterr().err


def test_cli_bad_verilog_exit_code_and_message(tmp_path):
    bad = _write(tmp_path, "broken.v", "module m(input a output y); endmodule\n")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--runs-dir", str(tmp_path / "r"), "flow", "run", bad,
                           "--until", "synth"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "broken.v line 1" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


def test_example_brings_its_own_flow_defaults(tmp_path):
    from engine.designs import resolve

    (tmp_path / "big.v").write_text(COUNTER)
    (tmp_path / "design.json").write_text('{"top": "c", "clock_ns": 20, "flow_overrides": '
                                          '{"floorplan": {"utilization": 0.45}, "route": {"layers": 6}}}')
    cfg = resolve(tmp_path).flow_config()
    assert (cfg.top, cfg.clock_ns, cfg.floorplan.utilization, cfg.route.layers) == ("c", 20.0, 0.45, 6)
    assert cfg.floorplan.aspect_ratio == 1.0  # untouched fields keep the flow's defaults
    (tmp_path / "design.json").write_text('{"flow_overrides": {"nonsense": {}}}')
    with pytest.raises(Exception, match="unknown section 'nonsense'"):
        resolve(tmp_path).flow_config()


def test_runs_made_within_one_second_list_newest_first(store):
    ids = [store.create({}, design="d").id for _ in range(5)]
    assert [r["id"] for r in store.list()] == ids[::-1]
    assert store.latest(kind=None).id == ids[-1]
