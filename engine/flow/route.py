"""Routing: RUDY congestion of the placement, then detailed routing with qrouter (headless, Tcl-scripted).

qrouter reads the LEF and a DEF and writes the DEF back with the wiring added. It has two habits the DEF we keep in
the run does not match, so it gets its own copy (``route_in.def``): one TRACKS line per layer (it keeps the last
one it reads, so only the preferred-direction line stays) and each net's terminating ';' on a line of its own (its
writer finds net names only on lines that do not end the statement).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FlowError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.congestion import congestion
from engine.flow.limits import design_scale
from engine.flow.spef import read_routed_wires
from engine.io.def_io import read_def
from engine.pdk import Pdk
from engine.validate import tcl_word

log = logging.getLogger(__name__)

# Headless qrouter: `-nog` runs the Tk-less interpreter (no display, no console).
QROUTER_ARGS = ("qrouter", "-nog", "-s", "route.cfg")


def placed_def_path(ctx: StepContext) -> Path:
    """The placement this step routes: the place step's DEF artefact."""
    for name in ("def", "placed_def", "placed"):
        if ctx.has_artefact("place", name):
            return ctx.artefact("place", name)
    path = ctx.run.step_dir("place", create=False) / "placed.def"
    if path.is_file():
        return path
    raise ctx.fail("no placement to route: run the 'place' step first (03-place/placed.def is missing)",
                   code="route.no_placement")


def qrouter_def(def_text: str, pdk: Pdk) -> str:
    """The DEF as qrouter wants it: preferred-direction TRACKS only, each net's ';' on its own line."""
    direction = {layer.name: layer.direction for layer in pdk.routing_layers()}
    out: list[str] = []
    in_nets = False
    for line in def_text.splitlines():
        m = re.match(r"\s*TRACKS\s+([XY])\s.*\bLAYER\s+(\S+)", line)
        if m:
            # TRACKS X are vertical lines: they belong to vertical layers.
            wanted = "X" if direction.get(m.group(2)) == "VERTICAL" else "Y"
            if m.group(1) != wanted:
                continue
        if re.match(r"^NETS\s+\d+", line):
            in_nets = True
        elif line.startswith("END NETS"):
            in_nets = False
        elif in_nets and line.rstrip().endswith(";"):
            out.append(line.rstrip()[:-1].rstrip())
            out.append("  ;")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def route_cfg(lef: Path, def_name: str, layers: int, via_stack: int, out_def: str) -> str:
    """qrouter's Tcl script: read LEF and DEF, route with its standard stages, write the routed DEF, quit."""
    return f"""# qrouter script written by CDA Cockpit
verbose 1
read_lef {tcl_word(lef)}
catch {{layers {int(layers)}}}
via stack {int(via_stack)}
vdd vdd
gnd gnd
read_def {tcl_word(def_name)}
qrouter::standard_route {tcl_word(out_def)} false
quit
"""


@dataclass
class QrouterReport:
    nets: int | None  # nets qrouter read
    failed: list[str]  # nets left unrouted at the end
    reasons: dict[str, str]  # failed net -> why, in words
    finished: bool  # qrouter printed its final summary


_NO_TAPS = re.compile(r'Node (\S+) of net "?([^"\s!]+)"? has no tap', re.I)


def parse_qrouter_log(text: str) -> QrouterReport:
    m = re.search(r"There are (\d+) nets in this design", text)
    nets = int(m.group(1)) if m else None
    finished = "Final:" in text
    failed: list[str] = []
    fm = re.search(r"Final: Failed net routes: (\d+)\s*\n\s*List of failed nets follows:\s*\n(.*?)(?:\n\s*\n|-{5,})",
                   text, re.S)
    if fm:
        failed = [ln.strip() for ln in fm.group(2).splitlines() if ln.strip()]
    reasons: dict[str, str] = {}
    no_taps = {net: node for node, net in _NO_TAPS.findall(text)}
    for net in failed:
        if net in no_taps:
            reasons[net] = (f"pin {no_taps[net]} has no access point on the routing grid (off-track or covered by "
                            "an obstruction)")
        else:
            reasons[net] = "no free path left after rip-up and reroute (congestion)"
    return QrouterReport(nets=nets, failed=failed, reasons=reasons, finished=finished)


