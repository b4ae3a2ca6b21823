"""The real `ollama` client against a local fake Ollama server: the specialist's model, fallbacks, streaming,
citation checks, and every way a server can fail (down, slow, error status, broken stream, garbage)."""
import socket
import time

import pytest
from fake_ollama import FakeOllama

from engine.errors import EngineError
from engine.specialists.chat import NOT_IN_KB, Chat
from engine.specialists.config import SpecialistConfig
from engine.specialists.llm import LLMError, OllamaBackend, looks_like_garbage, models_status
from engine.specialists.rag import knowledge_base

TIMING_Q = "Why is the worst negative slack of the design negative at a 5 ns clock period?"


@pytest.fixture(scope="module")
def kb():
    return knowledge_base()


@pytest.fixture
def fake():
    with FakeOllama(models=["cda-timing", "llama3.2:3b"]) as server:
        yield server


def chat_for(url, kb, tmp_path, **kw):
    kw.setdefault("gguf_model", None)  # Ollama is what these tests ask (llama.cpp comes first by default)
    cfg = SpecialistConfig(host=url, timeout_s=kw.pop("timeout_s", 5.0), runs_dir=str(tmp_path / "runs"), **kw)
    return Chat(cfg, kb=kb)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_routes_to_the_specialist_model_and_streams(fake, kb, tmp_path):
    events = list(chat_for(fake.url, kb, tmp_path).ask_stream(TIMING_Q))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "route" and events[0]["specialist"] == "timing" and "slack" in events[0]["reason"]
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert len(tokens) > 5  # piece by piece, not one blob
    answer = events[-1]["answer"]
    assert answer.model == "cda-timing" and answer.backend == "ollama" and not answer.fallback_used
    assert fake.chat_models() == ["cda-timing"]
    assert "".join(tokens) == answer.text
    assert answer.citations == [1, 2] and not answer.flagged_citations and len(answer.sources) == 5
    # the prompt carried the numbered passages and the rule about citations
    body = [b for m, p, b in fake.requests if p == "/api/chat"][0]
    assert body["stream"] is True
    assert "[1] (assets/docs/" in body["messages"][-1]["content"]
    assert "never cite a number" in body["messages"][0]["content"]


def test_falls_back_to_a_general_model_when_the_specialist_model_is_missing(kb, tmp_path):
    with FakeOllama(models=["qwen2.5:3b", "llama3.2:latest"]) as server:
        answer = chat_for(server.url, kb, tmp_path).ask("How does qrouter route the nets?")
        assert answer.specialist == "routing"
        assert answer.model == "llama3.2:latest" and answer.fallback_used and answer.wanted_model == "cda-routing"
        assert server.chat_models() == ["llama3.2:latest"]
        assert any("fell back to llama3.2:latest" in n for n in answer.notes)


def test_no_model_answer_when_the_server_is_down(kb, tmp_path):
    t0 = time.monotonic()
    answer = chat_for(f"http://127.0.0.1:{free_port()}", kb, tmp_path).ask(TIMING_Q)
    assert time.monotonic() - t0 < 30
    assert answer.no_model and answer.model is None
    assert answer.text.startswith("**No model used**")
    assert any("No Ollama server answers" in n for n in answer.notes)
    assert answer.citations and set(answer.citations) <= {h["n"] for h in answer.sources}


def test_slow_server_times_out_with_a_message(kb, tmp_path):
    with FakeOllama(models=["cda-timing"]) as server:
        server.delay_s = 3.0
        answer = chat_for(server.url, kb, tmp_path, timeout_s=0.5).ask(TIMING_Q)
        assert answer.no_model and any("timeout" in n for n in answer.notes)
        server.delay_s = 0.0


def test_error_status_and_broken_stream_and_garbage(fake, kb, tmp_path):
    chat = chat_for(fake.url, kb, tmp_path)
    fake.error_status = 500
    a = chat.ask(TIMING_Q)
    assert a.no_model and any("HTTP 500" in n for n in a.notes)
    fake.error_status = None
    fake.stream_error = "model crashed"
    b = chat.ask(TIMING_Q)
    assert any("cut off" in n for n in b.notes) and any("model crashed" in n for n in b.notes)
    fake.stream_error = None
    fake.reply = "\x00\x01\x02 ### ### ### ### ### ### ### ### ### ### ### ###"
    events = list(chat.ask_stream(TIMING_Q))
    c = events[-1]["answer"]
    assert c.no_model and any("not an answer" in n for n in c.notes)
    assert "reset" in [e["type"] for e in events]  # the page clears what was streamed


def test_invented_citations_are_removed_and_flagged(fake, kb, tmp_path):
    fake.reply = "Slack is required minus arrival time [1], see also [7] and [2, 9]."
    answer = chat_for(fake.url, kb, tmp_path).ask(TIMING_Q)
    assert answer.flagged_citations == [7, 9]
    assert "[7]" not in answer.text and "9]" not in answer.text and answer.citations == [1, 2]
    assert any("not retrieved" in n for n in answer.notes)


def test_unrelated_question_is_not_sent_to_the_model(fake, kb, tmp_path):
    answer = chat_for(fake.url, kb, tmp_path).ask("Who won the football world cup in 2018?")
    assert answer.not_in_kb and answer.text == NOT_IN_KB and answer.sources == []
    assert fake.chat_models() == []


def test_bad_questions_get_clear_messages(fake, kb, tmp_path):
    chat = chat_for(fake.url, kb, tmp_path, max_question_chars=100)
    with pytest.raises(EngineError, match="empty"):
        chat.ask("   ")
    with pytest.raises(EngineError, match="limit is 100"):
        chat.ask("x" * 101)
    with pytest.raises(EngineError, match="unknown specialist"):
        chat.ask("what is hpwl", specialist="chef")


def test_backend_reports_missing_model_and_status(fake):
    backend = OllamaBackend(SpecialistConfig(host=fake.url, timeout_s=5))
    with pytest.raises(LLMError, match="no model 'nope'"):
        list(backend.stream("nope", [{"role": "user", "content": "hi"}]))
    st = models_status(SpecialistConfig(host=fake.url))[0]
    assert st.reachable and st.models == ["cda-timing", "llama3.2:3b"]
    with pytest.raises(LLMError, match="None of the models"):
        OllamaBackend(SpecialistConfig(host=fake.url, fallbacks=["mistral"])).choose("power", ["other:1b"])


def test_garbage_detector():
    assert looks_like_garbage("") and looks_like_garbage("\x00\x01\x02\x03")
    assert looks_like_garbage("ok ok ok ok ok ok ok ok ok ok ok ok ok")
    assert not looks_like_garbage("The slack is 1.2 ns on run 20261125 [1].")


def test_malformed_host_is_a_message_not_a_traceback(kb, tmp_path):
    st = models_status(SpecialistConfig(host="http://x:99999"))[0]
    assert not st.reachable and "not a usable Ollama host" in st.error
    answer = chat_for("http://x:99999", kb, tmp_path).ask(TIMING_Q)
    assert answer.no_model and any("not a usable Ollama host" in n for n in answer.notes)
