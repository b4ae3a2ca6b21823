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
BACKENDS = {"auto": "auto: llama.cpp (specialist GGUF), then Ollama, then the HF folder",
            "llamacpp": "llama.cpp only", "ollama": "Ollama only", "hf": "local HF folder only",
            "none": "no model (run facts, engine and docs)"}
KIND = {"specialist": "tuned specialist", "exported": "exported specialist", "base": "base model", "file": "GGUF"}

story.opener(
    "9 · Specialists",
    "a router sends your question to one of seven phase specialists (or the general one); the answer is built "
    "from numbered passages of the documentation and, when you ask about your runs, from the engine itself.",
    st.session_state.get("spec_last"),
    "the line under each answer: who answered and why, which model wrote it (or that none did), and the "
    "sources behind every [n]. With a run selected, answers start from that run's own numbers.",
)


# ---------------------------------------------------------------------------------------------- settings
def _config(backend: str, host: str, timeout_s: float, gguf: str, hf_dir: str, allow_runs: bool = True,
            runs_dir: str | None = None) -> SpecialistConfig:
    """The chat's config from the sidebar: the backend choice switches the others off."""
    return SpecialistConfig(host=host, timeout_s=timeout_s,
                            gguf_model=(gguf or None) if backend in ("auto", "llamacpp") else None,
                            use_ollama=backend in ("auto", "ollama"),
                            hf_model_dir=(hf_dir or None) if backend in ("auto", "hf") else None,
                            allow_tool_runs=allow_runs, runs_dir=runs_dir)


@st.cache_data(ttl=15, show_spinner=False)
def _status(backend: str, host: str, timeout_s: float, gguf: str, hf_dir: str) -> list[dict]:
    from engine.specialists.llm import LLMError, OllamaBackend
    from engine.specialists.resolve import models_status

    cfg = _config(backend, host, timeout_s, gguf, hf_dir)
    out = []
    for row in models_status(cfg):
        item = {"backend": row.backend, "where": row.location, "usable": row.usable, "models": row.models,
                "message": row.message, "choices": {}}
        if row.backend == "ollama" and row.usable:
            for name in SPECIALISTS:
                try:
                    c = OllamaBackend(cfg).choose(name, row.models)
                    item["choices"][name] = c.model + (" (fallback)" if c.fallback else "")
                except LLMError:
                    item["choices"][name] = "none"
        out.append(item)
    return out


with st.sidebar:
    st.subheader("Models")
    backend = st.selectbox("Answer with", list(BACKENDS), format_func=BACKENDS.get, key="spec_backend")
    gguf = st.text_input("GGUF model (llama.cpp)", value=DEFAULTS.gguf_model or "", key="spec_gguf",
                         help="'auto' = the tuned specialist when it is exported, else the SmolLM2-135M base")
    host = st.text_input("Ollama host", value=DEFAULTS.host, key="spec_host")
    timeout_s = st.number_input("Timeout (s)", min_value=0.5, max_value=300.0, value=DEFAULTS.timeout_s,
                                key="spec_timeout")
    hf_dir = st.text_input("Local Hugging Face model folder (optional)", value="", key="spec_hf_dir")
    allow_runs = st.toggle("Let specialists start runs", value=True, key="spec_allow_runs",
                           help="a what-if question starts a real flow run through the job queue")
    rows = _status(backend, host, float(timeout_s), gguf, hf_dir)
    for row in rows:
        if row["usable"]:
            st.success(f"{row['backend']}: {row['message']}")
            if row["choices"]:
                st.caption("  \n".join(f"{k}: {v}" for k, v in row["choices"].items()))
        else:
            st.warning(f"{row['backend']}: {row['message']}")
    if not rows:
        st.caption("No backend selected.")  # the first answer says that it was written without a model

run = runpicker.current_run(show_error=False)
choice = st.selectbox("Specialist", ["auto (router decides)", *SPECIALISTS], key="spec_choice")
forced = None if choice.startswith("auto") else choice
grounded = st.toggle("Ground answers in the selected run", value=True, key="spec_grounded",
                     disabled=run is None)
if run is not None and grounded:
    info = run.info()
    st.caption(f"Answers start from run **{run.id}** ({info.get('design', '?')}, {info.get('status', '?')}): its "
               "hot spot, worst path and the knob to turn.")
elif run is None:
    st.caption("No run selected: answers come from the documentation (pick a run in the sidebar to ground them).")
config = _config(backend, host, float(timeout_s), gguf, hf_dir, allow_runs, str(runpicker.store().root))


# ---------------------------------------------------------------------------------------------- rendering
def _meta_line(meta: dict) -> str:
    if meta.get("model"):
        kind = f", {KIND[meta['model_kind']]}" if meta.get("model_kind") in KIND else ""
        fallback = f", fallback for {meta['wanted_model']}" if meta.get("fallback_used") else ""
        model = f"model **{meta['model']}** ({meta['backend']}{kind}{fallback})"
    else:  # the answer's text says once per conversation that no model was used
        model = "from the run's facts, the engine and the documentation"
    run = meta.get("run")
    grounded = f" · run {run['run_ids'][0]}" if run and run.get("ok") and run.get("run_ids") else ""
    return f"specialist **{meta['specialist']}** · {meta['reason']} · {model}{grounded}"


def _render_assistant(meta: dict, key: str) -> None:
    st.caption(_meta_line(meta))
    for note in [n for n in meta.get("notes", []) if n.rstrip(".") not in meta.get("text", "")]:
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
                for event in chat.ask_stream(question, history=prior, specialist=forced,
                                             run_id=run.id if run is not None and grounded else None):
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
