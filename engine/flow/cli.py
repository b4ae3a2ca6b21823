"""`cda flow run` and `cda runs list|show`."""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from pathlib import Path

from engine.errors import EngineError

_CLOCK_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(ns|ps|us|mhz|ghz)?\s*$", re.I)


def parse_clock(text: str) -> float:
    """'10ns', '10', '2500ps', '100MHz' -> period in ns."""
    m = _CLOCK_RE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a clock: use a period like 10ns or 2500ps, or 100MHz")
    value, unit = float(m.group(1)), (m.group(2) or "ns").lower()
    if value <= 0:
        raise argparse.ArgumentTypeError("the clock period must be positive")
    return {"ns": value, "ps": value / 1000, "us": value * 1000, "mhz": 1000 / value, "ghz": 1 / value}[unit]


def _fraction(text: str) -> float:
    v = float(text)
    return v / 100 if v > 1.5 else v  # accept 60 as 60 %


def register(sub: argparse._SubParsersAction) -> None:
    flow = sub.add_parser("flow", help="run the RTL-to-GDSII flow")
    fsub = flow.add_subparsers(dest="flow_command", metavar="ACTION")
    run = fsub.add_parser("run", help="run the flow on a design (files, a folder or an example name)")
    run.add_argument("design", nargs="+", help="Verilog file(s), a design folder, or an example name (e.g. counter)")
    run.add_argument("--top", default=None, help="top module (default: from design.json, or the one Yosys finds)")
    run.add_argument("--clock", type=parse_clock, default=None, help="clock period, e.g. 10ns, 2500ps, 100MHz")
    run.add_argument("--clock-port", default=None, help="clock input port (default: design.json, or clk/clock)")
    run.add_argument("--sdc", default=None, metavar="FILE",
                     help="timing constraints (create_clock, set_input_delay, set_false_path, ...; checked before "
                          "OpenSTA reads them); default: generated from --clock, saved as constraints.sdc")
    run.add_argument("--macro-lef", action="append", default=[], metavar="FILE", dest="macro_lefs",
                     help="a hard macro's LEF (CLASS BLOCK, SIZE, PINs, OBS): placed as a fixed block (repeatable)")
    run.add_argument("--macro-lib", action="append", default=[], metavar="FILE", dest="macro_libs",
                     help="the Liberty of the macro given by the --macro-lef at the same position (optional: "
                          "without one, synthesis keeps the macro as a box with the LEF's pins, and STA has no "
                          "timing through it)")
    run.add_argument("--blackbox", action="append", default=[], metavar="MODULE",
                     help="keep this module as an empty box in synthesis (one instance, no logic; repeatable)")
    from engine.registry import knob

    def _knob_help(path: str, what: str) -> str:  # range and default from the registry, never typed twice
        k = knob(path)
        return f"{what} ({k.low:g}-{k.high:g}, default {k.default:g}; = --set {path}=...)"

    run.add_argument("--utilization", type=_fraction, default=None,
                     help=_knob_help("floorplan.utilization", "target core utilisation"))
    run.add_argument("--aspect-ratio", type=float, default=None,
                     help=_knob_help("floorplan.aspect_ratio", "core height/width"))
    run.add_argument("--density", type=float, default=None,
                     help=_knob_help("place.target_density", "placement target density"))
    run.add_argument("--synth-strategy", default=None, choices=["default", "delay", "fast", "area"],
                     help="ABC mapping script")
    run.add_argument("--until", default=None, help="stop after this step (synth, floorplan, place, route, ...)")
    run.add_argument("--skip", action="append", default=[], help="skip a step (repeatable)")
    run.add_argument("--no-reuse", action="store_true", help="run every step even when an identical one exists")
    run.add_argument("--tech", default=None, help="technology folder (default Debian's osu018)")
    run.add_argument("--label", default="", help="a label shown in run lists")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings",
                     help="any config value, e.g. --set place.gamma_base=2 (repeatable; `cda knobs list` lists them)")
    run.set_defaults(func=cmd_flow_run)
    flow.set_defaults(func=lambda a: flow.print_help() or 2)

    runs = sub.add_parser("runs", help="list and inspect runs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    ls = rsub.add_parser("list", help="recent runs")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--kind", default=None, help="flow, optimize, train, bench ...")
    ls.add_argument("--all", action="store_true", dest="all_runs",
                    help="also the runs the optimizer, training and benchmarks started (hidden by default)")
    ls.set_defaults(func=cmd_runs_list)
    show = rsub.add_parser("show", help="one run: status, steps, metrics, error")
    show.add_argument("run_id", help="run id, or 'last'")
    show.set_defaults(func=cmd_runs_show)
    cancel = rsub.add_parser("cancel", help="ask a running run to stop")
    cancel.add_argument("run_id")
    cancel.set_defaults(func=cmd_runs_cancel)
    runs.set_defaults(func=lambda a: runs.print_help() or 2)


