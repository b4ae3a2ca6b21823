"""The run store and the job queue under damage: broken index files, broken run folders, a read-only folder,
processes killed mid-run. Real files, real processes; what the user sees is one sentence, never a traceback, and
no run says "running" after the process running it is gone."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.errors import EngineError, LLMError, RunStoreError, UploadError
from engine.jobs import JobError, JobQueue, JobsConfig, JobTimeout
from engine.runs import RunStore, owner_record, proc_start

ROOT = Path(__file__).resolve().parent.parent
CDA = [sys.executable, "-m", "engine.cli"]


def _until(pred, timeout=30.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def _cda(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CDA_RUNS_DIR": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*CDA, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _one_sentence(stderr: str) -> str:
    """The CLI's error output: one `error:` line (maybe a hint/log line after it), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _store_with_runs(root: Path, n: int = 3) -> tuple[RunStore, list[str]]:
    store = RunStore(root)
    ids = []
    for i in range(n):
        run = store.create({"i": i}, f"d{i}")
        run.set_status("running")
        run.set_status("done")
        ids.append(run.id)
    return store, ids


def _listed(root: Path, **kw) -> dict[str, str]:
    return {r["id"]: r["status"] for r in RunStore(root).list(**kw)}


def _damage(path: Path, how: str) -> None:
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    if how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "zero":
        path.write_bytes(b"")
    elif how == "truncated":
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    elif how == "folder":
        path.unlink()
        path.mkdir()
        (path / "x").write_text("not a database")
    else:
        raise ValueError(how)


