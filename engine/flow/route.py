"""Routing: RUDY congestion of the placement, then detailed routing with qrouter (headless, Tcl-scripted).

qrouter reads the LEF and a DEF and writes the DEF back with the wiring added. It has two habits the DEF we keep in
the run does not match, so it gets its own copy (``route_in.def``): one TRACKS line per layer (it keeps the last
one it reads, so only the preferred-direction line stays) and each net's terminating ';' on a line of its own (its
writer finds net names only on lines that do not end the statement).

The power grid (SPECIALNETS, engine.flow.pdn) is an obstruction to qrouter: its copy gets the section after NETS
(qrouter numbers nets in reading order and would give the first signal nets vdd's and gnd's numbers), without the
wiring above the router's layers, and with the tied pins as NETS entries of vdd / gnd for it to wire to their
cells' power pins; routed.def then gets the whole grid back, with that tie wiring in it, in one SPECIALNETS.

The DEF and qrouter's log are read by engine.io (def_io.def_layout locates the statements these edits touch,
def_io.read_routing reads the wiring, io.qrouter the log); this module holds what to change, not how to parse.
"""
from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import FlowError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.congestion import congestion
from engine.flow.limits import design_scale
from engine.flow.spef import read_routed_wires
from engine.io.def_io import DefSection, DefStatement, def_layout, read_def, read_net_routing
from engine.io.qrouter import missing_macros, parse_qrouter_log
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


def _special_for_qrouter(lines: list[str], section: DefSection, pdk: Pdk, layers: int) -> list[str]:
    """The SPECIALNETS ``section`` (located in ``lines``) without the wires and vias above the router's ``layers``
    metals, and with only the ( * pin ) connections.

    qrouter cannot hold a wire above its layer limit (it reports an error and misreads the rest of the route), and
    does not need one: nothing it routes lies up there. The full grid goes back into routed.def afterwards
    (``restore_special_nets``). Each wiring piece is a line of its own, as engine.io.def_io writes them.
    """
    from engine.flow.pdn import lef_vias

    allowed = {layer.name for layer in pdk.routing_layers()[:layers]}
    metals = {layer.name for layer in pdk.routing_layers()}
    via_metals = {v.name: set(v.layers) & metals for v in lef_vias(pdk)}
    out = [lines[section.header.first]]
    done = section.header.first  # the last line handled
    for entry in section.entries:
        out.extend(lines[done + 1:entry.first])
        first = True
        for i in range(entry.first, entry.last + 1):
            words, line = entry.words_on(i), lines[i]
            if i == entry.first:
                # Tied pins are routed as the net's NETS entry (tie_net_lines); here only ( * pin ) stays.
                out.append(_without_tied_pins(line, words))
                continue
            piece = _piece(words)
            if piece is None:
                out.append(line)
                continue
            kind, layer, rest = piece
            via = rest[-1] if rest[-1] != ")" else None
            if layer not in allowed or (via is not None and not via_metals.get(via, set()) <= allowed):
                continue
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}{kind if first else 'NEW'} {layer} {' '.join(rest)}")
            first = False
        done = entry.last
    out.extend(lines[done + 1:section.end + 1])
    return out


def _piece(words: list[str]) -> tuple[str, str, list[str]] | None:
    """A line's tokens as a wiring piece: ('+ ROUTED' (FIXED, COVER), layer, the rest) for a line that starts one
    (a NEW line too: it leads the net's wiring once the pieces before it are dropped); else None."""
    if len(words) >= 4 and words[0] == "+" and words[1] in ("ROUTED", "FIXED", "COVER"):
        return f"+ {words[1]}", words[2], words[3:]
    if len(words) >= 3 and words[0] == "NEW":
        return "+ ROUTED", words[1], words[2:]
    return None


def _without_tied_pins(line: str, words: list[str]) -> str:
    """A special net's first line with its ( inst pin ) connections left out, its ( * pin ) ones kept."""
    k, kept, dropped = 2, words[:2], False
    while k + 3 < len(words) and words[k] == "(" and words[k + 3] == ")":
        if words[k + 1] == "*":
            kept += words[k:k + 4]
        else:
            dropped = True
        k += 4
    return " ".join(kept + words[k:]) if dropped else line


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


def qrouter_def(def_text: str, pdk: Pdk, layers: int | None = None, extra_nets: list[str] | None = None, *,
                path: str | Path = "<placed DEF>") -> str:
    """The DEF as qrouter wants it: preferred-direction TRACKS only, each net's ';' on its own line, SPECIALNETS
    after NETS, (with ``layers``) no special wiring above the router's layer limit, and ``extra_nets``
    (tie_net_lines) to route. Statements are located by engine.io.def_io.def_layout (its errors name ``path``);
    lines not edited stay as they are."""
    direction = {layer.name: layer.direction for layer in pdk.routing_layers()}
    lines = def_text.splitlines()
    layout = def_layout(def_text, path)
    dropped: set[int] = set()
    instead: dict[int, list[str]] = {}  # line index -> the lines written in its place
    for st in layout.statements:
        words = st.words
        if words and words[0] == "TRACKS" and len(words) > 1 and words[1] in ("X", "Y") and "LAYER" in words[:-1]:
            # TRACKS X are vertical lines: they belong to vertical layers.
            wanted = "X" if direction.get(words[words.index("LAYER") + 1]) == "VERTICAL" else "Y"
            if words[1] != wanted:
                dropped.update(range(st.first, st.last + 1))
    held: list[str] = []
    for sec in layout.sections:
        if sec.name == "SPECIALNETS":
            held += _special_for_qrouter(lines, sec, pdk, layers) if layers else lines[sec.header.first:sec.end + 1]
            dropped.update(range(sec.header.first, sec.end + 1))
    nets = layout.section("NETS")
    if nets is not None:
        extra = extra_nets or []
        if extra:
            count = nets.header.words[1] if len(nets.header.words) > 1 else "0"
            header = lines[nets.header.first]
            instead[nets.header.first] = [header.replace(count, str(int(count) + len(extra)), 1)]
        for entry in nets.entries:
            last = lines[entry.last].rstrip()
            if last.endswith(";"):
                instead[entry.last] = [last[:-1].rstrip(), "  ;"]
        # SPECIALNETS after NETS: qrouter numbers the regular nets from the count of nets it has read, so special
        # nets read first make the first regular nets share numbers with vdd and gnd (and fail).
        instead[nets.end] = [line for net in extra for line in (net, "  ;")] + [lines[nets.end]] + held
        held = []
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in instead:
            out.extend(instead[i])
        elif i not in dropped:
            out.append(line)
    out.extend(held)
    return "\n".join(out) + "\n"


