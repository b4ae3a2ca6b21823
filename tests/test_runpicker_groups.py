"""Runs a person can find: who started a run (run.json's origin/parent and the index's columns, with the migration
of old runs), `cda runs list` hiding the engine's own runs, the pickers' grouping and labels (pure functions), and
the sidebar picker under AppTest hiding an optimizer evaluation run until asked."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cockpit import runpicker
from engine.cli import main as cda
from engine.runs import RunStore, classify_origin, started_by

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "cockpit" / "app.py"
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def _done(store: RunStore, design: str, label: str = "", **kw):
    run = store.create({}, design, label=label, **kw)
    run.set_status("done")
    return run


# ------------------------------------------------------------------------------------------ origins
def test_classify_origin_reads_labels_kinds_and_configs():
    assert classify_origin({"label": "optimize 20261201-101010-counter-ab12"}) == \
        ("optimize", "20261201-101010-counter-ab12")
    assert classify_origin({"label": "optimize"}) == ("optimize", None)
    assert classify_origin({"label": "datagen:place"}) == ("train", None)
    assert classify_origin({"label": "bench2-floorplan:counter", "kind": "flow"}) == ("bench", None)
    assert classify_origin({"kind": "bench", "label": "x"})[0] == "bench"
    assert classify_origin({"config": {"measure_version": 3}})[0] == "bench"
    # a person's runs: plain, a rerun from a failure box, the chat's what-if, a label that merely mentions words
    for label in ("", "rerun: top=counter", "what-if place.density=0.9 from x", "optimized by hand"):
        assert classify_origin({"label": label, "kind": "flow"}) == ("user", None), label
    # a recorded origin wins over what the label suggests; a parent that is not a run id is dropped
    assert classify_origin({"origin": "user", "label": "optimize 1"}) == ("user", None)
    assert classify_origin({"origin": "bench", "parent": "../etc"}) == ("bench", None)


def test_create_records_origin_from_argument_context_or_label(tmp_path):
    store = RunStore(tmp_path)
    mine = store.create({}, "counter")
    assert (mine.info()["origin"], mine.info()["parent"]) == ("user", None)
    parent = store.create({}, "counter", kind="optimize")
    assert parent.info()["origin"] == "user"  # the optimisation itself was started by a person
    with started_by("optimize", parent=parent.id):
        child = store.create({}, "counter", label="anything")
    assert (child.info()["origin"], child.info()["parent"]) == ("optimize", parent.id)
    after = store.create({}, "counter")  # the block is over: back to user
    assert after.info()["origin"] == "user"
    by_label = store.create({}, "counter", label=f"optimize {parent.id}")
    assert (by_label.info()["origin"], by_label.info()["parent"]) == ("optimize", parent.id)
    bench = store.create({}, "counter", kind="bench", label="b", origin="bench")
    raw = json.loads((bench.dir / "run.json").read_text())
    assert raw["origin"] == "bench" and raw["parent"] is None
    with pytest.raises(ValueError):
        store.create({}, "counter", origin="robot")
    with pytest.raises(ValueError), started_by("robot"):
        pass


def test_list_hides_engine_runs_and_counts_them(tmp_path):
    store = RunStore(tmp_path)
    parent = store.create({}, "counter", kind="optimize")
    users = [_done(store, "counter", f"mine {i}") for i in range(2)]
    with started_by("optimize", parent=parent.id):
        evals = [_done(store, "counter") for _ in range(3)]
    _done(store, "gcd", "bench2-floorplan:gcd")  # an older writer's label, classed on create
    mine = store.list(kind="flow", origin="user")
    assert [r["id"] for r in mine] == [u.id for u in reversed(users)]
    assert store.count_by_origin(kind="flow") == {"user": 2, "optimize": 3, "bench": 1}
    everything = store.list(kind="flow")
    assert {r["id"] for r in everything} >= {e.id for e in evals}
    assert {r["origin"] for r in everything} == {"user", "optimize", "bench"}
    assert all(r["parent"] == parent.id for r in everything if r["origin"] == "optimize")
    # the index can be rebuilt from the folders and says the same
    assert store.reindex() == 7
    assert RunStore(tmp_path).count_by_origin(kind="flow") == {"user": 2, "optimize": 3, "bench": 1}


def test_old_index_and_old_runs_are_migrated(tmp_path, caplog):
    """A run store written before origins: run.json without origin, an index without the columns."""
    old = {"a-user": ("", "done"), "b-eval": ("optimize 20261130-090000-counter-0001", "done"),
           "c-datagen": ("datagen:route", "done"), "d-running-eval": ("optimize", "running")}
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT, design TEXT, status TEXT, created TEXT,"
               " updated TEXT, label TEXT, error TEXT)")
    db.execute("CREATE TABLE step_cache (key TEXT PRIMARY KEY, run_id TEXT, step TEXT)")
    for i, (rid, (label, status)) in enumerate(old.items()):
        info = {"id": rid, "kind": "flow", "design": "counter", "label": label, "status": status,
                "created": f"2026-11-30T09:00:0{i}+00:00", "config": {}}
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "run.json").write_text(json.dumps(info))
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                   (rid, "flow", "counter", status, info["created"], info["created"], label, None))
    db.commit()
    db.close()
    store = RunStore(tmp_path)
    rows = {r["id"]: r for r in store.list(kind="flow")}
    assert {k: (r["origin"], r["parent"]) for k, r in rows.items()} == {
        "a-user": ("user", None), "b-eval": ("optimize", "20261130-090000-counter-0001"),
        "c-datagen": ("train", None), "d-running-eval": ("optimize", None)}
    cols = {c[1] for c in sqlite3.connect(tmp_path / "index.sqlite").execute("PRAGMA table_info(runs)")}
    assert {"origin", "parent"} <= cols
    # finished runs got the field written; the running one is left to its owner (classed on read)
    assert json.loads((tmp_path / "b-eval" / "run.json").read_text())["origin"] == "optimize"
    assert "origin" not in json.loads((tmp_path / "d-running-eval" / "run.json").read_text())
    assert store.get("d-running-eval").info()["origin"] == "optimize"
    assert [r["id"] for r in store.list(kind="flow", origin="user")] == ["a-user"]
    # a row written by an older process (no origin column filled) is classed from its folder
    with sqlite3.connect(tmp_path / "index.sqlite") as db2:
        db2.execute("UPDATE runs SET origin = NULL WHERE id = 'b-eval'")
    assert [r["id"] for r in RunStore(tmp_path).list(kind="flow", origin="user")] == ["a-user"]


def test_cda_runs_list_shows_user_runs_and_says_how_many_are_hidden(tmp_path, capsys):
    store = RunStore(tmp_path)
    mine = _done(store, "counter", "mine")
    with started_by("optimize", parent=mine.id):
        evals = [_done(store, "counter") for _ in range(2)]
    assert cda(["--runs-dir", str(tmp_path), "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert mine.id in out and not any(e.id in out for e in evals)
    assert "2 run(s) started by the optimizer, training or benchmarks are hidden; --all lists them" in out
    assert cda(["--runs-dir", str(tmp_path), "runs", "list", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(e.id in out for e in evals) and "hidden" not in out
    assert f"started by {mine.id}" in out


# ------------------------------------------------------------------------------------------ pickers (pure)
def _row(rid, created, origin="user", parent=None, design="counter", status="done", label=""):
    return {"id": rid, "created": created, "origin": origin, "parent": parent, "design": design, "status": status,
            "label": label}


def test_group_rows_puts_user_runs_first_and_groups_the_rest_under_their_parent():
    user = [_row("u2", "2026-12-01T11:00"), _row("u1", "2026-12-01T09:00")]
    other = [_row("p1-e2", "2026-12-01T11:30", "optimize", "p1"), _row("b1", "2026-12-01T11:20", "bench"),
             _row("p2-e1", "2026-12-01T10:50", "optimize", "p2"), _row("p1-e1", "2026-12-01T10:00", "optimize", "p1")]
    assert [r["id"] for r in runpicker.group_rows(user)] == ["u2", "u1"]
    assert [r["id"] for r in runpicker.group_rows(user, other)] == ["u2", "u1", "p1-e2", "p1-e1", "b1", "p2-e1"]
    # an evaluation that slipped into the user list (an old index row) is moved out of the user part, once
    mixed = [user[0], other[0], user[1]]
    assert [r["id"] for r in runpicker.group_rows(mixed)] == ["u2", "u1"]
    assert [r["id"] for r in runpicker.group_rows(mixed, other)][:3] == ["u2", "u1", "p1-e2"]
    assert len(runpicker.group_rows(mixed, other)) == 6
    assert runpicker.hidden_count({"user": 4, "optimize": 30, "bench": 2}) == 32


def test_labels_say_design_label_state_age_and_who_started_it():
    t = (NOW - timedelta(minutes=5)).isoformat()
    assert runpicker.run_label(_row("x", t, label="util 0.5"), NOW) == "counter · util 0.5 · done · 5 min ago"
    ev = runpicker.run_label(_row("x", t, "optimize", "20261201-1-p", status="failed"), NOW)
    assert ev == "↳ optimizer evaluation of 20261201-1-p: counter · FAILED · 5 min ago"
    assert runpicker.age_text((NOW - timedelta(seconds=20)).isoformat(), NOW) == "just now"
    assert runpicker.age_text((NOW - timedelta(hours=3, minutes=5)).isoformat(), NOW) == "3 h ago"
    assert runpicker.age_text((NOW - timedelta(days=2)).isoformat(), NOW) == "2 d ago"
    assert runpicker.age_text("2026-01-05T10:00:00", NOW) == "05 Jan 2026"
    assert runpicker.age_text("not a time", NOW) == "not a time"


def test_compare_warns_about_runs_of_different_designs():
    assert runpicker.pair_warning({"design": "counter"}, {"design": "counter"}) is None
    text = runpicker.pair_warning({"design": "counter"}, {"design": "gcd"})
    assert "counter" in text and "gcd" in text and "different designs" in text


# ------------------------------------------------------------------------------------------ the picker, AppTest
def test_sidebar_picker_hides_an_optimizer_evaluation_until_asked(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    store = RunStore(tmp_path)
    mine = _done(store, "counter", "mine")
    parent = store.create({}, "counter", kind="optimize")
    with started_by("optimize", parent=parent.id):
        ev = _done(store, "counter")  # the newest flow run: without the grouping it would be the default
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (box,) = [s for s in at.sidebar.selectbox if s.label == "Run"]
    assert box.options == [runpicker.run_label(mine.info())] and box.value == mine.id
    assert any("1 optimizer/training/benchmark run(s) hidden" in c.value for c in at.sidebar.caption)
    (toggle,) = [t for t in at.sidebar.toggle if t.label == runpicker.SHOW_ALL_LABEL]
    toggle.set_value(True).run()
    assert not at.exception
    (box,) = [s for s in at.sidebar.selectbox if s.label == "Run"]
    assert len(box.options) == 2 and box.options[0].startswith("counter · mine")
    assert box.options[1].startswith(f"↳ optimizer evaluation of {parent.id}")
    assert box.value == mine.id  # showing them does not change the selection
    assert ev.id != mine.id


def test_an_optimizer_evaluation_records_its_parent(tmp_path):
    """The optimizer's real evaluation path (engine.rl.evaluate.evaluate_config, a real flow up to floorplan)."""
    from engine.designs import resolve
    from engine.rl.evaluate import evaluate_config

    store = RunStore(tmp_path)
    parent = store.create({}, "counter", kind="optimize")
    cfg = resolve("counter").flow_config()
    out = evaluate_config(cfg.to_dict(), str(tmp_path), until="floorplan", label=f"optimize {parent.id}")
    assert out["status"] == "done", out["error"]
    info = store.get(out["run_id"]).info()
    assert (info["kind"], info["origin"], info["parent"]) == ("flow", "optimize", parent.id)
    assert [r["id"] for r in store.list(kind="flow", origin="user")] == []
    assert store.count_by_origin(kind="flow") == {"optimize": 1}


def test_compare_page_warns_when_the_designs_differ(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path))
    store = RunStore(tmp_path)
    a, b = _done(store, "counter"), _done(store, "gcd")
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60)
    at.query_params["a"], at.query_params["b"] = a.id, b.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("different designs" in w.value for w in at.warning)
    c = _done(store, "counter")  # a second run of A's design: B defaults to it, no warning
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60)
    at.query_params["a"] = c.id
    at.run()
    assert not at.exception
    assert [s.value for s in at.selectbox][:2] == [c.id, a.id]
    assert not any("different designs" in w.value for w in at.warning)
