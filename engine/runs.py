"""The run store: one folder per run, its state in ``run.json``, its story in ``events.jsonl``, and a small
SQLite index over all runs for listing.

The folder is the one place a run's facts live; the index is derived from it (``RunStore.reindex`` rebuilds it).
Writers replace JSON files atomically (write to a temporary file, then rename) so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")


def default_root() -> Path:
    return Path(os.environ.get("CDA_RUNS_DIR", "runs")).resolve()


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write: readers see the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
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

    def __init__(self, store: "RunStore", run_id: str):
        self.store = store
        self.id = run_id
        self.dir = store.root / run_id

    # ---------------------------------------------------------------- state
    def info(self) -> dict:
        data = read_json(self.dir / "run.json")
        if data is None:
            raise EngineError(f"run {self.id}: run.json missing or unreadable in {self.dir}")
        return data

    def _update(self, **fields: Any) -> dict:
        data = self.info()
        data.update(fields)
        write_json(self.dir / "run.json", data)
        self.store._index(data)
        return data

    @property
    def status(self) -> str:
        return self.info()["status"]

    @property
    def config(self) -> dict:
        return self.info()["config"]

    @property
    def design(self) -> str:
        return self.info().get("design", "")

    def set_status(self, status: str, error: str | None = None, **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status}")
        fields: dict[str, Any] = {"status": status, "updated": _now(), **extra}
        if status == "running" and "started" not in self.info():
            fields["started"] = _now()
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
        fd = os.open(self.dir / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def events(self, since: int = 0) -> list[dict]:
        path = self.dir / "events.jsonl"
        if not path.exists():
            return []
        out = []
        for i, line in enumerate(path.read_text().splitlines()):
            if i < since or not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return out

    def progress(self) -> dict[str, dict]:
        """Latest state of each step from the events: {step: {status, fraction, message, seconds}}."""
        steps: dict[str, dict] = {}
        for ev in self.events():
            step = ev.get("step")
            if not step:
                continue
            s = steps.setdefault(step, {"status": "pending", "fraction": 0.0, "message": ""})
            if ev["kind"] == "step_start":
                s.update(status="running", fraction=0.0, started=ev["t"])
            elif ev["kind"] == "progress":
                s.update(fraction=float(ev.get("fraction", 0.0)), message=ev.get("message", ""))
            elif ev["kind"] == "step_end":
                s.update(status=ev.get("status", "done"), fraction=1.0, seconds=ev.get("seconds"),
                         message=ev.get("message", ""))
        return steps

    # ---------------------------------------------------------------- steps
    def step_dir(self, step_id: str, create: bool = True) -> Path:
        from engine.flow.registry import step_folder  # the step numbering lives with the flow

        path = self.dir / step_folder(step_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def step_metrics(self, step_id: str) -> dict:
        return read_json(self.step_dir(step_id, create=False) / "metrics.json", {}) or {}

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
        (self.dir / "CANCEL").write_text(_now())
        self.event("cancel_requested")

    def cancel_requested(self) -> bool:
        return (self.dir / "CANCEL").exists()

    def __repr__(self) -> str:
        return f"Run({self.id!r})"


class RunStore:
    """Run folders under ``root`` and an SQLite index ``root/index.sqlite``."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "index.sqlite"
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, kind TEXT, design TEXT, status TEXT,"
                " created TEXT, updated TEXT, label TEXT, error TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS step_cache (key TEXT PRIMARY KEY, run_id TEXT, step TEXT)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _index(self, info: dict) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, kind, design, status, created, updated, label, error)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (info["id"], info.get("kind", "flow"), info.get("design", ""), info["status"], info["created"],
                 info.get("updated", info["created"]), info.get("label", ""), info.get("error")),
            )

    def create(self, config: dict, design: str, kind: str = "flow", label: str = "") -> Run:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in design)[:40] or "run"
        run_id = f"{stamp}-{safe}-{secrets.token_hex(2)}"
        run_dir = self.root / run_id
        run_dir.mkdir(parents=True)
        # Milliseconds: runs started within one second (a job right after another) still list newest first.
        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        info = {"id": run_id, "kind": kind, "design": design, "label": label, "status": "queued",
                "created": created, "updated": created, "config": config}
        write_json(run_dir / "run.json", info)
        self._index(info)
        run = Run(self, run_id)
        run.event("created", run_kind=kind, design=design)
        return run

    def get(self, run_id: str) -> Run:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise EngineError(f"'{run_id}' is not a run id")
        run = Run(self, run_id)
        if not (run.dir / "run.json").exists():
            raise EngineError(f"no run '{run_id}' in {self.root}")
        return run

    def list(self, limit: int = 50, kind: str | None = None, design: str | None = None) -> list[dict]:
        q = "SELECT id, kind, design, status, created, updated, label, error FROM runs"
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if design:
            where.append("design = ?")
            args.append(design)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(limit)
        with closing(self._connect()) as db:
            rows = db.execute(q, args).fetchall()
        cols = ("id", "kind", "design", "status", "created", "updated", "label", "error")
        return [dict(zip(cols, r)) for r in rows]

    def latest(self, kind: str | None = "flow", design: str | None = None) -> Run | None:
        rows = self.list(limit=1, kind=kind, design=design)
        return Run(self, rows[0]["id"]) if rows else None

    # ---------------------------------------------------------------- step reuse
    def cached_step(self, key: str) -> Path | None:
        """The folder of an earlier finished step with this reuse key, if it still exists."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT run_id, step FROM step_cache WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        from engine.flow.registry import step_folder

        folder = self.root / row[0] / step_folder(row[1])
        rec = read_json(folder / "step.json")
        return folder if rec and rec.get("key") == key else None

    def remember_step(self, key: str, run_id: str, step: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO step_cache (key, run_id, step) VALUES (?,?,?)", (key, run_id, step))

    def reindex(self) -> int:
        """Rebuild the index from the folders (the folders are the truth)."""
        n = 0
        for run_json in sorted(self.root.glob("*/run.json")):
            info = read_json(run_json)
            if info and "id" in info:
                self._index(info)
                n += 1
        return n
