"""Errors the user sees. Each carries a message meant for a person, and where it helps, the log and a hint.

Each also carries a ``code`` (``route.unrouted``, ``synth.syntax``, ...) naming what went wrong, and where one
knob is the thing to turn, ``knob`` (a registry path such as ``route.timeout_s``). engine.diagnosis turns a code
into its title, its likely cause and the knob(s) to change; run.json keeps both, so the CLI, the chat and the
pages explain a failure from its code, never from the words of its message.
"""
from __future__ import annotations


class EngineError(Exception):
    """A user-facing failure: bad input, a tool that failed, a limit reached. The message is shown as is."""

    default_code = "engine.error"  # subclasses name their own family; a raise site names the exact case

    def __init__(self, message: str, *, hint: str | None = None, log_path: str | None = None,
                 code: str | None = None, knob: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_path = log_path
        self.code: str = code or self.default_code  # a key of engine.diagnosis.CATALOGUE
        self.knob = knob  # the registry knob to turn for this failure; None = the catalogue's first, if any

    def __str__(self) -> str:
        return self.message


class FlowError(EngineError):
    """A flow step failed; ``step`` names it, ``code`` says what went wrong and ``hint`` which knob to change."""

    default_code = "step.failed"

    def __init__(self, step: str, message: str, *, hint: str | None = None, log_path: str | None = None,
                 code: str | None = None, knob: str | None = None):
        super().__init__(message, hint=hint, log_path=log_path, code=code, knob=knob)
        self.step = step


class ToolMissing(EngineError):
    """An external tool (yosys, sta, qrouter, iverilog) is not installed."""

    default_code = "tool.missing"


class Cancelled(Exception):
    """Raised at a check point when the user asked to stop."""


class UploadError(EngineError, ValueError):
    """Bad user input in an upload (a file, a zip, an `include`): the message says what is wrong and what to do.

    Also a ValueError, so code written before the hierarchy (``except ValueError``) still catches it.
    """

    default_code = "input.upload"


class LLMError(EngineError):
    """A model could not answer: unreachable, timed out, missing, or it returned an error or garbage."""

    default_code = "llm.unavailable"


class RunStoreError(EngineError):
    """The run store cannot be used: its folder is read-only or not a folder, its index cannot be opened."""

    default_code = "runs.store"


def nearest(word: str, choices) -> str | None:
    """The valid name closest to a mistyped one (for "did you mean ...?"), or None when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None
