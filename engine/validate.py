"""Every user string that reaches a tool script passes through here: validated, or quoted for that script's language.

Two defences, both needed:
1. *Validation at the door* (`validate_flow_config`, called by the CLI, the cockpit's job start and `run_flow`): a
   top-module name or clock port must be a Verilog identifier, paths must be plain text without control
   characters, labels are bounded. A bad value is refused with one line naming it, before any run folder exists.
2. *Quoting at every script writer*: names that come from the user's own Verilog (port names, escaped
   identifiers such as ``\\bus[3]``) still reach OpenSTA's and qrouter's Tcl and Yosys' script language, so each
   writer quotes with the function for its language (`tcl_word`, `yosys_path`, `yosys_name`, `verilog_string`).
   A quoted value always evaluates to exactly the original text: it cannot end the word or start a command.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from engine.errors import EngineError


class InvalidInput(EngineError):
    """A user value that cannot be used safely or meaningfully; the message names the value and the rule.

    The subclasses below name the rule in their ``code`` (engine.diagnosis)."""

    default_code = "input.invalid"


class InvalidName(InvalidInput):
    """A top-module, clock-port or other design name that is not a Verilog identifier the tools can carry."""

    default_code = "input.invalid_name"


class InvalidPath(InvalidInput):
    """A file or folder path the tool scripts cannot carry."""

    default_code = "input.invalid_path"


class InvalidLabel(InvalidInput):
    """A run label that is too long or holds control characters."""

    default_code = "input.invalid_label"


class OutOfRange(InvalidInput):
    """A number outside the range the flow accepts."""

    default_code = "input.out_of_range"


MAX_NAME_CHARS = 256  # a Verilog identifier longer than this is almost surely not hand-written
MAX_LABEL_CHARS = 200
MAX_PATH_CHARS = 4096

_SIMPLE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
# Verilog escaped identifier: a backslash, then printable ASCII up to white space (IEEE 1364 3.7.1).
_ESCAPED_ID = re.compile(r"\\[!-~]+\Z")
# Characters that scripting languages give a meaning to: an escaped identifier holding one of them is refused at
# the door (the quoting below would still keep it inert, but Yosys' own `-top` parser cannot carry them).
_SCRIPT_META = set(';"{}$`\\#')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def verilog_identifier(value: Any, what: str) -> str:
    """A top module, clock port or other design name given by the user: a Verilog identifier, or raise.

    Simple identifiers (``cpu_top``) and escaped identifiers (``\\cpu.top``, trailing space optional) are accepted;
    anything else is refused with a message that names the value and says what is allowed.
    """
    if not isinstance(value, str):
        raise InvalidName(f"{what} must be text, not {type(value).__name__} ({_shown(value)})")
    name = value.rstrip(" ") if value.startswith("\\") else value
    if not name:
        raise InvalidName(f"{what} is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"{what} is {len(name)} characters long; a Verilog name may have at most "
                          f"{MAX_NAME_CHARS} here")
    if _SIMPLE_ID.match(name):
        return name
    if _ESCAPED_ID.match(name):
        bad = sorted(set(name[1:]) & _SCRIPT_META)
        if bad:
            raise InvalidName(f"{what} {_shown(value)} is an escaped identifier holding {' '.join(bad)}, which the "
                              "tool scripts cannot carry; rename it with letters, digits and _")
        return name
    raise InvalidName(f"{what} {_shown(value)} is not a Verilog identifier: use letters, digits, _ and $, "
                      "starting with a letter or _ (or an escaped identifier \\name)")


def user_path(value: Any, what: str) -> str:
    """A file or folder path from the user: text without control characters (spaces and unicode are fine)."""
    if not isinstance(value, (str, Path)):
        raise InvalidPath(f"{what} must be a path, not {type(value).__name__} ({_shown(value)})")
    text = str(value)
    if not text:
        raise InvalidPath(f"{what} is empty")
    if len(text) > MAX_PATH_CHARS:
        raise InvalidPath(f"{what} is {len(text)} characters long (at most {MAX_PATH_CHARS})")
    if _CONTROL.search(text):
        raise InvalidPath(f"{what} {_shown(text)} contains a control character (newline, tab, NUL...); "
                          "rename the file")
    if '"' in text:
        raise InvalidPath(f"{what} {_shown(text)} contains a double quote, which the tool scripts cannot "
                          "quote; rename the file")
    return text


def label(value: Any) -> str:
    """A run label: shown in lists, never written into a script; bounded and free of control characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidLabel(f"label must be text, not {type(value).__name__}")
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidLabel(f"label is {len(value)} characters long (at most {MAX_LABEL_CHARS})")
    if _CONTROL.search(value):
        raise InvalidLabel("label contains a control character (newline, tab...)")
    return value