class RouteStep(Step):
    id = "route"
    inputs = (Input("place", "def"),)
    outputs = ("def", "congestion")
    uses = ("route", "tech_dir")
    version = 1

    def run(self, ctx: StepContext) -> StepResult:
        cfg = ctx.config.route
        n_layers = len(ctx.pdk.routing_layers())
        if not 2 <= cfg.layers <= n_layers:
            raise ctx.fail(f"route.layers is {cfg.layers}; {ctx.pdk.name} has {n_layers} routing layers and "
                           "qrouter needs at least 2", hint=f"choose route.layers between 2 and {n_layers}",
                           code="route.layers")
        placed = placed_def_path(ctx)
        ctx.progress(0.02, "RUDY congestion estimate")
        netlist = read_def(placed, ctx.pdk)
        cong = congestion(netlist, ctx.pdk, layers=cfg.layers, bins=cfg.rudy_bins)
        cong.save(ctx.step_dir / "congestion.npz")
        metrics: dict = {
            "route__rudy__max": round(cong.max, 4),
            "route__rudy__mean": round(cong.mean, 4),
            "route__rudy__overflow": round(cong.overflow, 4),
            "route__layers": cfg.layers,
        }
        artefacts = {"congestion": "congestion.npz"}
        if not cfg.enabled:
            return StepResult(metrics=metrics, artefacts=artefacts, status="skipped",
                              message=f"routing off; RUDY peak {cong.max:.2f} of capacity")
        ctx.check_cancel()
        ctx.progress(0.1, f"qrouter: routing {netlist.n_nets} nets on {cfg.layers} layers")
        (ctx.step_dir / "route_in.def").write_text(qrouter_def(placed.read_text(errors="replace"), ctx.pdk))
        (ctx.step_dir / "route.cfg").write_text(route_cfg(ctx.pdk.lef_path, "route_in.def", cfg.layers,
                                                          cfg.via_stack, "routed.def"))
        log_path = ctx.step_dir / "qrouter.log"
        try:
            budget = cfg.timeout_s * design_scale(ctx.config.limits, netlist.n_nets, 20_000)
            proc = ctx.tool(list(QROUTER_ARGS), "qrouter.log", timeout=budget, ok_codes=(0, 1))
        except FlowError as err:
            if err.code in ("tool.timeout", "tool.cpu_limit"):
                raise ctx.fail(f"qrouter did not finish within {budget:.0f} CPU-s: the design is too congested "
                               "to route in that time", log_path=log_path,
                               hint="lower floorplan.utilization (more room between cells), allow more "
                                    "route.layers, or raise route.timeout_s", code="route.timeout",
                               knob="route.timeout_s") from None
            raise
        report = parse_qrouter_log(proc.stdout)
        routed = ctx.step_dir / "routed.def"
        if not report.finished or not routed.is_file():
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            raise ctx.fail(f"qrouter stopped before writing its result (exit {proc.returncode}):\n{tail}",
                           log_path=log_path, code="route.no_result")
        ctx.progress(0.9, "reading the routed DEF")
        layers = {layer.name for layer in ctx.pdk.routing_layers()}
        wires, _ = read_routed_wires(routed, layers)
        per_layer: dict[str, float] = {}
        for w in wires.values():
            for layer, length in w.length_um.items():
                per_layer[layer] = per_layer.get(layer, 0.0) + length
        wirelength = sum(per_layer.values())
        vias = sum(w.vias for w in wires.values())
        metrics.update({
            "route__wirelength": round(wirelength, 2),
            "route__wirelength__per_layer": {k: round(v, 2) for k, v in sorted(per_layer.items())},
            "route__via__count": vias,
            "route__net__count": report.nets if report.nets is not None else netlist.n_nets,
            "route__net__unrouted": len(report.failed),
            "route__failures": [{"net": n, "reason": report.reasons[n]} for n in report.failed],
        })
        artefacts.update({"def": "routed.def", "log": "qrouter.log", "cfg": "route.cfg"})
        if report.failed:
            # Keep the figures next to the log even though the step fails.
            from engine.runs import write_json

            write_json(ctx.step_dir / "metrics.json", metrics)
            by_reason: dict[str, list[str]] = {}
            for n in report.failed:
                by_reason.setdefault(report.reasons[n], []).append(n)
            parts = []
            for reason, nets in by_reason.items():
                more = f" and {len(nets) - 8} more" if len(nets) > 8 else ""
                parts.append(f"{', '.join(nets[:8])}{more}: {reason}")
            raise ctx.fail(f"qrouter could not route {len(report.failed)} of {metrics['route__net__count']} nets; "
                           + "; ".join(parts), log_path=log_path,
                           hint="lower floorplan.utilization to leave more room for wires (or allow more "
                                "route.layers)", code="route.unrouted")
        return StepResult(metrics=metrics, artefacts=artefacts,
                          message=f"routed {metrics['route__net__count']} nets, {wirelength:,.0f} um of wire, "
                                  f"{vias} vias, 0 open")
