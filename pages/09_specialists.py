"""Chapter 9 · Specialists: a chat routed to phase specialists, grounded in the docs and in real runs.

Thin page: the engine's `Chat` does the routing, retrieval, tools and models; this page keeps the conversation
(what it is showing), streams the answer, and shows why a specialist was chosen, the cited sources, the runs a
tool read or started, and which models are present.

The conversation is saved under the run store (engine.specialists.conversation) with its id in the address
(``?chat=<id>``), so a refresh brings it back. A what-if answer comes at once with the run it started; a fragment
follows that run every ``FOLLOW_S`` seconds and, when it ends, puts the engine's comparison (or the failure's
cause) and the prediction's check into the answer, saves it, and stops polling.
"""
from __future__ import annotations

import streamlit as st

from cockpit import runpicker, story
from engine.errors import EngineError
from engine.specialists import conversation
from engine.specialists.config import SPECIALISTS, SpecialistConfig
from engine.specialists.conversation import pending_what_if

DEFAULTS = SpecialistConfig()
HISTORY = "spec_history"
CHAT_KEY = "spec_chat_id"  # the conversation this tab shows; also in the address as ?chat=
FOLLOW_S = 2.0  # how often a pending what-if turn looks at its run
# the chapter that shows a what-if run best, by the phase of its knob (the pages' url_path)
CHAPTER = {"floorplan": "floorplan", "placement": "placement", "routing": "routing", "timing": "timing"}
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
runs_root = str(runpicker.store().root)  # runs, what-if runs and saved conversations
config = _config(backend, host, float(timeout_s), gguf, hf_dir, allow_runs, runs_root)


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


def _render_assistant(meta: dict, key: str, turn: dict | None = None) -> None:
    st.caption(_meta_line(meta))
    for note in [n for n in meta.get("notes", []) if n.rstrip(".") not in meta.get("text", "")]:
        st.warning(note, icon=":material/info:")
    if turn is not None and pending_what_if(meta):
        _follow(turn)
    pred = meta.get("prediction")
    if pred:
        state = ("checked against the engine" if "against the engine" in pred["text"] else
                 "before the engine run" if pred["ok"] else "none")
        with st.expander(f"Tuned specialist's prediction ({state})", expanded=bool(pred["ok"])):
            st.markdown(pred["text"])
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


def run_link(run_id: str, phase: str | None) -> str:
    """A markdown link to the chapter that shows the run (its knob's phase), with the run in the address."""
    chapter = CHAPTER.get(phase or "", "placement")
    return f"[run {run_id}]({chapter}?run={run_id})"


def _follow(turn: dict) -> None:
    """A pending what-if turn: the run's state every FOLLOW_S seconds; when it has ended, the answer takes the
    engine's result, the conversation is saved, and the page reruns once (which stops the polling)."""
    meta = turn["meta"]
    data = meta["tool"]["data"]

    @st.fragment(run_every=FOLLOW_S)
    def _pending() -> None:
        from engine.specialists.chat import follow_what_if

        try:
            result = follow_what_if(meta, runs_root)
        except EngineError as exc:  # the queue or the runs folder cannot be read right now: say so, try again
            st.warning(exc.message, icon=":material/info:")
            return
        if result.data.get("pending"):
            line = result.text
            st.info(f"What-if {data.get('knob')} = {data.get('value')}: {run_link(data['run'], data.get('phase'))} "
                    f"is going on; the comparison with run {data.get('base_run')} appears here when it ends.",
                    icon=":material/autorenew:")
            st.progress(min(1.0, max(0.0, float(result.data.get("fraction") or 0.0))), text=line)
            return
        turn["content"] = meta["text"]
        _save(history)
        st.rerun()  # the whole page once: the turn is settled, so no fragment polls any more

    _pending()


# ---------------------------------------------------------------------------------------------- conversation

def _restore() -> list[dict]:
    """The conversation of this tab: the session's, or after a reload the one the address's ?chat= names."""
    wanted = st.query_params.get("chat")
    current = st.session_state.get(CHAT_KEY)
    if wanted and not conversation.valid_id(wanted):
        st.query_params.pop("chat", None)
        st.warning("The page address names no conversation (a chat id is 16 hexadecimal digits); a new one starts.",
                   icon=":material/info:")
        wanted = None
    if wanted and wanted != current:  # a reload, or a link to another saved conversation
        try:
            turns = conversation.load(runs_root, wanted)
        except EngineError as exc:
            st.warning(exc.message, icon=":material/info:")
            turns = []
        st.session_state[HISTORY] = turns
        st.session_state[CHAT_KEY] = wanted
    elif current and not wanted:  # a page switch dropped the address's query
        st.query_params["chat"] = current
    return st.session_state.setdefault(HISTORY, [])


def _save(turns: list[dict]) -> None:
    cid = st.session_state.get(CHAT_KEY) or conversation.new_id()
    st.session_state[CHAT_KEY] = cid
    st.query_params["chat"] = cid
    try:
        conversation.save(runs_root, cid, turns)
    except EngineError as exc:
        st.warning(exc.message, icon=":material/info:")


history: list[dict] = _restore()
for i, turn in enumerate(history):
    with st.chat_message(turn["role"]):
        st.markdown(turn["content"])
        if turn["role"] == "assistant" and turn.get("meta"):
            _render_assistant(turn["meta"], key=f"turn{i}", turn=turn)
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
                    elif kind == "prediction" and event["result"].ok:
                        body.markdown(event["result"].text)  # shown while the engine's what-if run goes on
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
            _save(history)
            st.error(msg)
        except Exception as exc:  # noqa: BLE001 - the page keeps running and the conversation is kept
            msg = f"The chat failed: {type(exc).__name__}: {exc}"
            history.append({"role": "user", "content": question[:2000], "error": msg})
            _save(history)
            st.error(msg)
        if answer is not None:
            head.empty()
            body.markdown(answer.text)
            meta = answer.to_dict()
            history.append({"role": "user", "content": answer.question})
            turn = {"role": "assistant", "content": answer.text, "meta": meta}
            history.append(turn)
            _save(history)  # before the what-if fragment, which saves again when its run ends
            _render_assistant(meta, key=f"turn{len(history) - 1}", turn=turn)
            who = f"the {answer.specialist} specialist"
            how = f"with {answer.model}" if answer.model else "without a model"
            st.session_state["spec_last"] = (f"{who} answered {how}, citing {len(answer.citations)} of "
                                             f"{len(answer.sources)} passages"
                                             + (f" and run {answer.tool.run_ids[0]}" if answer.tool and
                                                answer.tool.run_ids else "") + ".")

if history and st.button("Clear the conversation"):
    cid = st.session_state.pop(CHAT_KEY, None)
    if cid:
        try:
            conversation.delete(runs_root, cid)
        except EngineError as exc:
            st.warning(exc.message, icon=":material/info:")
    st.query_params.pop("chat", None)
    st.session_state[HISTORY] = []
    st.session_state.pop("spec_last", None)
    st.rerun()
