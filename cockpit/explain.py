"""Plain words for numbers and failures.

`describe(name)` gives a metric's words from the engine's registry (engine/registry) and `judge` its verdict
(good / fair / poor from the registry's thresholds) with a sentence;
`problems(run)` turns a failed run, or a finished run that missed a goal (open nets, negative slack, a
placement that did not spread), into: what went wrong, the likely cause, which knob to change, all read from the
failure's code through the engine's catalogue (engine.diagnosis), never from the words of its message; and
`render_problem` shows it with a button that reruns the design with that change.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.story import fmt
from engine import diagnosis
from engine.registry import METRICS as REGISTRY

Verdict = tuple[str, str]  # ("good" | "fair" | "poor" | "info", sentence)


@dataclass
class MetricText:
    """What a page shows for a metric: the registry's words (engine.registry) plus a judge that writes a sentence."""

    label: str
    unit: str
    meaning: str
    judge: Callable[[float, dict], Verdict] | None = None
    scale: float = 1.0  # shown value = stored value * scale (e.g. W -> mW)
    percent: bool = False  # a fraction shown as a percentage


def _spec(name: str):
    return REGISTRY.get(name)


def _target_mhz(ctx: dict) -> float | None:
    ns = ctx.get("clock_ns")
    return 1000.0 / ns if ns else None


# Judges: the verdict (good / fair / poor) comes from the registry's thresholds; the sentence is the page's.
def _judge_ws(v: float, ctx: dict) -> Verdict:
    if _spec("timing__setup__ws").verdict(v) == "good":
        return "good", f"timing is met with {fmt(v)} ns to spare on the slowest path."
    return "poor", f"the slowest path arrives {fmt(-v)} ns too late: the clock period is too short for this logic."


def _judge_tns(v: float, ctx: dict) -> Verdict:
    if _spec("timing__setup__tns").verdict(v) == "good":
        return "good", "no path is late."
    return "poor", f"the late paths add up to {fmt(-v)} ns; many failing endpoints make this large."


def _judge_fmax(v: float, ctx: dict) -> Verdict:
    target = _target_mhz(ctx)
    if not target:
        return "info", "the fastest clock this layout supports."
    if v >= target:
        return "good", f"above the {fmt(target)} MHz target by {fmt(100 * (v / target - 1), 2)} %."
    return "poor", f"below the {fmt(target)} MHz target: relax the clock or optimise for delay."


_OVERFLOW_WORDS = {"good": "cells are spread out; only a little overlap is left for legalisation to fix.",
                   "fair": "some regions are still crowded; legalisation will move cells further than ideal.",
                   "poor": "cells still pile up: the placer stopped before it spread them."}


def _judge_overflow(v: float, ctx: dict) -> Verdict:
    verdict = _spec("placement__overflow").verdict(v) or "poor"
    return verdict, _OVERFLOW_WORDS[verdict]


ROW_HEIGHT_UM = 10.0  # osu018 rows (the default technology); a run of another one passes ctx["row_height_um"]


def _judge_hpwl(v: float, ctx: dict) -> Verdict:
    nets = ctx.get("design__net__count") or ctx.get("nets")
    if not nets:
        return "info", "lower is better; compare runs of the same design."
    per_net = v / max(nets, 1)
    rows = per_net / float(ctx.get("row_height_um") or ROW_HEIGHT_UM)
    j = _spec("placement__hpwl").judge
    verdict = ("good" if rows < j["good_max_rows_per_net"] else "fair" if rows < j["fair_max_rows_per_net"]
               else "poor")
    return verdict, f"an average net spans {fmt(per_net)} µm, about {fmt(rows, 2)} row heights."


def _judge_unrouted(v: float, ctx: dict) -> Verdict:
    if _spec("route__net__unrouted").verdict(v) == "good":
        return "good", "every net is connected by metal."
    return "poor", f"{fmt(int(v))} nets have no complete route: the chip would not work."


