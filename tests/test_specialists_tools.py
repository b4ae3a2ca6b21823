"""Engine tools on real runs: a counter run made by the flow, questions about its numbers, a what-if run
started through the job queue (the answer comes at once; the comparison when the run ends), and the worst timing
path of a run whose clock is too fast."""
import pytest

from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.jobs import JobQueue
from engine.runs import RunStore
from engine.specialists import tools
from engine.specialists.chat import Chat
from engine.specialists.config import SpecialistConfig
from engine.specialists.rag import knowledge_base


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    config = resolve("counter").flow_config()
    config.place.max_iterations = 300
    run = run_flow(config, store, until="timing")
    assert run.status == "done", run.info().get("error")
    return store


@pytest.fixture(scope="module")
def chat(store):
    return Chat(SpecialistConfig(use_ollama=False, gguf_model=None, runs_dir=str(store.root)), kb=knowledge_base())


def test_detect_picks_the_tool_and_its_arguments():
    assert tools.detect("What is the HPWL of my last run?").args["metrics"] == ["placement__hpwl"]
    w = tools.detect("What happens at target density 0.7?")
    assert (w.name, w.args["knob"], w.args["value"]) == ("what_if", "place.target_density", 0.7)
    assert tools.detect("what if I set the clock period to 2.5 ns on run 20261125-101010-alu-0a1b").args == {
        "knob": "clock_ns", "value": 2.5, "run_id": "20261125-101010-alu-0a1b"}
    assert tools.detect("Why does this path fail timing?").name == "timing_paths"
    assert tools.detect("What is HPWL?") is None  # a definition, not a question about a run
    assert tools.owner(tools.detect("what is the worst slack of my design")) == "timing"


def test_metrics_of_the_last_run_are_quoted_with_its_id(store, chat):
    run = store.latest()
    hpwl = run.step_metrics("place")["placement__hpwl"]
    answer = chat.ask("What is the HPWL of my last run?")
    assert answer.specialist == "placement" and answer.tool.ok and answer.tool.run_ids == [run.id]
    assert run.id in answer.text and f"{hpwl:,.0f} um" in answer.text
    assert answer.no_model and answer.text.startswith("**No model used**")


def test_what_if_runs_the_flow_through_the_job_queue_and_then_the_failing_path(store, chat):
    base = store.latest()
    answer = chat.ask("What happens if I set the clock period to 1.0 ns?")
    started = answer.tool
    assert started.ok and started.data["pending"], started.text
    new_id = started.data["run"]
    assert started.data["base_run"] == base.id and new_id != base.id and new_id in answer.text
    assert f"cda jobs wait {new_id}" in answer.text  # the answer came before the run's numbers
    queue = JobQueue(store)  # the same job system as the cockpit
    assert queue.status(new_id).state in ("queued", "running")
    assert queue.wait(new_id, timeout_s=600) == "done"
    result = tools.what_if_result(new_id, str(store.root))
    assert result.ok and not result.data["pending"], result.text
    new = store.get(new_id)
    assert new.config["clock_ns"] == 1.0 and new.info()["what_if"]["knob"] == "clock_ns"
    ws = new.step_metrics("timing")["timing__setup__ws"]
    assert result.data["metrics"]["timing__setup__ws"]["after"] == ws < 0
    assert f"run **{new_id}**, compared with run {base.id}" in result.text

    paths = chat.ask("Why does the worst path fail timing in my last run?")
    assert paths.specialist == "timing" and paths.tool.name == "timing_paths" and paths.tool.ok
    assert new_id in paths.tool.text and f"{ws:.3f} ns" in paths.tool.text and "fails" in paths.tool.text
    assert "slow stage" in paths.tool.text and paths.tool.data["failing"] >= 1


def test_bad_tool_requests_start_nothing(store, chat):
    n = len(store.list())
    out = chat.ask("What happens at target density 7?").tool
    assert not out.ok and "outside the range" in out.text
    missing = chat.ask("What is the HPWL of run 20200101-000000-nothing-0000?").tool
    assert not missing.ok and "no run" in missing.text
    off = Chat(SpecialistConfig(use_ollama=False, gguf_model=None, allow_tool_runs=False, runs_dir=str(store.root)),
               kb=knowledge_base()).ask("what happens at utilization 0.7").tool
    assert not off.ok and "switched off" in off.text
    assert len(store.list()) == n


def test_no_runs_yet_is_a_message(tmp_path):
    chat = Chat(SpecialistConfig(use_ollama=False, gguf_model=None, runs_dir=str(tmp_path)), kb=knowledge_base())
    res = chat.ask("What is the worst slack of my last run?").tool
    assert not res.ok and "no flow run" in res.text.lower()