# ---------------------------------------------------------------------------------------------------- the index
@pytest.mark.parametrize("how", ["garbage", "zero", "truncated", "folder"])
def test_damaged_index_is_rebuilt_from_the_run_folders(tmp_path, how, caplog):
    root = tmp_path / "runs"
    store, ids = _store_with_runs(root, 3)
    if how == "truncated":  # enough rows that half the file loses pages the query needs
        for i in range(200):
            store._index({"id": f"pad-{i}", "status": "done", "created": "2000", "label": "x" * 400})
        with sqlite3.connect(store.db_path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(store.db_path, how)
    with caplog.at_level(logging.WARNING, logger="engine.runs"):
        listed = _listed(root)
    assert listed == {i: "done" for i in ids}  # the padding rows had no folders: not resurrected
    notices = [r.getMessage() for r in caplog.records if "rebuilt it from 3 run folder(s)" in r.getMessage()]
    assert len(notices) == 1, [r.getMessage() for r in caplog.records]
    if how != "zero":  # an empty file is simply filled; a damaged one is kept aside for a post-mortem
        assert list(root.glob("index.sqlite.damaged-*")), sorted(p.name for p in root.iterdir())
    # the new index is a real one: a new run lands in it and lists first
    new = RunStore(root).create({}, "after")
    assert next(iter(_listed(root))) == new.id


def test_cli_lists_runs_over_a_garbage_index_and_says_it_rebuilt(tmp_path):
    root = tmp_path / "runs"
    _, ids = _store_with_runs(root, 2)
    _damage(root / "index.sqlite", "garbage")
    p = _cda(root, "runs", "list")
    assert p.returncode == 0, p.stderr
    assert all(i in p.stdout for i in ids)
    assert "Traceback" not in p.stderr
    assert [ln for ln in p.stderr.splitlines() if "rebuilt" in ln] and len(p.stderr.strip().splitlines()) == 1


def test_index_rows_whose_folder_is_gone_are_dropped(tmp_path):
    root = tmp_path / "runs"
    store, ids = _store_with_runs(root, 3)
    shutil.rmtree(root / ids[1])
    assert set(_listed(root)) == {ids[0], ids[2]}
    with sqlite3.connect(store.db_path) as db:
        assert {r[0] for r in db.execute("SELECT id FROM runs")} == {ids[0], ids[2]}
    assert store.latest(kind=None).id == ids[2]


def test_index_that_is_a_foreign_database_is_rebuilt(tmp_path):
    root = tmp_path / "runs"
    _, ids = _store_with_runs(root, 2)
    (root / "index.sqlite").unlink()
    with sqlite3.connect(root / "index.sqlite") as db:  # a database, but not ours: wrong columns
        db.execute("CREATE TABLE runs (id TEXT, something_else TEXT)")
        db.execute("INSERT INTO runs VALUES ('x', 'y')")
    assert _listed(root) == {i: "done" for i in ids}


# ---------------------------------------------------------------------------------------------- run folders
@pytest.mark.parametrize("content", [b"{not json", b"", b"\x00\xff\xfe binary", b"[1, 2, 3]",
                                     b'{"id": "x", "status": "exploded"}', "missing", "folder"])
def test_damaged_run_json_does_not_break_listing_the_others(tmp_path, content):
    root = tmp_path / "runs"
    store, ids = _store_with_runs(root, 3)
    bad = root / ids[1] / "run.json"
    if content == "missing":
        bad.unlink()
    elif content == "folder":
        bad.unlink()
        bad.mkdir()
    else:
        bad.write_bytes(content)
    assert _listed(root) == {ids[0]: "done", ids[2]: "done"}  # callers get readable runs only
    rows = {r["id"]: r for r in RunStore(root).list(damaged=True)}
    assert rows[ids[1]]["status"] == "damaged" and ids[1] in rows[ids[1]]["error"]
    assert rows[ids[0]]["status"] == rows[ids[2]]["status"] == "done"
    with pytest.raises(EngineError, match=ids[1]):
        store.get(ids[1]).info()
    # a rebuild leaves it out and says so
    _damage(root / "index.sqlite", "garbage")
    assert set(_listed(root)) == {ids[0], ids[2]}


def test_cli_on_a_damaged_run_is_one_sentence(tmp_path):
    root = tmp_path / "runs"
    _, ids = _store_with_runs(root, 2)
    (root / ids[0] / "run.json").write_text('{"status": "done", "config": ')
    listed = _cda(root, "runs", "list")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert ids[0] in listed.stdout and "damaged" in listed.stdout and ids[1] in listed.stdout
    shown = _cda(root, "runs", "show", ids[0])
    assert shown.returncode == 1
    assert "is damaged" in _one_sentence(shown.stderr) and "run.json" in shown.stderr
    for hostile in ("../../etc", "x" * 10_000, "<script>", ".hidden", "a/b"):
        p = _cda(root, "runs", "show", hostile)
        assert p.returncode == 1
        line = _one_sentence(p.stderr)
        assert "not a run id" in line and len(line) < 300


def test_events_with_garbage_lines_still_give_progress(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create({}, "ev")
    run.event("step_start", step="synth")
    with open(run.dir / "events.jsonl", "ab") as fh:
        fh.write(b"\x00\xff{half a line\n[1,2]\n" + json.dumps({"kind": "progress", "step": "synth",
                                                                 "fraction": "lots"}).encode() + b"\n")
    run.event("step_end", step="synth", status="done", seconds=1.0)
    assert run.progress()["synth"]["status"] == "done"


# ---------------------------------------------------------------------------------------- a read-only folder
def test_runs_folder_under_a_file_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunStoreError, match="not a folder"):
        RunStore(tmp_path / "file" / "runs")
    p = _cda(tmp_path / "file" / "runs", "runs", "list")
    assert p.returncode == 1 and "not a folder" in _one_sentence(p.stderr)


def test_read_only_folder_lists_but_refuses_to_start(tmp_path, monkeypatch):
    """The folder reports not writable (what os.access says for a read-only mount or a folder of another user)."""
    root = tmp_path / "runs"
    _, ids = _store_with_runs(root, 2)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == root and mode & os.W_OK
                        else real_access(p, mode, **kw))
    store = RunStore(root)
    assert store.read_only
    assert set(_listed(root)) == set(ids)  # listing reads the folders
    with pytest.raises(RunStoreError, match="read-only"):
        store.create({}, "new")
    q = JobQueue(store)
    assert q.jobs() == []
    with pytest.raises(RunStoreError, match="read-only"):
        q.submit(ids[0])


def test_failing_writes_are_one_sentence(tmp_path, monkeypatch):
    store, ids = _store_with_runs(tmp_path / "runs", 1)
    run = store.get(ids[0])

    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(RunStoreError, match="Read-only file system"):
        run.update_info(label="x")
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(RunStoreError, match="Read-only file system"):
        run.event("x")


def _can_mount_read_only(tmp_path: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    d = tmp_path / "probe"
    d.mkdir()
    p = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && "
                        f"! touch {d}/x 2>/dev/null"], capture_output=True)
    return p.returncode == 0


