"""The example designs: each folder is complete, each testbench passes on the RTL in Icarus, and the small
designs' synthesized gate-level netlists (real Yosys on osu018) give the same printed outputs as the RTL.
The large design's synthesis and gate-level run belong to `make bench` (bench/), not here.
"""
import json
import re
from pathlib import Path

import pytest

from engine.designs import DESIGNS_DIR, resolve
from engine.flow.flow import run_flow
from engine.flow.verify import simulate
from engine.runs import RunStore

DESIGNS = sorted(p.parent.name for p in DESIGNS_DIR.glob("*/design.json"))
META = {name: json.loads((DESIGNS_DIR / name / "design.json").read_text()) for name in DESIGNS}
SMALL = [n for n in DESIGNS if META[n]["size"] != "large"]
DATA = Path(__file__).parent / "data"


def test_the_example_set_covers_the_kinds_the_flow_needs():
    assert len(DESIGNS) >= 7
    for name in ("counter", "alu", "uart", "fir", "crc32"):
        assert name in DESIGNS
    assert any(META[n]["clock_port"] is None for n in DESIGNS), "a combinational design with no clock"
    assert any(META[n]["size"] == "large" for n in DESIGNS), "a design over 5,000 cells"
    assert any(len(resolve(n).files) > 1 for n in DESIGNS), "a design in several files"


@pytest.mark.parametrize("name", DESIGNS)
def test_design_folder_is_complete(name):
    folder = DESIGNS_DIR / name
    meta = META[name]
    assert set(meta) >= {"top", "clock_port", "clock_ns", "description", "size"}
    assert meta["size"] in ("small", "medium", "large") and meta["clock_ns"] > 0 and meta["description"]
    assert (folder / "README.md").read_text().strip()
    spec = resolve(name)
    assert spec.testbench and Path(spec.testbench).name == f"tb_{name}.v"
    rtl = "\n".join(Path(f).read_text() for f in spec.files)
    m = re.search(rf"^module\s+{meta['top']}\s*\((.*?)\);", rtl, re.M | re.S)
    assert m, f"top module {meta['top']} not defined in {spec.files}"
    if meta["clock_port"]:
        assert re.search(rf"input\s+wire\s+{meta['clock_port']}\b", m.group(1))
    tb = Path(spec.testbench).read_text()
    assert "$finish" in tb and "$dumpfile" in tb and "OUT " in tb
    assert re.search(rf"^\s*{meta['top']}\s+dut\s*\(", tb, re.M), "the design is instantiated as 'dut'"


@pytest.mark.parametrize("name", DESIGNS)
def test_testbench_passes_on_rtl(name, tmp_path):
    spec = resolve(name)
    res = simulate(spec.files, spec.testbench, spec.top, tmp_path, name="rtl", vcd=tmp_path / "rtl.vcd")
    assert res.ok, res.message
    assert res.passed and res.errors == [], res.errors[:5]
    assert len(res.compared) >= 100 and all(ln.startswith("OUT ") for ln in res.compared)
    # The VCD holds the design's ports under the testbench scope (power analysis reads it).
    head = (tmp_path / "rtl.vcd").read_text(errors="replace")[:200_000]
    assert "$scope module dut $end" in head and "$enddefinitions" in head


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.mark.parametrize("name", SMALL)
def test_small_design_gate_level_matches_rtl(name, store):
    spec = resolve(name)
    cfg = spec.flow_config()
    run = run_flow(cfg, store, steps=["synth", "verify"])
    assert run.status == "done", run.info().get("error")
    m = run.step_metrics("verify")
    assert m["verify__status"] == "pass"
    assert m["verify__mismatch__count"] == 0 and m["verify__tests__count"] >= 100
    assert m["verify__rtl__errors"] == 0 and m["verify__gate__errors"] == 0
    assert m["verify__vcd_scope"] == f"tb_{name}.dut"
    cells = run.step_metrics("synth")["design__instance__count"]
    if name == "counter":
        assert cells < 100
    gate_log = (run.step_dir("verify") / "gate.log").read_text()
    assert any(ln.startswith("PASS") for ln in gate_log.splitlines())


def test_broken_inputs_are_there_for_other_tests():
    assert "module bad_syntax" in (DATA / "bad_syntax.v").read_text()
    loop = (DATA / "comb_loop.v").read_text()
    assert "n1 = ~(a & n2)" in loop and "n2 = ~(b & n1)" in loop
    assert len(re.findall(r"^module\s", (DATA / "two_tops.v").read_text(), re.M)) == 2


def test_syntax_error_in_design_is_reported_with_its_line(tmp_path):
    tb = tmp_path / "tb_bad.v"
    tb.write_text("module tb_bad; reg clk = 0; wire [3:0] q;\n"
                  "bad_syntax dut (.clk(clk), .a(4'd1), .q(q));\ninitial $finish;\nendmodule\n")
    res = simulate([DATA / "bad_syntax.v"], tb, "bad_syntax", tmp_path)
    assert not res.ok
    assert "bad_syntax.v:8" in res.message and "compile" in res.message
