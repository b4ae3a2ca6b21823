"""The run store: one folder per run, its state in ``run.json``, its story in ``events.jsonl``, and a small
SQLite index over all runs for listing.

The folder is the one place a run's facts live; the index is derived from it (``RunStore.reindex`` rebuilds it,
and a damaged index is rebuilt on its own). Writers replace JSON files atomically (write to a temporary file, then
rename) so a reader never sees half a file.

A run that is queued or running names its owner in run.json (pid, the process's start time, host). Whoever reads
the run next checks the owner is still alive (and is the same process, not a recycled pid); if it is not (the
process was killed with SIGKILL, ran out of memory, the machine rebooted) the run is marked failed there and then,
so no run says "running" forever.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError, RunStoreError

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
ACTIVE = ("queued", "running")

# Run ids as RunStore.create makes them (20260101-120000-counter-1a2b), plus hand-made folder names in the same
# alphabet. Strict on purpose: an id goes into paths, URLs (?run=) and log lines, so no '/', '..', spaces or markup.
RUN_ID_MAX = 128
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Who started a run: a person ("user": the cockpit, `cda flow run`, the chat's what-if) or one of the engine's
# own loops, whose runs are evaluations a person did not ask for one by one. run.json's "origin" says which, and
# "parent" names the run that started it (an optimizer run's id) when there is one. Pickers and `cda runs list`
# show user runs unless asked for the rest.
ORIGINS = ("user", "optimize", "train", "bench")
_STARTED_BY: ContextVar[tuple[str, str | None] | None] = ContextVar("cda_started_by", default=None)

ORPHANED = ("The process running it (pid {pid} on {host}) stopped without finishing it (killed, or out of "
            "memory?); the steps that finished are kept.")


def valid_run_id(run_id: str) -> bool:
    return (isinstance(run_id, str) and 0 < len(run_id) <= RUN_ID_MAX and RUN_ID.fullmatch(run_id) is not None
            and ".." not in run_id)


@contextmanager
def started_by(origin: str, parent: str | None = None) -> Iterator[None]:
    """Runs created inside this block (in this thread or task) record ``origin`` and ``parent``: how a loop that
    starts runs through code it does not own (the optimizer through ``run_flow``) says who started them."""
    if origin not in ORIGINS:
        raise ValueError(f"unknown run origin {origin!r}; one of {', '.join(ORIGINS)}")
    token = _STARTED_BY.set((origin, parent if parent and valid_run_id(parent) else None))
    try:
        yield
    finally:
        _STARTED_BY.reset(token)


def classify_origin(info: dict) -> tuple[str, str | None]:
    """(origin, parent) of a run from its run.json. A run that records its origin says it; for runs recorded
    before origins existed (the migration) the label, kind or config tells: the optimizer labels its evaluations
    "optimize <run id>", datagen "datagen:<group>", the benchmarks "bench:..", "bench2:.." and
    "bench2-floorplan:.." (kind "bench", or a config with a sweep or measure version). Anything else is 'user'."""
    origin = info.get("origin")
    parent = info.get("parent")
    parent = parent if isinstance(parent, str) and valid_run_id(parent) else None
    if origin in ORIGINS:
        return origin, parent
    label = str(info.get("label") or "")
    config = info.get("config")
    config = config if isinstance(config, dict) else {}
    if label == "optimize" or label.startswith("optimize "):
        named = label[len("optimize "):].strip()
        return "optimize", parent or (named if named and valid_run_id(named) else None)
    if label.startswith("datagen:"):
        return "train", parent
    if (info.get("kind") == "bench" or label.startswith(("bench:", "bench2:", "bench2-floorplan:"))
            or "sweep_version" in config or "measure_version" in config):
        return "bench", parent
    return "user", parent


def default_root() -> Path:
    return Path(os.environ.get("CDA_RUNS_DIR", "runs")).resolve()


# ------------------------------------------------------------------------------------------------ processes
def proc_start(pid: int) -> str | None:
    """Start time of a live process (clock ticks since boot, from /proc): with the pid it names one process even
    after the pid is reused. None when there is no such process (or it is a zombie: finished, not yet reaped)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def owner_record(pid: int | None = None) -> dict:
    """Who is running a run: this process unless ``pid`` is given."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start": proc_start(pid), "host": socket.gethostname(), "boot": _boot_id()}


def owner_alive(owner: dict) -> bool | None:
    """True/False when we can tell, None when we cannot (another machine, a record we do not understand)."""
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if owner.get("host") and owner.get("host") != socket.gethostname():
        return None
    if owner.get("boot") and _boot_id() and owner.get("boot") != _boot_id():
        return False  # the machine rebooted since
    if Path("/proc/self/stat").exists():
        start = proc_start(pid)
        return start is not None and (owner.get("start") in (None, start))
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# ------------------------------------------------------------------------------------------------ files
# The project's one atomic writer: every JSON (and JSON-lines) file a reader may poll goes through here.
def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see the old or the new file, never a torn one (a temporary file in the same
    folder, then os.replace). The temporary name is unique per process and call, so two writers never share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Atomic JSON write (numpy values and paths become JSON): readers see the old or the new file."""
    write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=_json_default))


