"""Errors the user sees. Each carries a message meant for a person, and where it helps, the log and a hint."""
from __future__ import annotations


class EngineError(Exception):
    """A user-facing failure: bad input, a tool that failed, a limit reached. The message is shown as is."""

    def __init__(self, message: str, *, hint: str | None = None, log_path: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_path = log_path

    def __str__(self) -> str:
        return self.message


class FlowError(EngineError):
    """A flow step failed; ``step`` names it and ``hint`` says which knob to change."""

    def __init__(self, step: str, message: str, *, hint: str | None = None, log_path: str | None = None):
        super().__init__(message, hint=hint, log_path=log_path)
        self.step = step


class ToolMissing(EngineError):
    """An external tool (yosys, sta, qrouter, iverilog) is not installed."""


class Cancelled(Exception):
    """Raised at a check point when the user asked to stop."""


class UploadError(EngineError, ValueError):
    """Bad user input in an upload (a file, a zip, an `include`): the message says what is wrong and what to do.

    Also a ValueError, so code written before the hierarchy (``except ValueError``) still catches it.
    """


class LLMError(EngineError):
    """A model could not answer: unreachable, timed out, missing, or it returned an error or garbage."""


class RunStoreError(EngineError):
    """The run store cannot be used: its folder is read-only or not a folder, its index cannot be opened."""
