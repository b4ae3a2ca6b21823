"""VCD reader: per-bit toggle counts and duty cycles from a simulation's waveform (Icarus Verilog's VCD).

VCD has its own lexical rules (``$keyword ... $end`` header commands, ``#time`` stamps, one value change a line),
so it is read line by line here, streaming, not through engine.io.lexer's LEF/DEF tokens.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SignalActivity:
    """Switching of one bit over a simulation (OpenSTA's set_power_activity wants activity and duty)."""

    toggles: int  # 0->1 and 1->0 transitions (x/z excursions are not counted)
    duty: float  # fraction of the simulated time the bit was 1
    toggles_per_ns: float  # toggles / simulated time; times the clock period gives activity per cycle


def vcd_activity(vcd_path: str | Path, scope: str = "") -> dict[str, SignalActivity]:
    """Toggle counts and duty cycles per bit of every signal under ``scope`` (dotted, e.g. ``tb_counter.dut``).

    Names are relative to the scope (``q[3]``, ``u_tx.bitn[0]``; a scalar is its bare name); an empty scope
    keeps full dotted names. A VCD written by Icarus, streaming: large files are read line by line.
    """
    codes: dict[str, list[str]] = {}  # VCD id code -> bit names (MSB first for vectors)
    stack: list[str] = []
    unit_ns = 1.0
    prefix = scope.split(".") if scope else []
    state: dict[str, str] = {}  # bit name -> '0'/'1'/'x'
    since: dict[str, int] = {}  # bit name -> time of the last change
    toggles: dict[str, int] = {}
    high: dict[str, int] = {}
    now = 0
    start: int | None = None

    def set_bit(name: str, v: str) -> None:
        old = state.get(name, "x")
        if old == v:
            return
        if old == "1":
            high[name] += now - since[name]
        if old in "01" and v in "01":
            toggles[name] += 1
        state[name] = v
        since[name] = now

    with open(vcd_path, errors="replace") as fh:
        in_header = True
        pending_ts = False
        for raw in fh:
            line = raw.strip()
            if not line:
                continue
            if in_header:
                tok = line.split()
                if pending_ts:
                    unit_ns = _timescale_ns(line)
                    pending_ts = False
                if tok[0] == "$timescale":
                    rest = line[len("$timescale"):].replace("$end", "").strip()
                    if rest:
                        unit_ns = _timescale_ns(rest)
                    else:
                        pending_ts = True
                elif tok[0] == "$scope" and len(tok) >= 3:
                    stack.append(tok[2])
                elif tok[0] == "$upscope":
                    stack.pop()
                elif tok[0] == "$var" and len(tok) >= 5:
                    width, code, ref = int(tok[2]), tok[3], tok[4]
                    if stack[:len(prefix)] != prefix:
                        continue
                    base = ".".join(stack[len(prefix):] + [ref.lstrip("\\")])  # Yosys' escaped names
                    rng = tok[5] if len(tok) > 5 and tok[5].startswith("[") else ""
                    if width == 1:
                        bits = [base + rng] if rng and ":" not in rng else [base]
                    else:
                        hi, lo = (int(x) for x in rng.strip("[]").split(":")) if ":" in rng else (width - 1, 0)
                        step = -1 if hi >= lo else 1
                        bits = [f"{base}[{i}]" for i in range(hi, lo + step, step)]
                    codes.setdefault(code, []).extend(bits)
                    for b in bits:
                        toggles.setdefault(b, 0)
                        high.setdefault(b, 0)
                        since.setdefault(b, 0)
                elif tok[0] == "$enddefinitions":
                    in_header = False
                continue
            c = line[0]
            if c == "#":
                now = int(line[1:])
                if start is None:
                    start = now
            elif c in "01xzXZ":
                for name in codes.get(line[1:], ()):
                    set_bit(name, c.lower() if c in "xzXZ" else c)
            elif c in "bB":
                value, _, code = line[1:].partition(" ")
                names = codes.get(code.strip())
                if names:
                    value = value.lower().rjust(len(names), value[0] if value[0] in "xz" else "0")
                    for name, v in zip(names, value[-len(names):]):
                        set_bit(name, v)
            # real values ('r...') and $dumpvars/$end markers need nothing
    end = now
    span = max(end - (start or 0), 1)
    out = {}
    for name in toggles:
        h = high[name] + (end - since[name] if state.get(name) == "1" else 0)
        out[name] = SignalActivity(toggles=toggles[name], duty=round(h / span, 6),
                                   toggles_per_ns=round(toggles[name] / (span * unit_ns), 9))
    return out


def _timescale_ns(text: str) -> float:
    m = re.match(r"\s*(\d+)\s*(s|ms|us|ns|ps|fs)", text)
    if not m:
        return 1.0
    return int(m.group(1)) * {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}[m.group(2)]
