"""Routing: RUDY congestion of the placement, then detailed routing with qrouter (headless, Tcl-scripted).

qrouter reads the LEF and a DEF and writes the DEF back with the wiring added. It has two habits the DEF we keep in
the run does not match, so it gets its own copy (``route_in.def``): one TRACKS line per layer (it keeps the last
one it reads, so only the preferred-direction line stays) and each net's terminating ';' on a line of its own (its
writer finds net names only on lines that do not end the statement).

The power grid (SPECIALNETS, engine.flow.pdn) is an obstruction to qrouter: its copy gets the section after NETS
(qrouter numbers nets in reading order and would give the first signal nets vdd's and gnd's numbers), without the
wiring above the router's layers, and with the tied pins as NETS entries of vdd / gnd for it to wire to their
cells' power pins; routed.def then gets the whole grid back, with that tie wiring in it, in one SPECIALNETS.
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
    """The placement this step routes: the cts step's DEF (buffers in) when it ran, else the place step's."""
    if ctx.has_artefact("cts", "def"):
        return ctx.artefact("cts", "def")
    for name in ("def", "placed_def", "placed"):
        if ctx.has_artefact("place", name):
            return ctx.artefact("place", name)
    path = ctx.run.step_dir("place", create=False) / "placed.def"
    if path.is_file():
        return path
    raise ctx.fail("no placement to route: run the 'place' step first (03-place/placed.def is missing)",
                   code="route.no_placement")


_SPECIAL_PIECE = re.compile(r"^(\s*)(\+\s*(?:ROUTED|FIXED|COVER)|NEW)\s+(\S+)\s+(.*)$")


def _special_for_qrouter(lines: list[str], pdk: Pdk, layers: int) -> list[str]:
    """SPECIALNETS lines without the wires and vias above the router's ``layers`` metals.

    qrouter cannot hold a wire above its layer limit (it reports an error and misreads the rest of the route), and
    does not need one: nothing it routes lies up there. The full grid goes back into routed.def afterwards
    (``restore_special_nets``).
    """
    from engine.flow.pdn import lef_vias

    allowed = {layer.name for layer in pdk.routing_layers()[:layers]}
    metals = {layer.name for layer in pdk.routing_layers()}
    via_metals = {v.name: set(v.layers) & metals for v in lef_vias(pdk)}
    out: list[str] = []
    first = True
    for line in lines:
        m = _SPECIAL_PIECE.match(line)
        if line.lstrip().startswith("- "):
            first = True
            # Tied pins are routed as the net's NETS entry (tie_net_lines); here only ( * pin ) stays.
            line = re.sub(r"\(\s*(?!\*)\S+\s+\S+\s*\)\s*", "", line)
        if m is None:
            out.append(line)
            continue
        toks = m.group(4).split()
        via = toks[-1] if toks and toks[-1] != ")" else None
        if m.group(3) not in allowed or (via is not None and not via_metals.get(via, set()) <= allowed):
            continue
        kind = m.group(2) if m.group(2) != "NEW" else "+ ROUTED"
        out.append(f"{m.group(1)}{kind if first else 'NEW'} {m.group(3)} {m.group(4)}")
        first = False
    return out


def tie_net_lines(netlist) -> list[str]:
    """NETS entries that have qrouter wire each tied pin (a special net's connection other than ``*``) to its own
    cell's pin of that net, which sits on the rail: ``- vdd ( _14_ A ) ( _14_ vdd ) ...``.

    qrouter takes every cell's vdd (gnd) pin for part of the one vdd (gnd) net, so a short wire from each tied
    pin to the nearest such pin completes the net; restore_special_nets moves that wiring into SPECIALNETS."""
    kind = {name: t for name, t in zip(netlist.cell_names, netlist.cell_types)}
    lines = []
    for net in netlist.special_nets or []:
        pin_of_net = next((pin for inst, pin in net.conns if inst == "*"), net.name)
        ties = [(inst, pin) for inst, pin in net.conns if inst != "*"]
        if not ties or net.use not in ("POWER", "GROUND"):
            continue
        terms = []
        for inst, pin in ties:
            terms.append(f"( {inst} {pin} )")
            if inst in kind and f"( {inst} {pin_of_net} )" not in terms:
                terms.append(f"( {inst} {pin_of_net} )")
        lines.append(f"- {net.name} " + " ".join(terms))
    return lines


def qrouter_def(def_text: str, pdk: Pdk, layers: int | None = None, extra_nets: list[str] | None = None) -> str:
    """The DEF as qrouter wants it: preferred-direction TRACKS only, each net's ';' on its own line, (with
    ``layers``) no special wiring above the router's layer limit, and ``extra_nets`` (tie_net_lines) to route."""
    direction = {layer.name: layer.direction for layer in pdk.routing_layers()}
    out: list[str] = []
    in_nets = False
    special: list[str] | None = None
    held: list[str] = []
    for line in def_text.splitlines():
        if special is not None:
            special.append(line)
            if line.startswith("END SPECIALNETS"):
                held = _special_for_qrouter(special, pdk, layers) if layers else special
                special = None
            continue
        if re.match(r"^SPECIALNETS\s+\d+", line):
            special = [line]
            continue
        if line.startswith("END NETS") and extra_nets:
            for extra in extra_nets:
                out.extend([extra, "  ;"])
            extra_nets = None
        if line.startswith("END NETS") and held:
            # SPECIALNETS after NETS: qrouter numbers the regular nets from the count of nets it has read, so
            # special nets read first make the first regular nets share numbers with vdd and gnd (and fail).
            out.append(line)
            out.extend(held)
            held = []
            in_nets = False
            continue
        m = re.match(r"\s*TRACKS\s+([XY])\s.*\bLAYER\s+(\S+)", line)
        if m:
            # TRACKS X are vertical lines: they belong to vertical layers.
            wanted = "X" if direction.get(m.group(2)) == "VERTICAL" else "Y"
            if m.group(1) != wanted:
                continue
        if re.match(r"^NETS\s+\d+", line):
            in_nets = True
            if extra_nets:
                count = int(line.split()[1]) + len(extra_nets)  # the line matched NETS <count> above
                line = re.sub(r"\d+", str(count), line, count=1)
        elif line.startswith("END NETS"):
            in_nets = False
        elif in_nets and line.rstrip().endswith(";"):
            out.append(line.rstrip()[:-1].rstrip())
            out.append("  ;")
            continue
        out.append(line)
    out.extend(held)
    return "\n".join(out) + "\n"


