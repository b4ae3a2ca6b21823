"""Clock tree and fanout repair: placed.def + netlist.v -> cts.def + netlist.v with the buffers as real cells.

1. The clock net is the clock port's (the flow config's clock_port, a create_clock in timing.sdc, or the port the
   timing step would find); a design without one passes through unchanged and says so.
2. Its sinks are clustered geometrically, bottom up: recursive bisection along the wider side splits them into
   ceil(n / cts.max_fanout) groups of near-equal size (every sink in exactly one); each group gets a buffer at
   the centre of its bounding box; the buffers are clustered the same way until one root is left, which the clock
   port drives. Every sink sits under the same number of buffers (a balanced tree).
3. Each level uses one cell of cts.clock_buffers: the smallest whose Liberty max_capacitance, times
   cts.load_fraction, covers the heaviest load of the level (pins plus wire); one cell per level keeps the delays
   of a level alike.
4. Fanout repair: a signal net with more cell inputs than cts.fanout_limit gets the same kind of tree of
   cts.repair_buffers, without a root (its driver drives the top buffers).
5. The buffers are legalised into the free sites of the rows with engine.place.legalize, the cells placed before
   held fixed; only when the free sites near a buffer cannot take it are all cells legalised together (the
   displacement metric says how far the others moved).
6. Hold repair (engine.flow.hold, cts.hold_repair): OpenSTA times the buffered placement with the propagated clock
   and delay buffers go in front of the flip-flop inputs (or on an input port's net) whose hold slack is below
   cts.hold_margin_ns, legalised the same way, round by round, without turning setup WNS negative.
The netlist written is the synthesised Verilog with the sinks' connections moved to the new nets and the buffer
instances added, so route, timing, gds and verify read the same circuit the DEF holds.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.netlist import PIN_OUTPUT, Netlist
from engine.pdk import LibertyCell, Pdk, liberty_cells
from engine.runs import read_json, write_json

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ clustering
def bisect_clusters(points: np.ndarray, max_fanout: int) -> list[np.ndarray]:
    """Indices of ``points`` (n, 2) in ceil(n / max_fanout) groups of near-equal size, none above max_fanout,
    each point in exactly one; groups are compact (recursive bisection at the median of the wider side)."""
    n = len(points)
    if n == 0:
        return []
    if max_fanout < 1:
        raise ValueError("max_fanout must be at least 1")
    k = math.ceil(n / max_fanout)
    out: list[np.ndarray] = []
    _bisect(np.arange(n), np.asarray(points, dtype=np.float64), k, max_fanout, out)
    return out


def _bisect(idx: np.ndarray, pts: np.ndarray, k: int, cap: int, out: list[np.ndarray]) -> None:
    if k <= 1:
        out.append(idx)
        return
    k1 = k // 2
    n = len(idx)
    # Split the points in proportion to the groups on each side, within what each side can hold (n <= k * cap).
    n1 = int(round(n * k1 / k))
    n1 = min(max(n1, n - (k - k1) * cap, k1), k1 * cap, n - (k - k1))
    span = np.ptp(pts[idx], axis=0)
    axis = int(np.argmax(span))
    order = idx[np.lexsort((pts[idx, 1 - axis], pts[idx, axis]))]  # ties broken by the other axis: deterministic
    _bisect(order[:n1], pts, k1, cap, out)
    _bisect(order[n1:], pts, k - k1, cap, out)


@dataclass
class Tree:
    """A balanced buffer tree over n sinks. ``levels[0]`` groups the sinks (leaf buffers); ``levels[j]`` groups the
    buffers of level j-1; the last level is the top. ``centres[j]`` (m_j, 2): where level j's buffers go."""

    levels: list[list[np.ndarray]] = field(default_factory=list)
    centres: list[np.ndarray] = field(default_factory=list)

    @property
    def buffer_count(self) -> int:
        return sum(len(g) for g in self.levels)


def build_tree(points: np.ndarray, max_fanout: int, *, root: bool = True) -> Tree:
    """Buffers bottom up until one (``root``) or at most ``max_fanout`` (no root: the driver drives them) are left
    at the top. Each buffer sits at the centre of its group's bounding box."""
    tree = Tree()
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    while True:
        groups = bisect_clusters(pts, max_fanout)
        centres = np.array([(pts[g].min(axis=0) + pts[g].max(axis=0)) / 2 for g in groups]).reshape(-1, 2)
        tree.levels.append(groups)
        tree.centres.append(centres)
        if len(groups) == 1 or (not root and len(groups) <= max_fanout):
            return tree
        pts = centres