def build_config(args: argparse.Namespace):
    from engine.designs import resolve

    spec = resolve(args.design[0], args.design[1:])
    cfg = spec.flow_config()
    cfg.tech_dir = args.tech
    if args.top:
        cfg.top = args.top
    if args.clock_port:
        cfg.clock_port = args.clock_port
    if args.clock is not None:
        cfg.clock_ns = args.clock
    if args.sdc:
        cfg.timing.sdc = str(Path(args.sdc).resolve())
    if args.utilization is not None:
        cfg.floorplan.utilization = args.utilization
    if args.aspect_ratio is not None:
        cfg.floorplan.aspect_ratio = args.aspect_ratio
    if args.density is not None:
        cfg.place.target_density = args.density
    if args.synth_strategy:
        cfg.synth.abc_script = args.synth_strategy
    lefs, libs = getattr(args, "macro_lefs", []) or [], getattr(args, "macro_libs", []) or []
    if len(libs) > len(lefs):
        raise EngineError(f"{len(libs)} --macro-lib for {len(lefs)} --macro-lef: give each Liberty after its LEF",
                          hint="--macro-lef sram.lef --macro-lib sram.lib")
    for k, lef in enumerate(lefs):
        lib = libs[k] if k < len(libs) else ""
        cfg.macros = [*cfg.macros, {"lef": str(Path(lef).resolve()), "lib": str(Path(lib).resolve()) if lib else ""}]
    for name in getattr(args, "blackbox", []) or []:
        cfg.blackbox = [*cfg.blackbox, name]
    from engine.config import FlowConfig, apply_settings

    # Every value (flags, --set, design.json) checked against the registry's ranges: a clear error naming the range.
    cfg = FlowConfig.from_dict(apply_settings(cfg.to_dict(), getattr(args, "settings", []) or []))
    from engine.validate import label, validate_flow_config

    validate_flow_config(cfg)  # a bad name stops here, before a run folder or a tool exists
    label(args.label)
    return cfg


