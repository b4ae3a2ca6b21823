"""`cda metrics list` and `cda knobs list`: the registry as a table, or as JSON for scripts."""
from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    metrics = sub.add_parser("metrics", help="the metrics the flow, the placer and the benchmark write")
    msub = metrics.add_subparsers(dest="metrics_command", metavar="ACTION")
    ml = msub.add_parser("list", help="every metric: label, unit, direction, noise, meaning")
    ml.add_argument("--json", action="store_true", help="print JSON (one object per metric)")
    ml.add_argument("prefix", nargs="?", default="", help="only names starting with this (e.g. placement__)")
    ml.set_defaults(func=cmd_metrics_list)
    metrics.set_defaults(func=lambda a: metrics.print_help() or 2)

    knobs = sub.add_parser("knobs", help="the knobs of the flow's config")
    ksub = knobs.add_subparsers(dest="knobs_command", metavar="ACTION")
    kl = ksub.add_parser("list", help="every knob: config path, type, range, default, doc")
    kl.add_argument("--json", action="store_true", help="print JSON (one object per knob)")
    kl.add_argument("prefix", nargs="?", default="", help="only paths starting with this (e.g. place.)")
    kl.set_defaults(func=cmd_knobs_list)
    knobs.set_defaults(func=lambda a: knobs.print_help() or 2)


def metric_record(m) -> dict:
    return {"name": m.name, "label": m.label, "unit": m.unit, "display_unit": m.shown_unit, "scale": m.scale,
            "higher_is_better": m.higher_is_better, "noise": m.noise, "noise_abs": m.noise_abs,
            "judge": dict(m.judge), "kind": m.kind, "meaning": m.meaning}


def knob_record(k) -> dict:
    return {"path": k.path, "label": k.label, "type": k.type.__name__, "default": k.default, "low": k.low,
            "high": k.high, "choices": list(k.choices) if k.choices else None, "unit": k.unit,
            "log_scale": k.log_scale, "search": list(k.search) if k.search else None, "relative": k.relative,
            "doc": k.doc}


def _direction(hib: bool | None) -> str:
    return {True: "higher", False: "lower", None: "-"}[hib]


def cmd_metrics_list(args: argparse.Namespace) -> int:
    from engine.registry import METRICS

    rows = [m for name, m in METRICS.items() if name.startswith(args.prefix)]
    if args.json:
        json.dump([metric_record(m) for m in rows], sys.stdout, indent=1, ensure_ascii=False)
        print()
        return 0
    print(f"{'metric':<38} {'unit':<9} {'better':<7} {'noise':<7} meaning")
    for m in rows:
        noise = f"{m.noise * 100:g}%" if m.noise else (f"±{m.noise_abs:g}" if m.noise_abs else "-")
        print(f"{m.name:<38} {m.shown_unit or '-':<9} {_direction(m.higher_is_better):<7} {noise:<7} {m.meaning}")
    print(f"{len(rows)} metrics")
    return 0


def cmd_knobs_list(args: argparse.Namespace) -> int:
    from engine.registry import KNOBS

    rows = [k for path, k in KNOBS.items() if path.startswith(args.prefix)]
    if args.json:
        json.dump([knob_record(k) for k in rows], sys.stdout, indent=1, ensure_ascii=False, default=str)
        print()
        return 0
    print(f"{'knob':<34} {'type':<6} {'default':<10} {'range':<36} doc")
    for k in rows:
        rng = k.range_text + (f" {k.unit}" if k.unit else "")
        if k.search:  # the part of the range the optimizer explores
            lo, hi = k.search
            rng += f" (optimizer {lo:g}-{hi:g}{'x' if k.relative else ''})"
        print(f"{k.path:<34} {k.type.__name__:<6} {str(k.default):<10} {rng:<36} {k.doc}")
    print(f"{len(rows)} knobs")
    return 0
