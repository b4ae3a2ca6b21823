"""Build a Netlist from Yosys' JSON of a design mapped onto a library, with cell sizes and pin offsets from LEF."""
from __future__ import annotations

import json
from pathlib import Path

from engine.errors import EngineError
from engine.netlist import IO_TYPE, PIN_INOUT, PIN_INPUT, PIN_OUTPUT, Netlist, NetlistBuilder
from engine.pdk import Pdk

_DIRS = {"input": PIN_INPUT, "output": PIN_OUTPUT, "inout": PIN_INOUT}


def bit_name(name: str, width: int, index: int, offset: int = 0, upto: bool = False) -> str:
    if width == 1:
        return name
    bit = (offset + width - 1 - index) if upto else (offset + index)
    return f"{name}[{bit}]"


def load_yosys_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EngineError(f"{path}: Yosys JSON not found") from None
    except json.JSONDecodeError as exc:
        raise EngineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def top_module(data: dict, top: str | None = None) -> tuple[str, dict]:
    modules = data.get("modules", {})
    if not modules:
        raise EngineError("the Yosys JSON has no modules")
    if top:
        if top not in modules:
            raise EngineError(f"module '{top}' not in the netlist; it has: {', '.join(sorted(modules))}")
        return top, modules[top]
    def flag(m: dict, key: str) -> bool:
        return str(m.get("attributes", {}).get(key, "0")).strip("0") != ""

    tops = [n for n, m in modules.items() if flag(m, "top")]
    # Library cells (read_liberty -lib) are blackboxes: never the design's top.
    designs = [n for n, m in modules.items() if not flag(m, "blackbox")]
    name = tops[0] if tops else (designs[0] if designs else next(iter(modules)))
    return name, modules[name]


def net_names_by_bit(module: dict) -> dict[int, str]:
    """Best name for each net bit: a public name over a hidden one, the shorter of two public names."""
    best: dict[int, tuple[int, int, str]] = {}
    for name, info in module.get("netnames", {}).items():
        bits = info["bits"]
        hidden = int(info.get("hide_name", 0))
        offset = int(info.get("offset", 0))
        upto = bool(info.get("upto", 0))
        for i, b in enumerate(bits):
            if not isinstance(b, int):
                continue
            full = bit_name(name, len(bits), i, offset, upto)
            cand = (hidden, len(full), full)
            if b not in best or cand < best[b]:
                best[b] = cand
    return {b: v[2] for b, v in best.items()}


def netlist_from_yosys_json(path: str | Path, pdk: Pdk, top: str | None = None) -> Netlist:
    data = load_yosys_json(path)
    name, module = top_module(data, top)
    names = net_names_by_bit(module)
    b = NetlistBuilder(name)
    missing: set[str] = set()

    def net_of(bit) -> str | None:
        if not isinstance(bit, int):
            return None  # constant 0/1/x/z: tied to a rail, not a routed signal net
        return names.get(bit, f"_net{bit}_")

    for pname, port in module.get("ports", {}).items():
        bits = port["bits"]
        direction = _DIRS.get(port.get("direction", "input"), PIN_INOUT)
        offset = int(port.get("offset", 0))
        upto = bool(port.get("upto", 0))
        for i, bit in enumerate(bits):
            term = bit_name(pname, len(bits), i, offset, upto)
            cid = b.add_cell(term, IO_TYPE, 0.0, 0.0, fixed=True, io=True)
            # The terminal drives the net for an input port, and is driven for an output port.
            tdir = {PIN_INPUT: PIN_OUTPUT, PIN_OUTPUT: PIN_INPUT}.get(direction, PIN_INOUT)
            b.add_pin(cid, net_of(bit), 0.0, 0.0, term, tdir)

    for cname, cell in module.get("cells", {}).items():
        ctype = cell["type"]
        if ctype not in pdk.macros:
            missing.add(ctype)
            continue
        macro = pdk.macros[ctype]
        cid = b.add_cell(cname, ctype, macro.width_um, macro.height_um)
        dirs = cell.get("port_directions", {})
        for pin_name, bits in cell.get("connections", {}).items():
            mpin = macro.pins.get(pin_name)
            # A bus port of a hard macro (A[3:0] in its Liberty or stub) is one LEF pin per bit, A[0] first.
            lef_bits = [macro.pins.get(f"{pin_name}[{i}]") for i in range(len(bits))] if mpin is None else []
            if mpin is None and (not bits or any(p is None for p in lef_bits)):
                raise EngineError(f"cell {cname} ({ctype}) connects pin '{pin_name}', which the LEF macro lacks")
            for k, bit in enumerate(bits):
                lpin = mpin if mpin is not None else lef_bits[k]
                assert lpin is not None
                if lpin.use in ("POWER", "GROUND"):
                    continue
                dx, dy = lpin.center
                direction = _DIRS.get(dirs.get(pin_name, lpin.direction.lower()), PIN_INOUT)
                b.add_pin(cid, net_of(bit), dx, dy, lpin.name if mpin is None else pin_name, direction)
    if missing:
        raise EngineError(
            f"the mapped design uses cells the library does not have: {', '.join(sorted(missing))}. "
            "Yosys could not map them onto the Liberty cells (latches or special flops are the usual cause)."
        )
    nl = b.build()
    nl.validate()
    return nl