# ------------------------------------------------------------------------------------------------ buffers
def buffer_cells(pdk: Pdk, names: str, knob: str) -> list[LibertyCell]:
    """The Liberty buffers named in ``names`` (comma-separated), smallest first; an error naming the library's
    buffers when one is missing or is not a buffer."""
    lib = liberty_cells(pdk)
    if not lib:
        raise EngineError(f"no Liberty file next to {pdk.lef_path}: the clock tree needs the buffers' numbers",
                          code="tech.no_liberty")
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    buffers = sorted(n for n, c in lib.items() if c.is_buffer and n in pdk.macros)
    bad = [n for n in wanted if n not in lib or not lib[n].is_buffer or n not in pdk.macros]
    if bad or not wanted:
        raise EngineError(f"{knob} = {names!r}: {', '.join(bad) or 'no cell'} is not a buffer of {pdk.name} "
                          f"(its buffers are {', '.join(buffers) or 'none'})",
                          hint=f"set {knob} to some of: {', '.join(buffers)}", knob=knob)
    return sorted((lib[n] for n in wanted), key=lambda c: (c.area, c.name))


def choose_buffer(cells: list[LibertyCell], load_pf: float, load_fraction: float) -> LibertyCell:
    """The smallest cell whose max_capacitance x load_fraction covers ``load_pf``; else the strongest."""
    for c in cells:
        cap = c.outputs[0].max_capacitance_pf
        if cap is not None and cap * load_fraction >= load_pf:
            return c
    return max(cells, key=lambda c: (c.outputs[0].max_capacitance_pf or 0.0, -(c.drive_kohm or 0.0)))


# ------------------------------------------------------------------------------------------------ the plan
@dataclass
class Buffer:
    name: str
    cell: str
    level: int  # 1 = the top of its tree (driven by the original net), larger = nearer the sinks
    x: float  # where clustering put it (centre, um); the DEF gets the legal position
    y: float
    in_net: str  # net name of its input: the original net or its parent's output
    out_net: str
    tree: str  # "clock" or "fanout"


@dataclass
class Plan:
    buffers: list[Buffer] = field(default_factory=list)
    moves: dict[int, str] = field(default_factory=dict)  # sink pin index -> the new net it joins
    skew_ns: float | None = None
    latency_ns: float | None = None
    levels: int = 0
    sinks: int = 0
    repaired_nets: list[str] = field(default_factory=list)


def _ident(text: str) -> str:
    return re.sub(r"\W", "_", text).strip("_") or "n"


def plan_tree(netlist: Netlist, pdk: Pdk, net: int, sink_pins: np.ndarray, cells: list[LibertyCell],
              max_fanout: int, load_fraction: float, *, root: bool, tag: str, taken: set[str], kind: str,
              rc) -> tuple[list[Buffer], dict[int, str], int, np.ndarray]:
    """Buffers and pin moves for one net; returns them with the level count and each sink's estimated arrival
    (ns) through the tree (intrinsic + drive x load per buffer, Elmore of the wire to each child)."""
    from engine.flow.spef import oriented_pin_positions

    lib = liberty_cells(pdk)
    px, py = oriented_pin_positions(netlist)
    pts = np.stack([px[sink_pins], py[sink_pins]], axis=1)
    tree = build_tree(pts, max_fanout, root=root)
    sink_cap = np.array([pin_cap(lib, netlist, p) for p in sink_pins])
    n_levels = len(tree.levels)
    names: list[list[str]] = []
    chosen: list[LibertyCell] = []
    child_pts, child_cap = pts, sink_cap
    stage: list[np.ndarray] = []  # per level: each buffer's own delay (ns)
    wire: list[np.ndarray] = []  # per level: each child's wire delay from its buffer (ns)
    for j, (groups, centres) in enumerate(zip(tree.levels, tree.centres)):
        loads = np.zeros(len(groups))
        wires_j = np.zeros(len(child_pts))
        for g, members in enumerate(groups):
            d = np.abs(child_pts[members] - centres[g]).sum(axis=1)  # Manhattan, buffer to each child
            hp = float(np.ptp(np.vstack([child_pts[members], centres[g][None]]), axis=0).sum())
            loads[g] = float(child_cap[members].sum()) + rc.c_per_um * hp
            wires_j[members] = rc.r_per_um * d * (rc.c_per_um * d / 2 + child_cap[members]) * 1e-3
        cell = choose_buffer(cells, float(loads.max()), load_fraction)
        chosen.append(cell)
        stage.append((cell.intrinsic_ns or 0.0) + (cell.drive_kohm or 0.0) * loads)
        wire.append(wires_j)
        lvl_names = []
        for g in range(len(groups)):
            name = unique_name(f"{tag}_b{n_levels - j}_{g}", taken)
            lvl_names.append(name)
        names.append(lvl_names)
        child_pts = centres
        child_cap = np.full(len(groups), cell.inputs[0].capacitance_pf)
    buffers: list[Buffer] = []
    moves: dict[int, str] = {}
    net_name = netlist.net_names[net]
    parent_net: list[str] = [net_name] * len(tree.levels[-1])  # the top level hangs off the original net
    for j in range(n_levels - 1, -1, -1):
        groups, centres = tree.levels[j], tree.centres[j]
        out_nets = [unique_name(f"{names[j][g]}_y", taken) for g in range(len(groups))]
        for g in range(len(groups)):
            buffers.append(Buffer(names[j][g], chosen[j].name, n_levels - j, float(centres[g][0]),
                                  float(centres[g][1]), parent_net[g], out_nets[g], kind))
        child_parent = [""] * (len(tree.levels[j - 1]) if j > 0 else len(sink_pins))
        for g, members in enumerate(groups):
            for m in members:
                child_parent[int(m)] = out_nets[g]
        if j == 0:
            for k, p in enumerate(sink_pins):
                moves[int(p)] = child_parent[k]
        parent_net = child_parent
    # Arrival at each sink: walk down from the top, adding each level's buffer delay and wire delay.
    arrival = np.zeros(len(tree.levels[-1]))
    for j in range(n_levels - 1, -1, -1):
        groups = tree.levels[j]
        size = len(tree.levels[j - 1]) if j > 0 else len(sink_pins)
        child = np.zeros(size)
        for g, members in enumerate(groups):
            child[members] = arrival[g] + stage[j][g] + wire[j][members]
        arrival = child
    return buffers, moves, n_levels, arrival


