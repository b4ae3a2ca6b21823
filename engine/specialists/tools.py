"""Engine tools a specialist calls to answer from real runs, not from memory.

- `run_metrics`: "what is the HPWL of my last run" -> the run store's metrics, quoted with the run id.
- `what_if`: "what happens at target density 0.7" -> a new flow run of the last run's design with that knob,
  started through the job system (the same queue as the cockpit); it returns at once with the run id, and
  `what_if_result` compares the run with the one it came from once it has ended.
- `timing_paths`: "why does this path fail timing" -> the worst path of 05-timing/paths.json, explained.
- `run_facts`: the selected run's own facts, compact (design, status, failed step and its advice, HPWL, overflow,
  RUDY peak and hot spot, WNS/TNS and the worst path, unrouted nets, the knob to turn): what grounds the chat.

`detect(question)` decides which tool (if any) a question asks for; `call(...)` runs it. Every result names
the runs it read or created, so the page can link to them.
"""
from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"\b\d{8}-\d{6}-[A-Za-z0-9_\-]+?-[0-9a-f]{4}\b")

#: words of a question -> the metrics they ask about (first match wins per word group)
METRIC_WORDS: list[tuple[str, tuple[str, ...]]] = [
    (r"\bhpwl\b|half[- ]perimeter", ("placement__hpwl",)),
    (r"routed wire|route[d]? length|\bwirelength\b|wire length", ("route__wirelength", "placement__hpwl")),
    (r"\bwns\b|worst (negative )?slack|\bslack\b", ("timing__setup__ws",)),
    (r"\btns\b|total negative slack", ("timing__setup__tns",)),
    (r"\bfmax\b|max(imum)? freq|frequency", ("timing__fmax_mhz",)),
    (r"\bpower\b", ("power__total", "power__switching__total", "power__internal__total", "power__leakage__total")),
    (r"\bdie area\b|\bdie size\b", ("floorplan__die__area_um2",)),
    (r"\barea\b", ("design__instance__area", "floorplan__die__area_um2")),
    (r"cell count|how many cells|number of cells|\binstances?\b|\bcells\b", ("design__instance__count",)),
    (r"overflow", ("placement__overflow",)),
    (r"\bvias?\b", ("route__via__count",)),
    (r"unrouted", ("route__net__unrouted",)),
    (r"utili[sz]ation", ("floorplan__utilization",)),
    (r"congestion|\brudy\b", ("route__rudy__max", "route__rudy__overflow")),
]
_RUN_REF = re.compile(r"\b(my|last|latest|current|this|previous|recent)\b[\w\s]{0,20}\b(run|design|placement|layout|"
                      r"chip|flow|netlist|result)s?\b|\brun\s+\d{8}-", re.I)

#: phrases naming a knob -> (dotted knob, low, high, type)
KNOBS: list[tuple[str, str, float, float, type]] = [
    (r"target[_ ]density|placement density|\bdensity\b", "place.target_density", 0.3, 1.0, float),
    (r"utili[sz]ation", "floorplan.utilization", 0.1, 0.95, float),
    (r"aspect[_ ]ratio", "floorplan.aspect_ratio", 0.25, 4.0, float),
    (r"clock period|clock_ns|\bclock\b|\bperiod\b", "clock_ns", 0.5, 1000.0, float),
    (r"gamma", "place.gamma_base", 0.1, 100.0, float),
    (r"max(imum)?[_ ]iterations|iteration budget", "place.max_iterations", 20, 10000, int),
    (r"routing layers|metal layers|\blayers\b", "route.layers", 2, 6, int),
]
_WHAT_IF = re.compile(r"what (happens|would happen|if)|what'?s the effect|\bwhat if\b|how would|try\b|\bset\b|"
                      r"\bchange\b|\bif i (use|set|change|raise|lower)", re.I)
_PATH_Q = re.compile(r"\bpaths?\b|critical|violat|fail(s|ing)? timing|timing fail|meet timing|negative slack", re.I)

#: the metrics a what-if compares, in the order they are quoted
COMPARE = ("floorplan__die__area_um2", "placement__hpwl", "placement__rudy__mean", "placement__iterations",
           "placement__overflow", "route__rudy__max",
           "route__wirelength", "route__via__count", "route__net__unrouted", "timing__setup__ws",
           "timing__fmax_mhz", "power__total")


