"""Static timing and power with OpenSTA (Debian's ``sta``), run headless on a generated Tcl script.

Inputs: the mapped netlist (01-synth/netlist.v), the Liberty, a clock from the config (or found: a port called
clk/clock, or the port that drives the flip-flops' clock pins), and wire parasitics as SPEF estimated from the
routed wires (04-route) or, before routing, from the placed pins (engine.flow.spef). A design without a clock is
timed from inputs to outputs against a virtual clock of the same period, so a combinational block still gets a
slack and an fmax. Power uses switching activity from the testbench's VCD when one exists, a default otherwise;
``power__activity_source`` says which.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FlowError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.limits import design_scale
from engine.flow.sdc import SdcError, generated_sdc, read_sdc
from engine.flow.spef import estimate, oriented_pin_positions, parasitics_summary, read_routed_wires, write_spef
from engine.io.def_io import read_def
from engine.io.yosys_json import bit_name, load_yosys_json, top_module
from engine.netlist import Netlist
from engine.runs import write_json
from engine.validate import MIB, tcl_word

log = logging.getLogger(__name__)

CLOCK_NAMES = ("clk", "clock", "clk_i", "i_clk", "clock_i", "i_clock", "sys_clk", "clkin", "clk_in")


# ------------------------------------------------------------------------------------------------------ clock
@dataclass
class Ports:
    inputs: list[str]  # port names (whole ports, not bits)
    outputs: list[str]
    widths: dict[str, int]
    clock_drivers: list[str]  # 1-bit input ports wired to a flip-flop clock pin
    has_flops: bool


def read_ports(netlist_json: Path, top: str | None) -> Ports:
    data = load_yosys_json(netlist_json)
    _, module = top_module(data, top)
    inputs: list[str] = []
    outputs: list[str] = []
    widths: dict[str, int] = {}
    bit_port: dict[int, str] = {}
    for name, port in module.get("ports", {}).items():
        widths[name] = len(port["bits"])
        (inputs if port.get("direction") == "input" else outputs).append(name)
        if port.get("direction") == "input" and len(port["bits"]) == 1 and isinstance(port["bits"][0], int):
            bit_port[port["bits"][0]] = name
    drivers: dict[str, int] = {}
    has_flops = False
    for cell in module.get("cells", {}).values():
        conns = cell.get("connections", {})
        if cell.get("type", "").startswith(("DFF", "LATCH")):
            has_flops = True
        for pin in ("CLK", "C", "CK", "G"):
            for bit in conns.get(pin, []):
                if bit in bit_port and cell.get("type", "").startswith(("DFF", "LATCH")):
                    drivers[bit_port[bit]] = drivers.get(bit_port[bit], 0) + 1
    return Ports(inputs, outputs, widths, sorted(drivers, key=lambda p: -drivers[p]), has_flops)


def find_clock(ports: Ports, configured: str | None) -> tuple[str | None, str]:
    """-> (clock port or None, how it was chosen). Raises ValueError for a configured port that does not exist."""
    if configured:
        if configured not in ports.inputs:
            raise ValueError(configured)
        return configured, "config"
    lower = {p.lower(): p for p in ports.inputs if ports.widths.get(p) == 1}
    for name in CLOCK_NAMES:
        if name in lower:
            return lower[name], "name"
    if ports.clock_drivers:
        return ports.clock_drivers[0], "drives the flip-flops' clock pins"
    return None, "none"


# ------------------------------------------------------------------------------------------------------ script
def sta_script(*, liberty: Path | list[Path], netlist_v: Path, top: str, sdc: Path, spef: Path | None, paths: int,
               activity: dict[str, tuple[float, float]] | None, default_activity: float,
               propagated: bool = False, clocked: bool = False, max_slew_ns: float | None = None) -> str:
    """The OpenSTA script. ``propagated``: a clock tree is in the netlist, so clock arrivals are computed through
    it (set_propagated_clock) and the skew is reported; ``clocked``: hold slack is meaningful (a real clock);
    ``max_slew_ns``: the slew limit checked on every pin."""
    # Every name and path is one Tcl word from tcl_word: port names come from the user's Verilog (escaped
    # identifiers may hold any printable character), so none is pasted between braces, where a '}' would end it.
    # The constraints are a file (generated, or the user's checked by engine.flow.sdc), saved with the run.
    q = tcl_word
    libs = [liberty] if isinstance(liberty, (str, Path)) else list(liberty)  # the cells', then each macro's
    lines = [*(f"read_liberty {q(lib)}" for lib in libs), f"read_verilog {q(netlist_v)}", f"link_design {q(top)}",
             f"read_sdc {q(sdc)}"]
    if spef is not None:
        lines.append(f"read_spef {q(spef)}")
    if propagated:
        lines.append("set_propagated_clock [all_clocks]")
    if max_slew_ns:
        lines.append(f"set_max_transition {max_slew_ns:.6g} [current_design]")
    lines += [
        'puts "CDA_BEGIN_PATHS"',
        f"report_checks -path_delay max -format full_clock_expanded -fields {{input_pin slew cap}} -digits 4 "
        f"-group_count {int(paths)} -endpoint_count 1",
        'puts "CDA_END_PATHS"',
        "report_worst_slack -digits 4",
        "report_tns -digits 4",
        "report_wns -digits 4",
        'puts "CDA_BEGIN_UNCONSTRAINED"',
        "report_checks -unconstrained -path_delay max -digits 4 -group_count 1",
        'puts "CDA_END_UNCONSTRAINED"',
    ]
    if clocked:
        # OpenSTA 2.0.17 has no -min on report_worst_slack: its Tcl API gives hold slack (in seconds).
        lines += ['puts "CDA_HOLD_WS [sta::worst_slack_cmd min]"',
                  'puts "CDA_HOLD_TNS [sta::total_negative_slack_cmd min]"',
                  # Flop to flop alone: with a propagated clock an input with zero input delay (the generated SDC's
                  # default) races the clock's latency, which says more about the SDC than about the tree.
                  'puts "CDA_BEGIN_HOLD_REG"',
                  "catch {report_checks -path_delay min -from [all_registers -clock_pins] -format end "
                  "-group_count 1 -endpoint_count 1 -digits 4}",
                  'puts "CDA_END_HOLD_REG"']
    if propagated:
        lines += ['puts "CDA_BEGIN_SKEW"', "report_clock_skew -digits 4", 'puts "CDA_END_SKEW"']
    if max_slew_ns:
        lines += ['puts "CDA_BEGIN_SLEW"', "report_check_types -max_transition -all_violators -digits 4",
                  'puts "CDA_END_SLEW"', 'puts "CDA_BEGIN_WORST_SLEW"', "report_check_types -max_transition -digits 4",
                  'puts "CDA_END_WORST_SLEW"']
    if activity:
        lines.append(f"set_power_activity -input -activity {default_activity:.6g}")
        for port, (act, duty) in sorted(activity.items()):
            # tcl_word escapes every brace, so the quoted port cannot close catch's braces.
            lines.append(f"catch {{set_power_activity -input_ports [get_ports {q(port)}] -activity {act:.6g} "
                         f"-duty {duty:.4g}}}")
    else:
        lines.append(f"set_power_activity -global -activity {default_activity:.6g} -duty 0.5")
    lines += ['puts "CDA_BEGIN_POWER"', "report_power -digits 6", 'puts "CDA_END_POWER"']
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ parsing
_PIN_LINE = re.compile(r"^\s*((?:-?\d+\.\d+\s+)*)([\^v])\s+(\S+)\s+\(([^)]+)\)\s*$")


def _section(text: str, name: str) -> str:
    m = re.search(rf"CDA_BEGIN_{name}\n(.*?)CDA_END_{name}", text, re.S)
    return m.group(1) if m else ""


def parse_paths(report: str) -> list[dict]:
    """Paths of ``report_checks -format full_clock_expanded -fields {input_pin slew cap}``."""
    out = []
    for block in re.split(r"\n(?=Startpoint:)", report):
        sm = re.search(r"Startpoint:\s*(\S+)\s*(.*)", block)
        em = re.search(r"Endpoint:\s*(\S+)\s*(.*)", block)
        if not sm or not em:
            continue
        slack_m = re.search(r"(-?\d+\.\d+)\s+slack \((MET|VIOLATED)\)", block)
        arrival_m = re.search(r"(-?\d+\.\d+)\s+data arrival time", block)
        required_m = re.search(r"(-?\d+\.\d+)\s+data required time", block)
        group_m = re.search(r"Path Group:\s*(\S+)", block)
        data_part = block.split("data arrival time")[0]
        pins = []
        for line in data_part.splitlines():
            m = _PIN_LINE.match(line)
            if not m:
                continue
            nums = [float(v) for v in m.group(1).split()]
            if len(nums) < 2:
                continue
            pin = m.group(3)
            kind = m.group(4)
            inst, _, pin_name = pin.rpartition("/")
            is_port = kind in ("in", "out", "inout")
            pins.append({
                "pin": pin,
                "instance": None if is_port else inst,
                "pin_name": pin if is_port else pin_name,
                "cell": "port" if is_port else kind,
                "direction": kind if is_port else None,
                "transition": "rise" if m.group(2) == "^" else "fall",
                "arrival_ns": nums[-1],
                "delay_ns": nums[-2],
                "slew_ns": nums[-3] if len(nums) >= 3 else None,
                "cap_pf": nums[-4] if len(nums) >= 4 else None,
            })
        out.append({
            "startpoint": sm.group(1), "startpoint_kind": sm.group(2).strip("() "),
            "endpoint": em.group(1), "endpoint_kind": em.group(2).strip("() "),
            "group": group_m.group(1) if group_m else None,
            "slack_ns": float(slack_m.group(1)) if slack_m else None,
            "met": (slack_m.group(2) == "MET") if slack_m else None,
            "arrival_ns": float(arrival_m.group(1)) if arrival_m else None,
            "required_ns": float(required_m.group(1)) if required_m else None,
            "pins": pins,
        })
    return out


def parse_power(text: str) -> dict[str, float] | None:
    m = re.search(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if not m:
        return None
    try:
        internal, switching, leakage, total = (float(v) for v in m.groups())
    except ValueError:
        return None
    return {"internal": internal, "switching": switching, "leakage": leakage, "total": total}


def parse_skew(text: str) -> float | None:
    """The skew of ``report_clock_skew`` (the last number of its table; the largest over the clocks)."""
    found = []
    for block in re.split(r"(?m)^Clock ", text):
        nums = re.findall(r"^\s*(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s*$", block, re.M)
        if nums:
            found.append(float(nums[-1][2]))
    return max(found) if found else None


def parse_slew_checks(violators: str, worst: str) -> tuple[int, float | None]:
    """(pins over the slew limit, the worst slew) from ``report_check_types -max_transition``."""
    count = len(re.findall(r"\(VIOLATED\)", violators))
    m = re.search(r"^\S+\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)", worst, re.M)
    return count, float(m.group(2)) if m else None


def drv_checks(netlist: Netlist, pdk, nets, fanout_limit: int) -> tuple[int, int]:
    """(nets whose pin + wire load exceeds their driver's Liberty max_capacitance, signal nets driving more cell
    inputs than ``fanout_limit``). OpenSTA 2.0.17 checks only slew limits, so these two are counted here, from the
    same Liberty and the same wire capacitance the SPEF holds."""
    from engine.netlist import PIN_OUTPUT
    from engine.pdk import liberty_cells

    lib = liberty_cells(pdk)
    wire_c = {n.name: n.total_c for n in nets}
    special = {n.name for n in netlist.special_nets or []}
    cap_bad = fan_bad = 0
    for k, name in enumerate(netlist.net_names):
        pins = netlist.net_pins[netlist.net_start[k]:netlist.net_start[k + 1]]
        load, limit, sinks = wire_c.get(name, 0.0), None, 0
        for p in pins:
            c = netlist.pin_cell[p]
            if netlist.cell_is_io[c]:
                continue
            cell = lib.get(netlist.cell_types[c])
            pin = cell.pins.get(netlist.pin_names[p]) if cell else None
            if netlist.pin_dir[p] == PIN_OUTPUT:
                limit = pin.max_capacitance_pf if pin else None
            else:
                sinks += 1
                load += pin.capacitance_pf if pin else 0.0
        cap_bad += int(limit is not None and load > limit)
        fan_bad += int(name not in special and sinks > fanout_limit)
    return cap_bad, fan_bad


def _num(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text, re.M)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def add_positions(paths: list[dict], netlist: Netlist) -> None:
    """Pin positions (um) from the placement, so the cockpit can draw each path on the layout."""
    px, py = oriented_pin_positions(netlist)
    index: dict[tuple[str, str], int] = {}
    for p in range(netlist.n_pins):
        c = netlist.pin_cell[p]
        key = (netlist.cell_names[c], "") if netlist.cell_is_io[c] else (netlist.cell_names[c], netlist.pin_names[p])
        index.setdefault(key, p)
    for path in paths:
        for pin in path["pins"]:
            key = (pin["pin"], "") if pin["instance"] is None else (pin["instance"], pin["pin_name"])
            hit = index.get(key)
            if hit is None and pin["instance"] is not None:
                hit = index.get((pin["instance"].replace("\\", ""), pin["pin_name"]))
            if hit is not None:
                pin["x_um"], pin["y_um"] = round(float(px[hit]), 3), round(float(py[hit]), 3)


# ------------------------------------------------------------------------------------------------------ step
class TimingStep(Step):
    id = "timing"
    # verify is an optional input: when both run, verify comes first and its RTL VCD gives power its activity
    inputs = (Input("synth", "netlist_v"), Input("synth", "netlist_json"), Input("place", "def", required=False),
              Input("cts", "netlist_v", required=False), Input("cts", "def", required=False),
              Input("route", "def", required=False), Input("verify", "vcd", required=False))
    uses = ("timing", "clock_ns", "clock_port", "tech_dir", "testbench", "cts")
    version = 3  # 3: propagated clocks through the clock tree, skew, hold slack, slew/cap/fanout checks

    def run(self, ctx: StepContext) -> StepResult:
        cfg = ctx.config
        tcfg = cfg.timing
        if not cfg.clock_ns or cfg.clock_ns <= 0:
            raise ctx.fail(f"clock period {cfg.clock_ns} ns is not positive", hint="give a period like --clock 10ns",
                           code="timing.clock_period")
        if ctx.pdk.liberty_path is None:
            raise ctx.fail(f"no Liberty (.lib) file next to {ctx.pdk.lef_path}: OpenSTA needs one",
                           code="tech.no_liberty")
        from engine.flow.cts import netlist_v_path

        netlist_v = netlist_v_path(ctx)  # with the clock tree's buffers when cts ran
        netlist_json = ctx.artefact("synth", "netlist_json")
        top = ctx.metrics("synth").get("design__top") or cfg.top
        ports = read_ports(netlist_json, top)
        try:
            clock, clock_how = find_clock(ports, cfg.clock_port)
        except ValueError:
            raise ctx.fail(f"clock port '{cfg.clock_port}' is not an input of '{top}'; its inputs are: "
                           f"{', '.join(ports.inputs) or 'none'}",
                           hint="set clock_port to one of the inputs (or leave it empty to detect clk/clock)",
                           code="timing.clock_port") from None
        period = float(cfg.clock_ns)
        if tcfg.sdc:
            try:
                sdc = read_sdc(tcfg.sdc)
            except SdcError as exc:
                raise ctx.fail(exc.message, hint=exc.hint, code="timing.sdc") from None
            if not sdc.clocks:
                raise ctx.fail(f"{tcfg.sdc} defines no clock (create_clock)", code="timing.sdc",
                               hint="add a create_clock, or leave timing.sdc empty to use the generated one")
            period = sdc.period_ns or period
            sdc_clock = next((p for c in sdc.clocks for p in c.get("ports") or [] if p in ports.inputs), None)
            if sdc_clock:
                clock, clock_how = sdc_clock, f"create_clock in {Path(tcfg.sdc).name}"
        else:
            sdc = generated_sdc(clock=clock, period=period, in_delay=tcfg.default_input_delay_frac * period,
                                out_delay=tcfg.default_output_delay_frac * period)
        (ctx.step_dir / "constraints.sdc").write_text(sdc.text)

        # Parasitics: routed wires when routing ran, else the placed pins' half-perimeter.
        ctx.progress(0.05, "estimating wire parasitics")
        netlist, source = self._layout(ctx)
        spef_path = None
        par: dict[str, float] = {}
        nets = []
        if netlist is not None:
            wires = None
            if source == "routed":
                layers = {layer.name for layer in ctx.pdk.routing_layers()}
                wires, _ = read_routed_wires(ctx.artefact("route", "def"), layers)
            nets = estimate(netlist, ctx.pdk, wires=wires, layers=cfg.route.layers)
            spef_path = write_spef(ctx.step_dir / "design.spef", top, nets, netlist)
            par = parasitics_summary(nets)
        ctx.check_cancel()

        activity, activity_source = self._activity(ctx, ports, clock, period)
        # A clock tree in the netlist: clock arrivals through its buffers and wires, not ideal.
        propagated = bool(clock) and int(ctx.metrics("cts").get("cts__buffer__count") or 0) > 0 \
            and ctx.has_artefact("cts", "netlist_v")
        max_slew = tcfg.max_slew_ns or _liberty_slew_range(ctx)
        script = sta_script(liberty=ctx.pdk.liberty_paths, netlist_v=netlist_v, top=top,
                            sdc=ctx.step_dir / "constraints.sdc", spef=spef_path, paths=max(1, tcfg.paths),
                            activity=activity, default_activity=tcfg.default_activity, propagated=propagated,
                            clocked=bool(clock), max_slew_ns=max_slew)
        (ctx.step_dir / "sta.tcl").write_text(script)
        ctx.progress(0.2, f"OpenSTA: {'clock ' + clock if clock else 'virtual clock'} at {period:g} ns")
        cells = int(ctx.metrics("synth").get("design__instance__count") or 0)
        proc = ctx.tool(["sta", "-no_init", "-exit", "sta.tcl"], "sta.log",
                        timeout=tcfg.timeout_s * design_scale(cfg.limits, cells, 50_000))
        text = proc.stdout
        errors = [ln for ln in text.splitlines() if ln.startswith("Error")]
        log_path = ctx.step_dir / "sta.log"
        if errors:
            raise ctx.fail(f"OpenSTA: {errors[0]}", log_path=log_path, code="timing.sta_error")
        ctx.progress(0.85, "reading the timing report")
        paths = parse_paths(_section(text, "PATHS"))
        constrained = bool(paths)
        if not paths:
            # Nothing is constrained (flip-flops on an internal clock, say): show the longest unconstrained path.
            paths = parse_paths(_section(text, "UNCONSTRAINED"))
        if netlist is not None:
            add_positions(paths, netlist)
        (ctx.step_dir / "paths.rpt").write_text(_section(text, "PATHS"))
        write_json(ctx.step_dir / "paths.json", {"clock": clock or "vclk", "clock_port": clock,
                                                  "period_ns": period, "parasitics": source,
                                                  "constrained": constrained, "paths": paths})
        ws = _num(r"^worst slack\s+(\S+)", text)
        tns = _num(r"^tns\s+(\S+)", text)
        loops = _num(r"There (?:are|is) (\d+) combinational loops?", text)
        constrained = constrained and ws is not None
        fmax = None
        if constrained and ws is not None and period - ws > 0:
            fmax = 1000.0 / (period - ws)
        spef_warnings = len(re.findall(r"^Warning: .*spef", text, re.M | re.I))
        metrics: dict = {
            "timing__clock_period_ns": period,
            "timing__clock__port": clock,
            "timing__clock__found_by": clock_how if clock else "no clock port: virtual clock on IO paths",
            "timing__setup__ws": round(ws, 4) if constrained and ws is not None else None,
            "timing__setup__tns": round(tns, 4) if constrained and tns is not None else None,
            "timing__fmax_mhz": round(fmax, 2) if fmax else None,
            "timing__path__count": len(paths) if constrained else 0,
            "timing__constrained": constrained,
            "timing__parasitics": source,
            "timing__spef__warning_count": spef_warnings,
            "timing__loop__count": int(loops) if loops else 0,
        }
        metrics["timing__clock__propagated"] = propagated
        hold_ws = _num(r"^CDA_HOLD_WS\s+(\S+)", text)
        hold_tns = _num(r"^CDA_HOLD_TNS\s+(\S+)", text)
        if clock and hold_ws is not None and abs(hold_ws) < 1e-3:  # seconds; an unconstrained 1e30 is no slack
            metrics["timing__hold__ws"] = round(hold_ws * 1e9, 4)
            metrics["timing__hold__tns"] = round((hold_tns or 0.0) * 1e9, 4)
            reg = re.search(r"(-?\d+\.\d+)\s+\((?:MET|VIOLATED)\)", _section(text, "HOLD_REG"))
            if reg:
                metrics["timing__hold__reg_ws"] = round(float(reg.group(1)), 4)
        if propagated:
            skew = parse_skew(_section(text, "SKEW"))
            if skew is not None:
                metrics["timing__clock__skew_ns"] = round(skew, 4)
        if max_slew:
            n_slew, worst_slew = parse_slew_checks(_section(text, "SLEW"), _section(text, "WORST_SLEW"))
            metrics["timing__slew_limit_ns"] = round(float(max_slew), 4)
            metrics["timing__drv__slew_violations"] = n_slew
            if worst_slew is not None:
                metrics["timing__slew__max_ns"] = round(worst_slew, 4)
        if netlist is not None:
            cap_bad, fan_bad = drv_checks(netlist, ctx.pdk, nets, cfg.cts.fanout_limit)
            metrics["timing__drv__cap_violations"] = cap_bad
            metrics["timing__drv__fanout_violations"] = fan_bad
        if par:
            metrics["timing__wire__cap_pf"] = round(par["total_c_pf"], 4)
            metrics["timing__wire__length_um"] = round(par["total_length_um"], 2)
        power = parse_power(_section(text, "POWER"))
        metrics["power__activity_source"] = activity_source
        if power:
            metrics.update({"power__internal__total": power["internal"], "power__switching__total": power["switching"],
                            "power__leakage__total": power["leakage"], "power__total": power["total"]})
        metrics["timing__sdc"] = sdc.source if sdc.source == "generated" else Path(sdc.source).name
        artefacts = {"log": "sta.log", "paths": "paths.json", "report": "paths.rpt", "script": "sta.tcl",
                     "sdc": "constraints.sdc"}
        if spef_path is not None:
            artefacts["spef"] = "design.spef"
        if not constrained:
            message = "no constrained paths: the design has no timed path from a clock or input to a register or output"
        else:
            assert ws is not None  # constrained means a worst slack was read
            verdict = "met" if ws >= 0 else "VIOLATED"
            message = (f"WNS {ws:+.3f} ns at {period:g} ns ({verdict}), fmax {fmax:.0f} MHz"
                       if fmax else f"WNS {ws:+.3f} ns at {period:g} ns ({verdict})")
        if "timing__hold__ws" in metrics:
            message += f", hold {metrics['timing__hold__ws']:+.3f} ns"
        if "timing__clock__skew_ns" in metrics:
            message += f", skew {metrics['timing__clock__skew_ns'] * 1e3:.0f} ps (propagated clock)"
        if power:
            message += f", power {power['total'] * 1e3:.3g} mW"
        if loops:
            message += f"; {int(loops)} combinational loop(s) broken for timing"
        return StepResult(metrics=metrics, artefacts=artefacts, message=message)

    @staticmethod
    def _layout(ctx: StepContext) -> tuple[Netlist | None, str]:
        """The placed netlist (positions) and where wire lengths come from: 'routed', 'placed' or 'none'."""
        from engine.flow.route import placed_def_path

        try:
            placed = placed_def_path(ctx)
        except FlowError:  # no placement (the place step skipped): time the netlist without wires
            return None, "none"
        netlist = read_def(placed, ctx.pdk)
        if ctx.config.timing.use_routed_parasitics and ctx.has_artefact("route", "def"):
            return netlist, "routed"
        return netlist, "placed"

    @staticmethod
    def _activity(ctx: StepContext, ports: Ports, clock: str | None, period: float):
        """Input-port activities (per clock period, duty) from the testbench VCD, else None (default activity).

        The VCD is the verify step's when it ran before in this run folder; otherwise a short RTL simulation of
        the testbench is run here (verify comes after timing in the flow)."""
        from engine.flow.verify import SimulationError, dut_instance, simulate, tb_top_module, vcd_activity

        cfg = ctx.config
        default = f"default: {cfg.timing.default_activity:g} toggles per clock period on every net"
        vcd, scope = _verify_vcd(ctx)
        if vcd is None and cfg.testbench and Path(cfg.testbench).is_file():
            top = ctx.metrics("synth").get("design__top") or cfg.top
            try:
                tb_top = tb_top_module(cfg.testbench, [top])
                dut = dut_instance(cfg.testbench, top)
                scope = f"{tb_top}.{dut}" if dut else tb_top
                ctx.progress(0.1, "simulating the testbench for switching activity")
                sim = simulate(cfg.design_files, cfg.testbench, top, ctx.step_dir / "sim", name="rtl",
                               vcd=ctx.step_dir / "sim" / "rtl.vcd", vcd_scope=scope, cancel=ctx.cancelled)
            except SimulationError as exc:
                return None, default + f" (the testbench did not simulate: {exc.message})"
            if not sim.ok or not sim.vcd or not Path(sim.vcd).is_file():
                return None, default + f" (the testbench simulation failed: {sim.message or 'no VCD'})"
            vcd = Path(sim.vcd)
        if vcd is None:
            return None, default
        if vcd.stat().st_size > cfg.timing.vcd_max_mb * MIB:
            return None, default + f" ({vcd.name} is larger than timing.vcd_max_mb)"
        act = vcd_activity(vcd, scope or "")
        out = {}
        for port in ports.inputs:
            if port == clock:
                continue
            for i in range(ports.widths[port]):
                bit = bit_name(port, ports.widths[port], i)
                a = act.get(bit)
                if a is not None:
                    out[bit] = (a.toggles_per_ns * period, a.duty)
        if not out:
            return None, default + f" ({vcd.name} holds none of the design's inputs under '{scope}')"
        return out, f"vcd: {vcd.parent.name}/{vcd.name} ({len(out)} input bits; internal nets propagated by OpenSTA)"


def _liberty_slew_range(ctx: StepContext) -> float | None:
    """The largest input transition the library's delay tables are characterised for (beyond it STA extrapolates)."""
    from engine.pdk import liberty_cells

    slews = [c.max_input_slew_ns for c in liberty_cells(ctx.pdk).values() if c.max_input_slew_ns]
    return max(slews) if slews else None


def _verify_vcd(ctx: StepContext) -> tuple[Path | None, str]:
    """The RTL VCD the verify step left in this run folder, with the design's scope in it."""
    if ctx.has_artefact("verify", "vcd"):
        return ctx.artefact("verify", "vcd"), str(ctx.metrics("verify").get("verify__vcd_scope") or "")
    return None, ""