def unique_name(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        out = f"{name}_{k}"
        k += 1
    taken.add(out)
    return out


def pin_cap(lib: dict[str, LibertyCell], netlist: Netlist, p: int) -> float:
    cell = lib.get(netlist.cell_types[netlist.pin_cell[p]])
    pin = cell.pins.get(netlist.pin_names[p]) if cell else None
    return pin.capacitance_pf if pin else 0.01


def cell_sinks(netlist: Netlist, net: int) -> np.ndarray:
    """Pins of ``net`` that are inputs of cells (not IO terminals, not the driver)."""
    pins = netlist.net_pins[netlist.net_start[net]:netlist.net_start[net + 1]]
    io = netlist.cell_is_io[netlist.pin_cell[pins]]
    return pins[~io & (netlist.pin_dir[pins] != PIN_OUTPUT)]


def fanouts(netlist: Netlist, skip: Collection[str] = frozenset()) -> np.ndarray:
    """(N,) cell inputs each net drives (0 for the nets in ``skip``)."""
    sink = ~netlist.cell_is_io[netlist.pin_cell] & (netlist.pin_dir != PIN_OUTPUT)
    out = np.zeros(netlist.n_nets, dtype=np.int64)
    pn = netlist.pin_net()
    np.add.at(out, pn[(pn >= 0) & sink], 1)
    for k, name in enumerate(netlist.net_names):
        if name in skip:
            out[k] = 0
    return out


def clock_net(netlist: Netlist, port: str) -> int | None:
    """The net the clock port's IO terminal drives."""
    idx = netlist.index().get(port)
    if idx is None or not netlist.cell_is_io[idx]:
        return None
    pins = np.flatnonzero(netlist.pin_cell == idx)
    pn = netlist.pin_net()
    return int(pn[pins[0]]) if len(pins) and pn[pins[0]] >= 0 else None


# ------------------------------------------------------------------------------------------------ netlist edits
def with_buffers(netlist: Netlist, pdk: Pdk, plan: Plan) -> Netlist:
    """``netlist`` with the plan's buffers as cells (at their cluster centres) and the moved sinks on new nets."""
    nets = list(netlist.net_names)
    net_of = {n: k for k, n in enumerate(nets)}
    pin_net = netlist.pin_net()
    for p, name in plan.moves.items():
        if name not in net_of:
            net_of[name] = len(nets)
            nets.append(name)
        pin_net[p] = net_of[name]
    cell_names, cell_types = list(netlist.cell_names), list(netlist.cell_types)
    w, h, x, y = list(netlist.cell_w), list(netlist.cell_h), list(netlist.x), list(netlist.y)
    pin_cell, pin_dx, pin_dy = list(netlist.pin_cell), list(netlist.pin_dx), list(netlist.pin_dy)
    pin_names, pin_dir, pin_nets = list(netlist.pin_names), list(netlist.pin_dir), list(pin_net)
    orient = list(netlist.cell_orient or ["N"] * netlist.n_cells)
    for b in plan.buffers:
        macro = pdk.macro(b.cell)
        c = len(cell_names)
        cell_names.append(b.name)
        cell_types.append(b.cell)
        w.append(macro.width_um)
        h.append(macro.height_um)
        x.append(b.x - macro.width_um / 2)
        y.append(b.y - macro.height_um / 2)
        orient.append("N")
        for net_name in (b.in_net, b.out_net):
            if net_name not in net_of:
                net_of[net_name] = len(nets)
                nets.append(net_name)
        lib = liberty_cells(pdk)[b.cell]
        for lpin, net_name, direction in ((lib.inputs[0], b.in_net, 0), (lib.outputs[0], b.out_net, PIN_OUTPUT)):
            mpin = macro.pins.get(lpin.name)
            dx, dy = mpin.center if mpin else (macro.width_um / 2, macro.height_um / 2)
            pin_cell.append(c)
            pin_dx.append(dx)
            pin_dy.append(dy)
            pin_names.append(lpin.name)
            pin_dir.append(direction)
            pin_nets.append(net_of[net_name])
    pn = np.asarray(pin_nets, dtype=np.int64)
    order = np.argsort(pn, kind="stable")
    start = np.zeros(len(nets) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pn, minlength=len(nets)), out=start[1:])
    n_old = netlist.n_cells
    weights = np.concatenate([netlist.net_weight, np.ones(len(nets) - netlist.n_nets)])
    return Netlist(
        name=netlist.name, cell_names=cell_names, cell_types=cell_types,
        cell_w=np.asarray(w, float), cell_h=np.asarray(h, float),
        cell_fixed=np.concatenate([netlist.cell_fixed, np.zeros(len(cell_names) - n_old, bool)]),
        cell_is_io=np.concatenate([netlist.cell_is_io, np.zeros(len(cell_names) - n_old, bool)]),
        x=np.asarray(x, float), y=np.asarray(y, float), pin_cell=np.asarray(pin_cell, np.int32),
        pin_dx=np.asarray(pin_dx, float), pin_dy=np.asarray(pin_dy, float), pin_names=pin_names,
        pin_dir=np.asarray(pin_dir, np.int8), net_names=nets, net_start=start,
        net_pins=order.astype(np.int32), net_weight=weights, die=netlist.die, core=netlist.core,
        rows=list(netlist.rows), cell_orient=orient, special_nets=netlist.special_nets)


