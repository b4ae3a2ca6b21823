"""Timing constraints (SDC): the generated default, and a user's file checked before OpenSTA reads it.

SDC is Tcl, and OpenSTA evaluates it in a full Tcl interpreter: a constraints file can `exec` anything. So a
user's SDC is parsed here as Tcl (words, quotes, braces, brackets, `;`, comments, backslash-newline) and accepted
only when every command is a timing constraint, every bracketed command an object query (`get_ports`,
`all_inputs`, ...) or arithmetic (`expr` on numbers and the file's own variables), and every `$name` a variable
the file set to a literal earlier. Anything else is refused with the file, the line and the word, before any tool
runs. The checked text is what OpenSTA reads (saved in the run as constraints.sdc), so what was checked is what
runs.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError
from engine.validate import tcl_word

# Commands a constraints file may run (SDC 2.1 and the OpenSTA extensions flows use).
CONSTRAINTS = frozenset({
    "create_clock", "create_generated_clock", "set_clock_groups", "set_clock_uncertainty", "set_clock_latency",
    "set_clock_transition", "set_propagated_clock", "set_input_delay", "set_output_delay", "set_false_path",
    "set_multicycle_path", "set_max_delay", "set_min_delay", "set_load", "set_driving_cell", "set_input_transition",
    "set_max_fanout", "set_max_transition", "set_max_capacitance", "set_case_analysis", "set_disable_timing",
    "set_timing_derate", "set_units", "set_wire_load_model", "set_wire_load_mode", "set_operating_conditions",
    "group_path", "current_design", "set_ideal_network", "set_dont_touch", "set_max_area", "set_sense",
    "set_data_check", "set_clock_sense", "set_logic_zero", "set_logic_one", "set_logic_dc", "set_fanout_load",
    "set_resistance", "set_max_time_borrow", "set_min_pulse_width", "set_port_fanout_number",
    "set",  # a variable, to a literal (checked below)
})
# Commands allowed inside [...]: object queries, lists, arithmetic.
QUERIES = frozenset({
    "get_ports", "get_pins", "get_cells", "get_nets", "get_clocks", "get_lib_cells", "get_lib_pins", "get_libs",
    "all_inputs", "all_outputs", "all_clocks", "all_registers", "current_design", "list", "expr",
    "delete_from_list", "add_to_list",
})
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_VAR = re.compile(r"\$(\{[^}]*\}|[A-Za-z_]\w*(?:\([^)]*\))?)")
_EXPR_OK = re.compile(r"^[\s\d.eE+\-*/()%<>=!&|?:,]*$")  # numbers and operators only, once variables are replaced
MAX_SDC_BYTES = 4 * 1024 * 1024


class SdcError(EngineError):
    """A constraints file that cannot be used: it is not SDC, or it asks Tcl for more than constraints."""


@dataclass
class Command:
    words: list[str]  # raw words, as written (quotes and braces kept)
    line: int

    @property
    def name(self) -> str:
        return self.words[0]


@dataclass
class Sdc:
    """A checked constraints file: its text and what the flow needs to know of it."""

    text: str
    source: str  # the user's file, or "generated"
    commands: list[Command] = field(default_factory=list)
    clocks: list[dict] = field(default_factory=list)  # {"name", "period_ns", "ports"}

    @property
    def period_ns(self) -> float | None:
        """The first clock's period when it is a literal number (what fmax and the reports are relative to)."""
        for c in self.clocks:
            if c.get("period_ns") is not None:
                return c["period_ns"]
        return None


