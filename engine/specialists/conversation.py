"""A chat conversation kept on disk, so a browser refresh (or a link opened later) loses nothing.

One JSON file per conversation under the run store, ``<runs>/chats/<id>.json`` ({"id", "updated", "turns"}), the
id a random 16-hex-digit name the page keeps in its address (``?chat=<id>``). A turn is what the page shows: {"role",
"content", "meta" (Answer.to_dict()), "error"}; a what-if turn whose run was still going is saved as pending and
updated when the run ends (engine.specialists.chat.follow_what_if). ``chats`` holds no run.json, so the run store
never lists it as a run.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError

CHAT_ID = re.compile(r"[0-9a-f]{16}")
FOLDER = "chats"
MAX_TURNS = 400  # a conversation longer than this keeps its newest turns (the file stays small to rewrite)


def new_id() -> str:
    return secrets.token_hex(8)


def valid_id(chat_id: Any) -> bool:
    """Whether an id (from a page address anyone can write) names a conversation file: 16 lowercase hex digits."""
    return isinstance(chat_id, str) and CHAT_ID.fullmatch(chat_id) is not None


def pending_what_if(meta: dict | None) -> str | None:
    """The run id of a saved answer's (Answer.to_dict()) what-if run that had not ended when last looked at."""
    tool = (meta or {}).get("tool") or {}
    data = tool.get("data") or {}
    run = data.get("run")
    return run if tool.get("name") == "what_if" and data.get("pending") and isinstance(run, str) and run else None


def path(runs_dir: str | Path, chat_id: str) -> Path:
    if not valid_id(chat_id):
        raise EngineError("A conversation id is 16 hexadecimal digits; this one is not.")
    return Path(runs_dir) / FOLDER / f"{chat_id}.json"


def save(runs_dir: str | Path, chat_id: str, turns: list[dict]) -> Path:
    """Write the conversation (atomically: a reader sees the old or the new file)."""
    from engine.runs import write_json

    target = path(runs_dir, chat_id)
    try:
        write_json(target, {"id": chat_id, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "turns": turns[-MAX_TURNS:]}, indent=None)
    except OSError as exc:
        raise EngineError(f"Cannot save the conversation to {target} ({exc.strerror or exc}); it is kept in this "
                          "browser tab only.") from None
    return target


def load(runs_dir: str | Path, chat_id: str) -> list[dict]:
    """The saved turns ([] when there is no such conversation). EngineError for a damaged file."""
    from engine.runs import read_json

    source = path(runs_dir, chat_id)
    if not source.is_file():
        return []
    data = read_json(source, None)
    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, list):
        raise EngineError(f"The saved conversation {source} cannot be read (not a conversation file); a new one "
                          "starts.")
    return [t for t in turns if isinstance(t, dict) and t.get("role") in ("user", "assistant")
            and isinstance(t.get("content"), str)]


def delete(runs_dir: str | Path, chat_id: str) -> None:
    """Remove a conversation's file (the page's "Clear the conversation")."""
    try:
        path(runs_dir, chat_id).unlink(missing_ok=True)
    except OSError as exc:
        raise EngineError(f"Cannot delete the conversation file ({exc.strerror or exc}).") from None