@dataclass
class ToolCall:
    name: str  # "run_metrics", "what_if" or "timing_paths"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    name: str
    ok: bool
    text: str  # what the chat quotes: numbers with the run id
    run_ids: list[str] = field(default_factory=list)  # runs read or created, linked by the page
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "text": self.text, "run_ids": self.run_ids, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict) -> ToolResult:
        """Back from `to_dict` (a saved conversation keeps its results as JSON)."""
        return cls(str(d.get("name", "")), bool(d.get("ok")), str(d.get("text", "")), list(d.get("run_ids") or []),
                   dict(d.get("data") or {}))


def _metrics_asked(question: str) -> list[str]:
    q = question.lower()
    out: list[str] = []
    for pattern, keys in METRIC_WORDS:
        if re.search(pattern, q):
            out.extend(k for k in keys if k not in out)
            if pattern.startswith(r"\bdie area"):
                break  # "die area" should not also ask for the cell area
    return out


def _knob_asked(question: str) -> tuple[str, float, float, float, type] | None:
    q = question.lower()
    for pattern, knob, low, high, typ in KNOBS:
        m = re.search(pattern, q)
        if not m:
            continue
        rest = q[m.end():]
        num = re.search(r"(-?\d+(?:\.\d+)?)", rest) or re.search(r"(-?\d+(?:\.\d+)?)", q[: m.start()])
        if num:
            return knob, float(num.group(1)), low, high, typ
    return None


def detect(question: str) -> ToolCall | None:
    """Which engine tool a question asks for, if any (rules, so the choice is predictable and testable)."""
    found = RUN_ID.search(question)
    run_id = found.group(0) if found else None
    if _WHAT_IF.search(question):
        knob = _knob_asked(question)
        if knob:
            return ToolCall("what_if", {"knob": knob[0], "value": knob[1], "run_id": run_id})
    if _PATH_Q.search(question) and re.search(r"timing|slack|path|critical", question, re.I):
        if _RUN_REF.search(question) or re.search(r"\bthis path|\bthe path|\bmy path|worst path|critical path",
                                                   question, re.I):
            return ToolCall("timing_paths", {"run_id": run_id})
    metrics = _metrics_asked(question)
    if metrics and (_RUN_REF.search(question) or run_id):
        return ToolCall("run_metrics", {"metrics": metrics, "run_id": run_id})
    return None


_SCOPE_OWNER = {"placement": "placement", "route": "routing", "timing": "timing", "power": "power",
                "design": "synthesis", "synth": "synthesis", "floorplan": "floorplan", "place": "placement",
                "clock_ns": "timing", "verify": "verification", "gds": "verification"}


def owner(call: ToolCall) -> str | None:
    """The specialist a tool call belongs to (the phase of the metric or knob it is about)."""
    if call.name == "timing_paths":
        return "timing"
    if call.name == "what_if":
        return _SCOPE_OWNER.get(call.args["knob"].split(".")[0])
    if call.name == "run_metrics" and call.args.get("metrics"):
        return _SCOPE_OWNER.get(call.args["metrics"][0].split("__")[0])
    return None


# ------------------------------------------------------------------------------------------------ helpers
def run_store(runs_dir: str | None):
    from engine.runs import RunStore

    return RunStore(runs_dir)


def _fmt(name: str, value: Any) -> str:
    try:
        from engine.metrics import METRICS
    except ImportError:  # pragma: no cover - the registry is part of the engine
        METRICS = {}
    if value is None:
        return "n/a"
    unit = METRICS[name].unit if name in METRICS else ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if name == "power__total" or name.startswith("power__"):
            return f"{value * 1e3:.4g} mW" if abs(value) >= 1e-4 else f"{value * 1e6:.4g} uW"
        text = f"{value:,.0f}" if isinstance(value, int) or abs(value) >= 1000 else f"{value:.4g}"
        return f"{text} {unit}".strip() if unit not in ("fraction", "") else text
    return str(value)