def write_jsonl(path: Path, rows: Any, *, sort_keys: bool = False) -> None:
    """Atomic JSON-lines write: one JSON object per line, the whole file replaced at once."""
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=sort_keys, ensure_ascii=False, default=_json_default)
                                    + "\n" for r in rows))


def read_jsonl(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-empty line of a JSON-lines file; a broken line raises ``error`` naming
    the file and the line (the one reader behind every JSONL the project loads). A ``.gz`` file is read
    through gzip (the committed data sets are stored compressed)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno} is not valid JSON ({exc.msg})") from None


def _write_run_json(path: Path, data: dict) -> None:
    try:
        write_json(path, data)
    except OSError as exc:
        raise RunStoreError(f"Cannot write {path} ({exc.strerror or exc}); is the runs folder read-only or "
                            "the disk full?") from None


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError (a binary file)
        return default


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """A handle on one run folder. Cheap to create; every read goes to disk, so two processes agree."""

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.id = run_id
        self.dir = store.root / run_id

    # ---------------------------------------------------------------- state
    def _read(self) -> dict:
        """run.json as it is on disk (no liveness check); EngineError in one sentence when it cannot be used."""
        path = self.dir / "run.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            if not self.dir.is_dir():
                raise EngineError(f"Run {self.id} no longer exists (its folder {self.dir} was deleted).") from None
            raise EngineError(f"Run {self.id} is damaged: {path} is missing.") from None
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
            raise EngineError(f"Run {self.id} cannot be read: {path} is unreadable ({why}).") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            what = "empty" if not text.strip() else f"not valid JSON ({exc})"
            raise EngineError(f"Run {self.id} is damaged: {path} is {what}.") from None
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise EngineError(f"Run {self.id} is damaged: {path} has no valid status.")
        data.setdefault("id", self.id)
        if data.get("origin") not in ORIGINS:  # a run from before origins: classed by its label (classify_origin)
            data["origin"], data["parent"] = classify_origin(data)
        return data

    def info(self) -> dict:
        """run.json; a queued or running run whose owner process is gone is marked failed first."""
        data = self._read()
        if data["status"] in ACTIVE and isinstance(data.get("owner"), dict) and owner_alive(data["owner"]) is False:
            data = self._settle_orphan(data)
        return data

    def _settle_orphan(self, data: dict) -> dict:
        owner = data["owner"]
        msg = ORPHANED.format(pid=owner.get("pid"), host=owner.get("host") or "this machine")
        progress = self.progress()
        running = [s for s, p in progress.items() if p.get("status") == "running"]
        unfinished = [s for s in data.get("steps") or [] if progress.get(s, {}).get("status") not in
                      ("done", "reused", "skipped")]
        step = running[-1] if running else (unfinished[0] if unfinished else data.get("failed_step") or "setup")
        fields = {"status": "failed", "error": msg, "updated": _now(), "finished": _now(), "failed_step": step,
                  "code": "job.worker_died"}
        if (self.dir / "worker.log").exists():  # a job's worker (engine.jobs): its output is there
            fields["error"] = msg = f"{msg} Its log is worker.log in the run folder."
            fields["log"] = str(self.dir / "worker.log")
        data = {**data, **fields}
        try:
            _write_run_json(self.dir / "run.json", data)
            self.store._index(data)
            if running:
                self.event("step_end", step=running[-1], status="failed", message=msg)
            self.event("error", message=msg)
            self.event("status", status="failed", error=msg)
            log.warning("run %s marked failed: %s", self.id, msg)
        except EngineError:  # a read-only folder: report the truth without recording it
            log.warning("run %s failed (not recorded, the runs folder is read-only): %s", self.id, msg)
        return data

    def _update(self, **fields: Any) -> dict:
        data = self._read()
        data.update(fields)
        _write_run_json(self.dir / "run.json", data)
        self.store._index(data)
        return data

    @property
    def status(self) -> str:
        return self.info()["status"]

    @property
    def config(self) -> dict:
        cfg = self.info().get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def design(self) -> str:
        return self.info().get("design", "")

    def set_status(self, status: str, error: str | None = None, **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status}")
        fields: dict[str, Any] = {"status": status, "updated": _now(), **extra}
        if status == "running":
            # This process runs it now: whoever lists the run checks it is still alive.
            fields.setdefault("owner", owner_record())
            if "started" not in self._read():
                fields["started"] = _now()
        elif status == "queued":
            fields.setdefault("owner", None)  # a worker (engine.jobs) names itself when it starts waiting
        if status in FINISHED:
            fields["finished"] = _now()
        if error is not None:
            fields["error"] = error
        self._update(**fields)
        self.event("status", status=status, **({"error": error} if error else {}))

    def update_info(self, **fields: Any) -> None:
        self._update(**fields)

    # ---------------------------------------------------------------- events
    def event(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "kind": kind, **fields}, default=_json_default)
        # One write per line with O_APPEND: concurrent writers do not interleave inside a line.
        try:
            fd = os.open(self.dir / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise RunStoreError(f"Cannot write the events of run {self.id} ({exc.strerror or exc}); is the runs "
                                "folder read-only or the disk full?") from None

    def events(self, since: int = 0) -> list[dict]:
        path = self.dir / "events.jsonl"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for i, line in enumerate(text.splitlines()):
            if i < since or not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if isinstance(ev, dict):
                out.append(ev)
        return out

    def progress(self) -> dict[str, dict]:
        """Latest state of each step from the events: {step: {status, fraction, message, seconds}}."""
        steps: dict[str, dict] = {}
        for ev in self.events():
            step = ev.get("step")
            if not step or not isinstance(step, str):
                continue
            s = steps.setdefault(step, {"status": "pending", "fraction": 0.0, "message": ""})
            kind = ev.get("kind")
            try:
                if kind == "step_start":
                    s.update(status="running", fraction=0.0, started=ev.get("t"))
                elif kind == "progress":
                    s.update(fraction=float(ev.get("fraction", 0.0)), message=str(ev.get("message", "")))
                elif kind == "step_end":
                    s.update(status=ev.get("status", "done"), fraction=1.0, seconds=ev.get("seconds"),
                             message=str(ev.get("message", "")))
            except (TypeError, ValueError):
                continue  # a hand-edited line with a non-number fraction
        return steps

    # ---------------------------------------------------------------- steps
    def step_dir(self, step_id: str, create: bool = True) -> Path:
        from engine.flow.registry import step_folder  # the step numbering lives with the flow

        path = self.dir / step_folder(step_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def step_metrics(self, step_id: str) -> dict:
        m = read_json(self.step_dir(step_id, create=False) / "metrics.json", {})
        return m if isinstance(m, dict) else {}

    def metrics(self) -> dict[str, dict]:
        """{step_id: metrics} for every step that wrote metrics."""
        from engine.flow.registry import STEP_IDS

        out = {}
        for sid in STEP_IDS:
            m = self.step_metrics(sid)
            if m:
                out[sid] = m
        return out

    def flat_metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.metrics().values():
            out.update(m)
        return out

    # ---------------------------------------------------------------- cancel
    def request_cancel(self) -> None:
        try:
            (self.dir / "CANCEL").write_text(_now())
        except OSError as exc:
            raise RunStoreError(f"Cannot cancel run {self.id}: cannot write {self.dir / 'CANCEL'} "
                                f"({exc.strerror or exc}).") from None
        self.event("cancel_requested")

    def cancel_requested(self) -> bool:
        return (self.dir / "CANCEL").exists()

    def __repr__(self) -> str:
        return f"Run({self.id!r})"


_INDEX_COLS = ("id", "kind", "design", "status", "created", "updated", "label", "error", "origin", "parent")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, kind TEXT, design TEXT, status TEXT,"
    " created TEXT, updated TEXT, label TEXT, error TEXT, origin TEXT, parent TEXT)",
    "CREATE TABLE IF NOT EXISTS step_cache (key TEXT PRIMARY KEY, run_id TEXT, step TEXT)",
)


def guarded_sql(owner, what: str, session, fn, default: Any = None, readonly_note: str = "") -> Any:
    """``fn(db)`` inside ``session()`` for an SQLite file the project can rebuild from the run folders (the run
    index, the job queue). ``owner`` has ``db_path``, ``read_only`` and ``_rebuild(reason)``: a damaged file is
    rebuilt once and ``fn`` retried; a read-only one sets ``owner.read_only`` and answers ``default``; a locked
    or otherwise broken one is one sentence (RunStoreError)."""
    if owner.read_only:
        return default
    for attempt in (1, 2):
        try:
            with session() as db:
                return fn(db)
        except sqlite3.Error as exc:
            trouble = sqlite_trouble(exc, owner.db_path)
            if trouble == "damaged" and attempt == 1:
                owner._rebuild(str(exc))
                continue
            if trouble == "readonly":
                owner.read_only = f"the {what} cannot be written ({exc})"
                log.warning("%s %s is read-only (%s)%s", what, owner.db_path, exc, readonly_note)
                return default
            if trouble == "busy":
                raise RunStoreError(f"The {what} {owner.db_path} is locked by another process; try again in a "
                                    "moment.") from None
            raise RunStoreError(f"The {what} {owner.db_path} cannot be used ({exc}); delete it and it is rebuilt "
                                "from the run folders.") from None
    return default


def sqlite_trouble(exc: sqlite3.Error, path: Path) -> str:
    """What an SQLite failure on ``path`` means for us: 'damaged' (rebuild it), 'readonly', 'busy' or 'other'."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "damaged"
    if "no such table" in text or "no such column" in text or "has no column" in text:
        return "damaged"  # a file that is a database, but not ours (or an older, incompatible schema)
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")) or "readonly" in text:
        return "readonly"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "busy"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        if path.exists() and not path.is_file():
            return "damaged"  # a folder or a device where the file should be
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
            return "readonly"
        return "damaged" if path.exists() else "other"
    return "other"


def move_aside(path: Path) -> Path | None:
    """Rename a damaged file (and its SQLite -wal/-shm companions) out of the way; returns the new name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}-{secrets.token_hex(2)}")
    moved = None
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists() or src.is_symlink():
            os.replace(src, target.with_name(target.name + suffix))
            if not suffix:
                moved = target
    return moved


