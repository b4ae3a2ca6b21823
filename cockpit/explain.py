"""Plain words for numbers and failures.

`METRICS` says what each metric means and judges a value (good / fair / poor, with a sentence);
`problems(run)` turns a failed run, or a finished run that missed a goal (open nets, negative slack, a
placement that did not spread), into: what went wrong, the likely cause, which knob to change; and
`render_problem` shows it with a button that reruns the design with that change.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cockpit.story import fmt

Verdict = tuple[str, str]  # ("good" | "fair" | "poor" | "info", sentence)


@dataclass
class MetricText:
    label: str
    unit: str
    meaning: str
    judge: Callable[[float, dict], Verdict] | None = None
    scale: float = 1.0  # shown value = stored value * scale (e.g. W -> mW)
    percent: bool = False  # a fraction shown as a percentage


def _target_mhz(ctx: dict) -> float | None:
    ns = ctx.get("clock_ns")
    return 1000.0 / ns if ns else None


def _judge_ws(v: float, ctx: dict) -> Verdict:
    if v >= 0:
        return "good", f"timing is met with {fmt(v)} ns to spare on the slowest path."
    return "poor", f"the slowest path arrives {fmt(-v)} ns too late: the clock period is too short for this logic."


def _judge_tns(v: float, ctx: dict) -> Verdict:
    if v >= 0:
        return "good", "no path is late."
    return "poor", f"the late paths add up to {fmt(-v)} ns; many failing endpoints make this large."


def _judge_fmax(v: float, ctx: dict) -> Verdict:
    target = _target_mhz(ctx)
    if not target:
        return "info", "the fastest clock this layout supports."
    if v >= target:
        return "good", f"above the {fmt(target)} MHz target by {fmt(100 * (v / target - 1), 2)} %."
    return "poor", f"below the {fmt(target)} MHz target: relax the clock or optimise for delay."


def _judge_overflow(v: float, ctx: dict) -> Verdict:
    if v <= 0.10:
        return "good", "cells are spread out; only a little overlap is left for legalisation to fix."
    if v <= 0.25:
        return "fair", "some regions are still crowded; legalisation will move cells further than ideal."
    return "poor", "cells still pile up: the placer stopped before it spread them."


def _judge_hpwl(v: float, ctx: dict) -> Verdict:
    nets = ctx.get("design__net__count") or ctx.get("nets")
    if not nets:
        return "info", "lower is better; compare runs of the same design."
    per_net = v / max(nets, 1)
    rows = per_net / 10.0  # osu018 rows are 10 um high
    verdict = "good" if rows < 3 else "fair" if rows < 8 else "poor"
    return verdict, f"an average net spans {fmt(per_net)} µm, about {fmt(rows, 2)} row heights."


def _judge_unrouted(v: float, ctx: dict) -> Verdict:
    if v == 0:
        return "good", "every net is connected by metal."
    return "poor", f"{fmt(int(v))} nets have no complete route: the chip would not work."


def _judge_util(v: float, ctx: dict) -> Verdict:
    u = v if v <= 1.0 else v / 100.0
    if u <= 0.7:
        return "good", "room left between cells for wires."
    if u <= 0.85:
        return "fair", "dense: routing may get tight."
    return "poor", "very dense: expect routing congestion."


def _judge_congestion(v: float, ctx: dict) -> Verdict:
    if v <= 0.8:
        return "good", "wire demand stays below the tracks available everywhere."
    if v <= 1.0:
        return "fair", "some regions use nearly all their tracks."
    return "poor", "some regions need more wires than they have tracks: expect detours or open nets."


METRICS: dict[str, MetricText] = {
    "design__instance__count": MetricText("Cells", "", "standard cells in the netlist after synthesis."),
    "design__instance__area": MetricText("Cell area", "µm²", "total area of the standard cells."),
    "design__net__count": MetricText("Nets", "", "wires connecting cell pins (each net is one electrical node)."),
    "design__io__count": MetricText("I/O pins", "", "ports of the top module, placed on the die edge."),
    "design__die__area": MetricText("Die area", "µm²", "area of the whole chip outline."),
    "design__core__area": MetricText("Core area", "µm²", "area of the rows where cells are placed."),
    "design__core__utilization": MetricText("Utilisation", "", "cell area divided by core area.", _judge_util),
    "design__instance__count__sequential": MetricText("Flip-flops", "", "cells that store state (registers)."),
    "design__pin__count": MetricText("Cell pins", "", "pins of all cells; each connects to one net."),
    "design__top": MetricText("Top module", "", "the module synthesised as the chip."),
    "synth__warning__count": MetricText("Yosys warnings", "", "warnings in the synthesis log; read them when not 0."),
    "floorplan__utilization": MetricText("Utilisation", "", "cell area divided by core area.", _judge_util,
                                         percent=True),
    "floorplan__die__area_um2": MetricText("Die area", "µm²", "area of the whole chip outline."),
    "floorplan__die__width_um": MetricText("Die width", "µm", "width of the chip outline."),
    "floorplan__die__height_um": MetricText("Die height", "µm", "height of the chip outline."),
    "floorplan__core__area_um2": MetricText("Core area", "µm²", "area of the rows where cells are placed."),
    "floorplan__core__width_um": MetricText("Core width", "µm", "width of the placement area."),
    "floorplan__core__height_um": MetricText("Core height", "µm", "height of the placement area."),
    "floorplan__row__count": MetricText("Rows", "", "rows of sites the cells sit in."),
    "floorplan__site__count": MetricText("Sites", "", "cell slots (0.8 µm wide) in all rows."),
    "floorplan__io__count": MetricText("I/O pins", "", "ports of the top module, placed on the die edge."),
    "placement__hpwl": MetricText(
        "HPWL", "µm", "half-perimeter wirelength: for each net, half the perimeter of the box around its pins, "
        "summed. A quick estimate of the wire the router will need; lower is better.", _judge_hpwl),
    "placement__overflow": MetricText(
        "Overflow", "", "share of cell area sitting in bins that are fuller than allowed (0 = evenly spread, "
        "1 = everything on one spot). The placer stops near 0.1.", _judge_overflow),
    "placement__hpwl__global": MetricText("HPWL (global)", "µm", "wirelength estimate after global placement, "
                                          "before cells are snapped to rows."),
    "placement__hpwl__legal": MetricText("HPWL (legal)", "µm", "wirelength estimate after legalisation."),
    "placement__cells__movable": MetricText("Movable cells", "", "cells the placer moves (pins are fixed)."),
    "placement__bins": MetricText("Density bins", "", "bins per side of the density grid."),
    "placement__displacement__max": MetricText("Largest move", "µm", "farthest a cell moved during legalisation."),
    "placement__detailed__moves": MetricText("Detailed moves", "", "swaps and shifts that shortened wires after "
                                             "legalisation."),
    "placement__frames__count": MetricText("Frames", "", "snapshots saved for the replay."),
    "placement__iterations": MetricText("Iterations", "", "Nesterov steps of global placement."),
    "placement__displacement__mean": MetricText("Legalisation move", "µm",
                                                "average distance a cell moved to snap onto a row site."),
    "route__wirelength": MetricText("Routed wirelength", "µm", "total length of metal wires after routing."),
    "route__via__count": MetricText("Vias", "", "connections between metal layers; each adds resistance."),
    "route__net__unrouted": MetricText("Unrouted nets", "", "nets the router could not complete.", _judge_unrouted),
    "route__rudy__max": MetricText("Peak congestion", "", "highest wire demand / track capacity of any region, "
                                   "estimated by RUDY from the placement (above 1 = more wires than tracks).",
                                   _judge_congestion),
    "route__rudy__mean": MetricText("Mean congestion", "", "average wire demand / track capacity over the core."),
    "route__rudy__overflow": MetricText("Over-capacity area", "", "share of regions whose wire demand exceeds "
                                        "their tracks.", percent=True),
    "route__layers": MetricText("Metal layers", "", "routing layers the router may use."),
    "route__net__count": MetricText("Nets routed", "", "nets the router was given."),
    "timing__clock_period_ns": MetricText("Clock period", "ns", "the target time between two clock edges."),
    "timing__path__count": MetricText("Paths reported", "", "worst paths kept in the report."),
    "timing__wire__cap_pf": MetricText("Wire capacitance", "pF", "total capacitance of the wires (from the layout)."),
    "timing__wire__length_um": MetricText("Wire length (timing)", "µm", "wire length used for the delay model."),
    "power__internal__total": MetricText("Internal power", "mW", "power burnt inside cells when they switch.",
                                         scale=1e3),
    "power__switching__total": MetricText("Switching power", "mW", "power to charge wires and pins.", scale=1e3),
    "power__leakage__total": MetricText("Leakage power", "mW", "power lost even when nothing switches.", scale=1e3),
    "route__congestion__max": MetricText("Peak congestion", "", "highest wire demand / track supply of any bin "
                                         "(RUDY estimate).", _judge_congestion),
    "timing__setup__ws": MetricText(
        "WNS", "ns", "worst negative slack: how early (positive) or late (negative) the slowest signal arrives "
        "at a flip-flop, relative to the clock.", _judge_ws),
    "timing__setup__tns": MetricText("TNS", "ns", "total negative slack: the lateness of all failing paths added.",
                                     _judge_tns),
    "timing__fmax_mhz": MetricText("Fmax", "MHz", "highest clock frequency at which every path meets timing.",
                                   _judge_fmax),
    "timing__hold__ws": MetricText("Hold slack", "ns", "margin against signals arriving too early after a clock "
                                   "edge; negative means a hold violation."),
    "power__total": MetricText("Power", "mW", "estimated total power (switching + internal + leakage).", scale=1e3),
    "gds__layer__count": MetricText("GDS layers", "", "layers written into the GDSII file (metals, vias, "
                                    "cell outlines, pins)."),
    "gds__file_bytes": MetricText("GDS size", "kB", "size of the GDSII file.", scale=1e-3),
    "gds__instance__count": MetricText("Cells in GDS", "", "cell instances placed in the GDSII top cell."),
    "gds__top_cell": MetricText("Top cell", "", "name of the GDSII top cell."),
    "verify__status": MetricText("Gate-level check", "", "the routed netlist simulated against the RTL with the "
                                 "design's testbench: pass means they agree."),
    "verify__tests__count": MetricText("Outputs compared", "", "output samples compared between RTL and gates."),
    "verify__mismatch__count": MetricText("Mismatches", "", "samples where the gates disagree with the RTL.",
                                          lambda v, c: ("good", "gates and RTL agree.") if v == 0 else
                                          ("poor", "the netlist does not behave like the RTL.")),
}

VERDICT_WORD = {"good": "good", "fair": "fair", "poor": "poor", "info": ""}
VERDICT_ICON = {"good": ":green[:material/check_circle:]", "fair": ":orange[:material/error:]",
                "poor": ":red[:material/cancel:]", "info": ":blue[:material/info:]"}


def _engine_metric(name: str):
    try:
        from engine.metrics import METRICS as ENGINE_METRICS  # the engine's registry, once it exists
    except Exception:  # noqa: BLE001 - optional
        return None
    return ENGINE_METRICS.get(name)


def describe(name: str) -> MetricText:
    """Text for any metric: ours if we have one, else the engine registry's, else the name in words."""
    if name in METRICS:
        return METRICS[name]
    m = re.fullmatch(r"flow__(\w+)__runtime_s", name)
    if m:
        return MetricText(f"{m.group(1).capitalize()} runtime", "s", "wall-clock seconds this step took.")
    em = _engine_metric(name)
    label = name.replace("__", " ").replace("_", " ").strip().capitalize()
    if em is not None:
        return MetricText(label, getattr(em, "unit", "") or "", getattr(em, "description", "") or "")
    return MetricText(label, "", "")


