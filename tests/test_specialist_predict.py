"""The tuned specialist answers the chat's what-if questions: a real counter run through placement, the real
specialist GGUF (exported from assets/specialist/adapter by `make setup`) in llama.cpp, the benchmark's direction
format, and the check of the prediction against the engine's measured change."""
from __future__ import annotations

import re

import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.runs import RunStore
from engine.specialists.config import SpecialistConfig
from engine.specialists.predict import (
    METRICS,
    TRAINED_KNOBS,
    check_prediction,
    direction_prompt,
    measured_label,
    predict_what_if,
)
from engine.specialists.resolve import resolve_gguf
from engine.specialists.tools import ToolResult

ENUM = {"rise", "fall", "no-clear-effect"}


def _specialist():
    try:
        import llama_cpp  # noqa: F401 - only whether it imports
    except ImportError as exc:
        pytest.skip(f"llama_cpp cannot be imported ({exc}); `make setup` builds llama-cpp-python")
    if resolve_gguf("specialist").path is None:
        pytest.skip("the tuned specialist is not exported (make setup runs `cda train export`)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("predict-runs"))
    spec = resolve("counter")
    run = run_flow(FlowConfig(design_files=spec.files, top=spec.top, clock_port=spec.clock_port,
                              clock_ns=spec.clock_ns), store, until="place")
    assert run.status == "done", run.info().get("error")
    return store


def test_the_place_step_reports_rudy_as_the_benchmark_measures_it(store):
    m = store.latest().flat_metrics()
    assert 0 < m["placement__rudy__mean"] <= m["placement__rudy__top10"] <= m["placement__rudy__max"]


def test_the_prompt_is_the_benchmarks_direction_question(store):
    run = store.latest()
    info, m = run.info(), run.flat_metrics()
    text = direction_prompt("counter", 92, info["config"], m, "floorplan.utilization", 0.4, "placement__hpwl")
    pattern = (r"Design: example design 'counter', 92 cells, synthesised by Yosys\. Reference \(floorplan\.utilization="
               r"[\d.]+, place\.density_weight_init=[\d.]+, place\.gamma_base=[\d.]+, place\.target_density=[\d.]+\): "
               r"HPWL \d+ um, RUDY top-10% [\d.]+ / mean [\d.]+ um/um\^2, \d+ iterations; one run, typical HPWL seed "
               r"noise \+/-1\.0%\. Change floorplan\.utilization [\d.]+ -> 0\.4 \(lowered\), all else equal: does the "
               r"HPWL rise, fall, or show no clear effect \(within the noise\)\?")
    assert re.fullmatch(pattern, text), text


def test_the_specialist_predicts_each_metric_for_a_run(store):
    _specialist()
    pred = predict_what_if("floorplan.utilization", 0.4, None, str(store.root))
    assert pred.ok, pred.text
    assert set(pred.data["predictions"]) == set(METRICS) and set(pred.data["predictions"].values()) <= ENUM
    assert "tuned specialist" in pred.text and store.latest().id in pred.text
    other = predict_what_if("clock_ns", 5.0, None, str(store.root))
    assert not other.ok and all(k in other.text for k in TRAINED_KNOBS)


def test_a_prediction_is_judged_against_the_noise_of_one_run():
    assert measured_label(100.0, 103.0, "placement__hpwl") == "rise"  # +3% > 1.5 x 1% band
    assert measured_label(100.0, 98.0, "placement__hpwl") == "fall"
    assert measured_label(100.0, 100.5, "placement__hpwl") == "no-clear-effect"
    assert measured_label(100.0, 101.0, "placement__hpwl") is None  # at the band's edge: no verdict
    pred = ToolResult("predict", True, "p", [], {"predictions": {"placement__hpwl": "rise",
                                                                 "placement__iterations": "fall",
                                                                 "placement__rudy__mean": "fall"}})
    run = ToolResult("what_if", True, "w", [], {"metrics": {
        "placement__hpwl": {"before": 1000.0, "after": 1050.0},
        "placement__iterations": {"before": 100, "after": 120},
        "placement__rudy__mean": {"before": 0.40, "after": 0.408}}})  # +2%: near the 2% band
    text = check_prediction(pred, run)
    assert "1 of 2 right" in text and "+5.0% (rise): right" in text and "+20.0% (rise): wrong" in text
    assert "no verdict" in text
    assert check_prediction(pred, ToolResult("what_if", False, "off")) == ""


def test_the_chat_shows_the_prediction_before_the_engine_run(store):
    _specialist()
    from engine.specialists.chat import Chat

    cfg = SpecialistConfig(runs_dir=str(store.root), use_ollama=False, gguf_model="", allow_tool_runs=False)
    events = []
    answer = Chat(cfg).ask("What happens if I set the utilization to 0.4?", run_id=store.latest().id,
                           on_event=events.append)
    kinds = [e["type"] for e in events]
    assert "prediction" in kinds and kinds.index("prediction") < kinds.index("tool")
    assert answer.prediction is not None and answer.prediction.ok
    assert answer.to_dict()["prediction"]["data"]["knob"] == "floorplan.utilization"
    assert "Prediction of the tuned specialist" in answer.text  # the no-model answer carries it
    off = Chat(SpecialistConfig(runs_dir=str(store.root), use_ollama=False, gguf_model="", allow_tool_runs=False,
                                predict_what_if=False)).ask("What happens if I set the utilization to 0.4?",
                                                            run_id=store.latest().id)
    assert off.prediction is None
