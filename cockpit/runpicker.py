"""The run picker: which run every page is looking at, kept in the URL (`?run=<id>`).

The URL is the one place the selection lives, so a reload or a new tab opened on the same address shows the
same run; session_state only carries it across page switches (st.navigation drops query params).
"""
from __future__ import annotations

from datetime import datetime

import streamlit as st

from engine.errors import EngineError
from engine.jobs import JobQueue
from engine.runs import Run, RunStore

STATUS_ICON = {"queued": "queued", "running": "running", "done": "done", "failed": "FAILED", "cancelled": "cancelled"}
_KEY = "cda_run_id"


def store() -> RunStore:
    """The run store ($CDA_RUNS_DIR or ./runs). Cheap: every read goes to disk."""
    return RunStore()


def queue() -> JobQueue:
    return JobQueue(store())


def selected_run_id() -> str | None:
    rid = st.query_params.get("run") or st.session_state.get(_KEY)
    return rid or None


def select(run_id: str | None) -> None:
    """Make `run_id` the run every page shows (and put it in the URL)."""
    if run_id:
        st.session_state[_KEY] = run_id
        st.query_params["run"] = run_id
    else:
        st.session_state.pop(_KEY, None)
        st.query_params.pop("run", None)


def sync_url() -> None:
    """Called by the app on every rerun: keep the selection in the URL after a page switch."""
    rid = selected_run_id()
    if rid and st.query_params.get("run") != rid:
        st.query_params["run"] = rid
    if rid:
        st.session_state[_KEY] = rid


def current_run() -> Run | None:
    """The selected run, or None (with no message) when nothing is selected or it no longer exists."""
    rid = selected_run_id()
    if not rid:
        return None
    try:
        return store().get(rid)
    except EngineError:
        return None


def run_label(row: dict) -> str:
    created = row.get("created", "")
    try:
        created = datetime.fromisoformat(created).strftime("%d %b %H:%M:%S")
    except ValueError:
        pass
    label = f" · {row['label']}" if row.get("label") else ""
    return f"{row['design']}{label} · {STATUS_ICON.get(row['status'], row['status'])} · {created}"


def picker(where=None, kind: str | None = "flow") -> Run | None:
    """The select box of runs (newest first). Returns the selected run."""
    where = where or st.sidebar
    rows = store().list(limit=60, kind=kind)
    if not rows:
        where.caption("No runs yet: start one on the Design page.")
        return None
    ids = [r["id"] for r in rows]
    labels = {r["id"]: run_label(r) for r in rows}
    rid = selected_run_id()
    if rid and rid not in ids:
        try:  # an older run given in the URL: still offer it
            info = store().get(rid).info()
            ids.append(rid)
            labels[rid] = run_label(info)
        except EngineError:
            where.warning(f"Run {rid} does not exist (deleted?). Showing the newest run instead.")
            rid = None
    index = ids.index(rid) if rid in ids else 0
    # No widget key: the widget follows `index`, so a run selected elsewhere (new run, URL) shows here at once.
    chosen = where.selectbox("Run", ids, index=index, format_func=lambda i: labels.get(i, i),
                             help="Every page shows this run. The choice is kept in the page address, so a reload "
                                  "or a new tab shows the same run.")
    if chosen != rid:
        select(chosen)
    return current_run()
