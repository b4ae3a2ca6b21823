"""Diagnosis in the engine: a failure carries a code and a knob from the registry into run.json, `cda runs show`
prints them, and the cockpit explains a failure from its code (engine.diagnosis), not from its message's words.

The flows are real (Yosys, the placer, qrouter): a counter too dense to route, a wrong top module, a syntax error.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cockpit import explain
from engine import diagnosis
from engine.config import FlowConfig
from engine.designs import resolve
from engine.errors import EngineError, FlowError
from engine.flow.flow import run_flow
from engine.flow.limits import LimitsConfig, limit_stop
from engine.registry import KNOBS
from engine.runs import RunStore
from engine.validate import InvalidInput

ROOT = Path(__file__).resolve().parents[1]
COUNTER = ROOT / "assets" / "designs" / "counter" / "counter.v"
LOWER_UTIL = round(0.98 * 0.75, 2)  # the suggestion for the dense counter: a quarter less utilisation


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # The same store as tests/test_flow_e2e_small.py: in one session, the dense counter's steps are reused.
    return RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store")


def _counter(**sections) -> FlowConfig:
    cfg = resolve("counter", []).flow_config()
    for key, value in sections.items():
        section, _, field = key.partition("__")
        setattr(getattr(cfg, section), field, value)
    return cfg


@pytest.fixture(scope="module")
def unroutable(store):
    """The counter at 98 % utilisation on two metals: qrouter leaves nets open (as in test_flow_e2e_small)."""
    run = run_flow(_counter(floorplan__utilization=0.98, route__layers=2, route__timeout_s=120.0), store,
                   until="route")
    assert run.status == "failed", run.info()
    return run


# ------------------------------------------------------------------------------------------ the catalogue
def test_every_catalogued_knob_is_a_registry_knob():
    for d in diagnosis.CATALOGUE.values():
        assert [s.path for s in d.knob_specs()] == list(d.knobs), d.code
        assert d.title and d.meaning and d.action, d.code


def _codes_raised_in_engine() -> set[str]:
    codes = set()
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'\bcode="([a-z_]+\.[a-z_]+)"', text))
        codes |= set(re.findall(r'\bdefault_code = "([a-z_]+\.[a-z_]+)"', text))
    return codes


def test_every_code_a_raise_site_names_is_in_the_catalogue():
    codes = _codes_raised_in_engine()
    assert len(codes) > 30, codes  # the raise sites do set codes
    missing = sorted(c for c in codes if c not in diagnosis.CATALOGUE)
    assert not missing, f"codes raised but not catalogued in engine/diagnosis.py: {missing}"


def test_errors_keep_their_old_calls_and_gain_a_code():
    assert EngineError("x").code == "engine.error" and EngineError("x").knob is None
    err = FlowError("route", "boom", hint="h")
    assert (err.step, err.code, err.knob, err.hint) == ("route", "step.failed", None, "h")
    err = FlowError("route", "boom", code="route.timeout", knob="route.timeout_s")
    assert (err.code, err.knob) == ("route.timeout", "route.timeout_s")


def test_limit_stops_name_their_code_and_knob():
    cfg = LimitsConfig(memory_mb=512)
    code, message, knob = limit_stop("yosys", -signal.SIGXCPU, "", cfg, 10.0, "synth.timeout_s")
    assert (code, knob) == ("tool.cpu_limit", "synth.timeout_s") and "synth.timeout_s" in message
    code, message, knob = limit_stop("yosys", 1, "std::bad_alloc", cfg, 10.0, "synth.timeout_s")
    assert (code, knob) == ("tool.memory_limit", "limits.memory_fraction") and "512 MiB" in message
    assert limit_stop("yosys", 1, "syntax error", cfg, 10.0, "synth.timeout_s") is None


def test_suggestions_come_from_the_registry_ranges():
    # A timeout doubles the step's own time limit, never beyond the knob's registered maximum.
    assert diagnosis.suggest("tool.cpu_limit", {"synth": {"timeout_s": 100.0}}, step="synth") == \
        {"synth.timeout_s": 200.0}
    high = KNOBS["route.timeout_s"].high
    assert diagnosis.suggest("route.timeout", {"route": {"timeout_s": high}}, step="route") == \
        {"route.timeout_s": high}
    # The default comes from the registry (FlowConfig's own default) when the run's config omits the knob.
    util = KNOBS["floorplan.utilization"].default
    assert diagnosis.suggest("place.diverged", {}) == {"floorplan.utilization": round(max(0.2, util * 0.75), 2)}
    assert diagnosis.suggest("synth.syntax", {}) == {}


# ------------------------------------------------------------------------------------------ real failures
def test_unroutable_counter_records_route_unrouted_and_its_knob(unroutable):
    info = json.loads((unroutable.dir / "run.json").read_text())
    assert info["failed_step"] == "route"
    assert info["code"] == "route.unrouted" and info["knob"] == "floorplan.utilization"
    assert "floorplan.utilization" in diagnosis.lookup(info["code"]).knobs and "route.layers" in \
        diagnosis.lookup(info["code"]).knobs
    errors = [e for e in unroutable.events() if e.get("kind") == "error"]
    assert errors and errors[-1]["code"] == "route.unrouted"


def test_wrong_top_and_syntax_error_carry_their_codes(store, tmp_path):
    run = run_flow(FlowConfig(design_files=[str(COUNTER)], top="nope", clock_port="clk"), store, until="synth")
    info = run.info()
    assert (info["status"], info["code"], info["knob"]) == ("failed", "synth.top_not_found", None)
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output y);\n  assign y = a &;\nendmodule\n")
    run = run_flow(FlowConfig(design_files=[str(bad)], top="bad"), store, until="synth")
    info = run.info()
    assert (info["status"], info["failed_step"], info["code"]) == ("failed", "synth", "synth.syntax")
    assert "line 2" in info["error"]


def test_an_unsafe_name_is_refused_with_input_invalid_name(store):
    with pytest.raises(InvalidInput) as exc:
        run_flow(FlowConfig(design_files=[str(COUNTER)], top="counter; exec rm"), store)
    assert exc.value.code == "input.invalid_name"


def test_cda_runs_show_prints_the_code_and_the_knob(unroutable, store):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--runs-dir", str(store.root), "runs", "show",
                           unroutable.id], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a failed run
    out = proc.stdout
    assert "code: route.unrouted" in out and "knob: floorplan.utilization" in out, out
    assert f"try: --set floorplan.utilization={LOWER_UTIL} --set route.layers=3" in out, out


# ------------------------------------------------------------------------------------------ the cockpit
def test_the_cockpit_explains_from_the_code_not_the_message(unroutable):
    info = unroutable.info()
    (p,) = [p for p in explain.problems(info, {}) if p.severity == "error"]
    assert (p.code, p.knob_path, p.step) == ("route.unrouted", "floorplan.utilization", "route")
    assert p.cause == diagnosis.lookup("route.unrouted").meaning
    assert p.patch == {"floorplan.utilization": LOWER_UTIL, "route.layers": 3}
    # The same code with words that would have fooled substring matching ("top module ... not found", "loop"):
    # the explanation does not move.
    fooled = {**info, "error": "top module loop not found: timeout while parsing"}
    (q,) = [q for q in explain.problems(fooled, {}) if q.severity == "error"]
    assert (q.code, q.cause, q.patch) == (p.code, p.cause, p.patch)


def test_old_runs_without_a_code_go_through_the_one_fallback():
    info = {"status": "failed", "failed_step": "route", "error": "qrouter could not route 3 of 40 nets",
            "config": {"floorplan": {"utilization": 0.8}, "route": {"layers": 4}}}
    assert diagnosis.of_run(info) == ("route.unrouted", "floorplan.utilization")
    (p,) = explain.problems(info, {})
    assert p.code == "route.unrouted" and p.patch == {"floorplan.utilization": 0.6, "route.layers": 5}


def test_the_design_page_shows_the_diagnosis_code(store, tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    run = run_flow(FlowConfig(design_files=[str(COUNTER)], top="nope", clock_port="clk"), store, until="synth")
    at = AppTest.from_file(str(ROOT / "pages" / "01_design.py"), default_timeout=60)
    at.query_params["run"] = run.id
    at.run()
    assert not at.exception
    assert any("synth.top_not_found" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any(b.label == "Rerun with top → counter" for b in at.button)