def value_text(name: str, value: Any) -> str:
    mt = describe(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if mt.percent:
            return f"{100 * value:.1f} %"
        return fmt(value * mt.scale, 4, mt.unit)
    return fmt(value)


def judge(name: str, value: Any, ctx: dict) -> Verdict | None:
    mt = describe(name)
    if mt.judge is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return mt.judge(float(value), ctx)


def metric_rows(metrics: dict, ctx: dict | None = None) -> list[dict]:
    """Rows for a table: metric, value, verdict and meaning (no raw dicts on screen)."""
    ctx = {**metrics, **(ctx or {})}
    rows = []
    for name, value in metrics.items():
        if isinstance(value, (dict, list)):
            continue
        mt = describe(name)
        v = judge(name, value, ctx)
        rows.append({"metric": mt.label, "value": value_text(name, value),
                     "verdict": (f"{VERDICT_WORD[v[0]]}: {v[1]}" if VERDICT_WORD[v[0]] else v[1]) if v else "",
                     "meaning": mt.meaning, "key": name})
    return rows


# ---------------------------------------------------------------------------------------------- failures
@dataclass
class Problem:
    """A failure told as a story: what went wrong, why (likely), which knob to turn."""

    step: str
    what: str
    cause: str
    knob: str
    patch: dict[str, Any] = field(default_factory=dict)  # dotted FlowConfig paths -> new value
    severity: str = "error"  # "error" (the run failed) or "warning" (a goal was missed)
    log: str | None = None

    @property
    def button_label(self) -> str:
        parts = [f"{k.split('.')[-1].replace('_', ' ')} → {v}" for k, v in self.patch.items()]
        return "Rerun with " + ", ".join(parts)


def apply_patch(config: dict, patch: dict[str, Any]) -> dict:
    """A copy of a FlowConfig dict with dotted keys replaced (`floorplan.utilization` -> 0.45)."""
    out = copy.deepcopy(config)
    for dotted, value in patch.items():
        node = out
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _get(config: dict, dotted: str, default=None):
    node: Any = config
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def _lower_util(config: dict) -> dict[str, Any]:
    util = float(_get(config, "floorplan.utilization", 0.6) or 0.6)
    return {"floorplan.utilization": round(max(0.2, util * 0.75), 2)}


def _explain_error(info: dict, config: dict) -> Problem:
    step = info.get("failed_step") or "flow"
    msg = (info.get("error") or "the run failed").strip()
    hint = info.get("hint") or ""
    low = msg.lower()
    log = info.get("log")
    if "worker process stopped" in low:
        return Problem(step, msg, "The machine ran out of memory or the worker was killed from outside.",
                       "Rerun; if it happens again, lower the design size or the placer's iteration count.",
                       {}, log=log)
    if "top module" in low and "not found" in low:
        from engine.uploads import guess_top

        files = [Path(f) for f in config.get("design_files", []) if Path(f).exists()]
        top, _ = guess_top(files) if files else (None, [])
        return Problem(step, msg, "The top module name does not match a module in the sources.",
                       "Design → top module: pick one of the modules the design defines.",
                       {"top": top} if top and top != config.get("top") else {}, log=log)
    if step == "synth" and ("syntax" in low or "yosys:" in low or "parse" in low or "error" in low):
        return Problem(step, msg, "Yosys could not read the Verilog: the message gives the file and line.",
                       "Fix the Verilog at that line and upload it again.", {}, log=log)
    if "loop" in low:
        return Problem(step, msg, "A signal depends on itself without a flip-flop in between.",
                       "Break the loop in the RTL (register one of the signals).", {}, log=log)
    if "did not finish within" in low or "timeout" in low:
        section = {"synth": "synth", "route": "route"}.get(step)
        patch = {}
        if section:
            patch[f"{section}.timeout_s"] = float(_get(config, f"{section}.timeout_s", 600) or 600) * 2
        return Problem(step, msg, "The tool needed more time than allowed for this design.",
                       "Raise the step's time limit (or lower utilisation so routing is easier).", patch, log=log)
    if step == "place" and any(w in low for w in ("diverge", "nan", "overflow")):
        return Problem(step, msg, "The placer's density weight grew faster than the wirelength could follow, or "
                       "the core is too full to spread the cells.", "Lower the utilisation (a bigger core).",
                       _lower_util(config), log=log)
    if step in ("floorplan", "place") and any(w in low for w in ("fit", "too small", "utilization", "utilisation")):
        return Problem(step, msg, "The cells do not fit in the core at this utilisation.",
                       "Lower the utilisation.", _lower_util(config), log=log)
    if step == "route":
        return Problem(step, msg, "The router could not finish: usually too little room between cells.",
                       "Lower the utilisation or allow more metal layers.",
                       {**_lower_util(config), "route.layers": min(6, int(_get(config, "route.layers", 4) or 4) + 1)},
                       log=log)
    return Problem(step, msg, hint or "See the step's log for the tool's own words.",
                   hint or "Check the inputs of this step, then rerun.", {}, log=log)


def problems(info: dict, metrics: dict[str, dict]) -> list[Problem]:
    """Failures and missed goals of a run, each with its likely cause and the knob to change."""
    config = info.get("config", {}) or {}
    out: list[Problem] = []
    if info.get("status") == "failed":
        out.append(_explain_error(info, config))
    place = metrics.get("place", {})
    ovf = place.get("placement__overflow")
    if isinstance(ovf, (int, float)) and ovf > 0.25 and info.get("failed_step") != "place":
        out.append(Problem("place", f"Placement stopped with overflow {fmt(ovf)}: cells still overlap.",
                           "The core is too full, or the placer ran out of iterations.",
                           "Lower the utilisation (or raise place.max_iterations).", _lower_util(config),
                           severity="warning"))
    failed_step = info.get("failed_step") if info.get("status") == "failed" else None
    route = metrics.get("route", {})
    unrouted = route.get("route__net__unrouted")
    if isinstance(unrouted, (int, float)) and unrouted > 0 and failed_step != "route":
        layers = int(_get(config, "route.layers", 4) or 4)
        patch = _lower_util(config)
        if layers < 6:
            patch["route.layers"] = layers + 1
        out.append(Problem("route", f"Routing left {fmt(int(unrouted))} nets open.",
                           "Congested regions have more wires than tracks (see the congestion map).",
                           "Give the router room: lower utilisation, allow another metal layer.", patch,
                           severity="warning"))
    timing = metrics.get("timing", {})
    ws = timing.get("timing__setup__ws")
    if isinstance(ws, (int, float)) and ws < 0:
        period = float(config.get("clock_ns") or 10.0)
        new_period = round(period - ws + 0.05 * period, 2)
        out.append(Problem("timing", f"Timing is missed: the worst path is {fmt(-ws)} ns late at a {fmt(period)} ns "
                           "clock.", "The logic between two flip-flops is slower than one clock period.",
                           "Relax the clock period (or synthesise for delay).", {"clock_ns": new_period},
                           severity="warning"))
    return out


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_tail(path: str | Path | None, lines: int = 30) -> str:
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return _ANSI.sub("", "\n".join(text.splitlines()[-lines:]))
