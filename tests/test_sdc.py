"""User timing constraints (SDC): checked as Tcl before OpenSTA reads them, so a constraints file can constrain
timing and do nothing else; the generated default saved in the run; a real OpenSTA run on the user's clock."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.flow.sdc import SdcError, check_sdc, generated_sdc
from engine.flow.timing import TimingStep
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent

ORFS_STYLE = """# constraints written the way OpenROAD-flow-scripts writes them
set clk_name core_clock
set clk_period 7.5
set clk_port [get_ports clk]
create_clock -name $clk_name -period $clk_period $clk_port
set_input_delay [expr {$clk_period * 0.2}] -clock $clk_name [delete_from_list [all_inputs] $clk_port]
set_output_delay 1.0 -clock core_clock [all_outputs] ;# a comment after a command
set_false_path -from [get_ports rst] \\
    -to [all_registers]
"""


def test_constraints_parse_with_their_clock():
    sdc = check_sdc(ORFS_STYLE, "top.sdc")
    assert [c.name for c in sdc.commands] == ["set", "set", "set", "create_clock", "set_input_delay",
                                              "set_output_delay", "set_false_path"]
    assert [c.line for c in sdc.commands] == [2, 3, 4, 5, 6, 7, 8]  # the continued line counts as its first
    assert sdc.period_ns == 7.5 and sdc.clocks[0]["name"] == "core_clock"
    gen = generated_sdc(clock="clk", period=10, in_delay=0, out_delay=0)
    assert check_sdc(gen.text).clocks[0]["ports"] == ["clk"]  # the generated file passes its own check
    assert generated_sdc(clock=None, period=4, in_delay=0, out_delay=0).clocks[0]["name"] == "vclk"


@pytest.mark.parametrize("text, words", [
    ("exec touch /tmp/cda_sdc_marker", "`exec` is not a timing constraint"),
    ("create_clock -period [exec ls] clk", "[exec]"),
    ('set_false_path -from "[exec ls]"', "[exec]"),
    ("set_load 1 [get_ports [exec ls]]", "[exec]"),
    ("set_load {[exec ls]} x", "braced word"),
    ("set_load [expr {[exec ls]}] x", "not plain arithmetic"),
    ("create_clock -period $undefined [get_ports clk]", "$undefined"),
    ("source evil.tcl", "`source`"),
    ("proc f {} {exec ls}", "`proc`"),
    ("set a [open /etc/passwd]", "[open]"),
    ("create_clock -period 1 [get_ports clk", "never closed"),
    ('create_clock -name "clk -period 1', "never closed"),
    ("set a b c", "one variable one value"),
])
def test_anything_but_constraints_is_refused_with_its_line(text, words):
    with pytest.raises(SdcError) as err:
        check_sdc("# header\n" + text + "\n", "user.sdc")
    assert err.value.message.startswith("user.sdc:2") and words in err.value.message
    assert err.value.code == "timing.sdc"


@pytest.fixture(scope="module")
def placed(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("sdc") / "runs")
    cfg = resolve("counter", []).flow_config()
    run = run_flow(cfg, store, until="place")
    assert run.status == "done", run.info().get("error")
    return store, run, cfg


def _timing(store, base, cfg):
    run = store.create(cfg.to_dict(), design=cfg.top)
    for step in ("synth", "floorplan", "place"):
        dst = run.step_dir(step)
        shutil.rmtree(dst)
        shutil.copytree(base.step_dir(step, create=False), dst)
    return run_flow(cfg, store, steps=["timing"], run=run)


def test_generated_constraints_are_saved_and_read(placed):
    store, base, cfg = placed
    run = _timing(store, base, cfg)
    m = run.flat_metrics()
    assert run.status == "done" and m["timing__sdc"] == "generated" and m["timing__clock_period_ns"] == 10.0
    saved = (run.step_dir("timing", create=False) / "constraints.sdc").read_text()
    assert "create_clock -name clk -period 10 [get_ports clk]" in saved
    assert "read_sdc" in (run.step_dir("timing", create=False) / "sta.tcl").read_text()


def test_user_sdc_sets_the_clock_opensta_times(placed, tmp_path):
    store, base, cfg = placed
    sdc = tmp_path / "counter.sdc"
    sdc.write_text(ORFS_STYLE.replace("[get_ports rst]", "[all_inputs]"))
    user = FlowConfig.from_dict({**cfg.to_dict(), "timing": {**cfg.to_dict()["timing"], "sdc": str(sdc)}})
    run = _timing(store, base, user)
    m = run.flat_metrics()
    assert run.status == "done", run.info().get("error")
    assert m["timing__sdc"] == "counter.sdc" and m["timing__clock_period_ns"] == 7.5
    assert m["timing__setup__ws"] is not None and m["timing__setup__ws"] < 7.5
    assert (run.step_dir("timing", create=False) / "constraints.sdc").read_text() == sdc.read_text()
    # The reuse key follows the file's content, not only its name.
    step = TimingStep()
    k1 = step.key(user, {})
    sdc.write_text(sdc.read_text().replace("7.5", "6.5"))
    assert step.key(user, {}) != k1


def test_a_run_parses_the_user_sdc_once(placed, tmp_path, monkeypatch):
    """validate_flow_config checks the file before the run starts; the timing step reuses that check."""
    from engine.flow import sdc as sdc_mod

    parsed = []
    real = sdc_mod.check_sdc
    monkeypatch.setattr(sdc_mod, "check_sdc", lambda text, path="x": parsed.append(path) or real(text, path))
    monkeypatch.setattr(sdc_mod, "_CHECKED", {})
    store, base, cfg = placed
    sdc = tmp_path / "once.sdc"
    sdc.write_text(ORFS_STYLE)
    user = FlowConfig.from_dict({**cfg.to_dict(), "timing": {**cfg.to_dict()["timing"], "sdc": str(sdc)}})
    run = _timing(store, base, user)
    assert run.status == "done", run.info().get("error")
    assert run.flat_metrics()["timing__clock_period_ns"] == 7.5
    assert parsed == [str(sdc)]
    sdc.write_text(ORFS_STYLE.replace("7.5", "6.5"))  # a changed file is checked again, not served stale
    run = _timing(store, base, user)
    assert run.flat_metrics()["timing__clock_period_ns"] == 6.5 and parsed == [str(sdc)] * 2


def test_hostile_sdc_stops_before_any_tool_runs(tmp_path):
    marker = tmp_path / "marker"
    sdc = tmp_path / "evil.sdc"
    sdc.write_text(f"create_clock -period 10 [get_ports clk]\nset_load 1 [exec touch {marker}]\n")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--runs-dir", str(tmp_path / "runs"), "flow", "run",
                           "counter", "--until", "timing", "--sdc", str(sdc)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "evil.sdc:2" in proc.stdout + proc.stderr and "[exec]" in proc.stdout + proc.stderr
    assert not marker.exists()
    assert not list((tmp_path / "runs").glob("*/01-synth"))  # refused before synthesis started