_SPECIAL_BLOCK = re.compile(r"^SPECIALNETS\s+\d+\s*;\s*\n(.*?)^END SPECIALNETS[^\n]*\n?", re.M | re.S)
_SPECIAL_ENTRY = re.compile(r"^-\s+(\S+).*?;[ \t]*$", re.M | re.S)


_NET_POINT = re.compile(r"\(\s*(\S+)\s+(\S+)(?:\s+\S+)?\s*\)")


def _as_special_wiring(stmt: str, widths: dict[str, int]) -> list[str]:
    """A routed NETS statement's wiring as SPECIALNETS pieces (explicit points, the layer's width)."""
    routed = re.split(r"\+\s*(?:ROUTED|FIXED|COVER)\b", stmt, maxsplit=1)
    if len(routed) < 2:
        return []
    out = []
    for seg in re.split(r"\bNEW\b", routed[1]):
        toks = seg.replace(";", " ").split()
        if not toks:
            continue
        layer, points, px, py = toks[0], [], None, None
        for m in _NET_POINT.finditer(seg):
            px = px if m.group(1) == "*" else m.group(1)
            py = py if m.group(2) == "*" else m.group(2)
            points.append(f"( {px} {py} )")
        tail = seg[seg.rfind(")") + 1:].replace(";", " ").split() if ")" in seg else []
        out.append(f"    NEW {layer} {widths.get(layer, 0)} " + " ".join(points + tail[:1]))
    return out


def restore_special_nets(routed_text: str, placed_text: str, widths: dict[str, int] | None = None) -> str:
    """routed.def with one SPECIALNETS section: the placed DEF's (the whole power grid, also what was above the
    router's layers) and then qrouter's own (its pin stubs), where qrouter wrote the first one.

    The tie wiring qrouter routed as NETS entries of the power nets (tie_net_lines) joins those nets' special
    wiring, at ``widths`` (layer -> DEF units), and leaves NETS."""
    grid = _SPECIAL_BLOCK.search(placed_text)
    if grid is None:
        return routed_text
    entries = [m.group(0) for m in _SPECIAL_ENTRY.finditer(grid.group(1))]
    names = {m.group(1) for m in _SPECIAL_ENTRY.finditer(grid.group(1))}
    nets = re.search(r"^NETS\s+(\d+)\s*;\s*\n(.*?)^END NETS", routed_text, re.M | re.S)
    if nets:
        body, moved, kept = nets.group(2), {}, 0
        pieces = re.split(r"(?m)^(?=- )", body)
        out_body = []
        for piece in pieces:
            m = re.match(r"- (\S+)", piece)
            if m and m.group(1) in names:
                moved[m.group(1)] = _as_special_wiring(piece, widths or {})
            else:
                out_body.append(piece)
                kept += bool(m)
        if moved:
            routed_text = (routed_text[:nets.start()] + f"NETS {kept} ;\n" + "".join(out_body)
                           + routed_text[nets.end(2):])
            for k, e in enumerate(entries):
                name = e.split()[1]
                if moved.get(name):
                    head, _, _ = e.rpartition(";")
                    entries[k] = head.rstrip() + "\n" + "\n".join(moved[name]) + "\n  ;"
    blocks = list(_SPECIAL_BLOCK.finditer(routed_text))
    for b in blocks:
        entries += [m.group(0) for m in _SPECIAL_ENTRY.finditer(b.group(1)) if m.group(1) not in names]
    section = f"SPECIALNETS {len(entries)} ;\n" + "\n".join(entries) + "\nEND SPECIALNETS\n"
    if not blocks:
        at = re.search(r"^NETS\s+\d+", routed_text, re.M)
        pos = at.start() if at else len(routed_text)
        return routed_text[:pos] + section + "\n" + routed_text[pos:]
    out, last = [], 0
    for k, b in enumerate(blocks):
        out.append(routed_text[last:b.start()])
        if k == 0:
            out.append(section)
        last = b.end()
    out.append(routed_text[last:])
    return "".join(out)