class RunStore:
    """Run folders under ``root`` and an SQLite index ``root/index.sqlite``.

    The index is only a cache for listing: when it is damaged (garbage, truncated, zero bytes, a folder in its
    place) it is moved aside and rebuilt from the run folders, with one warning saying so. When the folder is
    read-only, runs can still be listed and read (from the folders) and creating one says why it cannot.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root else default_root()
        self.db_path = self.root / "index.sqlite"
        # Why this store cannot write (None when it can): listing then reads the run folders directly.
        self.read_only: str | None = None
        self.rebuilt: str | None = None  # the one-line notice when the index was rebuilt in this process
        self._schema_ok = False  # the index's columns were checked (and migrated) by this store
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RunStoreError(f"The runs folder {self.root} is not a folder (a file is in the way); "
                                "choose another with --runs-dir or CDA_RUNS_DIR.") from None
        except OSError as exc:
            if not self.root.is_dir():
                raise RunStoreError(f"Cannot create the runs folder {self.root} ({exc.strerror or exc}); "
                                    "choose another with --runs-dir or CDA_RUNS_DIR.") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            self.read_only = "the folder is not writable"
            return
        self._sql(lambda db: None)  # opens (and if need be creates or rebuilds) the index

    # ---------------------------------------------------------------- the index
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _sql(self, fn, default: Any = None) -> Any:
        """Run ``fn(db)`` in one transaction. A damaged index is rebuilt once and ``fn`` retried; a read-only one
        switches the store to reading the folders (``default`` is returned); anything else is one sentence."""
        return guarded_sql(self, "run index", self._session, fn, default,
                           readonly_note="; reading the run folders instead")

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db, db:
            self._ensure_schema(db)
            yield db

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        """Create the tables if they are missing; a missing runs table (a new, zero-byte or foreign index) is
        filled from the run folders, so an empty index never hides runs that exist."""
        if self._schema_ok:
            return
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone():
            self._migrate_origins(db)
            self._schema_ok = True
            return
        for q in _SCHEMA:
            db.execute(q)
        infos, skipped = self._indexable()
        for info in infos:
            db.execute(_INSERT, _row(info))
        if infos or skipped:
            self.rebuilt = (f"The run index {self.db_path} was empty; rebuilt it from {len(infos)} run "
                            f"folder(s){skipped}.")
            log.warning("%s", self.rebuilt)

    def _migrate_origins(self, db: sqlite3.Connection) -> None:
        """MIGRATION: an index from before runs recorded who started them has no origin/parent columns. Add them
        and fill them from the run folders; a finished run's run.json gets the same fields written (an active
        one is left to its owner, which may be writing it: its origin is classed on every read instead)."""
        cols = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if {"origin", "parent"} <= cols:
            return
        for col in ("origin", "parent"):
            if col not in cols:
                try:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {col} TEXT")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another process migrated it just now
                        raise
        infos, _ = self._indexable()
        written = 0
        for info in infos:
            origin, parent = info["origin"], info.get("parent")
            db.execute("UPDATE runs SET origin = ?, parent = ? WHERE id = ?", (origin, parent, info["id"]))
            if info["status"] in FINISHED:
                raw = read_json(self.root / info["id"] / "run.json")
                if isinstance(raw, dict) and raw.get("origin") not in ORIGINS:
                    try:
                        write_json(self.root / info["id"] / "run.json", {**raw, "origin": origin, "parent": parent})
                        written += 1
                    except OSError:
                        pass  # a read-only run folder: classed on every read instead
        log.warning("run index %s: recorded who started each of %d run(s) (%d hidden from pickers: optimizer, "
                    "training or benchmark evaluations)", self.db_path, len(infos),
                    sum(1 for i in infos if i["origin"] != "user"))

    def _indexable(self) -> tuple[list[dict], str]:
        """The run folders' infos to index, and a note naming the damaged ones left out ('' when none)."""
        scanned = self._scan()
        damaged = [i["id"] for i in scanned if i.get("status") == "damaged"]
        note = ""
        if damaged:
            shown = ", ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else "")
            note = f" ({len(damaged)} damaged run folder(s) left out: {shown})"
        return [i for i in scanned if i.get("status") != "damaged"], note

    def _rebuild(self, reason: str) -> None:
        """Move the damaged index aside and write a fresh one from the run folders."""
        try:
            moved = move_aside(self.db_path)
        except OSError as exc:
            raise RunStoreError(f"The run index {self.db_path} is damaged ({reason}) and cannot be moved aside "
                                f"({exc.strerror or exc}); delete it and it is rebuilt from the run folders.") from None
        infos, skipped = self._indexable()
        try:
            with closing(self._connect()) as db, db:
                for q in _SCHEMA:
                    db.execute(q)
                for info in infos:
                    db.execute(_INSERT, _row(info))
        except (sqlite3.Error, OSError) as exc:
            raise RunStoreError(f"The run index {self.db_path} was damaged ({reason}) and a new one cannot be "
                                f"written ({exc}).") from None
        kept = f"; the old file is kept as {moved.name}" if moved else ""
        self.rebuilt = (f"The run index {self.db_path} was damaged ({reason}); rebuilt it from {len(infos)} run "
                        f"folder(s){skipped}{kept}.")
        log.warning("%s", self.rebuilt)

    def _index(self, info: dict) -> None:
        self._sql(lambda db: db.execute(_INSERT, _row(info)))

    def _scan(self) -> list[dict]:
        """Every run folder's run.json (the truth), newest first; unreadable ones as status 'damaged'."""
        out = []
        try:
            folders = [p for p in self.root.iterdir() if valid_run_id(p.name)]
        except OSError as exc:
            raise RunStoreError(f"Cannot read the runs folder {self.root} ({exc.strerror or exc}).") from None
        for folder in folders:
            if not (folder / "run.json").exists():
                continue  # not a run (uploads/, a half-made folder)
            try:
                out.append(Run(self, folder.name)._read())
            except EngineError as exc:
                out.append(_damaged_row(folder.name, exc.message))
        out.sort(key=lambda i: (str(i.get("created", "")), str(i.get("id", ""))), reverse=True)
        return out

    # ---------------------------------------------------------------- runs
    def create(self, config: dict, design: str, kind: str = "flow", label: str = "", *, origin: str | None = None,
               parent: str | None = None) -> Run:
        """A new queued run. ``origin``/``parent``: who started it (see ORIGINS); by default what an enclosing
        ``started_by`` block says, else what the label and kind show (classify_origin), else 'user'."""
        if origin is not None and origin not in ORIGINS:
            raise ValueError(f"unknown run origin {origin!r}; one of {', '.join(ORIGINS)}")
        if self.read_only:
            raise RunStoreError(f"Cannot start a run: the runs folder {self.root} is read-only ({self.read_only}); "
                                "choose another with --runs-dir or CDA_RUNS_DIR.")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        # ASCII only, so every id matches RUN_ID (a URL, a shell and a file system all take it as is).
        safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "_" for ch in design)[:40] or "run"
        run_id = f"{stamp}-{safe}-{secrets.token_hex(2)}"
        run_dir = self.root / run_id
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise RunStoreError(f"Cannot create a run folder in {self.root} ({exc.strerror or exc}); "
                                "choose another runs folder with --runs-dir or CDA_RUNS_DIR.") from None
        # Milliseconds: runs started within one second (a job right after another) still list newest first.
        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        if origin is None:
            origin, parent = _STARTED_BY.get() or classify_origin({"kind": kind, "label": label, "config": config,
                                                                   "parent": parent})
        info = {"id": run_id, "kind": kind, "design": design, "label": label, "status": "queued",
                "created": created, "updated": created, "origin": origin,
                "parent": parent if parent and valid_run_id(parent) else None, "config": config}
        _write_run_json(run_dir / "run.json", info)
        self._index(info)
        run = Run(self, run_id)
        run.event("created", run_kind=kind, design=design)
        return run

    def get(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not valid_run_id(run_id):
            shown = run_id if isinstance(run_id, str) and len(run_id) <= 60 else f"{str(run_id)[:40]}..."
            raise EngineError(f"'{shown}' is not a run id (letters, digits, '-', '_' and '.', at most "
                              f"{RUN_ID_MAX} characters).")
        run = Run(self, run_id)
        if not (run.dir / "run.json").exists():
            raise EngineError(f"There is no run '{run_id}' in {self.root} (deleted?).")
        return run

    def list(self, limit: int = 50, kind: str | None = None, design: str | None = None, *,
             damaged: bool = False, origin: str | None = None) -> list[dict]:
        """Newest runs first, as rows of the index, each checked against its folder: rows whose folder is gone
        are dropped from the index, and a queued or running run whose process died is marked failed here (see
        ``Run.info``). A run whose run.json cannot be read is left out (with a log line), or with ``damaged``
        listed with status 'damaged' and the reason as its error (what `cda runs list` and the run picker do).
        ``origin`` keeps only the runs of that origin ('user': what a person started; see ORIGINS)."""
        if not damaged:
            want = limit
            while True:  # ask for more rows until `limit` readable ones, or the end of the index
                rows = self.list(want, kind, design, damaged=True, origin=origin)
                good = [r for r in rows if r["status"] != "damaged"]
                if len(good) >= limit or len(rows) < want:
                    break
                want = want + (want - len(good))
            for r in rows:
                if r["status"] == "damaged":
                    log.info("run %s left out of the list: %s", r["id"], r["error"])
            return good[:limit]
        if self.read_only:
            rows = [r for r in self._scan() if (not kind or r.get("kind") == kind)
                    and (not design or r.get("design") == design)
                    and (not origin or classify_origin(r)[0] == origin)][:limit]
            return [_listed(Run(self, r["id"])._settle_orphan(r) if r["status"] in ACTIVE
                            and isinstance(r.get("owner"), dict) and owner_alive(r["owner"]) is False else r)
                    for r in rows]
        q = f"SELECT {', '.join(_INDEX_COLS)} FROM runs"
        where: list[str] = []
        args: list[Any] = []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if design:
            where.append("design = ?")
            args.append(design)
        if origin:  # NULL: a row an older writer indexed; its folder decides below
            where.append("(origin = ? OR origin IS NULL)")
            args.append(origin)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY created DESC, id DESC LIMIT ?"
        while True:
            rows = self._sql(lambda db: db.execute(q, [*args, limit]).fetchall(), default=None)
            if rows is None:  # the index turned out read-only: the folders answer
                return self.list(limit, kind, design, damaged=True, origin=origin)
            out, gone = [], []
            for values in rows:
                row = dict(zip(_INDEX_COLS, values))
                run = Run(self, row["id"]) if valid_run_id(str(row["id"])) else None
                if run is None or not run.dir.is_dir():
                    gone.append(row["id"])
                    continue
                try:
                    info = run.info()
                except EngineError as exc:
                    out.append(_listed(_damaged_row(row["id"], exc.message, row)))
                    continue
                out.append(_listed({**row, **{k: info.get(k) for k in _INDEX_COLS if k in info}}))
            if origin:
                out = [r for r in out if r["origin"] == origin or r["status"] == "damaged"]
            if not gone:
                return out
            log.info("dropping %d index row(s) whose run folder is gone", len(gone))
            self._sql(lambda db, gone=gone: db.executemany("DELETE FROM runs WHERE id = ?", [(g,) for g in gone]))

    def count_by_origin(self, kind: str | None = None, design: str | None = None) -> dict[str, int]:
        """How many runs of each origin the index holds ({'user': 12, 'optimize': 340}): what a list of user runs
        says it hides."""
        if self.read_only:
            counts: dict[str, int] = {}
            for r in self._scan():
                if r.get("status") != "damaged" and (not kind or r.get("kind") == kind) and \
                        (not design or r.get("design") == design):
                    o = classify_origin(r)[0]
                    counts[o] = counts.get(o, 0) + 1
            return counts
        q = "SELECT COALESCE(origin, 'user'), COUNT(*) FROM runs"
        where, args = [], []
        for col, value in (("kind", kind), ("design", design)):
            if value:
                where.append(f"{col} = ?")
                args.append(value)
        if where:
            q += " WHERE " + " AND ".join(where)
        rows = self._sql(lambda db: db.execute(q + " GROUP BY 1", args).fetchall(), default=None)
        if rows is None:
            return self.count_by_origin(kind, design)
        return {str(o): int(n) for o, n in rows}

    def latest(self, kind: str | None = "flow", design: str | None = None, origin: str | None = None) -> Run | None:
        """The newest run (of ``origin``, e.g. 'user': the person's own, not an optimizer evaluation)."""
        rows = self.list(limit=1, kind=kind, design=design, origin=origin)
        return Run(self, rows[0]["id"]) if rows else None

    # ---------------------------------------------------------------- step reuse
    def cached_step(self, key: str) -> Path | None:
        """The folder of an earlier finished step with this reuse key, if it still exists."""
        row = self._sql(lambda db: db.execute("SELECT run_id, step FROM step_cache WHERE key = ?", (key,)).fetchone())
        if not row or not valid_run_id(str(row[0])):
            return None
        from engine.flow.registry import step_folder

        folder = self.root / row[0] / step_folder(row[1])
        rec = read_json(folder / "step.json")
        return folder if isinstance(rec, dict) and rec.get("key") == key else None

    def remember_step(self, key: str, run_id: str, step: str) -> None:
        self._sql(lambda db: db.execute("INSERT OR REPLACE INTO step_cache (key, run_id, step) VALUES (?,?,?)",
                                        (key, run_id, step)))

    def reindex(self) -> int:
        """Rebuild the index from the folders (the folders are the truth). Returns the number of runs indexed."""
        infos, skipped = self._indexable()
        if skipped:
            log.warning("reindex of %s%s", self.root, skipped)
        self._sql(lambda db: [db.execute(_INSERT, _row(info)) for info in infos])
        return len(infos)


_INSERT = ("INSERT OR REPLACE INTO runs (id, kind, design, status, created, updated, label, error, origin, parent)"
           " VALUES (?,?,?,?,?,?,?,?,?,?)")


def _row(info: dict) -> tuple:
    created = str(info.get("created", ""))
    origin, parent = classify_origin(info)
    return (info["id"], info.get("kind", "flow"), info.get("design", ""), info["status"], created,
            info.get("updated", created), info.get("label", ""), info.get("error"), origin, parent)


def _damaged_row(run_id: str, message: str, row: dict | None = None) -> dict:
    base = dict(row or {})
    return {"kind": "flow", "design": "", "created": "", "updated": "", "label": "", **base,
            "id": run_id, "status": "damaged", "error": message}


def _listed(row: dict) -> dict:
    """A listing row with every column present and printable (an index or run.json written by hand may lack some)."""
    out = {k: row.get(k) for k in _INDEX_COLS}
    for k in ("kind", "design", "status", "created", "updated", "label"):
        out[k] = "" if out[k] is None else str(out[k])
    if out["origin"] not in ORIGINS:  # a row an older writer indexed without one
        out["origin"], out["parent"] = classify_origin(row)
    return out