_UTIL_WORDS = {"good": "room left between cells for wires.", "fair": "dense: routing may get tight.",
               "poor": "very dense: expect routing congestion."}


def _judge_util(v: float, ctx: dict) -> Verdict:
    u = v if v <= 1.0 else v / 100.0
    verdict = _spec("floorplan__utilization").verdict(u) or "poor"
    return verdict, _UTIL_WORDS[verdict]


_CONGESTION_WORDS = {"good": "wire demand stays below the tracks available everywhere.",
                     "fair": "some regions use nearly all their tracks.",
                     "poor": "some regions need more wires than they have tracks: expect detours or open nets."}


def _judge_congestion(v: float, ctx: dict) -> Verdict:
    verdict = _spec("route__rudy__max").verdict(v) or "poor"
    return verdict, _CONGESTION_WORDS[verdict]


def _judge_mismatch(v: float, ctx: dict) -> Verdict:
    if _spec("verify__mismatch__count").verdict(v) == "good":
        return "good", "gates and RTL agree."
    return "poor", "the netlist does not behave like the RTL."


def _judge_check(name: str, words: str) -> Callable[[float, dict], Verdict]:
    """A signoff check's count: none is good, any is an error the checks table lists one by one."""
    def judge(v: float, ctx: dict) -> Verdict:
        if _spec(name).verdict(v) == "good":
            return "good", f"no {words}."
        return "poor", f"{fmt(int(v))} {words}: checks.json lists each one."
    return judge


_CHECK_WORDS = {"checks__unconnected_inputs": "floating cell inputs", "checks__unrouted_nets": "unrouted nets",
                "checks__open_nets": "partly routed nets", "checks__shorts": "pairs of shorted nets",
                "checks__overlaps": "overlapping cells",
                "checks__row_violations": "cells off their rows, site grid or row orientation",
                "checks__outside_die": "cells outside the die",
                "checks__lvs_mismatches": "differences between the netlist and the layout",
                "checks__power_pins_unconnected": "unconnected power pins",
                "checks__antenna_violations": "antenna violations (estimate)"}

JUDGES: dict[str, Callable[[float, dict], Verdict]] = {
    **{name: _judge_check(name, words) for name, words in _CHECK_WORDS.items()},
    "timing__setup__ws": _judge_ws,
    "timing__setup__tns": _judge_tns,
    "timing__fmax_mhz": _judge_fmax,
    "placement__overflow": _judge_overflow,
    "placement__hpwl": _judge_hpwl,
    "route__net__unrouted": _judge_unrouted,
    "floorplan__utilization": _judge_util,
    "route__rudy__max": _judge_congestion,
    "verify__mismatch__count": _judge_mismatch,
}

VERDICT_WORD = {"good": "good", "fair": "fair", "poor": "poor", "info": ""}
VERDICT_ICON = {"good": ":green[:material/check_circle:]", "fair": ":orange[:material/error:]",
                "poor": ":red[:material/cancel:]", "info": ":blue[:material/info:]"}


def describe(name: str) -> MetricText:
    """Text for any metric, from the engine's registry; an unregistered name is put in words."""
    spec = _spec(name)
    if spec is None:
        return MetricText(name.replace("__", " ").replace("_", " ").strip().capitalize(), "", "")
    # A count's unit is its noun ("cells"): a page shows the bare number unless the display unit differs (kB).
    unit = "" if spec.kind == "count" and spec.display_unit is None else spec.shown_unit
    if unit in ("fraction", "ratio"):
        unit = ""
    percent = spec.shown_unit == "%"
    meaning = spec.meaning[:1].upper() + spec.meaning[1:] + "." if spec.meaning else ""
    return MetricText(spec.label, "" if percent else unit, meaning, JUDGES.get(name),
                      scale=1.0 if percent else spec.scale, percent=percent)


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
    code: str = ""  # engine.diagnosis code the explanation comes from ("route.unrouted")
    knob_path: str | None = None  # the registry knob to turn, if one is the fix

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


