"""Chapter 9 · Specialists: a chat routed to phase specialists, grounded in the docs and in real runs.

Thin page: the engine's `Chat` does the routing, retrieval, tools and models; this page keeps the conversation
(what it is showing), streams the answer, and shows why a specialist was chosen, the cited sources, the runs a
tool read or started, and which models are present.
"""
from __future__ import annotations

import streamlit as st

from cockpit import runpicker, story
from engine.errors import EngineError
from engine.specialists.config import SPECIALISTS, SpecialistConfig

DEFAULTS = SpecialistConfig()
HISTORY = "spec_history"

story.opener(
    "9 · Specialists",
    "a router sends your question to one of seven phase specialists (or the general one); the answer is built "
    "from numbered passages of the documentation and, when you ask about your runs, from the engine itself.",
    st.session_state.get("spec_last"),
    "the line under each answer: who answered and why, which model wrote it (or that none did), and the "
    "sources behind every [n].",
)


# ---------------------------------------------------------------------------------------------- settings
@st.cache_data(ttl=15, show_spinner=False)
def _status(host: str, timeout_s: float, use_ollama: bool, hf_dir: str) -> list[dict]:
    from engine.specialists.llm import LLMError, OllamaBackend, models_status

    cfg = SpecialistConfig(host=host, timeout_s=timeout_s, use_ollama=use_ollama, hf_model_dir=hf_dir or None)
    out = []
    for st_ in models_status(cfg):
        row = {"backend": st_.backend, "where": st_.location, "reachable": st_.reachable, "models": st_.models,
               "error": st_.error, "choices": {}}
        if st_.backend == "ollama" and st_.reachable:
            for name in SPECIALISTS:
                try:
                    c = OllamaBackend(cfg).choose(name, st_.models)
                    row["choices"][name] = c.model + (" (fallback)" if c.fallback else "")
                except LLMError:
                    row["choices"][name] = "none"
        out.append(row)
    return out


with st.sidebar:
    st.subheader("Models")
    host = st.text_input("Ollama host", value=DEFAULTS.host, key="spec_host")
    timeout_s = st.number_input("Timeout (s)", min_value=0.5, max_value=300.0, value=DEFAULTS.timeout_s,
                                key="spec_timeout")
    hf_dir = st.text_input("Local Hugging Face model folder (optional)", value="", key="spec_hf_dir")
    no_model = st.toggle("Answer without a model", value=False, key="spec_no_model",
                         help="retrieval and engine results only")
    allow_runs = st.toggle("Let specialists start runs", value=True, key="spec_allow_runs",
                           help="a what-if question starts a real flow run through the job queue")
    for row in _status(host, float(timeout_s), not no_model, "" if no_model else hf_dir):
        if row["reachable"]:
            st.success(f"{row['backend']} at {row['where']}: {len(row['models'])} model(s)")
            if row["models"]:
                st.caption("present: " + ", ".join(row["models"]))
            if row["choices"]:
                st.caption("  \n".join(f"{k}: {v}" for k, v in row["choices"].items()))
        else:
            st.warning(f"{row['backend']}: {row['error']}")
    if no_model:
        st.info("No model: answers come from retrieval and the engine.")

choice = st.selectbox("Specialist", ["auto (router decides)", *SPECIALISTS], key="spec_choice")
forced = None if choice.startswith("auto") else choice
config = SpecialistConfig(host=host, timeout_s=float(timeout_s), use_ollama=not no_model,
                          hf_model_dir=(hf_dir or None) if not no_model else None, allow_tool_runs=allow_runs,
                          runs_dir=str(runpicker.store().root))


# ---------------------------------------------------------------------------------------------- rendering
def _meta_line(meta: dict) -> str:
    model = (f"model **{meta['model']}** ({meta['backend']}{', fallback for ' + meta['wanted_model'] if meta['fallback_used'] else ''})"
             if meta.get("model") else "**no model used**")
    return f"specialist **{meta['specialist']}** · {meta['reason']} · {model}"


