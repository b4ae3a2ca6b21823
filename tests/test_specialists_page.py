"""The Specialists page under AppTest: a question streams an answer from the fake Ollama server with the
specialist, the reason, the model and the sources shown; a dead server and bad questions give messages while
the conversation is kept."""
import socket
from pathlib import Path

import pytest
from fake_ollama import FakeOllama
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parent.parent / "pages" / "09_specialists.py"


@pytest.fixture
def page(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "runs"))
    from engine.specialists.rag import knowledge_base

    knowledge_base()  # loaded once per process, as the app's process would keep it

    def make(host: str) -> AppTest:
        at = AppTest.from_file(str(PAGE), default_timeout=90)
        at.session_state["spec_host"] = host
        at.session_state["spec_backend"] = "ollama"  # these tests are about Ollama (llama.cpp comes first in auto)
        at.session_state["spec_timeout"] = 2.0
        at.run()
        assert not at.exception, at.exception
        return at
    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def test_question_streams_an_answer_with_specialist_model_and_sources(page):
    with FakeOllama(models=["cda-placement", "llama3.2:3b"]) as fake:
        at = page(fake.url)
        assert at.title[0].value.startswith("9 · Specialists")
        assert "Ollama at" in _all_text(at) and "placement: cda-placement" in _all_text(at)
        at.chat_input[0].set_value("How does the placer spread cells with electrostatics?").run()
        assert not at.exception, at.exception
        text = _all_text(at)
        assert "electrostatic density model [1]" in text
        assert "specialist **placement**" in text and "model **cda-placement**" in text
        assert fake.chat_models() == ["cda-placement"]
        assert any(e.label.startswith("Sources (5 passages, 2 cited)") for e in at.expander)
        assert "assets/docs/placer-electrostatic-density.md" in text
        # the next question sees the conversation so far
        at.chat_input[0].set_value("And what is the overflow metric?").run()
        body = [b for m, p, b in fake.requests if p == "/api/chat"][-1]
        assert [m["role"] for m in body["messages"]][:4] == ["system", "user", "assistant", "user"]
        assert len(at.session_state["spec_history"]) == 4


def test_dead_server_and_bad_questions_keep_the_conversation(page):
    at = page(f"http://127.0.0.1:{_free_port()}")
    assert "No Ollama server answers" in _all_text(at)
    at.chat_input[0].set_value("What does target density do?").run()
    assert not at.exception
    assert "No model used" in _all_text(at)
    at.chat_input[0].set_value("x" * 5000).run()
    assert "the limit is 2,000" in _all_text(at)
    at.chat_input[0].set_value("   ").run()
    assert "the text is empty" in _all_text(at)
    assert not at.exception
    assert "No model used" in _all_text(at)  # the first answer is still on the page