def _label(name: str) -> str:
    try:
        from engine.metrics import METRICS
        if name in METRICS:
            return f"{name.split('__')[0]} {METRICS[name].description.split(':')[0].split('(')[0].strip()}"
    except ImportError:  # pragma: no cover
        pass
    return name.replace("__", " ")


def base_run(store, run_id: str | None, need: str | None = None):
    """The run a question is about: the one named, else the newest flow run that has `need`'s metrics."""
    if run_id:
        return store.get(run_id)
    for row in store.list(limit=50, kind="flow"):
        run = store.get(row["id"])
        if need is None or run.step_metrics(need):
            return run
    where = f" with a finished {need} step" if need else ""
    raise EngineError(f"There is no flow run{where} in {store.root} yet.",
                      hint="start one on the Design page or with `cda flow run counter`")


# ------------------------------------------------------------------------------------------------ tools
def run_metrics(metrics: list[str], run_id: str | None = None, runs_dir: str | None = None) -> ToolResult:
    store = run_store(runs_dir)
    run = base_run(store, run_id)
    flat = run.flat_metrics()
    if not run_id:  # the newest run may still be early in the flow: take the newest that has the metric
        for row in store.list(limit=50, kind="flow"):
            cand = store.get(row["id"])
            if any(m in cand.flat_metrics() for m in metrics):
                run, flat = cand, cand.flat_metrics()
                break
    found = {m: flat[m] for m in metrics if m in flat}
    info = run.info()
    head = f"Run {run.id} (design {info.get('design', '?')}, status {info.get('status', '?')})"
    if not found:
        steps = ", ".join(run.metrics()) or "none"
        return ToolResult("run_metrics", False, f"{head} has no {', '.join(metrics)} yet (finished steps: {steps}).",
                          [run.id], {"metrics": {}})
    lines = [f"- {_label(m)} (`{m}`): **{_fmt(m, v)}**" for m, v in found.items()]
    return ToolResult("run_metrics", True, head + ":\n" + "\n".join(lines), [run.id], {"metrics": found})


def _set_knob(config: dict, knob: str, value: Any) -> None:
    if "." not in knob:
        config[knob] = value
        return
    section, name = knob.split(".", 1)
    sub = config.get(section)
    if not isinstance(sub, dict):
        sub = {}
        config[section] = sub
    sub[name] = value


def _get_knob(config: dict, knob: str) -> Any:
    if "." not in knob:
        return config.get(knob)
    section, name = knob.split(".", 1)
    return (config.get(section) or {}).get(name)


def default_knob(knob: str) -> Any:
    """The value a run gets when its config does not set the knob."""
    try:
        if knob.startswith("place."):
            from engine.place.config import PlaceConfig

            return getattr(PlaceConfig(), knob.split(".", 1)[1], None)
        from engine.config import FlowConfig

        obj: Any = FlowConfig()
        for part in knob.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        return None


def what_if(knob: str, value: float, run_id: str | None = None, runs_dir: str | None = None, *,
            until: str = "timing", wait: bool = False, timeout_s: float = 900.0,
            progress: Callable[[str], None] | None = None) -> ToolResult:
    """Run the base run's design again with one knob changed, as a job of the cockpit's queue.

    ``wait`` False (the chat): return at once, with the new run id and ``data["pending"]`` True; the run goes on in
    its worker and `what_if_result` compares it with the base run when it has ended (a page follows it, a refresh
    loses nothing). ``wait`` True (a script): block up to ``timeout_s`` and return the comparison."""
    spec = next((k for k in KNOBS if k[1] == knob), None)
    if spec is None:
        raise EngineError(f"'{knob}' is not a knob the specialists can change; known: "
                          f"{', '.join(k[1] for k in KNOBS)}")
    _, _, low, high, typ = spec
    if not (low <= value <= high):
        return ToolResult("what_if", False, f"{knob} = {value:g} is outside the range the flow accepts "
                                            f"({low:g} to {high:g}); no run was started.", [], {})
    value = typ(value)
    from engine.jobs import JobQueue

    store = run_store(runs_dir)
    base = base_run(store, run_id, need="place" if knob.startswith(("place", "floorplan")) else None)
    info = base.info()
    config = copy.deepcopy(info.get("config") or {})
    _set_knob(config, knob, value)
    label = f"what-if {knob}={value:g} from {base.id}"
    run = store.create(config, design=info.get("design", "design"), label=label)
    steps = info.get("steps") or []
    flow_until = until if not steps or until in steps else steps[-1]
    run.update_info(until=flow_until, what_if={"knob": knob, "value": value, "base_run": base.id})
    queue = JobQueue(store)
    queue.submit(run.id, "flow")
    if progress:
        progress(f"started run {run.id} ({knob} = {value:g}) through the job queue")
    if wait:
        try:
            queue.wait(run.id, timeout_s=timeout_s)
        except TimeoutError:
            late = what_if_result(run.id, runs_dir)
            late.text = (f"Run {run.id} ({knob} = {value:g}) is still running after {timeout_s:.0f} s; its numbers "
                         f"will be on its run page.")
            return late
        return what_if_result(run.id, runs_dir)
    head = _what_if_head(run.id, knob, value, base.id)
    text = (f"Started run **{run.id}** ({knob} = {value:g}, the flow to {flow_until} on {info.get('design', '?')}) "
            f"through the job queue; it is queued. Follow it on its run page (or `cda jobs wait {run.id}`): the "
            f"comparison with run {base.id} comes when it finishes.")
    return ToolResult("what_if", True, text, [run.id, base.id],
                      {**head, "pending": True, "state": "queued", "until": flow_until})