class _Printer:
    """Per-step progress on the terminal: a live line on a TTY, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.current: str | None = None
        self.last = 0.0

    def __call__(self, step: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        if step != self.current:
            if self.current and self.tty:
                sys.stdout.write("\n")
            self.current = step
            self.last = 0.0
        if self.tty:
            bar = "#" * int(fraction * 20)
            sys.stdout.write(f"\r  {step:<10} [{bar:<20}] {fraction:4.0%} {message[:60]:<60}")
            sys.stdout.flush()
        elif now - self.last > 2.0 or fraction >= 1.0:
            print(f"  {step:<10} {fraction:4.0%} {message}", flush=True)
            self.last = now


def cmd_flow_run(args: argparse.Namespace) -> int:
    from engine.flow.flow import run_flow, select_steps
    from engine.runs import RunStore

    cfg = build_config(args)
    chosen = select_steps(args.until, None, args.skip)
    store = RunStore(args.runs_dir)
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # first Ctrl-C cancels cleanly, the second one kills
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        print("\ncancelling (Ctrl-C again to abort)...", file=sys.stderr)

    def on_sigterm(signum, frame):  # `kill PID` (a service stopping, a closed terminal): cancel like Ctrl-C
        stop.set()
        print("\ncancelling (SIGTERM)...", file=sys.stderr)

    previous_term = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigterm)
    printer = _Printer()
    print(f"cda flow: {', '.join(cfg.design_files)} top={cfg.top or '(auto)'} clock={cfg.clock_ns:g} ns "
          f"steps={' > '.join(chosen)}")
    try:
        run = run_flow(cfg, store, steps=chosen, progress=printer, cancel=stop.is_set, reuse=not args.no_reuse,
                       label=args.label)
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    if printer.tty and printer.current:
        print()
    print_summary(run)
    status = run.status
    return {"done": 0, "cancelled": 130}.get(status, 1)


def print_summary(run) -> None:
    from engine.metrics import KEY_METRICS, format_value

    info = run.info()
    prog = run.progress()
    metrics = run.metrics()
    print(f"\nrun {run.id}  status: {info['status']}  folder: {run.dir}")
    rows = [("step", "status", "time", "key figures")]
    for step in info.get("steps", []):
        p = prog.get(step, {"status": "not run"})
        m = metrics.get(step, {})
        figures = ", ".join(f"{k.split('__', 1)[1]}={format_value(k, m[k])}" for k in KEY_METRICS.get(step, ())
                            if k in m)
        secs = p.get("seconds")
        rows.append((step, p["status"], f"{secs:.1f}s" if secs is not None else "-", figures))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    for text in metrics.get("synth", {}).get("synth__design_warnings", []) or []:
        print(f"synthesis warning: {text}")
    if info["status"] == "failed":
        print(f"\nerror in step '{info.get('failed_step')}': {info.get('error')}", file=sys.stderr)
        if info.get("hint"):
            print(f"hint: {info['hint']}", file=sys.stderr)
        for line in _diagnosis_lines(info):
            print(line, file=sys.stderr)
        if info.get("log"):
            print(f"log: {info['log']}", file=sys.stderr)


def _diagnosis_lines(info: dict) -> list[str]:
    """The failure's code, what it means and the knob to turn (engine.diagnosis), for a failed run's run.json."""
    from engine.diagnosis import lookup, of_run, suggest
    from engine.registry import knob as registry_knob

    code, knob = of_run(info)
    d = lookup(code)
    lines = [f"code: {code}  ({d.title}{'' if info.get('code') else '; guessed: recorded before codes'})",
             f"why: {d.meaning}", f"what to change: {d.action}"]
    if knob:
        spec = registry_knob(knob)
        unit = f" {spec.unit}" if spec.unit else ""
        lines.append(f"knob: {spec.path} ({spec.label}; range {spec.range_text}{unit}; default {spec.default})")
    patch = suggest(code, info.get("config") or {}, knob=knob, step=info.get("failed_step"))
    if patch:
        lines.append("try: " + " ".join(f"--set {k}={v}" for k, v in patch.items()))
    return lines


def cmd_runs_list(args: argparse.Namespace) -> int:
    from engine.runs import RunStore

    store = RunStore(args.runs_dir)
    everything = getattr(args, "all_runs", False)
    rows = store.list(limit=args.limit, kind=args.kind, damaged=True, origin=None if everything else "user")
    hidden = 0 if everything else sum(n for o, n in store.count_by_origin(kind=args.kind).items() if o != "user")
    if not rows and not hidden:
        print("no runs yet: start one with `cda flow run counter`")
        return 0
    if rows:
        print(f"{'id':<40} {'kind':<9} {'design':<16} {'status':<10} {'origin':<9} created")
    for r in rows:
        parent = f"  (started by {r['parent']})" if r.get("parent") else ""
        print(f"{r['id']:<40} {r['kind']:<9} {r['design'][:16]:<16} {r['status']:<10} {r['origin']:<9} "
              f"{r['created']}{parent}")
    if hidden:
        print(f"({hidden} run(s) started by the optimizer, training or benchmarks are hidden; --all lists them)")
    return 0


def _get_run(store, run_id: str):
    if run_id == "last":
        run = store.latest(kind=None)
        if run is None:
            raise EngineError("no runs yet")
        return run
    return store.get(run_id)


def cmd_runs_show(args: argparse.Namespace) -> int:
    from engine.metrics import format_value
    from engine.runs import RunStore

    run = _get_run(RunStore(args.runs_dir), args.run_id)
    info = run.info()
    print(f"run {run.id}\n  design: {info.get('design')}  kind: {info.get('kind')}  status: {info['status']}")
    print(f"  created: {info.get('created')}  finished: {info.get('finished', '-')}")
    cfg = info.get("config", {})
    if "top" in cfg:
        fp = cfg.get("floorplan", {})
        print(f"  top: {cfg.get('top')}  clock: {cfg.get('clock_ns')} ns  utilisation: {fp.get('utilization')}")
    for step, m in run.metrics().items():
        print(f"  [{step}]")
        for k, v in m.items():
            if isinstance(v, dict):
                v = ", ".join(f"{a}:{b}" for a, b in list(v.items())[:12])
            print(f"    {k:<40} {format_value(k, v) if not isinstance(v, str) else v}")
    if info["status"] == "failed":
        print(f"  error in step '{info.get('failed_step')}': {info.get('error')}")
        if info.get("hint"):
            print(f"  hint: {info['hint']}")
        for line in _diagnosis_lines(info):
            print(f"  {line}")
        if info.get("log"):
            print(f"  log: {info['log']}")
    return 0 if info["status"] != "failed" else 1


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    from engine.runs import RunStore

    run = _get_run(RunStore(args.runs_dir), args.run_id)
    run.request_cancel()
    print(f"cancel requested for {run.id}")
    return 0