def _as_special_wiring(stmt: str, widths: dict[str, int]) -> list[str]:
    """A routed NETS statement's wiring (engine.io.def_io.read_net_routing) as SPECIALNETS pieces: explicit
    points, the layer's width, the first via of each piece."""
    out = []
    for seg in read_net_routing(stmt).segments:
        points = [f"( {_dbu_text(x)} {_dbu_text(y)} )" for x, y in seg.points_dbu]
        via = [seg.vias[0].via] if seg.vias else []
        out.append(f"    NEW {seg.layer} {widths.get(seg.layer, 0)} " + " ".join(points + via))
    return out


def _dbu_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _entry_text(lines: list[str], entry: DefStatement) -> str:
    """A section entry's lines, from its '-' to its ';', without the last line break."""
    return "".join(lines[entry.first:entry.last + 1]).rstrip("\r\n")


def restore_special_nets(routed_text: str, placed_text: str, widths: dict[str, int] | None = None, *,
                         routed_path: str | Path = "<routed DEF>", placed_path: str | Path = "<placed DEF>") -> str:
    """routed.def with one SPECIALNETS section: the placed DEF's (the whole power grid, also what was above the
    router's layers) and then qrouter's own (its pin stubs), where qrouter wrote the first one.

    The tie wiring qrouter routed as NETS entries of the power nets (tie_net_lines) joins those nets' special
    wiring, at ``widths`` (layer -> DEF units), and leaves NETS. Statements are located by
    engine.io.def_io.def_layout (its errors name ``routed_path`` or ``placed_path``); the text of each entry is kept
    as it is."""
    grid = def_layout(placed_text, placed_path).section("SPECIALNETS")
    if grid is None:
        return routed_text
    placed_lines = placed_text.splitlines(keepends=True)
    entries = [_entry_text(placed_lines, e) for e in grid.entries]
    names = {e.words[1] for e in grid.entries if len(e.words) > 1}
    lines = routed_text.splitlines(keepends=True)
    layout = def_layout(routed_text, routed_path)
    nets = layout.section("NETS")
    if nets is not None:
        moved: dict[str, list[str]] = {}
        kept: list[str] = []
        start = nets.header.last + 1
        while start < len(lines) and not lines[start].strip():  # blank lines after the header are not kept
            start += 1
        bounds = [e.first for e in nets.entries] + [nets.end]
        kept.append("".join(lines[start:bounds[0]]))
        for e, stop in zip(nets.entries, bounds[1:]):
            text = "".join(lines[e.first:stop])
            if len(e.words) > 1 and e.words[1] in names:
                moved[e.words[1]] = _as_special_wiring(text, widths or {})
            else:
                kept.append(text)
        if moved:
            routed_text = ("".join(lines[:nets.header.first]) + f"NETS {len(kept) - 1} ;\n" + "".join(kept)
                           + "".join(lines[nets.end:]))
            lines = routed_text.splitlines(keepends=True)
            layout = def_layout(routed_text, routed_path)
            for k, e in enumerate(grid.entries):
                if len(e.words) > 1 and moved.get(e.words[1]):
                    head, _, _ = entries[k].rpartition(";")
                    entries[k] = head.rstrip() + "\n" + "\n".join(moved[e.words[1]]) + "\n  ;"
    blocks = [s for s in layout.sections if s.name == "SPECIALNETS"]
    for b in blocks:
        entries += [_entry_text(lines, e) for e in b.entries if len(e.words) > 1 and e.words[1] not in names]
    section = f"SPECIALNETS {len(entries)} ;\n" + "\n".join(entries) + "\nEND SPECIALNETS\n"
    if not blocks:
        at = nets.header.first if nets is not None else len(lines)
        return "".join(lines[:at]) + section + "\n" + "".join(lines[at:])
    out, done = [], 0
    for k, b in enumerate(blocks):
        out.append("".join(lines[done:b.header.first]))
        if k == 0:
            out.append(section)
        done = b.end + 1
    out.append("".join(lines[done:]))
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
                                                               tie_net_lines(netlist), path=placed))
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
        unknown = missing_macros(proc.stdout)
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
        units = def_layout(placed_text, placed).units
        widths = {layer.name: int(round((layer.width_um or 0) * units)) for layer in ctx.pdk.routing_layers()}
        routed.write_text(restore_special_nets(routed.read_text(errors="replace"), placed_text, widths,
                                               routed_path=routed, placed_path=placed))
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