def positive_number(value: Any, what: str, *, low: float = 0.0, high: float = math.inf,
                    low_inclusive: bool = False) -> float:
    """A finite number in (low, high]; the message gives the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OutOfRange(f"{what} must be a number, not {_shown(value)}")
    v = float(value)
    ok_low = v >= low if low_inclusive else v > low
    if not math.isfinite(v) or not ok_low or v > high:
        bound = "[" if low_inclusive else "("
        hi = "" if math.isinf(high) else f"{high:g}"
        raise OutOfRange(f"{what} = {value!r} is out of range {bound}{low:g}, {hi or 'inf'}]")
    return v


def validate_flow_config(cfg) -> None:
    """Check every user string and number of a FlowConfig that reaches a tool script or a tool's limits.

    Raises InvalidInput (an EngineError) with one line naming the field and the value; returns None when fine.
    """
    if not isinstance(cfg.design_files, (list, tuple)):
        raise InvalidInput("design_files must be a list of Verilog file paths")
    for f in cfg.design_files:
        user_path(f, "design file")
    if cfg.top:
        verilog_identifier(cfg.top, "top module")
    if cfg.clock_port:
        verilog_identifier(cfg.clock_port, "clock port")
    if cfg.testbench:
        user_path(cfg.testbench, "testbench")
    if cfg.tech_dir:
        user_path(cfg.tech_dir, "technology folder")
    if cfg.timing.sdc:
        user_path(cfg.timing.sdc, "SDC file (timing.sdc)")
        from engine.flow.sdc import read_sdc  # late: engine.flow.sdc quotes names with this module's tcl_word

        read_sdc(cfg.timing.sdc)  # a constraints file that is not plain constraints stops the run before it starts
    for m in getattr(cfg, "macros", None) or []:
        for key, flag in (("lef", "--macro-lef"), ("lib", "--macro-lib")):
            if key == "lib" and not m.get(key):
                continue
            path = user_path(m.get(key), f"macro {key.upper() if key == 'lef' else 'Liberty'} file ({flag})")
            if not Path(path).is_file():
                raise InvalidPath(f"macro {'LEF' if key == 'lef' else 'Liberty'} file {path} not found ({flag})")
    for name in getattr(cfg, "blackbox", None) or []:
        if not _SIMPLE_ID.match(str(name)):  # Yosys' `blackbox` takes the name bare: no escaped identifiers
            raise InvalidName(f"black-box module {_shown(name)} (--blackbox) is not a plain Verilog identifier: "
                              "use letters, digits, _ and $, starting with a letter or _")
        verilog_identifier(name, "black-box module (--blackbox)")
    positive_number(cfg.clock_ns, "clock_ns (clock period, ns)", high=1e6)


# ----------------------------------------------------------------------------------------------- quoting
_TCL_BARE = re.compile(r"[A-Za-z0-9_./:+=@,%-]+\Z")


def tcl_word(value: Any) -> str:
    """One Tcl word that evaluates to exactly ``value``: no substitution, no command, no word break.

    Plain names stay bare; anything else is double-quoted with ``\\ " $ [ ] { }`` backslash-escaped (Tcl's
    backslash substitution gives back the character itself). Control characters are refused: they have no place
    in a name, and a newline is where injection starts.
    """
    text = str(value)
    if _CONTROL.search(text):
        raise InvalidName(f"{_shown(text)} contains a control character and cannot go into a Tcl script")
    if _TCL_BARE.match(text):
        return text
    return '"' + re.sub(r'([\\"$\[\]{};])', r"\\\1", text) + '"'


def tcl_list(values) -> str:
    """A Tcl list literal of the given words, each quoted by `tcl_word`."""
    return "[list " + " ".join(tcl_word(v) for v in values) + "]"


def yosys_path(value: Any) -> str:
    """A path as one Yosys script argument: double-quoted (Yosys keeps ; and # inside quotes)."""
    return '"' + user_path(value, "file name") + '"'


def yosys_name(value: str, what: str = "module name") -> str:
    """A module name as a Yosys script argument; only validated identifiers pass (Yosys has no escape syntax)."""
    return verilog_identifier(value, what)


def verilog_string(value: Any) -> str:
    """A Verilog string literal (for $dumpfile and friends) holding exactly ``value``."""
    text = str(value)
    if _CONTROL.search(text):
        raise InvalidName(f"{_shown(text)} contains a control character and cannot go into a Verilog string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


MIB = 1024 * 1024  # sizes are shown in MiB everywhere (files, uploads, logs, VCDs, memory limits)


def size_text(n_bytes: float) -> str:
    """A size in the one unit the project shows: MiB (KiB below one MiB)."""
    if n_bytes < MIB:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / MIB:,.1f} MiB"