# ------------------------------------------------------------------------------------------------ tokenizer
def _split(text: str, path: str, line0: int = 1) -> list[Command]:
    """Tcl commands of ``text`` (Tcl's own word rules, no substitution performed)."""
    cmds: list[Command] = []
    i, n, line = 0, len(text), line0
    words: list[str] = []
    start_line = line

    def fail(msg: str, at: int) -> SdcError:
        return SdcError(f"{path}:{at}: {msg}", hint="an SDC file holds timing constraints only (create_clock, "
                        "set_input_delay, set_false_path, ...), each a plain Tcl command", code="timing.sdc")

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":  # line continuation
            i += 2
            line += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c in "\n;":
            if words:
                cmds.append(Command(words, start_line))
                words = []
            if c == "\n":
                line += 1
            i += 1
            continue
        if c == "#" and not words:  # a comment runs to the end of the line (a continued line continues it)
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    line += 1
                    i += 1
                i += 1
            continue
        if not words:
            start_line = line
        j, depth_b = i, 0
        if c == "{":
            depth_b = 1
            j += 1
            while j < n and depth_b:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "\n":
                    line += 1
                depth_b += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth_b:
                raise fail("a '{' is never closed", start_line)
        elif c == '"':
            j += 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                elif text[j] == "[":
                    j = _bracket_end(text, j, path, line, fail)
                    continue
                if j < n and text[j] == "\n":
                    line += 1
                j += 1
            if j >= n:
                raise fail('a \'"\' is never closed', start_line)
            j += 1
        else:
            while j < n and text[j] not in " \t\r\n;":
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "[":
                    end = _bracket_end(text, j, path, line, fail)
                    line += text.count("\n", j, end)
                    j = end
                    continue
                j += 1
        words.append(text[i:j])
        i = j
    if words:
        cmds.append(Command(words, start_line))
    return cmds


def _bracket_end(text: str, j: int, path: str, line: int, fail) -> int:
    """Index just past the ']' that closes the '[' at ``j``."""
    depth, k = 0, j
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return k + 1
        k += 1
    raise fail("a '[' is never closed", line)


# ---------------------------------------------------------------------------------------------------- checks
def _check_word(word: str, cmd: Command, path: str, variables: set[str]) -> None:
    def fail(msg: str) -> SdcError:
        return SdcError(f"{path}:{cmd.line}: {msg} in `{' '.join(cmd.words)[:120]}`",
                        hint="constraints may use object queries ([get_ports ...], [all_inputs], ...), [expr] on "
                             "numbers and $variables the file sets to literals; nothing else runs",
                        code="timing.sdc")

    if word.startswith("{") and word.endswith("}"):
        body = word[1:-1]
        # Braces suppress substitution, but a command's argument may be evaluated later (e.g. a script body);
        # a constraint's brace word is a list of names/numbers: no brackets or variables inside.
        if "[" in body or "$" in body:
            raise fail("a braced word holding '[' or '$'")
        return
    for m in _VAR.finditer(word):
        name = m.group(1).strip("{}").split("(")[0]
        if name not in variables:
            raise fail(f"the variable ${name}, which this file does not set")
    i = 0
    while i < len(word):
        if word[i] == "\\":
            i += 2
            continue
        if word[i] == "[":
            end = _bracket_end(word, i, path, cmd.line, lambda msg, at: fail(msg))
            inner = _split(word[i + 1: end - 1], path, cmd.line)
            for sub in inner:
                if sub.name not in QUERIES:
                    raise fail(f"the command [{sub.name}], which is not an object query or expr")
                if sub.name == "expr":  # [expr {$period * 0.2}]: numbers, operators and the file's variables
                    body = " ".join(w.strip('{}"') for w in sub.words[1:])
                    for v in _VAR.finditer(body):
                        if v.group(1).strip("{}").split("(")[0] not in variables:
                            raise fail(f"the variable ${v.group(1)}, which this file does not set")
                    if not _EXPR_OK.match(_VAR.sub("1", body)):
                        raise fail("an [expr] that is not plain arithmetic")
                    continue
                for w in sub.words[1:]:
                    _check_word(w, Command(sub.words, cmd.line), path, variables)
            i = end
            continue
        i += 1


