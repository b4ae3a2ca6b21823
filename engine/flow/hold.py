"""Hold repair after the clock tree: delay buffers on the data inputs of the flip-flops whose hold slack is short.

A propagated clock reaches each flip-flop a tree's latency after the port; a data path that is faster than that
(an input with zero input delay, a flop to flop path across skewed leaves) changes the D pin before the capturing
flop has held it: a hold violation. The repair, as OpenROAD's repair_timing -hold does in spirit:

1. OpenSTA times the buffered placement (propagated clock, wire parasitics estimated from the placed pins, the same
   constraints the timing step reads) and lists every register data pin with its hold and setup slack.
2. Each pin below cts.hold_margin_ns gets a chain of delay buffers in front of it (its sink moves to the chain's
   output): the cell of cts.hold_buffers and the chain length whose Liberty delay covers the shortfall with the
   least area. A pin whose setup slack cannot pay for the delay is left alone.
3. The buffers go next to the sink and are legalised like the clock tree's (engine.flow.cts.legalise_buffers);
   OpenSTA times the result again, and the round is kept only if setup WNS did not turn negative (or, already
   negative, did not get worse). Rounds repeat until every pin meets the margin, cts.hold_max_buffers is reached,
   or a round brings nothing.
The buffers only delay a signal, so the gate-level simulation (verify) still matches the RTL.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.flow.base import StepContext
from engine.flow.cts import (
    Buffer,
    Plan,
    buffer_cells,
    legalise_buffers,
    pin_cap,
    unique_name,
    verilog_with_buffers,
    with_buffers,
)
from engine.flow.limits import design_scale
from engine.netlist import Netlist
from engine.pdk import LibertyCell, liberty_cells
from engine.validate import tcl_word

log = logging.getLogger(__name__)

MAX_ROUNDS = 6  # each round re-times the design; the Liberty estimate is close, so two or three rounds suffice
MAX_CHAIN = 8  # buffers one pin may get in one round: a longer chain means the shortfall is not a hold race
_UNCONSTRAINED = 1e6  # OpenSTA's slack of a pin no check reaches is ~1e30 (ns)


@dataclass
class PinSlack:
    pin: str  # OpenSTA's full name, instance/pin
    hold_ns: float
    setup_ns: float


@dataclass
class StaSummary:
    setup_ws: float | None  # ns; None: nothing constrained
    hold_ws: float | None
    pins: list[PinSlack] = field(default_factory=list)
    starts: dict[str, str] = field(default_factory=dict)  # short pin -> the input port its worst hold path starts at
    port_setup: dict[str, float] = field(default_factory=dict)  # that port -> worst setup slack through it (ns)


@dataclass
class HoldResult:
    netlist: Netlist
    verilog: str
    buffers: list = field(default_factory=list)  # engine.flow.cts.Buffer, tree "hold"
    before: StaSummary | None = None
    after: StaSummary | None = None
    rounds: int = 0
    stopped: str = ""  # why the repair stopped, for the step message


# ------------------------------------------------------------------------------------------------ timing
def hold_script(*, liberty: list[Path], netlist_v: Path, top: str, sdc: Path, spef: Path | None,
                margin_ns: float = 0.0) -> str:
    """OpenSTA: setup and hold WNS, each register data pin with its worst hold and setup slack (ns), and for each
    endpoint short of ``margin_ns`` whose worst hold path starts at an input port, that port and its setup slack."""
    q = tcl_word
    lines = [*(f"read_liberty {q(lib)}" for lib in liberty), f"read_verilog {q(netlist_v)}",
             f"link_design {q(top)}", f"read_sdc {q(sdc)}"]
    if spef is not None:
        lines.append(f"read_spef {q(spef)}")
    lines += [
        "set_propagated_clock [all_clocks]",
        # worst_slack_cmd is in seconds (OpenSTA 2.0.17 has no report_worst_slack -min); pin_property in ns.
        'puts "CDA_SETUP_WS [sta::worst_slack_cmd max]"',
        'puts "CDA_HOLD_WS [sta::worst_slack_cmd min]"',
        "foreach pin [all_registers -data_pins] {",
        '  puts "CDA_PIN [get_full_name $pin] [sta::pin_property $pin min_rise_slack] '
        '[sta::pin_property $pin min_fall_slack] [sta::pin_property $pin max_rise_slack] '
        '[sta::pin_property $pin max_fall_slack]"',
        "}",
        # A path's pins run from its endpoint back to its startpoint.
        f"foreach pe [find_timing_paths -path_delay min -group_count 1000000 -endpoint_count 1 "
        f"-slack_max {margin_ns:.6g}] {{",
        "  set sp [lindex [[$pe path] pins] end]",
        "  if {[$sp is_top_level_port]} {",
        '    puts "CDA_START [get_full_name [[$pe path] pin]] [get_full_name $sp] '
        '[sta::pin_property $sp max_rise_slack] [sta::pin_property $sp max_fall_slack]"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_hold_report(text: str) -> StaSummary:
    def ws(tag: str) -> float | None:
        m = re.search(rf"^{tag}\s+(\S+)", text, re.M)
        v = _float(m.group(1)) if m else None
        return v * 1e9 if v is not None and abs(v) < 1e-3 else None  # seconds; 1e30 = unconstrained

    pins = []
    for m in re.finditer(r"^CDA_PIN\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.M):
        vals = [_float(v) for v in m.groups()[1:]]
        hold = min((v for v in vals[:2] if v is not None), default=None)
        setup = min((v for v in vals[2:] if v is not None), default=None)
        if hold is None or hold > _UNCONSTRAINED:
            continue  # no hold check reaches this pin
        pins.append(PinSlack(m.group(1), hold, setup if setup is not None and setup < _UNCONSTRAINED else math.inf))
    out = StaSummary(ws("CDA_SETUP_WS"), ws("CDA_HOLD_WS"), pins)
    for m in re.finditer(r"^CDA_START\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.M):
        setup = min((v for v in (_float(m.group(3)), _float(m.group(4))) if v is not None), default=None)
        out.starts[m.group(1)] = m.group(2)
        out.port_setup[m.group(2)] = setup if setup is not None and setup < _UNCONSTRAINED else math.inf
    return out


def time_placement(ctx: StepContext, netlist: Netlist, verilog: str, top: str, sdc_path: Path,
                   tag: str) -> StaSummary:
    """OpenSTA on ``verilog`` placed as ``netlist``; files under <step>/hold/ named by ``tag``."""
    from engine.flow.spef import estimate, write_spef

    folder = ctx.step_dir / "hold"
    folder.mkdir(exist_ok=True)
    netlist_v = folder / f"{tag}.v"
    netlist_v.write_text(verilog)
    nets = estimate(netlist, ctx.pdk, layers=ctx.config.route.layers)
    spef = write_spef(folder / f"{tag}.spef", top, nets, netlist)
    script = folder / f"{tag}.tcl"
    script.write_text(hold_script(liberty=ctx.pdk.liberty_paths, netlist_v=netlist_v, top=top, sdc=sdc_path,
                                  spef=spef, margin_ns=ctx.config.cts.hold_margin_ns))
    cells = int((~netlist.cell_is_io).sum())
    proc = ctx.tool(["sta", "-no_init", "-exit", script.name], f"hold/{tag}.log", cwd=folder,
                    timeout=ctx.config.timing.timeout_s * design_scale(ctx.config.limits, cells, 50_000),
                    timeout_knob="timing.timeout_s")
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("Error")]
    if errors:
        raise ctx.fail(f"OpenSTA (hold repair): {errors[0]}", log_path=folder / f"{tag}.log", code="cts.hold_sta")
    return parse_hold_report(proc.stdout)


# ------------------------------------------------------------------------------------------------ the chain
def chain_delay_ns(cell: LibertyCell, n: int, load_pf: float) -> float:
    """Liberty estimate of ``n`` ``cell`` in a row driving ``load_pf``: intrinsic plus drive x the next input."""
    intrinsic, drive = cell.intrinsic_ns or 0.0, cell.drive_kohm or 0.0
    cin = cell.inputs[0].capacitance_pf
    return n * intrinsic + drive * ((n - 1) * cin + load_pf)


def choose_chain(cells: list[LibertyCell], need_ns: float, load_pf: float,
                 scale: float = 1.0) -> tuple[LibertyCell, int] | None:
    """The cell and count whose chain delay (the Liberty estimate x ``scale``) covers ``need_ns`` with the least
    area (then the fewest cells); None when no chain of up to MAX_CHAIN does."""
    best: tuple[float, int, LibertyCell] | None = None
    for cell in cells:
        for n in range(1, MAX_CHAIN + 1):
            if chain_delay_ns(cell, n, load_pf) * scale >= need_ns:
                if best is None or (cell.area * n, n) < (best[0], best[1]):
                    best = (cell.area * n, n, cell)
                break
    return (best[2], best[1]) if best else None


def shortfall_ns(sta: StaSummary, margin_ns: float) -> float:
    """Hold slack missing to the margin, summed over the register inputs (0 = every one meets it)."""
    return float(sum(max(0.0, margin_ns - p.hold_ns) for p in sta.pins))


def constraints(ctx: StepContext, clock: str | None) -> Path:
    """The constraints the timing step will read (timing.sdc, else the generated ones), saved under hold/."""
    from engine.flow.sdc import SdcError, generated_sdc, read_sdc

    tcfg, period = ctx.config.timing, float(ctx.config.clock_ns)
    if tcfg.sdc:
        try:
            text = read_sdc(tcfg.sdc).text
        except SdcError as exc:
            raise ctx.fail(exc.message, hint=exc.hint, code="timing.sdc") from None
    else:
        text = generated_sdc(clock=clock, period=period, in_delay=tcfg.default_input_delay_frac * period,
                             out_delay=tcfg.default_output_delay_frac * period).text
    folder = ctx.step_dir / "hold"
    folder.mkdir(exist_ok=True)
    (folder / "constraints.sdc").write_text(text)
    return folder / "constraints.sdc"


def _setup_ok(after: StaSummary, current: StaSummary) -> bool:
    """Setup WNS did not turn negative (or, already negative, get worse) with this round's buffers."""
    if current.setup_ws is None or after.setup_ws is None:
        return True
    if current.setup_ws >= 0:
        return after.setup_ws >= 0
    return after.setup_ws >= current.setup_ws - 1e-4


