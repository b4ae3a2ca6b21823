"""Errors of the placer: user-facing (EngineError), with a message that says what to change."""
from __future__ import annotations

from engine.errors import Cancelled, EngineError

__all__ = ["PlaceError", "Cancelled"]


class PlaceError(EngineError):
    """Placement cannot run or cannot finish on this input (the message says why, the hint which knob)."""