def test_really_read_only_runs_folder(tmp_path):
    """A read-only bind mount (a private mount namespace, so nothing leaks): chmod does not stop root."""
    if not _can_mount_read_only(tmp_path):
        pytest.skip("needs root and unshare to make a read-only mount (chmod does not stop root)")
    root = tmp_path / "runs"
    _, ids = _store_with_runs(root, 1)
    stale = RunStore(root).create({}, "stale")
    stale.set_status("running", owner={"pid": 2 ** 22 + 7, "start": "1", "host": os.uname().nodename})
    env = {**os.environ, "CDA_RUNS_DIR": str(root)}

    def ro(*args):
        cmd = " ".join(["exec", sys.executable, "-m", "engine.cli", *args])
        return subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {root} {root} && "
                               f"mount -o remount,bind,ro {root} && {cmd}"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    listed = ro("runs", "list")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert ids[0] in listed.stdout and stale.id in listed.stdout
    assert "failed" in listed.stdout.split(stale.id)[1].splitlines()[0]  # told the truth, even unrecorded
    started = ro("flow", "run", "counter", "--until", "synth")
    assert started.returncode == 1 and "read-only" in _one_sentence(started.stderr)
    cancel = ro("runs", "cancel", ids[0])
    assert cancel.returncode == 1 and "Read-only file system" in _one_sentence(cancel.stderr)


