"""The run picker: which run every page is looking at, kept in the URL (`?run=<id>`).

The URL is the one place the selection lives, so a reload or a new tab opened on the same address shows the
same run; session_state only carries it across page switches (st.navigation drops query params).

This is also the one place a page's run is opened: `current_run` checks the id against the engine's strict
pattern (an address can carry anything: `../../etc`, markup, 10,000 characters) and opens run.json; a run that
is not there (deleted while the page showed it), is damaged, or an id that is not one, shows one error box and
the page carries on as with no run, never a Streamlit exception screen.
"""
from __future__ import annotations

from datetime import datetime

import streamlit as st

from engine.errors import EngineError
from engine.jobs import JobQueue
from engine.runs import RUN_ID_MAX, Run, RunStore, valid_run_id

STATUS_ICON = {"queued": "queued", "running": "running", "done": "done", "failed": "FAILED", "cancelled": "cancelled",
               "damaged": "DAMAGED"}
_KEY = "cda_run_id"


def store() -> RunStore:
    """The run store ($CDA_RUNS_DIR or ./runs). Cheap: every read goes to disk."""
    return RunStore()


def queue() -> JobQueue:
    return JobQueue(store())


def _requested() -> str | None:
    """The run the address (or, after a page switch, the session) asks for, as given: not checked yet."""
    rid = st.query_params.get("run") or st.session_state.get(_KEY)
    return rid if isinstance(rid, str) and rid else None


def selected_run_id() -> str | None:
    """The selected run id, only when it is a well-formed one (see engine.runs.RUN_ID)."""
    rid = _requested()
    return rid if rid and valid_run_id(rid) else None


def bad_id_message(rid: str) -> str:
    # The value itself is not echoed: it came from an address anyone can write, and may be markup or huge.
    return (f"The page address names a run that is not a valid run id ({len(rid):,} characters; run ids are "
            f"letters, digits, '-', '_' and '.', at most {RUN_ID_MAX}), so no run is shown: pick one in the sidebar.")


def open_run(rid: str) -> tuple[Run | None, str | None]:
    """(the run, None) or (None, one sentence saying why it cannot be shown). Never raises for a bad run."""
    if not valid_run_id(rid):
        return None, bad_id_message(rid)
    try:
        run = store().get(rid)
        run.info()  # a damaged run.json says so here, once, rather than halfway down a page
    except EngineError as exc:
        return None, exc.message
    return run, None


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
    raw = _requested()
    if raw and not valid_run_id(raw):
        select(None)  # a hostile or mangled ?run= is dropped; current_run/picker say so
        st.session_state["cda_bad_run_id"] = raw
        return
    rid = selected_run_id()
    if rid and st.query_params.get("run") != rid:
        st.query_params["run"] = rid
    if rid:
        st.session_state[_KEY] = rid


def current_run(show_error: bool = True) -> Run | None:
    """The selected run, or None when nothing is selected. When the selection cannot be shown (not a run id,
    deleted, damaged run.json, an unusable runs folder) an error box says why and None is returned."""
    rid = _requested()
    if not rid:
        bad = st.session_state.pop("cda_bad_run_id", None)
        if bad and show_error:
            st.error(bad_id_message(bad), icon=":material/error:")
        return None
    run, problem = open_run(rid)
    if problem and show_error:
        st.error(problem, icon=":material/error:")
    if problem and not valid_run_id(rid):
        select(None)
    return run


def run_label(row: dict) -> str:
    created = str(row.get("created") or "")
    try:
        created = datetime.fromisoformat(created).strftime("%d %b %H:%M:%S")
    except ValueError:
        pass
    label = f" · {row['label']}" if row.get("label") else ""
    status = str(row.get("status") or "?")
    design = str(row.get("design") or row.get("id") or "?")
    return f"{design}{label} · {STATUS_ICON.get(status, status)} · {created}"


def picker(where=None, kind: str | None = "flow") -> Run | None:
    """The select box of runs (newest first). Returns the selected run."""
    where = where or st.sidebar
    try:
        runs = store()
        rows = runs.list(limit=60, kind=kind, damaged=True)
    except EngineError as exc:  # the runs folder itself cannot be used: say so, the pages still render
        where.error(exc.message, icon=":material/error:")
        return None
    if runs.rebuilt:
        where.info(runs.rebuilt, icon=":material/build:")
    if runs.read_only:
        where.caption(f"The runs folder is read-only ({runs.read_only}): runs can be looked at, not started.")
    if not rows:
        where.caption("No runs yet: start one on the Design page.")
        return None
    ids = [r["id"] for r in rows]
    labels = {r["id"]: run_label(r) for r in rows}
    raw = _requested()
    bad = st.session_state.pop("cda_bad_run_id", None) or (raw if raw and not valid_run_id(raw) else None)
    rid = selected_run_id()
    if bad:
        where.error(bad_id_message(bad).replace(": pick one in the sidebar.", "; showing the newest run instead."),
                    icon=":material/error:")
    if rid and rid not in ids:
        run, problem = open_run(rid)  # an older run given in the URL: still offer it
        if run is not None:
            ids.append(rid)
            labels[rid] = run_label(run.info())
        else:
            where.warning(f"{problem} Showing the newest run instead.")
            rid = None
    # Default: the newest run that can be read (a damaged one is listed, so it can be seen, but not chosen for you).
    index = ids.index(rid) if rid in ids else next((i for i, r in enumerate(rows) if r["status"] != "damaged"), 0)
    # No widget key: the widget follows `index`, so a run selected elsewhere (new run, URL) shows here at once.
    chosen = where.selectbox("Run", ids, index=index, format_func=lambda i: labels.get(i, i),
                             help="Every page shows this run. The choice is kept in the page address, so a reload "
                                  "or a new tab shows the same run.")
    if chosen != rid:
        select(chosen)
    return current_run(show_error=False)