def _what_if_head(run_id: str, knob: str, value: Any, base_id: str) -> dict:
    return {"base_run": base_id, "run": run_id, "knob": knob, "value": value,
            "phase": _SCOPE_OWNER.get(knob.split(".")[0])}


def _progress_line(run, job) -> tuple[str, dict]:
    """Where a queued or running run is: (one line, the fields a page draws a progress bar from)."""
    if job is not None and job.state == "queued":
        where = f", number {job.position} in the queue" if job.position else ""
        return f"queued{where}", {"state": "queued", "position": job.position}
    steps = run.info().get("steps") or []
    prog = run.progress()
    current = next((s for s in reversed(list(prog)) if prog[s].get("status") == "running"), None)
    finished = sum(1 for s in prog.values() if s.get("status") in ("done", "reused", "skipped"))
    if current is None:
        return "running (starting its first step)", {"state": "running", "step": None, "fraction": 0.0,
                                                     "finished": finished, "steps": len(steps)}
    p = prog[current]
    msg = f": {p['message']}" if p.get("message") else ""
    line = (f"running step {current} ({p.get('fraction', 0.0):.0%}{msg}); {finished} of "
            f"{len(steps) or '?'} steps finished")
    return line, {"state": "running", "step": current, "fraction": float(p.get("fraction") or 0.0),
                  "message": p.get("message", ""), "finished": finished, "steps": len(steps)}