# ------------------------------------------------------------------------------------ runs tell the truth
def _start_flow(root: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "CDA_RUNS_DIR": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*CDA, "flow", "run", "counter", "--no-reuse"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running():
        found = list(root.glob("*/run.json"))
        if not found:
            return False
        try:
            info = json.loads(found[0].read_text())
        except ValueError:
            return False
        return info["status"] == "running" and "step_start" in (found[0].parent / "events.jsonl").read_text()

    assert _until(running, timeout=60), proc.communicate(timeout=60)
    return proc, next(root.glob("*/run.json")).parent


def test_sigkilled_cli_flow_is_failed_the_next_time_runs_are_listed(tmp_path):
    root = tmp_path / "runs"
    proc, run_dir = _start_flow(root)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    on_disk = json.loads((run_dir / "run.json").read_text())
    assert on_disk["status"] == "running" and on_disk["owner"]["pid"] == proc.pid  # nobody could say otherwise
    p = _cda(root, "runs", "list")
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert f"{run_dir.name}" in p.stdout and "failed" in p.stdout and "running" not in p.stdout
    info = RunStore(root).get(run_dir.name).info()
    assert info["status"] == "failed" and f"pid {proc.pid}" in info["error"] and "killed" in info["error"]
    assert info["failed_step"] in ("synth", "floorplan", "place", "route", "timing", "gds", "verify")
    shown = _cda(root, "runs", "show", run_dir.name)
    assert shown.returncode == 1 and "stopped without finishing" in shown.stdout


def test_sigterm_cancels_a_cli_flow_cleanly(tmp_path):
    root = tmp_path / "runs"
    proc, run_dir = _start_flow(root)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "cancelling (SIGTERM)" in err
    info = RunStore(root).get(run_dir.name).info()
    assert info["status"] == "cancelled"
    assert "status: cancelled" in out


def test_owner_liveness_and_pid_reuse(tmp_path):
    store = RunStore(tmp_path / "runs")
    parent = os.getppid()  # a live process that is not us
    alive = store.create({}, "alive")
    alive.set_status("running", owner=owner_record(parent))
    reused = store.create({}, "reused")  # the same pid, but another process started long ago had it
    reused.set_status("running", owner={**owner_record(parent), "start": str(int(proc_start(parent)) + 12345)})
    remote = store.create({}, "remote")  # another machine's process: we cannot tell, so we do not guess
    remote.set_status("running", owner={"pid": 2 ** 22 + 7, "start": "1", "host": "some-other-host"})
    legacy = store.create({}, "legacy")  # written before owners were recorded
    legacy.set_status("running", owner=None)
    rows = {r["design"]: r for r in store.list()}
    assert rows["alive"]["status"] == "running"
    assert rows["reused"]["status"] == "failed" and "stopped without finishing" in rows["reused"]["error"]
    assert rows["remote"]["status"] == "running" and rows["legacy"]["status"] == "running"
    # the verdict is recorded in the folder (the truth), with an event the story can read
    assert json.loads((reused.dir / "run.json").read_text())["status"] == "failed"
    assert any(e["kind"] == "error" for e in reused.events())


# ------------------------------------------------------------------------------------------------- jobs
TARGETS = textwrap.dedent('''
    import time
    from engine.errors import Cancelled

    def slow(run, progress, cancelled):
        for i in range(1200):
            if cancelled():
                raise Cancelled()
            time.sleep(0.05)
''')


@pytest.fixture
def queue(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "robust_targets.py").write_text(TARGETS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    q = JobQueue(RunStore(tmp_path / "runs"), JobsConfig(max_workers=1, poll_s=0.1, cancel_grace_s=2.0))
    yield q
    for st in q.jobs():  # leave no worker behind
        q.cancel(st.run_id)
    for st in q.jobs():
        q.wait(st.run_id, timeout_s=30)


def test_killed_queued_worker_is_failed_when_runs_are_listed(queue):
    first = queue.store.create({}, "first")
    second = queue.store.create({}, "second")
    queue.submit(first.id, "robust_targets:slow")
    queue.submit(second.id, "robust_targets:slow")
    assert _until(lambda: queue.status(first.id).state == "running")
    assert _until(lambda: (second.info().get("owner") or {}).get("pid") is not None)  # its worker waits
    pid = second.info()["owner"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert _until(lambda: proc_start(pid) is None, timeout=10)
    # RunStore alone (no JobQueue.reap): the owner in run.json is enough to tell
    rows = {r["id"]: r for r in RunStore(queue.store.root).list()}
    assert rows[second.id]["status"] == "failed" and "worker.log" in rows[second.id]["error"]
    assert rows[first.id]["status"] == "running"
    assert queue.status(second.id).state == "failed"


@pytest.mark.parametrize("how", ["garbage", "folder"])
def test_damaged_jobs_db_is_rebuilt_and_a_running_job_kept(queue, how, caplog):
    run = queue.store.create({}, "survivor")
    queue.submit(run.id, "robust_targets:slow")
    assert _until(lambda: queue.status(run.id).state == "running")
    # the rebuild reads the run folders: wait until the worker has written its state there too (under load the
    # queue's row says running a moment before run.json does)
    assert _until(lambda: run.status == "running" and (run.info().get("owner") or {}).get("pid") is not None)
    pid = queue.status(run.id).pid
    _damage(queue.db_path, how)
    with caplog.at_level(logging.WARNING, logger="engine.jobs"):
        fresh = JobQueue(queue.store, queue.config)
        st = fresh.status(run.id)
    assert st is not None and st.state == "running" and st.pid == pid
    assert any("job queue" in r.getMessage() and "rebuilt" in r.getMessage() for r in caplog.records)
    assert [j.run_id for j in fresh.jobs()] == [run.id]
    fresh.cancel(run.id)
    assert fresh.wait(run.id, timeout_s=30) == "cancelled"
    assert run.status == "cancelled"


def test_jobs_of_deleted_runs_are_dropped(queue):
    run = queue.store.create({}, "doomed")
    queue.submit(run.id, "robust_targets:slow")
    assert _until(lambda: queue.status(run.id).state == "running")
    pid = queue.status(run.id).pid
    os.kill(pid, signal.SIGKILL)
    shutil.rmtree(run.dir)
    assert queue.jobs() == [] and queue.status(run.id) is None


def test_cli_jobs_timeout_and_bad_kind_are_one_sentence(queue):
    root = queue.store.root
    run = queue.store.create({}, "waited")
    queue.submit(run.id, "robust_targets:slow")
    p = _cda(root, "jobs", "wait", run.id, "--timeout-s", "0.5")
    assert p.returncode == 1 and "did not finish within" in _one_sentence(p.stderr)
    other = queue.store.create({}, "other")
    p = _cda(root, "jobs", "submit", other.id, "--kind", "nonsense")
    assert p.returncode == 1 and "Unknown job kind" in _one_sentence(p.stderr)
    with pytest.raises(JobTimeout):
        queue.wait(run.id, timeout_s=0.1)


# ------------------------------------------------------------------------------------- one error hierarchy
def test_one_error_hierarchy_with_old_import_paths():
    from engine import uploads
    from engine.specialists import llm

    assert uploads.UploadError is UploadError and llm.LLMError is LLMError
    for cls in (UploadError, LLMError, RunStoreError, JobError, JobTimeout):
        assert issubclass(cls, EngineError), cls
    assert issubclass(UploadError, ValueError) and issubclass(JobError, ValueError)  # old `except` clauses
    assert issubclass(JobTimeout, TimeoutError)
    with pytest.raises(ValueError):
        raise UploadError("x.v: not Verilog")
    assert str(LLMError("No Ollama server answers at http://x")) == "No Ollama server answers at http://x"