# ------------------------------------------------------------------------------------------------ the repair
def _chain(plan: Plan, taken: set[str], tag: str, cell: LibertyCell, n: int, x: float, y: float, src: str) -> str:
    """``n`` buffers in a row from net ``src``, all asked for at (x, y); returns the last one's output net."""
    for k in range(n):
        name = unique_name(f"hold_{tag}_{k}", taken)
        out = unique_name(f"{name}_y", taken)
        plan.buffers.append(Buffer(name, cell.name, k + 1, x, y, src, out, "hold"))
        src = out
    return src


def repair_hold(ctx: StepContext, netlist: Netlist, verilog: str, top: str, sdc_path: Path,
                clock: str | None = None) -> HoldResult:
    """``netlist`` (placed, legal, clock tree in) and its ``verilog`` with hold buffers until every register data
    pin has cts.hold_margin_ns of hold slack, the buffer cap is reached, or a round brings nothing.

    Register inputs whose worst hold path starts at the same input port (a reset racing the clock into many
    flip-flops) share one chain on that port's net, next to the port, when the port's setup slack can pay for it;
    the others get a chain each, in front of their D pin."""
    from engine.flow.cts import cell_sinks, clock_net
    from engine.flow.spef import default_rc, oriented_pin_positions
    from engine.place.legalize import check_legality, row_orientations

    cfg = ctx.config.cts
    cells = buffer_cells(ctx.pdk, cfg.hold_buffers, "cts.hold_buffers")
    lib = liberty_cells(ctx.pdk)
    c_per_um = default_rc(ctx.pdk, ctx.config.route.layers).c_per_um
    current = time_placement(ctx, netlist, verilog, top, sdc_path, "round0")
    result = HoldResult(netlist=netlist, verilog=verilog, before=current, after=current)
    taken = set(netlist.cell_names) | set(netlist.net_names)
    # Measured gain / Liberty estimate of the last round: the estimate reads the tables at their smallest load and
    # a slow input slew, so a short buffer driving one D pin is faster than it says; the next round corrects it.
    scale = 1.0
    for rnd in range(1, MAX_ROUNDS + 1):
        short = sorted((p for p in current.pins if p.hold_ns < cfg.hold_margin_ns), key=lambda p: p.hold_ns)
        if not short:
            result.stopped = f"every register input has {cfg.hold_margin_ns:g} ns of hold slack"
            break
        room = cfg.hold_max_buffers - len(result.buffers)
        if room <= 0:
            result.stopped = f"cts.hold_max_buffers = {cfg.hold_max_buffers} reached"
            break
        index = netlist.index()
        pin_of = {(netlist.cell_names[netlist.pin_cell[p]], netlist.pin_names[p]): p for p in range(netlist.n_pins)
                  if not netlist.cell_is_io[netlist.pin_cell[p]]}
        px, py = oriented_pin_positions(netlist)
        pin_net = netlist.pin_net()
        plan = Plan()
        estimated: dict[str, float] = {}  # pin -> the delay its own chain adds this round, as estimated
        via_port: set[str] = set()  # pins a port's chain delays this round (their gain is capped by other inputs)
        skipped_setup = 0
        by_port: dict[str, list[PinSlack]] = {}
        for ps in short:
            port = current.starts.get(ps.pin)
            if port and port != clock:
                by_port.setdefault(port, []).append(ps)
        hpwl = netlist.net_hpwl()
        for port, members in sorted(by_port.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            net = clock_net(netlist, port)  # the net the port's terminal drives
            if len(members) < 2 or net is None:
                continue  # one input: the chain in front of its D pin is as short and nearer
            sinks = cell_sinks(netlist, net)
            if not len(sinks) or any(int(q) in plan.moves for q in sinks):
                continue
            load = sum(pin_cap(lib, netlist, int(q)) for q in sinks) + c_per_um * float(hpwl[net])
            choice = choose_chain(cells, max(cfg.hold_margin_ns - m.hold_ns for m in members), load, scale)
            if choice is None or choice[1] > room:
                continue
            cell, n = choice
            delay = chain_delay_ns(cell, n, load) * scale
            if current.port_setup.get(port, math.inf) - delay < cfg.hold_margin_ns:
                continue  # the port's paths cannot pay for it: each input gets its own chain (or none) below
            io = index[port]
            out = _chain(plan, taken, _ident_pin(port), cell, n, float(netlist.x[io]), float(netlist.y[io]),
                         netlist.net_names[net])
            for q in sinks:
                plan.moves[int(q)] = out
            via_port.update(m.pin for m in members)
            room -= n
        for ps in short:
            inst, _, pname = ps.pin.replace("\\", "").rpartition("/")
            p = pin_of.get((inst, pname))
            if p is None or inst not in index or ps.pin in via_port or int(p) in plan.moves:
                continue
            need = cfg.hold_margin_ns - ps.hold_ns
            choice = choose_chain(cells, need, pin_cap(lib, netlist, p), scale)
            if choice is None:
                continue
            cell, n = choice
            if n > room:
                break
            delay = chain_delay_ns(cell, n, pin_cap(lib, netlist, p)) * scale
            # The delay lands on the setup path too: leave the pin its margin of setup slack (a pin that races on
            # hold and is late on setup cannot be fixed by delay).
            if ps.setup_ns - delay < cfg.hold_margin_ns:
                skipped_setup += 1
                continue
            plan.moves[int(p)] = _chain(plan, taken, f"{_ident_pin(inst)}_{pname}", cell, n, float(px[p]),
                                        float(py[p]), netlist.net_names[pin_net[p]])
            estimated[ps.pin] = delay
            room -= n
        if not plan.buffers:
            result.stopped = (f"{len(short)} register input(s) short of hold slack, "
                              + (f"{skipped_setup} without the setup slack to pay for a delay" if skipped_setup
                                 else "none a buffer chain of cts.hold_buffers can fix"))
            break
        ctx.check_cancel()
        ctx.progress(0.6 + 0.05 * rnd, f"hold repair round {rnd}: {len(plan.buffers)} buffers in front of "
                     f"{len(plan.moves)} pins")
        buffered = with_buffers(netlist, ctx.pdk, plan)
        placed_at = legalise_buffers(buffered, netlist.n_cells)
        if placed_at is None:
            result.stopped = f"no room in the rows for {len(plan.buffers)} more hold buffers"
            break
        buffered.x, buffered.y = placed_at
        buffered.cell_orient = row_orientations(buffered, buffered.x, buffered.y)
        if not check_legality(buffered).ok:
            result.stopped = "the hold buffers could not be legalised"
            break
        text = verilog_with_buffers(verilog, top, netlist, plan)
        after = time_placement(ctx, buffered, text, top, sdc_path, f"round{rnd}")
        if not _setup_ok(after, current):
            result.stopped = (f"round {rnd} would take setup WNS from {current.setup_ws:+.3f} to "
                              f"{after.setup_ws:+.3f} ns: not kept")
            break
        if shortfall_ns(after, cfg.hold_margin_ns) >= shortfall_ns(current, cfg.hold_margin_ns) - 1e-4:
            result.stopped = f"round {rnd} did not reduce the hold shortfall: not kept"
            break
        was = {p.pin: p.hold_ns for p in current.pins}
        ratios = [(p.hold_ns - was[p.pin]) / estimated[p.pin] for p in after.pins
                  if p.pin in estimated and p.pin in was and estimated[p.pin] > 0]
        if ratios:
            scale = float(np.clip(scale * np.median(ratios), 0.25, 2.0))
        netlist, verilog, current = buffered, text, after
        result.buffers += plan.buffers
        result.rounds = rnd
        taken |= {b.name for b in plan.buffers} | {b.out_net for b in plan.buffers}
    else:
        result.stopped = f"{MAX_ROUNDS} rounds"
    result.netlist, result.verilog, result.after = netlist, verilog, current
    return result


def _ident_pin(name: str) -> str:
    return re.sub(r"\W", "_", name).strip("_") or "n"