def what_if_result(run_id: str, runs_dir: str | None = None) -> ToolResult:
    """A what-if run now: still going (``data["pending"]``, with its progress line), failed or cancelled (the
    cause and the diagnosis, ``ok`` False), or done (the comparison with the run it came from, ``data["metrics"]``:
    {metric: {"before", "after"}})."""
    from engine.jobs import TERMINAL, JobQueue

    store = run_store(runs_dir)
    run = store.get(run_id)
    info = run.info()
    spec = info.get("what_if") if isinstance(info.get("what_if"), dict) else None
    if not spec or not spec.get("knob") or not spec.get("base_run"):
        raise EngineError(f"Run {run_id} is not a what-if run (its run.json names no knob and base run).")
    knob, value, base_id = str(spec["knob"]), spec.get("value"), str(spec["base_run"])
    head = _what_if_head(run.id, knob, value, base_id)
    ids = [run.id, base_id]
    shown = f"{value:g}" if isinstance(value, (int, float)) else str(value)
    job = JobQueue(store).status(run.id)
    state = job.state if job is not None else info.get("status")
    if state not in TERMINAL:
        line, fields = _progress_line(run, job)
        return ToolResult("what_if", True, f"Run {run.id} ({knob} = {shown}) is {line}.", ids,
                          {**head, "pending": True, **fields})
    info = run.info()  # the worker writes its ending before it settles the job row
    if state != "done":
        err = str(info.get("error") or state).rstrip(".")
        diagnosis, dknob = None, None
        if state == "failed":
            from engine.diagnosis import describe, of_run

            code, dknob = of_run(info)
            diagnosis = describe(code, dknob, info.get("failed_step"))
        text = (f"Run {run.id} ({knob} = {shown}) ended {state}"
                + (f" at step {info['failed_step']}" if info.get("failed_step") else "")
                + f": {err}." + (f" {diagnosis}" if diagnosis else "")
                + f" The what-if changed {knob} to {shown}; run {base_id} is unchanged.")
        return ToolResult("what_if", False, text, ids,
                          {**head, "pending": False, "state": state, "error": info.get("error"),
                           "failed_step": info.get("failed_step"), "diagnosis": diagnosis, "fix_knob": dknob})
    try:
        base = store.get(base_id)
        base_info, old_m = base.info(), base.flat_metrics()
    except EngineError:  # the base run was deleted since: the new numbers alone
        base_info, old_m = {}, {}
    old = _get_knob(copy.deepcopy(base_info.get("config") or {}), knob)
    if old is None:
        old = default_knob(knob)
    new_m = run.flat_metrics()
    rows, table = [], {}
    for m in COMPARE:
        if m not in new_m:
            continue
        a, b = old_m.get(m), new_m[m]
        table[m] = {"before": a, "after": b}
        change = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a:
            change = f" ({(b - a) / abs(a):+.1%})"
        rows.append(f"- {_label(m)}: {_fmt(m, a)} -> **{_fmt(m, b)}**{change}")
    text = (f"Ran the flow (to {info.get('until') or 'the end'}) on {info.get('design', '?')} with {knob} = {shown} "
            f"(was {old if old is not None else 'default'}): run **{run.id}**, compared with run {base_id}:\n"
            + "\n".join(rows))
    return ToolResult("what_if", True, text, ids, {**head, "pending": False, "state": "done", "metrics": table})


def timing_paths(run_id: str | None = None, runs_dir: str | None = None, top: int = 3) -> ToolResult:
    """The worst path of a run's timing report, with the cells that take the most time on it."""
    from engine.runs import read_json

    store = run_store(runs_dir)
    run = base_run(store, run_id, need="timing")
    report = read_json(run.step_dir("timing", create=False) / "paths.json", None)
    if not report or not report.get("paths"):
        return ToolResult("timing_paths", False, f"Run {run.id} has no timing paths (05-timing/paths.json "
                                                 f"is missing or empty).", [run.id], {})
    paths = [p for p in report["paths"] if p.get("slack_ns") is not None]
    if not paths:
        return ToolResult("timing_paths", False, f"Run {run.id}: the paths carry no slack "
                                                 f"(the design may be unconstrained).", [run.id], {})
    worst = min(paths, key=lambda p: p["slack_ns"])
    period = report.get("period_ns")
    cells = [p for p in worst.get("pins", []) if p.get("cell") not in (None, "port")]
    slowest = sorted(cells, key=lambda p: -(p.get("delay_ns") or 0.0))[:top]
    failing = sum(1 for p in paths if p["slack_ns"] < 0)
    verdict = "fails" if worst["slack_ns"] < 0 else "meets"
    lines = [
        f"Run {run.id}: the worst path {verdict} timing with slack **{worst['slack_ns']:.3f} ns** "
        f"at a {period:g} ns clock ({report.get('clock', '?')}); {failing} of the {len(paths)} reported paths fail.",
        f"- from `{worst['startpoint']}` ({worst.get('startpoint_kind', '')}) to `{worst['endpoint']}` "
        f"({worst.get('endpoint_kind', '')})",
        f"- data arrives at {worst.get('arrival_ns', float('nan')):.3f} ns, required at "
        f"{worst.get('required_ns', float('nan')):.3f} ns; {len(cells)} cell stages on the path",
    ]
    for p in slowest:
        extra = f", load {p['cap_pf']:.4f} pF" if p.get("cap_pf") is not None else ""
        extra += f", slew {p['slew_ns']:.3f} ns" if p.get("slew_ns") is not None else ""
        lines.append(f"- slow stage: {p.get('cell')} `{p.get('instance')}` pin {p.get('pin_name')}: "
                     f"{p.get('delay_ns', 0.0):.3f} ns{extra}")
    if worst["slack_ns"] < 0:
        lines.append(f"- the clock would need {period - worst['slack_ns']:.3f} ns "
                     f"(fmax {1000.0 / (period - worst['slack_ns']):.1f} MHz) for this path to pass")
    return ToolResult("timing_paths", True, "\n".join(lines), [run.id],
                      {"worst": {k: worst.get(k) for k in ("startpoint", "endpoint", "slack_ns", "arrival_ns",
                                                            "required_ns")},
                       "slowest": slowest, "failing": failing, "period_ns": period})


