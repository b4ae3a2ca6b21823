"""The registry of metrics and knobs: complete against what the engine really writes and reads."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from engine.config import FlowConfig, section_classes
from engine.errors import EngineError
from engine.registry import KNOBS, METRICS, knob, metric

_KIND_OF = {"number": (int, float), "count": (int, float), "text": (str,), "flag": (bool,), "list": (list,),
            "map": (dict,)}


def _check_registered(metrics: dict, where: str) -> None:
    unknown = sorted(set(metrics) - set(METRICS))
    assert not unknown, f"{where} writes metrics the registry does not describe: {unknown}"
    for name, value in metrics.items():
        spec = METRICS[name]
        ok = isinstance(value, _KIND_OF[spec.kind]) and not (spec.numeric and isinstance(value, bool))
        assert ok, f"{name} = {value!r} ({type(value).__name__}) but the registry says it is a {spec.kind}"


# ------------------------------------------------------------------ metrics the engine really emits
@pytest.fixture(scope="module")
def counter_run(tmp_path_factory):
    """The whole flow on the small counter (a few seconds)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(tmp_path_factory.mktemp("registry-runs"))
    run = run_flow(resolve("counter").flow_config(), store)
    assert run.status == "done", run.info().get("error")
    return run


def test_every_metric_the_flow_writes_is_registered(counter_run):
    per_step = counter_run.metrics()
    from engine.flow.registry import STEP_IDS

    assert set(per_step) == set(STEP_IDS)  # every step ran and wrote metrics.json
    for step, metrics in per_step.items():
        _check_registered(metrics, f"the {step} step")
    for step in STEP_IDS:
        assert f"flow__{step}__runtime_s" in per_step[step]


def test_every_metric_the_placer_writes_is_registered():
    from engine.place.api import place
    from engine.place.config import PlaceConfig
    from engine.place.generate import generate_netlist

    nl = generate_netlist(300, seed=3)
    result = place(nl, PlaceConfig(max_iterations=60, frame_every=0, num_threads=1))
    _check_registered(result.metrics, "engine.place.place")
    assert {"placement__hpwl", "placement__hpwl__legal", "placement__displacement__max"} <= set(result.metrics)


def test_every_metric_the_benchmark_writes_is_registered(tmp_path):
    from engine.bench.sweep import Design, Sweeper

    rec = Sweeper(tmp_path / "sweep").measure(Design(name="g200", family="g200", n_cells=200, seed=2),
                                              {"place.max_iterations": 40})
    _check_registered(rec["metrics"], "the benchmark's measurement")


def test_every_metric_key_written_in_the_source_is_registered():
    """Keys a run above may not reach (a failure path, an optional step) are caught in the source itself."""
    import re
    from pathlib import Path

    scopes = "design|synth|floorplan|placement|route|timing|power|gds|verify|flow"
    key = rf"""["']((?:{scopes})__[a-z0-9_]+)["']"""
    written = re.compile(rf"""{key}\s*:|metrics\[{key}\]\s*=""")
    root = Path(__file__).resolve().parent.parent / "engine"
    found = {}
    for folder in ("flow", "place", "bench"):
        for path in (root / folder).rglob("*.py"):
            for m in written.finditer(path.read_text()):
                found.setdefault(m.group(1) or m.group(2), path.name)
    assert len(found) > 60
    unknown = {k: v for k, v in found.items() if k not in METRICS}
    assert not unknown, f"metrics written in the source but not registered: {unknown}"


def test_the_registry_knows_the_flow_steps():
    from engine.flow.registry import STEP_IDS
    from engine.registry.metrics import STEPS

    assert tuple(STEPS) == tuple(STEP_IDS)


