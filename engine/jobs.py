"""Jobs: run long work (a flow, an optimizer sweep, ...) in worker processes, queued to the machine's cores.

Why processes and files: the cockpit (Streamlit) must never run long work itself, and a browser refresh, a
closed tab or a restarted app must lose nothing. So `submit` starts a detached worker process
(`python -m engine.jobs worker RUN_ID --root RUNS_DIR`) whose output goes to `runs/<id>/worker.log`, and the
queue is a small SQLite table next to the run store (`jobs.sqlite`). Each worker waits for a free slot itself
(first come, first served; at most `max_workers` running), so no scheduler process has to stay alive.

Cancel is the run's `CANCEL` file: the work checks it between iterations; a queued worker sees it and leaves;
a worker stuck in a tool past a grace period kills its own process group. A worker that dies without
saying so (killed, out of memory) is found by `reap()` (called on every status read) and its run is marked
failed with a pointer to its log; the worker also names itself as the run's owner in run.json, so even a plain
`RunStore.list` tells a dead worker's run as failed. The queue file is a cache of the run folders: a damaged
`jobs.sqlite` is moved aside and rebuilt from them (each live worker gets its row back), with one warning.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError, RunStoreError
from engine.runs import ACTIVE, guarded_sql, move_aside, owner_record, proc_start

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "cancelled")
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Job kinds -> "module:function". The function is called in the worker as fn(run, progress, cancelled)
# where progress(fraction, message) reports and cancelled() -> bool polls the CANCEL file.
# Other components register their own kinds with `register_target` (or pass "module:function").
TARGETS: dict[str, str] = {"flow": "engine.jobs:run_flow_target"}


def register_target(kind: str, spec: str) -> None:
    """Make `kind` start `spec` ("package.module:function") in a worker."""
    TARGETS[kind] = spec


@dataclass
class JobsConfig:
    # Jobs running at once; the rest wait in the queue (each flow is mostly single-threaded tools).
    max_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    # How often a queued worker checks for a free slot and for its CANCEL file (seconds).
    poll_s: float = 0.5
    # After CANCEL, how long the work may take to stop at its next check point before the worker kills
    # itself and the tools it started (seconds).
    cancel_grace_s: float = 10.0
    # Python used to start workers; the venv's by default so workers see the same packages.
    python: str = field(default_factory=lambda: sys.executable)


@dataclass
class JobStatus:
    """What a page shows about a job: its state, its place in the queue and its worker."""

    run_id: str
    kind: str
    state: str  # queued | running | done | failed | cancelled
    position: int | None  # 1 = next to start; None when not queued
    pid: int | None
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    message: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT UNIQUE NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  pid INTEGER,
  pid_start TEXT,
  submitted_at REAL NOT NULL,
  started_at REAL,
  ended_at REAL,
  message TEXT DEFAULT ''
);
"""


class JobError(EngineError, ValueError):
    """A job cannot be submitted (unknown kind, already running). Also a ValueError, as it was before."""


class JobTimeout(EngineError, TimeoutError):
    """`wait` gave up before the job ended."""


# Start time of a process (from /proc), to tell a live worker from a recycled pid; None if gone (or a zombie).
_proc_start = proc_start


def _alive(pid: int | None, pid_start: str | None) -> bool:
    if not pid:
        return False
    start = _proc_start(pid)
    return start is not None and (pid_start is None or start == pid_start)


def _store(root: Path | str | None):
    from engine.runs import RunStore

    return RunStore(Path(root) if root is not None else None)