# ------------------------------------------------------------------------------------------------ run facts
#: (symptom, knob, direction) rules the facts use to name the knob to turn; the knob's range and current value
#: come from the registry and the run's own config.
def _knob_value(config: dict, path: str) -> Any:
    value = _get_knob(config, path)
    if value is None:
        try:
            from engine.registry import knob

            value = knob(path).default
        except Exception:  # noqa: BLE001 - a knob the registry does not know: say "default"
            value = None
    return value


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def hot_spot(congestion_npz) -> dict | None:
    """The hottest bin and 3 x 3 region of a run's RUDY map (04-route/congestion.npz, [y from south, x])."""
    import numpy as np

    from engine.bench.formats import REGION_GRID

    try:
        with np.load(congestion_npz) as z:
            ratio = np.asarray(z["ratio"], dtype=float)
            region = [float(v) for v in z["region"]]
    except (OSError, KeyError, ValueError):
        return None
    if ratio.ndim != 2 or not ratio.size:
        return None
    ny, nx = ratio.shape
    iy, ix = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    x0, y0, x1, y1 = region
    # thirds of the core, rows north to south as the training prompts print them
    ey = [0, ny // 3, ny - ny // 3, ny]
    ex = [0, nx // 3, nx - nx // 3, nx]
    grid = [[float(ratio[ey[r]:ey[r + 1], ex[c]:ex[c + 1]].mean()) if ey[r + 1] > ey[r] and ex[c + 1] > ex[c]
             else 0.0 for c in range(3)] for r in (2, 1, 0)]
    # the hot spot is the 3 x 3 region of the highest mean (as the benchmark's diagnose problems define it)
    row, col = max(((r, c) for r in range(3) for c in range(3)), key=lambda rc: grid[rc[0]][rc[1]])
    return {"region": REGION_GRID[row][col], "region_mean": round(grid[row][col], 3), "peak": float(ratio[iy, ix]),
            "x_um": round(float(x0 + (ix + 0.5) * (x1 - x0) / nx), 1),
            "y_um": round(float(y0 + (iy + 0.5) * (y1 - y0) / ny), 1),
            "map3": [[round(v, 3) for v in r] for r in grid], "over_capacity": float((ratio > 1.0).mean())}


def worst_path(paths_json) -> dict | None:
    """The worst path of a run's 05-timing/paths.json: start, end, slack, the period."""
    from engine.runs import read_json

    report = read_json(paths_json, None)
    if not isinstance(report, dict):
        return None
    paths = [p for p in report.get("paths") or [] if isinstance(p, dict) and p.get("slack_ns") is not None]
    if not paths:
        return None
    worst = min(paths, key=lambda p: p["slack_ns"])
    return {"startpoint": worst.get("startpoint"), "endpoint": worst.get("endpoint"),
            "slack_ns": float(worst["slack_ns"]), "period_ns": report.get("period_ns"),
            "failing": sum(1 for p in paths if p["slack_ns"] < 0), "reported": len(paths)}


def suggest_knobs(facts: dict) -> list[str]:
    """The knob changes a run's own numbers call for, most urgent first (each names the knob and its value)."""
    cfg = facts.get("config") or {}
    m = facts.get("metrics") or {}
    out: list[str] = []
    if facts.get("status") == "failed" and facts.get("code"):
        from engine.diagnosis import lookup, suggest

        d, step = lookup(facts["code"]), facts.get("failed_step")
        patch = suggest(d.code, cfg, knob=facts.get("knob"), step=step)
        change = f"; try {', '.join(f'{k}={v}' for k, v in patch.items())}" if patch else ""
        out.append(f"{d.action[:1].lower()}{d.action[1:].rstrip('.')}{change} (diagnosis {d.code}: {d.title.lower()})")
    elif facts.get("status") == "failed" and facts.get("hint"):
        out.append(f"{facts['hint']} (the {facts.get('failed_step') or 'flow'} step's advice)")
    wp = facts.get("worst_path")
    ws = m.get("timing__setup__ws")
    if isinstance(ws, (int, float)) and ws < 0:
        period = _knob_value(cfg, "clock_ns")
        if isinstance(period, (int, float)):
            out.append(f"raise clock_ns from {_num(period)} to {_num(period - ws)} ns (the period the worst path "
                       f"needs), or shorten the path ending at {wp['endpoint'] if wp else 'the worst endpoint'}")
    unrouted = m.get("route__net__unrouted")
    if isinstance(unrouted, (int, float)) and unrouted > 0:
        layers = _knob_value(cfg, "route.layers")
        util = _knob_value(cfg, "floorplan.utilization")
        out.append(f"raise route.layers from {_num(layers)} (osu018 has 6) or lower floorplan.utilization from "
                   f"{_num(util)} so the {int(unrouted)} unrouted nets find tracks")
    peak = m.get("route__rudy__max")
    hs = facts.get("hot_spot")
    if isinstance(peak, (int, float)) and peak > 1.0:
        td = _knob_value(cfg, "place.target_density")
        util = _knob_value(cfg, "floorplan.utilization")
        where = f" in the {hs['region']}" if hs else ""
        out.append(f"lower place.target_density from {_num(td)} to spread the cells of the hot spot{where} "
                   f"(peak RUDY {peak:.2f} of capacity), or lower floorplan.utilization from {_num(util)}")
    ov = m.get("placement__overflow")
    target = _knob_value(cfg, "place.target_overflow")
    if isinstance(ov, (int, float)) and isinstance(target, (int, float)) and ov > target:
        iters = _knob_value(cfg, "place.max_iterations")
        out.append(f"raise place.max_iterations from {_num(iters)}: placement stopped at overflow {ov:.3f}, above "
                   f"its target {target:g}")
    if not out and isinstance(ws, (int, float)) and ws >= 0:
        period = _knob_value(cfg, "clock_ns")
        if isinstance(period, (int, float)) and ws > 0.05 * period:
            out.append(f"nothing is failing; clock_ns could go from {_num(period)} down to about "
                       f"{_num(period - ws)} ns before the worst path fails")
    return out


def run_facts(run_id: str | None = None, runs_dir: str | None = None) -> ToolResult:
    """A run's own facts, compact, for the chat's prompt: design, status, the failed step with its error and advice,
    HPWL, overflow, RUDY peak and hot-spot region, WNS/TNS and the worst path, unrouted nets, the knob to turn.

    ``run_id`` None or 'last': the person's newest flow run (an optimizer or benchmark evaluation only when there
    is no run of their own)."""
    store = run_store(runs_dir)
    if run_id in (None, "", "last", "latest"):
        run = store.latest(kind="flow", origin="user") or store.latest(kind="flow")
        if run is None:
            raise EngineError(f"There is no flow run in {store.root} yet.",
                              hint="start one on the Design page or with `cda flow run counter`")
    else:
        run = store.get(run_id)
    info = run.info()
    flat = run.flat_metrics()
    keys = ("design__instance__count", "floorplan__utilization", "placement__hpwl", "placement__overflow",
            "route__rudy__max", "route__rudy__mean", "route__net__unrouted", "route__net__count",
            "route__wirelength", "timing__clock_period_ns", "timing__setup__ws", "timing__setup__tns",
            "timing__fmax_mhz", "power__total", "verify__status")
    facts: dict[str, Any] = {
        "run_id": run.id, "design": info.get("design") or "?", "status": info.get("status"),
        "steps": info.get("steps") or [], "failed_step": info.get("failed_step"),
        "error": info.get("error"), "hint": info.get("hint"), "config": info.get("config") or {},
        "code": None, "knob": None,
        "metrics": {k: flat[k] for k in keys if k in flat and not isinstance(flat[k], (dict, list))},
    }
    if info.get("status") == "failed":
        from engine.diagnosis import of_run

        facts["code"], facts["knob"] = of_run(info)  # the failure's code in run.json (engine.diagnosis)
    done = list(run.metrics())
    facts["finished_steps"] = done
    route_dir = run.step_dir("route", create=False)
    facts["hot_spot"] = hot_spot(route_dir / "congestion.npz") if (route_dir / "congestion.npz").is_file() else None
    facts["worst_path"] = worst_path(run.step_dir("timing", create=False) / "paths.json")
    facts["knobs"] = suggest_knobs(facts)
    text = facts_text(facts)
    return ToolResult("run_facts", True, text, [run.id], {k: v for k, v in facts.items() if k != "config"})


def facts_text(f: dict) -> str:
    """The facts as a few short lines (what a 135M model reads first; every number with its unit)."""
    m = f["metrics"]
    lines = [f"Run {f['run_id']}: design {f['design']}, status {f['status']}"
             + (f", finished steps {', '.join(f['finished_steps'])}" if f.get("finished_steps") else "") + "."]
    if f["status"] == "failed":
        lines.append(f"Failed at step {f.get('failed_step') or '?'}: {f.get('error') or 'no message'}")
    place = []
    if "placement__hpwl" in m:
        place.append(f"HPWL {_num(m['placement__hpwl'])} um")
    if "placement__overflow" in m:
        place.append(f"overflow {m['placement__overflow']:.3f}")
    if "floorplan__utilization" in m:
        place.append(f"utilization {m['floorplan__utilization']:.2f}")
    if place:
        lines.append("Placement: " + ", ".join(place) + ".")
    hs = f.get("hot_spot")
    if "route__rudy__max" in m:
        route = f"Congestion: RUDY peak {m['route__rudy__max']:.2f} of track capacity"
        if hs:
            route += (f" at x {hs['x_um']:g} um, y {hs['y_um']:g} um; the hot spot is the {hs['region']} of the core "
                      f"(mean {hs['region_mean']:.2f})")
        if "route__net__unrouted" in m:
            route += f"; {int(m['route__net__unrouted'])} unrouted nets"
            if "route__net__count" in m:
                route += f" of {int(m['route__net__count'])}"
        lines.append(route + ".")
    wp = f.get("worst_path")
    if "timing__setup__ws" in m:
        clock = m.get("timing__clock_period_ns")
        timing = (f"Timing{f' at a {clock:g} ns clock' if isinstance(clock, (int, float)) else ''}: "
                  f"WNS {m['timing__setup__ws']:.3f} ns, TNS {m.get('timing__setup__tns', 0.0):.3f} ns")
        if wp:
            timing += (f"; the worst path runs from {wp['startpoint']} to {wp['endpoint']} with slack "
                       f"{wp['slack_ns']:.3f} ns ({'fails' if wp['slack_ns'] < 0 else 'meets timing'})")
        lines.append(timing + ".")
    if f.get("knobs"):
        lines.append(f"Knob to turn: {f['knobs'][0]}.")
    return "\n".join(lines)


def call(tool: ToolCall, runs_dir: str | None = None, allow_runs: bool = True,
         progress: Callable[[str], None] | None = None, run_timeout_s: float = 900.0,
         wait: bool = False) -> ToolResult:
    """Run a detected tool; user-level problems come back as a failed ToolResult with the message. ``wait``: a
    what-if blocks until its run ends (else it returns at once with the run id, see `what_if`)."""
    try:
        if tool.name == "run_metrics":
            return run_metrics(tool.args["metrics"], tool.args.get("run_id"), runs_dir)
        if tool.name == "timing_paths":
            return timing_paths(tool.args.get("run_id"), runs_dir)
        if tool.name == "what_if":
            if not allow_runs:
                return ToolResult("what_if", False, "Starting runs from the chat is switched off "
                                                    "(allow_tool_runs); no run was started.", [], {})
            return what_if(tool.args["knob"], tool.args["value"], tool.args.get("run_id"), runs_dir,
                           progress=progress, timeout_s=run_timeout_s, wait=wait)
    except EngineError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return ToolResult(tool.name, False, f"{exc.message}{hint}", [], {})
    raise ValueError(f"unknown tool {tool.name}")