# ------------------------------------------------------------------ metric specs
def test_metric_lookup_names_the_nearest_and_specs_are_whole():
    with pytest.raises(EngineError, match="did you mean placement__hpwl"):
        metric("placement__hpwll")
    for name, m in METRICS.items():
        assert m.name == name and m.label and m.meaning, name
        assert sum(o.label == m.label for o in METRICS.values()) == 1, f"label {m.label!r} is not unique"
        assert m.kind in _KIND_OF, name
        if not m.numeric:
            assert m.higher_is_better is None, f"{name}: a {m.kind} has no direction"
        assert 0 <= m.noise < 0.5 and m.noise_abs >= 0, name
        assert set(m.judge) <= {"good_max", "fair_max", "good_min", "fair_min", "good_max_rows_per_net",
                                "fair_max_rows_per_net"}, name
        if "fair_max" in m.judge:
            assert m.judge["fair_max"] >= m.judge["good_max"], name


def test_better_follows_direction_and_noise():
    hpwl, ws, fmax = metric("placement__hpwl"), metric("timing__setup__ws"), metric("timing__fmax_mhz")
    assert hpwl.better(900.0, 1000.0) is True and hpwl.better(1000.0, 900.0) is False
    assert hpwl.better(1000.0, 1004.0) is None  # 0.4 % is within the placer's noise
    assert ws.better(0.5, -0.2) is True and ws.better(0.101, 0.1) is None  # slack: absolute noise
    assert fmax.better(700.0, 600.0) is True
    assert metric("design__net__count").better(100, 200) is None  # no direction: never "better"
    assert metric("verify__status").better("pass", "fail") is None
    assert hpwl.better(float("nan"), 1.0) is None


def test_fmt_and_verdict_use_scale_unit_and_thresholds():
    assert metric("floorplan__utilization").fmt(0.5968) == "59.7 %"
    assert metric("power__total").fmt(0.0004672) == "0.4672 mW"
    assert metric("placement__hpwl").fmt(2797.15) == "2,797 µm"
    assert metric("gds__file_bytes").fmt(92906) == "92.91 kB"
    assert metric("placement__legal").fmt(True) == "yes"
    ovf = metric("placement__overflow")
    assert [ovf.verdict(v) for v in (0.05, 0.2, 0.4)] == ["good", "fair", "poor"]
    assert metric("timing__setup__ws").verdict(-0.1) == "poor" and metric("timing__setup__ws").verdict(0.0) == "good"
    assert metric("route__net__unrouted").verdict(0) == "good" and metric("route__net__unrouted").verdict(3) == "poor"


def test_old_engine_metrics_imports_still_work():
    from engine.metrics import KEY_METRICS, format_value
    from engine.metrics import METRICS as OLD

    assert OLD is METRICS and OLD["placement__hpwl"].description == METRICS["placement__hpwl"].meaning
    assert OLD["timing__setup__ws"].higher_is_better is True and OLD["placement__hpwl"].unit == "um"
    assert format_value("floorplan__utilization", 0.4934) == "0.493"
    for names in KEY_METRICS.values():
        assert set(names) <= set(METRICS)


# ------------------------------------------------------------------ knobs against the config dataclasses
def _resolve(cfg: FlowConfig, path: str):
    section, _, field = path.rpartition(".")
    node = getattr(cfg, section) if section else cfg
    if isinstance(node, dict):  # the placer section before it is typed
        from engine.place.config import PlaceConfig

        return getattr(PlaceConfig(), field)
    return getattr(node, field)


def test_every_knob_path_exists_in_the_config_with_its_default():
    cfg = FlowConfig()
    for path, k in KNOBS.items():
        value = _resolve(cfg, path)  # AttributeError: a knob the config does not have
        assert value == k.default, f"{path}: registry default {k.default!r} != dataclass {value!r}"
        assert isinstance(value, k.type), path


def test_every_field_of_every_section_is_a_knob_with_a_doc():
    for section, cls in section_classes().items():
        for f in dataclasses.fields(cls):
            k = knob(f"{section}.{f.name}")
            assert k.doc, f"{k.path}: the dataclass field has no comment"
            default = cls().__getattribute__(f.name)
            assert k.default == default


