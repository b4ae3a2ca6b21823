"""A what-if question returns at once with the run it started; the comparison comes when that run ends.

One real counter run through placement is the base; every what-if is a real flow run through the job queue (real
worker processes). The engine: `what_if` returns while its run is still queued or running, `what_if_result` gives
the table once the job is done, and a cancelled run says how it ended. The chat: the answer (and the tuned
specialist's prediction, when it is exported) comes at once and `follow_what_if` adds the numbers and the check.
The page (AppTest): a pending turn shows the run link and, after the run finishes and the page reruns, the
comparison; a reload with the address's ?chat= id brings the conversation back, pending turn included.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.designs import resolve
from engine.flow.flow import run_flow
from engine.jobs import JobQueue
from engine.runs import RunStore
from engine.specialists import conversation, tools
from engine.specialists.chat import Chat, follow_what_if
from engine.specialists.config import SpecialistConfig
from engine.specialists.conversation import pending_what_if
from engine.specialists.rag import knowledge_base

PAGE = Path(__file__).resolve().parent.parent / "pages" / "09_specialists.py"
JOB_S = 600  # a counter placement takes seconds; a busy machine's queue may hold it a while


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("whatif-runs"))
    config = resolve("counter").flow_config()
    config.place.max_iterations = 300
    run = run_flow(config, store, until="place")
    assert run.status == "done", run.info().get("error")
    return store


@pytest.fixture(scope="module")
def base(store):
    return store.latest()


def _specialist_ready() -> bool:
    try:
        import llama_cpp  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    from engine.specialists.resolve import resolve_gguf

    return resolve_gguf("specialist").path is not None


def test_what_if_returns_at_once_and_the_table_comes_when_the_job_ends(store, base):
    t0 = time.monotonic()
    started = tools.what_if("place.target_density", 0.75, base.id, str(store.root))
    took = time.monotonic() - t0
    assert took < 5.0, f"what_if took {took:.1f} s: it waited for its run"
    assert started.ok and started.data["pending"], started.text
    new_id = started.data["run"]
    assert started.run_ids == [new_id, base.id] and started.data["knob"] == "place.target_density"
    assert started.data["value"] == 0.75 and started.data["base_run"] == base.id
    queue = JobQueue(store)
    assert queue.status(new_id).state in ("queued", "running")
    now = tools.what_if_result(new_id, str(store.root))
    assert now.ok and now.data["pending"] and "metrics" not in now.data
    assert now.text.startswith(f"Run {new_id} (place.target_density = 0.75) is ")

    assert queue.wait(new_id, timeout_s=JOB_S) == "done"
    done = tools.what_if_result(new_id, str(store.root))
    assert done.ok and not done.data["pending"] and done.data["state"] == "done", done.text
    new = store.get(new_id)
    assert new.config["place"]["target_density"] == 0.75
    old_m, new_m = base.flat_metrics(), new.flat_metrics()
    assert done.data["metrics"]["placement__hpwl"] == {"before": old_m["placement__hpwl"],
                                                       "after": new_m["placement__hpwl"]}
    assert "route__wirelength" not in done.data["metrics"]  # the what-if ran as far as its base run: placement
    assert f"run **{new_id}**, compared with run {base.id}" in done.text and "to place" in done.text


def test_a_cancelled_what_if_says_how_it_ended(store, base):
    started = tools.what_if("floorplan.utilization", 0.5, base.id, str(store.root))
    new_id = started.data["run"]
    queue = JobQueue(store)
    queue.cancel(new_id)
    assert queue.wait(new_id, timeout_s=JOB_S) == "cancelled"
    ended = tools.what_if_result(new_id, str(store.root))
    assert not ended.ok and not ended.data["pending"] and ended.data["state"] == "cancelled"
    assert f"Run {new_id} (floorplan.utilization = 0.5) ended cancelled" in ended.text
    assert "The what-if changed floorplan.utilization to 0.5" in ended.text
    with pytest.raises(Exception, match="not a what-if run"):
        tools.what_if_result(base.id, str(store.root))


def test_a_failed_what_if_names_the_cause_and_the_knob(tmp_path):
    store = RunStore(tmp_path / "runs")
    config = resolve("counter").flow_config()
    config.place.max_iterations = 300
    routed = run_flow(config, store, until="route")
    assert routed.status == "done", routed.info().get("error")
    started = tools.what_if("route.layers", 2, routed.id, str(store.root))  # counter does not route on 2 layers
    new_id = started.data["run"]
    assert started.data["pending"] and started.data["phase"] == "routing"
    assert JobQueue(store).wait(new_id, timeout_s=JOB_S) == "failed"
    ended = tools.what_if_result(new_id, str(store.root))
    assert not ended.ok and not ended.data["pending"] and ended.data["state"] == "failed"
    assert ended.data["failed_step"] == "route"
    error = store.get(new_id).info()["error"]
    assert error.startswith("qrouter could not route") and error.rstrip(".") in ended.text  # the cause
    from engine.diagnosis import describe, of_run

    code, fix = of_run(store.get(new_id).info())
    assert code == "route.unrouted" and ended.data["fix_knob"] == fix
    assert describe(code, fix, "route") in ended.text and f"Knob: {fix} (" in ended.text  # the knob to turn
    assert "ended failed at step route" in ended.text and "The what-if changed route.layers to 2" in ended.text


def test_the_chat_answers_at_once_and_the_run_brings_numbers_and_the_check(store, base):
    predicted = _specialist_ready()
    cfg = SpecialistConfig(use_ollama=False, gguf_model=None, runs_dir=str(store.root), use_dense=False,
                           predict_what_if=predicted, n_threads=1)
    events: list[dict] = []
    answer = Chat(cfg, kb=knowledge_base(cfg)).ask("What happens if I set the target density to 0.8?",
                                                   run_id=base.id, on_event=events.append)
    assert answer.tool.data["pending"] and answer.tool.run_ids[1] == base.id
    new_id = answer.tool.data["run"]
    assert JobQueue(store).status(new_id).state in ("queued", "running")
    assert f"Started run **{new_id}**" in answer.text and "Ran the flow" not in answer.text
    meta = json.loads(json.dumps(answer.to_dict(), default=str))  # as the page saves it
    assert pending_what_if(meta) == new_id
    if predicted:
        kinds = [e["type"] for e in events]
        assert kinds.index("prediction") < kinds.index("tool")
        assert meta["prediction"]["ok"] and "against the engine" not in meta["prediction"]["text"]

    assert JobQueue(store).wait(new_id, timeout_s=JOB_S) == "done"
    result = follow_what_if(meta, str(store.root))
    assert result.ok and not result.data["pending"] and pending_what_if(meta) is None
    assert meta["tool"]["data"]["metrics"]["placement__hpwl"]["after"] == \
        store.get(new_id).flat_metrics()["placement__hpwl"]
    assert f"run **{new_id}**, compared with run {base.id}" in meta["text"] and "Started run" not in meta["text"]
    if predicted:
        assert "The specialist's prediction against the engine" in meta["prediction"]["text"]
        assert "predicted" in meta["prediction"]["text"] and "measured" in meta["prediction"]["text"]


def test_cda_ask_wait_prints_the_engine_comparison(store, base, capsys):
    """`cda ask --wait`: the CLI follows the what-if run it started and prints the engine's numbers."""
    from engine.cli import main

    rc = main(["--runs-dir", str(store.root), "ask", "--no-llm", "--bm25-only", "--run", base.id, "--wait",
               str(JOB_S), "What happens if I set the target density to 0.7?"])
    out = capsys.readouterr().out
    assert rc == 0
    new_id = next(r["id"] for r in store.list() if (store.get(r["id"]).info().get("what_if") or {}).get("value") == 0.7)
    assert f"Started run **{new_id}**" in out                      # the answer as it came, at once
    assert f"run **{new_id}**, compared with run {base.id}" in out  # then the comparison, once the run ended
    assert JobQueue(store).status(new_id).state == "done"