_INSTANCE = re.compile(r"(?ms)^[ \t]*([A-Za-z_][\w$]*)[ \t]+(\\\S+[ \t]|[A-Za-z_][\w$]*)\s*\((.*?)\);")
_CONN = re.compile(r"\.([A-Za-z_][\w$]*)\s*\(\s*((?:\\\S+\s*(?:\[\d+\])?)|[^()]*?)\s*\)")
_KEYWORDS = {"module", "input", "output", "inout", "wire", "reg", "assign", "endmodule", "supply0", "supply1"}


def _verilog_name(name: str) -> str:
    return name[1:].strip() if name.startswith("\\") else name.strip()


def verilog_with_buffers(text: str, top: str, netlist: Netlist, plan: Plan) -> str:
    """The synthesised Verilog with each moved sink connected to its new net and the buffers instantiated."""
    mod = re.search(rf"(?ms)^module\s+\\?{re.escape(top)}\s*\(.*?^endmodule", text)
    if mod is None:
        raise EngineError(f"module {top} is not in the synthesised netlist")
    body = text[mod.start():mod.end()]
    wanted: dict[str, dict[str, str]] = {}
    for p, net in plan.moves.items():
        inst = netlist.cell_names[netlist.pin_cell[p]]
        wanted.setdefault(inst, {})[netlist.pin_names[p]] = net
    # The original nets' Verilog spelling, read off a sink that is moved (so no DEF-to-Verilog name mapping).
    spelling: dict[str, str] = {}
    old_net_of_new: dict[str, str] = {}
    pin_net = netlist.pin_net()
    for p, net in plan.moves.items():
        old_net_of_new.setdefault(net, netlist.net_names[pin_net[p]])
    pieces, last, first_inst, found = [], 0, None, set()
    for m in _INSTANCE.finditer(body):
        if m.group(1) in _KEYWORDS:
            continue
        if first_inst is None:
            first_inst = m.start()
        inst = _verilog_name(m.group(2))
        pins = wanted.get(inst)
        if not pins:
            continue
        conns = m.group(3)

        def swap(cm: re.Match, pins: dict[str, str] = pins, inst: str = inst) -> str:
            new = pins.get(cm.group(1))
            if new is None:
                return cm.group(0)
            old = old_net_of_new.get(new)
            if old is not None:
                spelling.setdefault(old, cm.group(2))
            found.add((inst, cm.group(1)))
            return f".{cm.group(1)}({new})"

        pieces.append(body[last:m.start(3)])
        pieces.append(_CONN.sub(swap, conns))
        last = m.end(3)
    pieces.append(body[last:])
    new_body = "".join(pieces)
    missing = [(i, p) for i, ps in wanted.items() for p in ps if (i, p) not in found]
    if missing:
        raise EngineError(f"the synthesised netlist has no connection {missing[0][0]}.{missing[0][1]} that the "
                          "placed DEF has: the DEF and the netlist disagree")
    # Parents before children: a buffer's input is the original net (its Verilog spelling) or a new wire.
    new_nets = sorted({b.out_net for b in plan.buffers})
    decls = "".join(f"  wire {n};\n" for n in new_nets)
    insts = []
    for b in plan.buffers:
        src = b.in_net if b.in_net in set(new_nets) else spelling.get(b.in_net)
        if src is None:
            raise EngineError(f"cts: no Verilog spelling of net {b.in_net}")
        insts.append(f"  {b.cell} {b.name} (\n    .A({src}),\n    .Y({b.out_net})\n  );\n")
    # Declarations go before the first instance (a net must be declared before use), instances before endmodule.
    head_end = _first_instance(new_body) if first_inst is not None else new_body.rfind("endmodule")
    tail = new_body.rfind("endmodule")
    new_body = new_body[:head_end] + decls + new_body[head_end:tail] + "".join(insts) + new_body[tail:]
    return text[:mod.start()] + new_body + text[mod.end():]