def test_ranges_are_consistent():
    for path, k in KNOBS.items():
        if k.type in (int, float):
            assert k.low is not None and k.high is not None and k.low < k.high, f"{path} needs a range"
            if not k.relative:
                assert k.low <= k.default <= k.high, f"{path}: default {k.default} outside {k.range_text}"
            if k.search and not k.relative:
                assert k.low <= k.search[0] < k.search[1] <= k.high, f"{path}: search span outside the range"
            if k.log_scale:
                assert (k.search or (k.low, k.high))[0] > 0, f"{path}: a log scale needs a positive range"
        else:
            assert k.low is None and k.high is None and not k.search, path
        if k.choices:
            assert k.default in k.choices, path


def test_validate_coerces_and_refuses_with_the_range():
    u = knob("floorplan.utilization")
    assert u.validate("0.5") == 0.5 and isinstance(knob("place.max_iterations").validate(300.0), int)
    with pytest.raises(EngineError, match=r"floorplan.utilization = 2 is out of range 0.1-0.95"):
        u.validate(2)
    with pytest.raises(EngineError, match="out of range"):
        u.validate(0)
    with pytest.raises(EngineError, match="not a number"):
        u.validate("high")
    with pytest.raises(EngineError, match="not a finite"):
        u.validate(math.inf)
    with pytest.raises(EngineError, match="not a whole number"):
        knob("route.layers").validate(4.5)
    with pytest.raises(EngineError, match="not one of"):
        knob("synth.abc_script").validate("turbo")
    assert knob("place.detailed").validate("off") is False
    with pytest.raises(EngineError, match="did you mean floorplan.utilization"):
        knob("floorplan.utilisation")


def test_the_optimizer_reads_its_ranges_from_the_registry():
    from engine.rl.knobs import KNOBS as RL_KNOBS

    for k in RL_KNOBS:
        spec = knob(k.name)
        if spec.type in (int, float):
            assert (k.low, k.high) == (spec.search or (spec.low, spec.high)), k.name
            assert k.log_scale == spec.log_scale and k.relative == spec.relative
        assert k.doc == spec.doc


# ------------------------------------------------------------------ the CLI
def test_cli_lists_metrics_and_knobs(capsys):
    from engine.cli import main

    assert main(["metrics", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(METRICS)
    assert next(r for r in rows if r["name"] == "placement__hpwl")["higher_is_better"] is False
    assert main(["knobs", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["path"] for r in rows} == set(KNOBS)
    util = next(r for r in rows if r["path"] == "floorplan.utilization")
    assert (util["default"], util["low"], util["high"]) == (0.6, 0.1, 0.95)
    assert main(["knobs", "list", "place."]) == 0
    out = capsys.readouterr().out
    assert "place.target_density" in out and "floorplan." not in out
    assert main(["metrics", "list"]) == 0
    assert "timing__setup__ws" in capsys.readouterr().out


# ------------------------------------------------------------------ Compare reads direction and noise from the registry
def test_compare_page_calls_better_only_beyond_noise(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(tmp_path / "runs")
    runs = []
    for util in (0.6, 0.5):
        cfg = resolve("counter").flow_config()
        cfg.floorplan.utilization = util
        runs.append(run_flow(cfg, store, until="floorplan"))
    a, b = runs
    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    page = Path(__file__).resolve().parent.parent / "pages" / "compare.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.query_params["a"], at.query_params["b"] = a.id, b.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.table[-1].value  # "All metrics"
    by_label = {m.label: name for name, m in METRICS.items()}
    better = {by_label.get(label, label): row["better"] for label, row in table.iterrows()}
    # A (utilisation 0.6) has the smaller die: lower is better, and 20 % is far beyond noise.
    assert better["floorplan__die__area_um2"] == "A"
    assert better["design__instance__count"] == ""  # the same synthesis: equal
    for name, verdict in better.items():
        spec = METRICS.get(name)
        if spec is None or spec.higher_is_better is None:
            assert verdict == "", f"{name} has no direction but Compare says {verdict!r}"
    # What Compare says agrees with MetricSpec.better on every metric both runs have.
    ma, mb = a.flat_metrics(), b.flat_metrics()
    for name in set(ma) & set(mb) & set(better):
        verdict = METRICS[name].better(ma[name], mb[name])
        if verdict is not None:
            assert better[name] == ("A" if verdict else "B"), name
        else:
            assert better[name] in ("", "within noise"), name