# ---------------------------------------------------------------------------------------------- the page
def _page(store, base, monkeypatch, chat_id: str | None = None) -> AppTest:
    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    knowledge_base()  # loaded once per process, as the app's process keeps it
    at = AppTest.from_file(str(PAGE), default_timeout=240)
    at.session_state["cda_run_id"] = base.id
    at.session_state["spec_backend"] = "none"
    if chat_id is not None:
        at.query_params["chat"] = chat_id
    at.run()
    assert not at.exception, at.exception
    return at


def _text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def test_page_follows_a_pending_what_if_until_its_comparison(store, base, monkeypatch):
    at = _page(store, base, monkeypatch)
    at.chat_input[0].set_value("What happens if I set the target density to 0.7?").run()
    assert not at.exception, at.exception
    turn = at.session_state["spec_history"][-1]
    new_id = turn["meta"]["tool"]["data"]["run"]
    assert JobQueue(store).status(new_id).state in ("queued", "running")  # the page did not wait for it
    infos = [i.value for i in at.info]
    assert any(f"[run {new_id}](placement?run={new_id})" in v and "is going on" in v for v in infos), infos
    chat_id = at.query_params["chat"]
    assert conversation.valid_id(chat_id)
    saved = conversation.load(store.root, chat_id)
    assert pending_what_if(saved[-1]["meta"]) == new_id  # saved while pending: a refresh keeps the turn

    assert JobQueue(store).wait(new_id, timeout_s=JOB_S) == "done"
    at.run()  # what the fragment's next tick does: the run has ended, the turn settles
    assert not at.exception, at.exception
    text = _text(at)
    assert f"run **{new_id}**, compared with run {base.id}" in text and "HPWL" in text
    assert not any("is going on" in i.value for i in at.info)
    settled = conversation.load(store.root, chat_id)[-1]
    assert pending_what_if(settled["meta"]) is None and "compared with run" in settled["content"]
    if settled["meta"].get("prediction", {}).get("ok"):
        assert any("checked against the engine" in e.label for e in at.expander)


def test_reload_brings_the_conversation_back_from_the_address(store, base, monkeypatch):
    first = _page(store, base, monkeypatch)
    first.chat_input[0].set_value("What happens if I set the target density to 0.65?").run()
    assert not first.exception, first.exception
    chat_id = first.query_params["chat"]
    new_id = first.session_state["spec_history"][-1]["meta"]["tool"]["data"]["run"]

    again = _page(store, base, monkeypatch, chat_id=chat_id)  # a fresh session: the browser's refresh
    history = again.session_state["spec_history"]
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == "What happens if I set the target density to 0.65?"
    assert any(m.value == history[0]["content"] for m in again.markdown)
    assert JobQueue(store).wait(new_id, timeout_s=JOB_S) == "done"
    again.run()
    assert f"run **{new_id}**, compared with run {base.id}" in _text(again)

    other = _page(store, base, monkeypatch, chat_id="../../etc/passwd")
    assert "names no conversation" in _text(other) and other.session_state["spec_history"] == []
    assert "chat" not in other.query_params
    other.query_params["chat"] = conversation.new_id()
    other.run()  # a well-formed id with no file: an empty conversation, no error
    assert not other.exception and other.session_state["spec_history"] == []