def _first_instance(body: str) -> int:
    for m in _INSTANCE.finditer(body):
        if m.group(1) not in _KEYWORDS:
            return m.start()
    return body.rfind("endmodule")


def verilog_buffer_inputs(text: str, top: str) -> dict[str, dict[str, str]]:
    """instance -> {pin: net} of the top module (what the tests read to follow the clock through the tree)."""
    mod = re.search(rf"(?ms)^module\s+\\?{re.escape(top)}\s*\(.*?^endmodule", text)
    out: dict[str, dict[str, str]] = {}
    for m in _INSTANCE.finditer(mod.group(0) if mod else ""):
        if m.group(1) in _KEYWORDS:
            continue
        out[_verilog_name(m.group(2))] = {c.group(1): c.group(2).strip() for c in _CONN.finditer(m.group(3))}
        out[_verilog_name(m.group(2))]["__type__"] = m.group(1)
    return out


# ------------------------------------------------------------------------------------------------ the step
class CtsStep(Step):
    id = "cts"
    inputs = (Input("synth", "netlist_v"), Input("synth", "netlist_json"), Input("place", "def"))
    outputs = ("def", "netlist_v")
    uses = ("cts", "clock_port", "tech_dir", "route")  # route.layers: the wire RC of the estimate
    version = 3  # 3: hold repair (engine.flow.hold) after the tree

    def key(self, config, upstream_keys, run=None) -> str:
        """The base key plus timing.sdc (its create_clock can name the clock port; hold repair times against it)
        and, with hold repair on, what the generated constraints are made of; not the rest of the timing section:
        a change of timing.paths must not rebuild the tree and reroute."""
        import hashlib

        base = super().key(config, upstream_keys, run)
        sdc = config.timing.sdc
        if config.cts.hold_repair:
            t = config.timing
            base += f"|{config.clock_ns}|{t.default_input_delay_frac}|{t.default_output_delay_frac}"
        if not sdc:
            return hashlib.sha256(base.encode()).hexdigest()[:24] if config.cts.hold_repair else base
        digest = hashlib.sha256(Path(sdc).read_bytes()).hexdigest() if Path(sdc).is_file() else "missing"
        return hashlib.sha256(f"{base}|{sdc}|{digest}".encode()).hexdigest()[:24]

    def run(self, ctx: StepContext) -> StepResult:
        from engine.flow.spef import default_rc
        from engine.io.def_io import read_def, write_def
        from engine.place.legalize import check_legality, row_orientations

        cfg = ctx.config.cts
        placed = ctx.artefact("place", "def")
        netlist_v = ctx.artefact("synth", "netlist_v")
        top = ctx.metrics("synth").get("design__top") or ctx.config.top
        netlist = read_def(placed, ctx.pdk)
        pins_json = read_json(ctx.run.step_dir("floorplan", create=False) / "pins.json", None)
        kw: dict[str, Any] = {"pin_layers": pins_json} if isinstance(pins_json, dict) else {}
        if not cfg.enabled:
            return self._pass_through(ctx, netlist, netlist_v, kw, "clock tree off (cts.enabled = false): the "
                                      "placement goes to routing unbuffered")
        port, how = self._clock_port(ctx, top)
        clk_net = clock_net(netlist, port) if port else None
        special = {n.name for n in netlist.special_nets or []}
        before = fanouts(netlist, special)
        rc = default_rc(ctx.pdk, ctx.config.route.layers)
        taken = set(netlist.cell_names) | set(netlist.net_names)
        plan = Plan()
        metrics: dict = {"cts__fanout__max_before": int(before.max()) if len(before) else 0}
        notes = []
        try:
            if clk_net is not None:
                sinks = cell_sinks(netlist, clk_net)
                if len(sinks):
                    clock_cells = buffer_cells(ctx.pdk, cfg.clock_buffers, "cts.clock_buffers")
                    ctx.progress(0.1, f"clock tree over {len(sinks)} sinks of {port}")
                    bufs, moves, levels, arrival = plan_tree(
                        netlist, ctx.pdk, clk_net, sinks, clock_cells, cfg.max_fanout, cfg.load_fraction,
                        root=True, tag=f"cts_{_ident(port or 'clk')}", taken=taken, kind="clock", rc=rc)
                    plan.buffers += bufs
                    plan.moves.update(moves)
                    plan.levels, plan.sinks = levels, len(sinks)
                    plan.skew_ns = float(arrival.max() - arrival.min())
                    plan.latency_ns = float(arrival.max())
                else:
                    notes.append(f"clock {port} drives no cell")
            else:
                notes.append("no clock port: no clock tree" if not port else f"clock port {port} is not in the DEF")
            if cfg.fanout_repair:
                repair_cells = buffer_cells(ctx.pdk, cfg.repair_buffers, "cts.repair_buffers")
                skip = special | ({netlist.net_names[clk_net]} if clk_net is not None else set())
                for net in np.flatnonzero(fanouts(netlist, skip) > cfg.fanout_limit):
                    drivers = netlist.net_pins[netlist.net_start[net]:netlist.net_start[net + 1]]
                    if int((netlist.pin_dir[drivers] == PIN_OUTPUT).sum()) != 1:
                        continue  # no single driver (a bus or a tri-state net): not ours to split
                    bufs, moves, _, _ = plan_tree(
                        netlist, ctx.pdk, int(net), cell_sinks(netlist, int(net)), repair_cells, cfg.fanout_limit,
                        cfg.load_fraction, root=False, tag=f"fo_{len(plan.repaired_nets)}", taken=taken,
                        kind="fanout", rc=rc)
                    plan.buffers += bufs
                    plan.moves.update(moves)
                    plan.repaired_nets.append(netlist.net_names[net])
        except EngineError as exc:
            raise ctx.fail(exc.message, hint=exc.hint, code="cts.failed", knob=exc.knob) from None
        if not plan.buffers:
            why = "; ".join(notes) or f"no net above cts.fanout_limit = {cfg.fanout_limit}"
            return self._pass_through(ctx, netlist, netlist_v, kw, f"nothing to buffer ({why})", metrics)
        ctx.check_cancel()
        ctx.progress(0.5, f"legalising {len(plan.buffers)} buffers")
        buffered = with_buffers(netlist, ctx.pdk, plan)
        n_old = netlist.n_cells
        placed_at = legalise_buffers(buffered, n_old)
        if placed_at is None:
            n = len(plan.buffers)
            return self._pass_through(ctx, netlist, netlist_v, kw, f"no room in the rows for the {n} buffers: the "
                                      "clock and the high-fanout nets go to routing unbuffered (lower "
                                      "floorplan.utilization to get a clock tree)", metrics)
        lx, ly = placed_at
        buffered.x, buffered.y = lx, ly
        buffered.cell_orient = row_orientations(buffered, lx, ly)
        legal = check_legality(buffered)
        if not legal.ok:
            raise ctx.fail(f"the placement is not legal after the buffers went in: {legal.summary()}",
                           code="cts.not_legal")
        text = Path(netlist_v).read_text(errors="replace")
        try:
            text = verilog_with_buffers(text, top, netlist, plan)
        except EngineError as exc:
            raise ctx.fail(exc.message, code="cts.netlist") from None
        hold = None
        if cfg.hold_repair and plan.sinks:
            from engine.flow.hold import constraints, repair_hold

            ctx.progress(0.6, "hold repair: timing the clock tree with OpenSTA")
            try:
                hold = repair_hold(ctx, buffered, text, top, constraints(ctx, port), clock=port)
            except EngineError as exc:
                raise ctx.fail(exc.message, hint=exc.hint, code="cts.hold", knob=exc.knob) from None
            buffered, text = hold.netlist, hold.verilog
            legal = check_legality(buffered)
        moved = np.hypot(buffered.x[:n_old] - netlist.x, buffered.y[:n_old] - netlist.y)
        write_def(buffered, ctx.step_dir / "cts.def", ctx.pdk, **kw)
        (ctx.step_dir / "netlist.v").write_text(text)
        self._write_tree(ctx, buffered, plan, n_old, port)
        lib = liberty_cells(ctx.pdk)
        clock_bufs = [b for b in plan.buffers if b.tree == "clock"]
        repair_bufs = [b for b in plan.buffers if b.tree == "fanout"]
        after = fanouts(buffered, special)
        metrics.update({
            "cts__buffer__count": len(clock_bufs),
            "cts__level__count": plan.levels,
            "cts__sink__count": plan.sinks,
            "cts__repair__net__count": len(plan.repaired_nets),
            "cts__repair__buffer__count": len(repair_bufs),
            "cts__fanout__max": int(after.max()) if len(after) else 0,
            "cts__buffer__area_um2": round(sum(lib[b.cell].area for b in plan.buffers + (hold.buffers if hold
                                                                                          else [])), 2),
            "cts__displacement__max_um": round(float(moved.max()) if len(moved) else 0.0, 3),
            "cts__hpwl": round(buffered.hpwl(), 2),
            "cts__cell__count": int((~buffered.cell_is_io).sum()),
            "cts__legal": bool(legal.ok),
        })
        if port and clk_net is not None:
            metrics["cts__clock__net"] = netlist.net_names[clk_net]
        if plan.skew_ns is not None:
            metrics["cts__skew_estimate_ns"] = round(plan.skew_ns, 4)
            metrics["cts__latency_estimate_ns"] = round(plan.latency_ns or 0.0, 4)
        parts = []
        if clock_bufs:
            parts.append(f"clock tree of {len(clock_bufs)} buffers in {plan.levels} level(s) over {plan.sinks} "
                         f"sinks of {port} (skew estimate {(plan.skew_ns or 0.0) * 1e3:.0f} ps)")
        else:
            parts.extend(notes)
        if plan.repaired_nets:
            parts.append(f"{len(repair_bufs)} buffers on {len(plan.repaired_nets)} nets above fanout "
                         f"{cfg.fanout_limit}")
        artefacts = {"def": "cts.def", "netlist_v": "netlist.v", "tree": "tree.json"}
        if hold is not None:
            metrics.update(self._hold_metrics(hold, cfg.hold_margin_ns))
            artefacts["hold"] = self._write_hold(ctx, buffered, hold)
            parts.append(self._hold_message(hold))
        return StepResult(metrics=metrics, artefacts=artefacts, message="; ".join(parts))

    # -------------------------------------------------------------------------------------------- helpers
    @staticmethod
    def _clock_port(ctx: StepContext, top: str) -> tuple[str | None, str]:
        """The clock port as the timing step chooses it: timing.sdc's create_clock, clock_port, or found."""
        from engine.flow.sdc import SdcError, read_sdc
        from engine.flow.timing import find_clock, read_ports

        ports = read_ports(ctx.artefact("synth", "netlist_json"), top)
        sdc_path = ctx.config.timing.sdc
        if sdc_path:
            try:
                sdc = read_sdc(sdc_path)
            except SdcError as exc:
                raise ctx.fail(exc.message, hint=exc.hint, code="timing.sdc") from None
            port = next((p for c in sdc.clocks for p in c.get("ports") or [] if p in ports.inputs), None)
            if port:
                return port, f"create_clock in {Path(sdc_path).name}"
        try:
            return find_clock(ports, ctx.config.clock_port)
        except ValueError:
            raise ctx.fail(f"clock port '{ctx.config.clock_port}' is not an input of '{top}'; its inputs are: "
                           f"{', '.join(ports.inputs) or 'none'}", code="timing.clock_port",
                           hint="set clock_port to one of the inputs (or leave it empty to detect clk/clock)") from None

    @staticmethod
    def _hold_metrics(hold, margin_ns: float) -> dict:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {"cts__hold__buffer__count": len(hold.buffers),
                "cts__hold__ws_before": r(hold.before.hold_ws), "cts__hold__ws_after": r(hold.after.hold_ws),
                "cts__hold__setup_ws_before": r(hold.before.setup_ws),
                "cts__hold__setup_ws_after": r(hold.after.setup_ws),
                "cts__hold__endpoint__count": sum(p.hold_ns < margin_ns for p in hold.before.pins),
                "cts__hold__endpoint__left": sum(p.hold_ns < margin_ns for p in hold.after.pins),
                "cts__hold__round__count": hold.rounds}

    @staticmethod
    def _hold_message(hold) -> str:
        b, a = hold.before.hold_ws, hold.after.hold_ws
        if b is None:
            return "hold repair: no hold check in the constraints"
        if not hold.buffers:
            return f"hold {b:+.3f} ns, no hold buffer needed" if b >= 0 else \
                f"hold {b:+.3f} ns not repaired ({hold.stopped})"
        return f"hold repair: {len(hold.buffers)} buffers, hold {b:+.3f} -> {a:+.3f} ns ({hold.stopped})"

    @staticmethod
    def _write_hold(ctx: StepContext, netlist: Netlist, hold) -> str:
        """hold/hold.json: before and after, each buffer (cell, legal centre, the pin it delays), why it stopped."""
        index = netlist.index()

        def sta(s) -> dict:
            return {"setup_ws_ns": s.setup_ws, "hold_ws_ns": s.hold_ws,
                    "pins": [[p.pin, round(p.hold_ns, 4), round(p.setup_ns, 4) if math.isfinite(p.setup_ns)
                              else None] for p in s.pins],
                    "starts": s.starts}  # short pin -> the input port its worst hold path starts at

        bufs = []
        for b in hold.buffers:
            c = index[b.name]
            bufs.append({"name": b.name, "cell": b.cell, "in_net": b.in_net, "out_net": b.out_net,
                         "x": round(float(netlist.x[c] + netlist.cell_w[c] / 2), 3),
                         "y": round(float(netlist.y[c] + netlist.cell_h[c] / 2), 3),
                         "sink_xy": [round(b.x, 3), round(b.y, 3)]})
        write_json(ctx.step_dir / "hold" / "hold.json", {"rounds": hold.rounds, "stopped": hold.stopped,
                                                          "before": sta(hold.before), "after": sta(hold.after),
                                                          "buffers": bufs})
        return "hold/hold.json"

    @staticmethod
    def _pass_through(ctx: StepContext, netlist: Netlist, netlist_v: Path, kw: dict, message: str,
                      metrics: dict | None = None) -> StepResult:
        """The placement and netlist unchanged (copied, so route and timing read this step's files alike)."""
        from engine.io.def_io import write_def

        write_def(netlist, ctx.step_dir / "cts.def", ctx.pdk, **kw)
        (ctx.step_dir / "netlist.v").write_text(Path(netlist_v).read_text(errors="replace"))
        out = dict(metrics or {})
        out.update({"cts__buffer__count": 0, "cts__repair__buffer__count": 0,
                    "cts__cell__count": int((~netlist.cell_is_io).sum())})
        return StepResult(metrics=out, artefacts={"def": "cts.def", "netlist_v": "netlist.v"}, message=message)

    @staticmethod
    def _write_tree(ctx: StepContext, netlist: Netlist, plan: Plan, n_old: int, port: str | None) -> None:
        """tree.json: each buffer (cell, level, legal centre) and the pins it drives, for the Timing page."""
        from engine.flow.spef import oriented_pin_positions

        px, py = oriented_pin_positions(netlist)
        index = netlist.index()
        drivers: dict[str, tuple[float, float, str]] = {}
        for b in plan.buffers:
            c = index[b.name]
            drivers[b.out_net] = (float(netlist.x[c] + netlist.cell_w[c] / 2),
                                  float(netlist.y[c] + netlist.cell_h[c] / 2), b.name)
        pn = netlist.pin_net()
        loads: dict[str, list[list]] = {}
        for p in range(netlist.n_pins):
            name = netlist.net_names[pn[p]]
            if name in drivers and netlist.pin_dir[p] != PIN_OUTPUT:
                loads.setdefault(name, []).append([netlist.cell_names[netlist.pin_cell[p]], netlist.pin_names[p],
                                                   round(float(px[p]), 3), round(float(py[p]), 3)])
        root_xy = None
        if port and port in index:
            root_xy = [round(float(netlist.x[index[port]]), 3), round(float(netlist.y[index[port]]), 3)]
        write_json(ctx.step_dir / "tree.json", {
            "clock_port": port, "port_xy": root_xy, "levels": plan.levels, "skew_estimate_ns": plan.skew_ns,
            "buffers": [{"name": b.name, "cell": b.cell, "level": b.level, "tree": b.tree, "in_net": b.in_net,
                         "out_net": b.out_net, "x": round(drivers[b.out_net][0], 3),
                         "y": round(drivers[b.out_net][1], 3), "loads": loads.get(b.out_net, [])}
                        for b in plan.buffers],
            "repaired_nets": plan.repaired_nets})


