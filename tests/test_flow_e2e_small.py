"""RTL to GDSII end to end with the real tools (Yosys, the placer, qrouter, OpenSTA, KLayout, Icarus) on the small
example designs, the CLI summary, and bad input that must stop the run at the right step with a clear message.

Runs share one run store per test session (under pytest's base temp), so a design flowed once is reused by the
step cache wherever another test asks for the same configuration.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store")


def _config(design: str, **overrides) -> FlowConfig:
    cfg = resolve(design, []).flow_config()
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            setattr(getattr(cfg, section), field, value)
        else:
            setattr(cfg, key, value)
    return cfg


def _statuses(run) -> dict[str, str]:
    return {e["step"]: e["status"] for e in run.events() if e.get("kind") == "step_end"}


@pytest.fixture(scope="module")
def counter_run(tmp_path_factory):
    return run_flow(_config("counter"), _store(tmp_path_factory))


def test_counter_reaches_gdsii_with_every_step_done(counter_run):
    run = counter_run
    assert run.status == "done", run.info().get("error")
    statuses = _statuses(run)
    for step in ("synth", "floorplan", "place", "route", "timing", "gds", "verify"):
        assert statuses.get(step) in ("done", "reused"), (step, statuses)
    m = run.metrics()
    assert m["route"]["route__net__unrouted"] == 0
    assert m["route"]["route__wirelength"] > 0 and m["route"]["route__via__count"] > 0
    # the synthesised cells plus the clock tree's and fanout repair's buffers
    assert m["gds"]["gds__instance__count"] == m["synth"]["design__instance__count"] + \
        m["cts"]["cts__buffer__count"] + m["cts"]["cts__repair__buffer__count"]
    assert m["timing"]["timing__setup__ws"] > 0  # a small counter meets 10 ns easily
    assert m["timing"]["timing__parasitics"] == "routed"
    assert m["verify"]["verify__mismatch__count"] == 0
    for path in ("04-route/routed.def", "04-route/congestion.npz", "05-timing/design.spef", "05-timing/paths.json",
                 "06-gds/design.gds", "06-gds/layout.png"):
        assert (run.dir / path).is_file(), path


def test_power_uses_the_testbench_activity(counter_run):
    m = counter_run.metrics()["timing"]
    assert m["power__activity_source"].startswith("vcd:"), m["power__activity_source"]
    parts = m["power__internal__total"] + m["power__switching__total"] + m["power__leakage__total"]
    assert m["power__total"] == pytest.approx(parts, rel=1e-3)
    assert 1e-6 < m["power__total"] < 1e-1  # watts: a small 0.18 um block at 100 MHz


def test_cli_flow_run_prints_a_summary_per_step(counter_run, tmp_path_factory):
    # Same store, same configuration: every step is reused, so this exercises the CLI path cheaply.
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--runs-dir", str(_store(tmp_path_factory).root),
                           "flow", "run", "counter", "--clock", "10ns"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for step in ("synth", "floorplan", "place", "route", "timing", "gds", "verify"):
        assert f"  {step}" in out
    assert "wirelength" in out and "setup__ws" in out
    assert "status: done" in out


def test_combinational_design_is_timed_against_a_virtual_clock(tmp_path_factory):
    run = run_flow(_config("gray_prio"), _store(tmp_path_factory))
    assert run.status == "done", run.info().get("error")
    m = run.metrics()
    assert m["timing"]["timing__clock__port"] is None
    assert m["timing"]["timing__constrained"] is True
    assert m["timing"]["timing__fmax_mhz"] > 0
    assert m["route"]["route__net__unrouted"] == 0
    assert m["gds"]["gds__instance__count"] == m["synth"]["design__instance__count"] + \
        m["cts"]["cts__buffer__count"] + m["cts"]["cts__repair__buffer__count"]
    paths = json.loads((run.dir / "05-timing" / "paths.json").read_text())
    assert paths["clock"] == "vclk" and paths["paths"][0]["endpoint_kind"].startswith("output port")


def test_combinational_loop_fails_in_synthesis_with_a_message(tmp_path_factory, tmp_path):
    src = tmp_path / "loopy.v"
    src.write_text("module loopy(input a, input b, output y);\n  wire p, q;\n  assign p = a ^ q;\n"
                   "  assign q = b & p;\n  assign y = q;\nendmodule\n")
    run = run_flow(FlowConfig(design_files=[str(src)], top="loopy"), _store(tmp_path_factory))
    info = run.info()
    assert run.status == "failed"
    assert info["failed_step"] == "synth"
    assert "loop" in info["error"]


def test_floorplan_too_small_to_route_fails_at_route_keeping_earlier_steps(tmp_path_factory):
    cfg = _config("counter", floorplan__utilization=0.98, route__layers=2, route__timeout_s=120.0)
    run = run_flow(cfg, _store(tmp_path_factory), until="route")
    info = run.info()
    assert run.status == "failed"
    assert info["failed_step"] == "route"
    assert "could not route" in info["error"] and "utilization" in info["hint"]
    assert (run.dir / "03-place" / "placed.def").is_file()  # everything before routing is kept
    assert (run.dir / "02-floorplan" / "floorplan.def").is_file()
    assert (run.dir / "04-route" / "qrouter.log").is_file()
    m = json.loads((run.dir / "04-route" / "metrics.json").read_text())
    assert m["route__net__unrouted"] > 0
    assert {f["net"] for f in m["route__failures"]} and all(f["reason"] for f in m["route__failures"])


def test_uart_reaches_gdsii_with_no_open_nets(tmp_path_factory):
    run = run_flow(_config("uart"), _store(tmp_path_factory))
    assert run.status == "done", run.info().get("error")
    m = run.metrics()
    assert m["route"]["route__net__unrouted"] == 0
    assert m["gds"]["gds__instance__count"] == m["synth"]["design__instance__count"] + \
        m["cts"]["cts__buffer__count"] + m["cts"]["cts__repair__buffer__count"]
    assert m["timing"]["timing__spef__warning_count"] == 0  # hierarchical names (u_rx.count[3]) match the SPEF
    assert m["verify"]["verify__mismatch__count"] == 0
