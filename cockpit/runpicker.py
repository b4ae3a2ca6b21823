"""The run picker: which run every page is looking at, kept in the URL (`?run=<id>`).

The URL is the one place the selection lives, so a reload or a new tab opened on the same address shows the
same run; session_state only carries it across page switches (st.navigation drops query params).

This is also the one place a page's run is opened: `current_run` checks the id against the engine's strict
pattern (an address can carry anything: `../../etc`, markup, 10,000 characters) and opens run.json; a run that
is not there (deleted while the page showed it), is damaged, or an id that is not one, shows one error box and
the page carries on as with no run, never a Streamlit exception screen.

Runs a person did not start one by one (the optimizer's evaluations, training's data runs, benchmark sweeps:
engine.runs.ORIGINS) are hidden from the pickers unless "Show optimizer/benchmark runs" is on; then they follow
the user's own runs, grouped under the run that started them (`group_rows`, a pure function).
"""
from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from engine.errors import EngineError
from engine.jobs import JobQueue
from engine.runs import RUN_ID_MAX, Run, RunStore, valid_run_id

STATUS_ICON = {"queued": "queued", "running": "running", "done": "done", "failed": "FAILED", "cancelled": "cancelled",
               "damaged": "DAMAGED"}
_KEY = "cda_run_id"
SHOW_ALL_KEY = "cda_show_all_runs"
SHOW_ALL_LABEL = "Show optimizer/benchmark runs"
ORIGIN_WORDS = {"optimize": "optimizer evaluation", "train": "training data run", "bench": "benchmark run"}


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


def age_text(created: str | None, now: datetime | None = None) -> str:
    """How long ago a run was made, in words a list can show ("just now", "5 min ago", "3 h ago", "2 d ago");
    the time itself when it cannot be read as one."""
    try:
        when = datetime.fromisoformat(str(created or ""))
    except ValueError:
        return str(created or "")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if seconds < 0:
        return when.strftime("%d %b %H:%M")
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 14 * 86400:
        return f"{int(seconds // 86400)} d ago"
    return when.strftime("%d %b %Y")


def run_label(row: dict, now: datetime | None = None) -> str:
    """design · label · state · age; a run the engine started says by whom ("↳ optimizer evaluation of <run>")."""
    label = f" · {row['label']}" if row.get("label") else ""
    status = str(row.get("status") or "?")
    design = str(row.get("design") or row.get("id") or "?")
    text = f"{design}{label} · {STATUS_ICON.get(status, status)} · {age_text(row.get('created'), now)}"
    origin = row.get("origin") or "user"
    if origin != "user":
        of = f" of {row['parent']}" if row.get("parent") else ""
        text = f"↳ {ORIGIN_WORDS.get(origin, origin)}{of}: {text}"
    return text


def group_rows(user_rows: list[dict], other_rows: list[dict] | None = None) -> list[dict]:
    """The rows a picker offers, in order: the user's own runs first (as given: newest first), then, when
    ``other_rows`` is given (the "show" toggle is on), the engine's runs grouped under their parent, each group
    newest first and the groups by their newest run. Rows that are not the user's are never mixed into the first
    part, whatever list they came in."""
    mine = [r for r in user_rows if (r.get("origin") or "user") == "user"]
    if other_rows is None:
        return mine
    seen = {r["id"] for r in mine}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in [*user_rows, *other_rows]:
        if (r.get("origin") or "user") == "user" or r["id"] in seen:
            continue
        seen.add(r["id"])
        groups.setdefault((str(r.get("origin")), str(r.get("parent") or "")), []).append(r)
    for members in groups.values():
        members.sort(key=lambda r: (str(r.get("created") or ""), str(r["id"])), reverse=True)
    ordered = sorted(groups.values(), key=lambda m: (str(m[0].get("created") or ""), str(m[0]["id"])), reverse=True)
    return mine + [r for members in ordered for r in members]


def hidden_count(counts: dict[str, int]) -> int:
    """Runs a picker of user runs leaves out, from RunStore.count_by_origin."""
    return sum(n for origin, n in counts.items() if origin != "user")


def listed_runs(kind: str | None = "flow", *, show_all: bool = False, limit: int = 60, runs: RunStore | None = None,
                hidden: int | None = None) -> tuple[list[dict], int]:
    """(rows for a picker, how many runs of the engine's there are: hidden unless ``show_all``). Raises
    EngineError when the runs folder cannot be used."""
    runs = runs or store()
    user_rows = runs.list(limit=limit, kind=kind, damaged=True, origin="user")
    if hidden is None:
        hidden = hidden_count(runs.count_by_origin(kind=kind))
    if not show_all or not hidden:
        return group_rows(user_rows), hidden
    other = [r for r in runs.list(limit=4 * limit, kind=kind, damaged=True) if r.get("origin") != "user"]
    return group_rows(user_rows, other), hidden


def pair_warning(a: dict, b: dict) -> str | None:
    """Why two runs should not be compared metric by metric (different designs), or None when they can."""
    da, db = str(a.get("design") or ""), str(b.get("design") or "")
    if da and db and da != db:
        return (f"Run A is {da} and run B is {db}: different designs, so their numbers are not comparable "
                "(a bigger design has more wire and slower paths whatever the settings). Pick two runs of the same "
                "design to see what a change did; the table below shows the numbers without calling either better.")
    return None


def show_all_toggle(where, hidden: int, key: str = SHOW_ALL_KEY) -> bool:
    """The "show optimizer/benchmark runs" switch (only when there are some to show); its state is the page's."""
    if not hidden and not st.session_state.get(key):
        return False
    return bool(where.toggle(SHOW_ALL_LABEL, key=key,
                             help=f"{hidden:,} run(s) were started by the optimizer, training or the benchmarks, "
                                  "not by you; they are listed after your own runs, grouped under the run that "
                                  "started them."))


def picker(where=None, kind: str | None = "flow") -> Run | None:
    """The select box of runs: the user's own first (newest first), the engine's when asked. Returns the selected
    run."""
    where = where or st.sidebar
    try:
        runs = store()
        hidden = hidden_count(runs.count_by_origin(kind=kind))
        show_all = show_all_toggle(where, hidden)
        rows, hidden = listed_runs(kind, show_all=show_all, runs=runs, hidden=hidden)
    except EngineError as exc:  # the runs folder itself cannot be used: say so, the pages still render
        where.error(exc.message, icon=":material/error:")
        return None
    if runs.rebuilt:
        where.info(runs.rebuilt, icon=":material/build:")
    if runs.read_only:
        where.caption(f"The runs folder is read-only ({runs.read_only}): runs can be looked at, not started.")
    if hidden and not show_all:
        where.caption(f"{hidden:,} optimizer/training/benchmark run(s) hidden.")
    if not rows and _requested() is None:
        where.caption("No runs of yours yet: start one on the Design page.")
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
    if not ids:
        where.caption("No runs of yours yet: start one on the Design page.")
        return None
    # Default: the newest run that can be read (a damaged one is listed, so it can be seen, but not chosen for you).
    index = ids.index(rid) if rid in ids else next((i for i, r in enumerate(rows) if r["status"] != "damaged"), 0)
    # No widget key: the widget follows `index`, so a run selected elsewhere (new run, URL) shows here at once.
    chosen = where.selectbox("Run", ids, index=index, format_func=lambda i: labels.get(i, i),
                             help="Every page shows this run. The choice is kept in the page address, so a reload "
                                  "or a new tab shows the same run.")
    if chosen != rid:
        select(chosen)
    return current_run(show_error=False)