def check_sdc(text: str, path: str = "constraints.sdc") -> Sdc:
    """Parse and check a user SDC; raises SdcError naming the file, line and word at the first problem."""
    if "\x00" in text:
        raise SdcError(f"{path} is not a text file", code="timing.sdc")
    cmds = _split(text, path)
    variables: set[str] = set()
    values: dict[str, str] = {}  # variables set to a literal word (a period, a clock name)
    clocks: list[dict] = []
    for cmd in cmds:
        if cmd.name not in CONSTRAINTS:
            raise SdcError(f"{path}:{cmd.line}: `{cmd.name}` is not a timing constraint; an SDC file may only "
                           f"constrain timing (create_clock, set_input_delay, set_false_path, ...)",
                           hint="remove the command, or run it yourself outside the flow", code="timing.sdc")
        if cmd.name == "set":
            if len(cmd.words) != 3 or not re.match(r"^[A-Za-z_]\w*$", cmd.words[1]):
                raise SdcError(f"{path}:{cmd.line}: `set` must give one variable one value (set NAME VALUE)",
                               code="timing.sdc")
        for w in cmd.words[1:]:
            _check_word(w, cmd, path, variables)
        if cmd.name == "set":
            variables.add(cmd.words[1])
            if not any(ch in cmd.words[2] for ch in "[$"):
                values[cmd.words[1]] = cmd.words[2].strip('{}"')
            else:
                values.pop(cmd.words[1], None)
        if cmd.name == "create_clock":
            words = [_VAR.sub(lambda m: values.get(m.group(1).strip("{}"), m.group(0)), w) for w in cmd.words]
            clocks.append(_clock_of(Command(words, cmd.line)))
    return Sdc(text=text if text.endswith("\n") else text + "\n", source=path, commands=cmds, clocks=clocks)


def _clock_of(cmd: Command) -> dict:
    w = cmd.words
    out: dict = {"name": None, "period_ns": None, "line": cmd.line}
    for k, word in enumerate(w[:-1]):
        if word == "-name":
            out["name"] = w[k + 1].strip('{}"')
        if word == "-period" and _NUMBER.match(w[k + 1].strip('{}"')):
            out["period_ns"] = float(w[k + 1].strip('{}"'))
    m = re.search(r"\[get_ports\s+\{?\"?([^\]}\"]+)", " ".join(w))
    if m:
        out["ports"] = m.group(1).split()
        out["name"] = out["name"] or out["ports"][0]
    return out


# Checked files by (path, content hash): validate_flow_config checks a user's SDC before the run starts and the
# timing step needs the same Sdc, so a run parses a file once; a changed file has a new hash and is parsed again.
_CHECKED: dict[tuple[str, str], Sdc] = {}
_CHECKED_MAX = 16


def read_sdc(path: str | Path) -> Sdc:
    """A user's SDC file, read and checked (once per content: the Sdc is shared, callers must not change it)."""
    p = Path(path)
    if not p.is_file():
        raise SdcError(f"SDC file {p} does not exist", hint="give --sdc an existing constraints file",
                       code="timing.sdc")
    if p.stat().st_size > MAX_SDC_BYTES:
        raise SdcError(f"SDC file {p} is larger than {MAX_SDC_BYTES >> 20} MiB", code="timing.sdc")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SdcError(f"SDC file {p} is not UTF-8 text", code="timing.sdc") from None
    key = (str(p), hashlib.sha256(text.encode()).hexdigest())
    if key not in _CHECKED:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.pop(next(iter(_CHECKED)))  # the oldest: a long-lived cockpit process sees many files
        _CHECKED[key] = check_sdc(text, str(p))  # a refused file raises and is not kept
    return _CHECKED[key]


def generated_sdc(*, clock: str | None, period: float, in_delay: float, out_delay: float) -> Sdc:
    """The constraints the flow uses when the user gives none: one clock (or a virtual one on IO paths), input and
    output delays as fractions of the period. Every name is one quoted Tcl word."""
    q = tcl_word
    if clock:
        lines = [f"create_clock -name {q(clock)} -period {period:.6g} [get_ports {q(clock)}]",
                 f"set_input_delay {in_delay:.6g} -clock {q(clock)} "
                 f"[delete_from_list [all_inputs] [get_ports {q(clock)}]]"]
        clk = clock
    else:
        lines = [f"create_clock -name vclk -period {period:.6g}", f"set_input_delay {in_delay:.6g} -clock vclk "
                 "[all_inputs]"]
        clk = "vclk"
    lines.append(f"set_output_delay {out_delay:.6g} -clock {q(clk)} [all_outputs]")
    text = "# generated by CDA Cockpit (no --sdc given)\n" + "\n".join(lines) + "\n"
    return Sdc(text=text, source="generated", commands=_split(text, "generated"),
               clocks=[{"name": clk, "period_ns": period, "ports": [clock] if clock else []}])