def route_cfg(lef: Path | list[Path], def_name: str, layers: int, via_stack: int, out_def: str, *,
              vdd: str = "vdd", gnd: str = "gnd") -> str:
    """qrouter's Tcl script: read LEF and DEF, route with its standard stages, write the routed DEF, quit.
    ``lef`` is the technology LEF, or it followed by the hard macros' LEFs (each read in turn: their MACROs,
    pins and obstructions join the cells). ``vdd``/``gnd`` name the power nets (the cells' power pins and the
    grid's special nets)."""
    reads = "\n".join(f"read_lef {tcl_word(p)}" for p in ([lef] if isinstance(lef, (str, Path)) else lef))
    return f"""# qrouter script written by CDA Cockpit
verbose 1
{reads}
catch {{layers {int(layers)}}}
via stack {int(via_stack)}
vdd {tcl_word(vdd)}
gnd {tcl_word(gnd)}
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
    inputs = (Input("place", "def"), Input("cts", "def", required=False))
    outputs = ("def", "congestion")
    uses = ("route", "tech_dir")
    version = 2  # 2: the power grid (SPECIALNETS) read by qrouter as obstructions and kept in routed.def

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
        placed_text = placed.read_text(errors="replace")
        (ctx.step_dir / "route_in.def").write_text(qrouter_def(placed_text, ctx.pdk, cfg.layers,
                                                               tie_net_lines(netlist)))
        power = {n.use: n.name for n in netlist.special_nets or []}
        (ctx.step_dir / "route.cfg").write_text(route_cfg(ctx.pdk.lef_paths, "route_in.def", cfg.layers,
                                                          cfg.via_stack, "routed.def",
                                                          vdd=power.get("POWER", "vdd"),
                                                          gnd=power.get("GROUND", "gnd")))
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
        unknown = sorted(set(re.findall(r'Could not find a macro definition for "([^"]+)"', proc.stdout)))
        if unknown:  # qrouter drops such an instance and its pins: the nets would look routed and be open
            raise ctx.fail(f"qrouter has no LEF for {', '.join(unknown)}, so it cannot reach its pins",
                           hint="give the block's LEF with --macro-lef FILE", log_path=log_path,
                           code="route.no_result")
        routed = ctx.step_dir / "routed.def"
        if not report.finished or not routed.is_file():
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            raise ctx.fail(f"qrouter stopped before writing its result (exit {proc.returncode}):\n{tail}",
                           log_path=log_path, code="route.no_result")
        # The power grid whole again (qrouter was given only its part within the routing layers).
        from engine.flow.fill import def_units

        units = def_units(placed_text)
        widths = {layer.name: int(round((layer.width_um or 0) * units)) for layer in ctx.pdk.routing_layers()}
        routed.write_text(restore_special_nets(routed.read_text(errors="replace"), placed_text, widths))
        ctx.progress(0.9, "reading the routed DEF")
        layers = {layer.name for layer in ctx.pdk.routing_layers()}
        wires, _ = read_routed_wires(routed, layers)
        # Signal wiring only: the power grid is the floorplan's (floorplan__pdn__*), not the router's.
        grid_nets = {n.name for n in netlist.special_nets or [] if n.use in ("POWER", "GROUND")}
        per_layer: dict[str, float] = {}
        for w in (w for name, w in wires.items() if name not in grid_nets):
            for layer, length in w.length_um.items():
                per_layer[layer] = per_layer.get(layer, 0.0) + length
        wirelength = sum(per_layer.values())
        vias = sum(w.vias for name, w in wires.items() if name not in grid_nets)
        metrics.update({
            "route__wirelength": round(wirelength, 2),
            "route__wirelength__per_layer": {k: round(v, 2) for k, v in sorted(per_layer.items())},
            "route__via__count": vias,
            # qrouter counts the grid's vdd and gnd among its nets; they are not routed here.
            "route__net__count": (report.nets - len(grid_nets & {n.name for n in netlist.special_nets or []})
                                  if report.nets is not None else netlist.n_nets),
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