def _render_assistant(meta: dict, key: str) -> None:
    st.caption(_meta_line(meta))
    for note in meta.get("notes", []):
        st.warning(note, icon=":material/info:")
    tool = meta.get("tool")
    if tool:
        with st.expander(f"Engine: {tool['name']} ({'ok' if tool['ok'] else 'no result'})", expanded=False):
            st.markdown(tool["text"])
            for rid in tool.get("run_ids", []):
                if st.button(f"Show run {rid} in the cockpit", key=f"{key}-{rid}"):
                    runpicker.select(rid)
                    st.success(f"Run {rid} selected: every chapter now shows it.")
    sources = meta.get("sources") or []
    if sources:
        cited = set(meta.get("citations") or [])
        with st.expander(f"Sources ({len(sources)} passages, {len(cited)} cited)"):
            for s in sources:
                mark = "cited" if s["n"] in cited else "retrieved"
                st.markdown(f"**[{s['n']}]** {s['label']} — `{s['source']}` ({mark})")
                st.caption(s["text"][:600] + ("..." if len(s["text"]) > 600 else ""))


history: list[dict] = st.session_state.setdefault(HISTORY, [])
for i, turn in enumerate(history):
    with st.chat_message(turn["role"]):
        st.markdown(turn["content"])
        if turn["role"] == "assistant" and turn.get("meta"):
            _render_assistant(turn["meta"], key=f"turn{i}")
        if turn.get("error"):
            st.error(turn["error"])

question = st.chat_input("Ask about the flow, a knob, a metric, or your last run")
if question is not None:
    from engine.specialists.chat import Chat

    with st.chat_message("user"):
        st.markdown(question if question.strip() else "_(empty)_")
    with st.chat_message("assistant"):
        head = st.empty()
        body = st.empty()
        text = ""
        answer = None
        try:
            chat = Chat(config)
            prior = [{"role": t["role"], "content": t["content"]} for t in history if not t.get("error")]
            with st.spinner("thinking..."):
                for event in chat.ask_stream(question, history=prior, specialist=forced):
                    kind = event["type"]
                    if kind == "route":
                        head.caption(f"specialist **{event['specialist']}** · {event['reason']}")
                    elif kind in ("status", "tool_start"):
                        head.caption(event.get("text") or f"running engine tool {event['name']}...")
                    elif kind == "reset":
                        text = ""
                        body.markdown("")
                    elif kind == "token":
                        text += event["text"]
                        body.markdown(text + "▌")
                    elif kind == "done":
                        answer = event["answer"]
        except EngineError as exc:
            msg = exc.message + (f" ({exc.hint})" if exc.hint else "")
            history.append({"role": "user", "content": question[:2000] or "(empty)", "error": msg})
            st.error(msg)
        except Exception as exc:  # noqa: BLE001 - the page keeps running and the conversation is kept
            msg = f"The chat failed: {type(exc).__name__}: {exc}"
            history.append({"role": "user", "content": question[:2000], "error": msg})
            st.error(msg)
        if answer is not None:
            head.empty()
            body.markdown(answer.text)
            meta = answer.to_dict()
            _render_assistant(meta, key=f"turn{len(history) + 1}")
            history.append({"role": "user", "content": answer.question})
            history.append({"role": "assistant", "content": answer.text, "meta": meta})
            who = f"the {answer.specialist} specialist"
            how = f"with {answer.model}" if answer.model else "without a model"
            st.session_state["spec_last"] = (f"{who} answered {how}, citing {len(answer.citations)} of "
                                             f"{len(answer.sources)} passages"
                                             + (f" and run {answer.tool.run_ids[0]}" if answer.tool and
                                                answer.tool.run_ids else "") + ".")

if history and st.button("Clear the conversation"):
    st.session_state[HISTORY] = []
    st.session_state.pop("spec_last", None)
    st.rerun()