def _default(path: str):
    from engine.registry import knob

    return knob(path).default


def _problem(code: str, step: str, what: str, config: dict, *, knob: str | None = None, severity: str = "error",
             log: str | None = None, patch: dict[str, Any] | None = None) -> Problem:
    """A Problem told by the engine's diagnosis of ``code`` (engine.diagnosis): its cause, what to change and the
    change to try; ``patch`` replaces the catalogue's suggestion where the page knows better (timing's slack)."""
    d = diagnosis.lookup(code)
    if patch is None:
        patch = diagnosis.suggest(code, config, knob=knob, step=step)
    return Problem(step, what, d.meaning, d.action, patch, severity=severity, log=log, code=d.code,
                   knob_path=diagnosis.suggested_knob(code, knob, step))


def _explain_error(info: dict, config: dict) -> Problem:
    step = info.get("failed_step") or "flow"
    msg = (info.get("error") or "the run failed").strip()
    code, knob = diagnosis.of_run(info)  # run.json's code; old runs without one: diagnosis.legacy_code
    problem = _problem(code, step, msg, config, knob=knob, log=info.get("log"))
    if code == "step.failed" and info.get("hint"):  # no catalogued cause: the step's own hint says more
        problem.cause = problem.knob = info["hint"]
    return problem


# Signoff-check findings told as problems: (diagnosis code, the metrics that count them, what they are).
_CHECK_PROBLEMS = (
    ("checks.floating_inputs", ("checks__unconnected_inputs",), "cell inputs on no net (floating)"),
    ("checks.unrouted", ("checks__unrouted_nets", "checks__open_nets"), "nets not fully connected by metal"),
    ("checks.shorts", ("checks__shorts",), "pairs of nets shorted together"),
    ("checks.placement", ("checks__overlaps", "checks__row_violations", "checks__outside_die"),
     "placement violations (overlaps, cells off rows or outside the die)"),
    ("checks.lvs", ("checks__lvs_mismatches",), "differences between the netlist and the layout"),
)


def problems(info: dict, metrics: dict[str, dict]) -> list[Problem]:
    """Failures and missed goals of a run, each with its likely cause and the knob to change."""
    config = info.get("config", {}) or {}
    out: list[Problem] = []
    if info.get("status") == "failed":
        out.append(_explain_error(info, config))
    place = metrics.get("place", {})
    ovf = place.get("placement__overflow")
    if isinstance(ovf, (int, float)) and ovf > 0.25 and info.get("failed_step") != "place":
        out.append(_problem("place.overflow", "place", f"Placement stopped with overflow {fmt(ovf)}: cells still "
                            "overlap.", config, severity="warning"))
    failed_step = info.get("failed_step") if info.get("status") == "failed" else None
    route = metrics.get("route", {})
    unrouted = route.get("route__net__unrouted")
    if isinstance(unrouted, (int, float)) and unrouted > 0 and failed_step != "route":
        out.append(_problem("route.unrouted", "route", f"Routing left {fmt(int(unrouted))} nets open.", config,
                            severity="warning"))
    checks = metrics.get("checks", {})
    for code, keys, words in _CHECK_PROBLEMS:
        n = sum(int(checks.get(k) or 0) for k in keys if isinstance(checks.get(k), (int, float)))
        if n > 0:
            out.append(_problem(code, "checks", f"Signoff checks: {fmt(n)} {words}.", config, severity="warning"))
    timing = metrics.get("timing", {})
    ws = timing.get("timing__setup__ws")
    if isinstance(ws, (int, float)) and ws < 0:
        period = float(config.get("clock_ns") or _default("clock_ns"))
        new_period = round(period - ws + 0.05 * period, 2)
        out.append(_problem("timing.setup", "timing", f"Timing is missed: the worst path is {fmt(-ws)} ns late at "
                            f"a {fmt(period)} ns clock.", config, severity="warning",
                            patch={"clock_ns": new_period}))
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