def legalise_buffers(buffered: Netlist, n_old: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Legal positions with the buffers (cells n_old..) in the rows, or None when they do not fit.

    First the placed cells stay fixed and the buffers take free sites; the placer packs cells towards the centre
    (target density 1), so free sites are often far from where a buffer belongs. When that puts a buffer more than
    two rows from its cluster's centre, every cell is legalised again from where it is: Abacus keeps each row's
    order and shifts neighbours by about a buffer's width to make room, and the buffers stay near their centres."""
    from engine.place.errors import PlaceError
    from engine.place.legalize import legalize

    row_h = float(max((r.height for r in buffered.rows), default=10.0))
    hold = buffered.copy()
    hold.cell_fixed[:n_old] = True
    best = None
    try:
        hx, hy = legalize(hold, buffered.x, buffered.y)
        far = float((np.abs(hx[n_old:] - buffered.x[n_old:]) + np.abs(hy[n_old:] - buffered.y[n_old:])).max())
        best = (hx, hy)
        if far <= 2 * row_h:
            return best
    except PlaceError:
        pass
    try:
        return legalize(buffered, buffered.x, buffered.y)
    except PlaceError:
        return best


def cts_def_path(ctx: StepContext) -> Path | None:
    """The cts step's DEF when it ran in this run folder (route, timing and gds read it instead of place's)."""
    return ctx.artefact("cts", "def") if ctx.has_artefact("cts", "def") else None


def netlist_v_path(ctx: StepContext) -> Path:
    """The gate-level netlist the later steps read: cts's (with the buffers) when it ran, else synthesis's."""
    if ctx.has_artefact("cts", "netlist_v"):
        return ctx.artefact("cts", "netlist_v")
    return ctx.artefact("synth", "netlist_v")