class JobQueue:
    """Submit, watch and cancel jobs for runs of one run store."""

    def __init__(self, store=None, config: JobsConfig | None = None):
        self.store = store if store is not None else _store(None)
        self.config = config or JobsConfig()
        self.root = Path(self.store.root)
        self.db_path = self.root / "jobs.sqlite"
        # Why jobs cannot be started here (None when they can); reads then answer "no jobs".
        self.read_only: str | None = self.store.read_only
        self._sql(lambda db: None)  # opens (and if need be creates or rebuilds) the queue

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)  # autocommit; explicit BEGIN when needed
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.executescript(_SCHEMA)
            yield db
        finally:
            db.close()

    def _sql(self, fn: Callable[[sqlite3.Connection], Any], default: Any = None) -> Any:
        """``fn(db)`` on the queue. A damaged jobs.sqlite is rebuilt once (from the run folders) and ``fn``
        retried; a read-only one answers ``default``; anything else becomes one sentence."""
        return guarded_sql(self, "job queue", self._db, fn, default)

    def _rebuild(self, reason: str) -> None:
        """Move a damaged jobs.sqlite aside and rebuild the queue from the run folders: every queued or running
        run whose worker (its owner in run.json) is alive gets its row back, in the order the runs were made."""
        try:
            moved = move_aside(self.db_path)
        except OSError as exc:
            raise RunStoreError(f"The job queue {self.db_path} is damaged ({reason}) and cannot be moved aside "
                                f"({exc.strerror or exc}); delete it and it is rebuilt.") from None
        rows = []
        for info in reversed(self.store._scan()):  # oldest first: the queue order
            owner = info.get("owner") if isinstance(info.get("owner"), dict) else None
            if info.get("status") not in ACTIVE or not owner or not _alive(owner.get("pid"), owner.get("start")):
                continue
            kind = info.get("job_kind") or info.get("kind") or "flow"
            rows.append((info["id"], kind, info.get("job_target") or TARGETS.get(kind, kind), info["status"],
                         owner.get("pid"), owner.get("start"), time.time()))
        try:
            with self._db() as db:
                db.executemany("INSERT OR IGNORE INTO jobs(run_id, kind, target, state, pid, pid_start, submitted_at)"
                               " VALUES (?,?,?,?,?,?,?)", rows)
        except sqlite3.Error as exc:
            raise RunStoreError(f"The job queue {self.db_path} was damaged ({reason}) and a new one cannot be "
                                f"written ({exc}).") from None
        kept = f"; the old file is kept as {moved.name}" if moved else ""
        log.warning("The job queue %s was damaged (%s); rebuilt it from the run folders with %d live job(s)%s.",
                    self.db_path, reason, len(rows), kept)

    # ---- submitting -------------------------------------------------------------------------------
    def submit(self, run_id: str, kind: str = "flow") -> JobStatus:
        """Queue the run and start its worker process. Returns its status (queued, with its place)."""
        target = TARGETS.get(kind, kind)
        if ":" not in target:
            raise JobError(f"Unknown job kind {kind!r}; known kinds: {', '.join(sorted(TARGETS))}.")
        run = self.store.get(run_id)
        if self.read_only:
            raise RunStoreError(f"Cannot start a job: the runs folder {self.root} is read-only ({self.read_only}).")

        def queue_it(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT state FROM jobs WHERE run_id=?", (run_id,)).fetchone()
            if row and row["state"] not in TERMINAL:
                raise JobError(f"Run {run_id} already has a job that is {row['state']}.")
            db.execute("DELETE FROM jobs WHERE run_id=?", (run_id,))
            db.execute("INSERT INTO jobs(run_id, kind, target, state, submitted_at) VALUES (?,?,?,?,?)",
                       (run_id, kind, target, "queued", time.time()))

        self._sql(queue_it)
        if self.read_only:  # the queue turned read-only under us: _sql answered without queueing anything
            raise RunStoreError(f"Cannot start a job: the job queue {self.db_path} is read-only ({self.read_only}).")
        cancel_file = Path(run.dir) / "CANCEL"
        cancel_file.unlink(missing_ok=True)
        # The job's kind and target also live in run.json, so a rebuilt queue knows what the worker runs.
        run.set_status("queued", job_kind=kind, job_target=target)
        run.event("job", message="queued", job_kind=kind)
        log_path = Path(run.dir) / "worker.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("HF_HUB_OFFLINE", "1")
        try:
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    [self.config.python, "-m", "engine.jobs", "worker", run_id, "--root", str(self.root),
                     "--max-workers", str(self.config.max_workers), "--poll-s", str(self.config.poll_s),
                     "--cancel-grace-s", str(self.config.cancel_grace_s)],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(PROJECT_ROOT), env=env,
                    start_new_session=True,  # survives the Streamlit process; cancel can kill its whole group
                )
        except OSError as exc:  # no log file (disk full) or no Python to start: settle the job, say why
            msg = f"Could not start the worker for run {run_id} ({exc.strerror or exc})."
            self._finish(run_id, "failed", msg)
            run.set_status("failed", error=msg, code="job.start_failed")
            raise RunStoreError(msg, code="job.start_failed") from None
        # The worker may already have claimed its row; only fill the pid if it has not.
        self._sql(lambda db: db.execute("UPDATE jobs SET pid=COALESCE(pid, ?), pid_start=COALESCE(pid_start, ?) "
                                        "WHERE run_id=?", (proc.pid, _proc_start(proc.pid), run_id)))
        log.info("submitted %s job for run %s (worker pid %d)", kind, run_id, proc.pid)
        st = self.status(run_id)
        if st is None:  # its row went between queueing and now (the run folder deleted meanwhile)
            raise JobError(f"Run {run_id} left the job queue as it was being submitted.")
        return st

    # ---- reading ----------------------------------------------------------------------------------
    def status(self, run_id: str) -> JobStatus | None:
        """The job of a run (None if the run never had one), after reaping dead workers."""
        self.reap()

        def read(db: sqlite3.Connection):
            row = db.execute("SELECT * FROM jobs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                return None
            position = None
            if row["state"] == "queued":
                position = 1 + db.execute("SELECT COUNT(*) FROM jobs WHERE state='queued' AND seq<?",
                                          (row["seq"],)).fetchone()[0]
            return self._to_status(row, position)

        return self._sql(read)

    def jobs(self, states: tuple[str, ...] = ("queued", "running")) -> list[JobStatus]:
        """Jobs in the given states, oldest first, with queue positions."""
        self.reap()
        rows = self._sql(lambda db: db.execute(f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(states))})"
                                               " ORDER BY seq", states).fetchall(), default=[])
        out, pos = [], 0
        for row in rows:
            if row["state"] == "queued":
                pos += 1
            out.append(self._to_status(row, pos if row["state"] == "queued" else None))
        return out

    @staticmethod
    def _to_status(row: sqlite3.Row, position: int | None) -> JobStatus:
        return JobStatus(run_id=row["run_id"], kind=row["kind"], state=row["state"], position=position,
                         pid=row["pid"], submitted_at=row["submitted_at"], started_at=row["started_at"],
                         ended_at=row["ended_at"], message=row["message"] or "")

    # ---- cancelling and reaping -----------------------------------------------------------------------
    def cancel(self, run_id: str) -> None:
        """Ask the run to stop (its CANCEL file). Queued jobs leave the queue; running ones stop at a check point."""
        run = self.store.get(run_id)
        run.request_cancel()
        row = self._sql(lambda db: db.execute("SELECT * FROM jobs WHERE run_id=?", (run_id,)).fetchone())
        if row is None or (row["state"] not in TERMINAL and not _alive(row["pid"], row["pid_start"])):
            # Nobody is left to notice the file: settle it here.
            self._finish(run_id, "cancelled", "cancelled before its worker started")
            if run.status not in TERMINAL:
                run.set_status("cancelled")

    def reap(self) -> list[str]:
        """Mark jobs whose worker died without finishing as failed (their run too). Returns their run ids."""
        rows = self._sql(lambda db: db.execute("SELECT * FROM jobs WHERE state IN ('queued','running')").fetchall(),
                         default=[])
        # Jobs whose run folder was deleted: nobody can ever look at them again.
        gone = [r["run_id"] for r in rows if not (self.root / r["run_id"] / "run.json").exists()]
        if gone:
            log.info("dropping %d job(s) whose run folder is gone", len(gone))
            self._sql(lambda db: db.executemany("DELETE FROM jobs WHERE run_id=?", [(g,) for g in gone]))
        dead = [r for r in rows if r["pid"] and r["run_id"] not in gone and not _alive(r["pid"], r["pid_start"])]
        reaped = []
        for r in dead:
            msg = ("The worker process stopped without finishing (killed, or out of memory). "
                   "Its log is worker.log in the run folder.")
            args = (time.time(), msg, r["run_id"], r["pid"])

            def fail_job(db: sqlite3.Connection, args: tuple = args) -> int:
                return db.execute("UPDATE jobs SET state='failed', ended_at=?, message=? WHERE run_id=? AND state IN "
                                  "('queued','running') AND pid=?", args).rowcount

            n = self._sql(fail_job, default=0)
            if not n:
                continue
            reaped.append(r["run_id"])
            try:
                run = self.store.get(r["run_id"])
                if run.status not in TERMINAL:  # (reading it may already have settled it: run.json's owner)
                    run.set_status("failed", error=msg, log=str(run.dir / "worker.log"), code="job.worker_died")
                    run.event("error", message=msg, log="worker.log", code="job.worker_died")
            except EngineError as exc:  # the run folder itself may be gone or read-only
                log.warning("run %s of a dead worker could not be updated: %s", r["run_id"], exc.message)
        return reaped

    def wait(self, run_id: str, timeout_s: float = 600.0, poll_s: float = 0.2) -> str:
        """Block until the run's job ends (for the CLI and tests); returns its final state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self.status(run_id)
            if st is None or st.state in TERMINAL:
                return st.state if st else "unknown"
            time.sleep(poll_s)
        raise JobTimeout(f"Run {run_id} did not finish within {timeout_s:.0f} s; it goes on in its worker "
                         f"(`cda jobs wait {run_id}` waits again, `cda jobs cancel {run_id}` stops it).")

    # ---- used by the worker ---------------------------------------------------------------------------
    def _claim(self, run_id: str, pid: int, job: tuple[str, str] | None = None) -> bool:
        """Take a slot if one is free and this job is first in the queue (one transaction). ``job`` (kind,
        target) puts the row back when the queue lost it (a damaged jobs.sqlite rebuilt meanwhile)."""
        self.reap()
        return bool(self._sql(lambda db: self._claim_in(db, run_id, pid, job), default=False))

    def _claim_in(self, db: sqlite3.Connection, run_id: str, pid: int, job: tuple[str, str] | None) -> bool:
        try:
            db.execute("BEGIN IMMEDIATE")
            if job is not None:
                db.execute("INSERT OR IGNORE INTO jobs(run_id, kind, target, state, submitted_at) "
                           "VALUES (?,?,?,'queued',?)", (run_id, job[0], job[1], time.time()))
            db.execute("UPDATE jobs SET pid=?, pid_start=? WHERE run_id=?", (pid, _proc_start(pid), run_id))
            running = db.execute("SELECT COUNT(*) FROM jobs WHERE state='running'").fetchone()[0]
            first = db.execute("SELECT run_id FROM jobs WHERE state='queued' ORDER BY seq LIMIT 1").fetchone()
            ok = running < self.config.max_workers and first is not None and first["run_id"] == run_id
            if ok:
                db.execute("UPDATE jobs SET state='running', started_at=? WHERE run_id=?", (time.time(), run_id))
            db.execute("COMMIT")
            return ok
        except Exception:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _finish(self, run_id: str, state: str, message: str = "") -> None:
        self._sql(lambda db: db.execute("UPDATE jobs SET state=?, ended_at=?, message=? WHERE run_id=? AND state "
                                        "NOT IN ('done','failed','cancelled')", (state, time.time(), message, run_id)))

    def _state(self, run_id: str) -> str | None:
        row = self._sql(lambda db: db.execute("SELECT state FROM jobs WHERE run_id=?", (run_id,)).fetchone())
        return row["state"] if row else None

    def _job(self, run_id: str) -> tuple[str, str] | None:
        row = self._sql(lambda db: db.execute("SELECT kind, target FROM jobs WHERE run_id=?", (run_id,)).fetchone())
        return (row["kind"], row["target"]) if row else None


def _load_target(spec: str) -> Callable:
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)


def run_flow_target(run, progress: Callable[[float, str], None], cancelled: Callable[[], bool]) -> None:
    """The default job: run the RTL-to-GDSII flow described by the run's config inside that run.

    Options outside FlowConfig live in run.json: `until` (last step to run) and `reuse` (reuse unchanged steps).
    """
    from engine.config import FlowConfig
    from engine.flow.flow import run_flow

    info = run.info()
    run_flow(FlowConfig.from_dict(run.config), run.store, run=run, until=info.get("until"),
             reuse=info.get("reuse", True), cancel=cancelled)


def worker_main(run_id: str, root: Path, config: JobsConfig) -> int:
    """Body of a worker process: wait for a slot, run the job, record how it ended."""
    from engine.errors import Cancelled

    store = _store(root)
    queue = JobQueue(store, config)
    run = store.get(run_id)
    pid = os.getpid()
    info = run.info()
    job = queue._job(run_id) or (info.get("job_kind") or "flow", info.get("job_target") or TARGETS["flow"])
    # This process owns the run from now on: if it dies, whoever reads the run next marks it failed.
    run.update_info(owner=owner_record())
    log.info("worker %d for run %s waiting for a slot", pid, run_id)
    while not queue._claim(run_id, pid, job):
        if run.cancel_requested():
            queue._finish(run_id, "cancelled", "cancelled while queued")
            run.set_status("cancelled")
            run.event("job", message="cancelled while queued")
            return 0
        if queue._state(run_id) in TERMINAL:  # settled by someone else (cancel with no worker)
            return 0
        time.sleep(config.poll_s)

    kind, target = queue._job(run_id) or job
    run.set_status("running")
    run.event("job", message="started", pid=pid, job_kind=kind)
    done = threading.Event()

    def watchdog() -> None:
        # The work checks CANCEL at its check points; a tool that runs long between them gets a grace period.
        while not done.wait(0.5):
            if run.cancel_requested():
                if done.wait(config.cancel_grace_s):
                    return
                log.warning("run %s did not stop within %.0f s of cancel; killing its worker", run_id,
                            config.cancel_grace_s)
                run.set_status("cancelled")
                run.event("job", message="cancelled (worker stopped)")
                queue._finish(run_id, "cancelled", "stopped after the grace period")
                sys.stdout.flush()
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watchdog, daemon=True).start()

    def progress(fraction: float, message: str = "") -> None:
        run.event("progress", fraction=float(fraction), message=message)

    state, message, code, knob = "done", "", None, None
    try:
        _load_target(target)(run, progress, run.cancel_requested)
    except Cancelled:
        state, message = "cancelled", "cancelled by the user"
    except EngineError as exc:
        state, message, code, knob = "failed", exc.message, exc.code, exc.knob
    except Exception as exc:  # a bug, not bad input: keep the traceback in the log, a sentence on screen
        traceback.print_exc()
        state, message = "failed", f"Internal error ({type(exc).__name__}: {exc}); the traceback is in worker.log."
        code = "flow.internal"
    finally:
        done.set()
    info = run.info()
    if info["status"] in TERMINAL and state == "done":
        # The work recorded its own ending (the flow marks failed/cancelled runs itself).
        state, message = info["status"], info.get("error") or ""
    elif state == "done" and run.cancel_requested():
        state = "cancelled"
        run.set_status(state)
    elif state == "failed":
        from engine.diagnosis import suggested_knob

        run.set_status("failed", error=message, log=str(Path(run.dir) / "worker.log"), code=code,
                       knob=suggested_knob(code, knob))
    else:
        run.set_status(state)
    queue._finish(run_id, state, message)
    log.info("worker %d for run %s ended: %s", pid, run_id, state)
    return 0


# ---- `cda jobs ...` (the CLI layer of this module: the only place it writes to the terminal) ------------
def register(subparsers) -> None:
    """Add `cda jobs list|submit|cancel|wait`."""
    p = subparsers.add_parser("jobs", help="queued and running jobs: list, submit, cancel, wait")
    sub = p.add_subparsers(dest="jobs_command", required=True)
    sub.add_parser("list", help="jobs waiting or running, with their place in the queue").set_defaults(func=_cli_list)
    s = sub.add_parser("submit", help="queue an existing run (one the cockpit or RunStore.create made) in a worker")
    s.add_argument("run_id")
    s.add_argument("--kind", default="flow", help=f"job kind ({', '.join(sorted(TARGETS))}) or module:function")
    s.add_argument("--wait", action="store_true", help="block until the job ends")
    s.set_defaults(func=_cli_submit)
    c = sub.add_parser("cancel", help="ask a run's job to stop")
    c.add_argument("run_id")
    c.set_defaults(func=_cli_cancel)
    w = sub.add_parser("wait", help="block until a run's job ends; exit 0 if it is done")
    w.add_argument("run_id")
    w.add_argument("--timeout-s", type=float, default=3600.0)
    w.set_defaults(func=_cli_wait)


def _cli_queue(args) -> JobQueue:
    return JobQueue(_store(getattr(args, "runs_dir", None)))


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _cli_list(args) -> int:
    jobs = _cli_queue(args).jobs()
    if not jobs:
        _out("no jobs queued or running")
    for j in jobs:
        where = f"queue place {j.position}" if j.state == "queued" else f"pid {j.pid}"
        _out(f"{j.run_id}  {j.kind:8s} {j.state:9s} {where}")
    return 0


def _cli_submit(args) -> int:
    q = _cli_queue(args)
    st = q.submit(args.run_id, args.kind)  # JobError is an EngineError: the CLI prints its sentence
    _out(f"{st.run_id}: {st.state}" + (f" (queue place {st.position})" if st.position else ""))
    return _cli_wait(args) if args.wait else 0


def _cli_cancel(args) -> int:
    _cli_queue(args).cancel(args.run_id)
    _out(f"{args.run_id}: cancel requested")
    return 0


def _cli_wait(args) -> int:
    state = _cli_queue(args).wait(args.run_id, timeout_s=getattr(args, "timeout_s", 3600.0))
    info = _store(getattr(args, "runs_dir", None)).get(args.run_id).info()
    _out(f"{args.run_id}: {state}" + (f": {info['error']}" if info.get("error") else ""))
    return 0 if state == "done" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.jobs")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run one job (started by JobQueue.submit)")
    w.add_argument("run_id")
    w.add_argument("--root", type=Path, default=None)
    defaults = JobsConfig()
    w.add_argument("--max-workers", type=int, default=defaults.max_workers)
    w.add_argument("--poll-s", type=float, default=defaults.poll_s)
    w.add_argument("--cancel-grace-s", type=float, default=defaults.cancel_grace_s)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    cfg = JobsConfig(max_workers=args.max_workers, poll_s=args.poll_s, cancel_grace_s=args.cancel_grace_s)
    return worker_main(args.run_id, args.root, cfg)


if __name__ == "__main__":
    sys.exit(main())
