"""Bench: every example design from RTL to GDSII with the default settings, one fresh run each.

Records what the README's flow table shows: cells, placed HPWL, worst slack and fmax, routed wirelength, vias,
unrouted nets, power, and the time of every step. Writes bench/results/flow.json and flow.png and rewrites the
table between the ``bench-flow`` markers in README.md.
Run: `.venv/bin/python bench/bench_flow.py [design ...]` (or `make bench`). Exit code 1 when a design fails.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from engine.config import FlowConfig
from engine.designs import list_examples
from engine.flow.flow import run_flow
from engine.flow.registry import STEP_IDS
from engine.runs import RunStore, write_json

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
MARK_START, MARK_END = "<!-- bench-flow:start -->", "<!-- bench-flow:end -->"
# The large design does not route at the generic defaults (utilisation 0.6, 4 layers: qrouter still had ~130 nets
# open after 40 min); its design.json carries its own defaults (more room, all six metals), which
# DesignSpec.flow_config() applies, as the CLI and the cockpit do.


def _step_seconds(run) -> dict[str, float]:
    out = {}
    for step in STEP_IDS:
        rec = run.step_dir(step, create=False) / "step.json"
        if rec.is_file():
            info = json.loads(rec.read_text())
            src = run.dir.parent / str(info.get("reused_from") or "") / rec.parent.name / "step.json"
            if info.get("reused_from") and src.is_file():  # a reused step: the time it took when it ran
                info = json.loads(src.read_text())
            out[step] = round(float(info.get("seconds", 0.0)), 2)
    return out


def bench_design(spec, store: RunStore) -> dict:
    cfg = spec.flow_config()  # the design's own defaults (design.json flow_overrides) included
    t0 = time.monotonic()
    run = run_flow(cfg, store, reuse=False)
    return row_from_run(run, spec.name, spec.size, wall=time.monotonic() - t0)


def _non_defaults(cfg: FlowConfig) -> str:
    """The knobs of a run that differ from the defaults, in words ('' for a default run)."""
    d = FlowConfig()
    out = []
    if cfg.floorplan.utilization != d.floorplan.utilization:
        out.append(f"utilisation {cfg.floorplan.utilization:g}")
    if cfg.route.layers != d.route.layers:
        out.append(f"{cfg.route.layers} routing layers")
    if cfg.route.timeout_s != d.route.timeout_s:
        out.append(f"qrouter limit {cfg.route.timeout_s:.0f} s")
    return ", ".join(out)


def row_from_run(run, design: str, size: str, wall: float | None = None) -> dict:
    """The table row of one finished (or failed) flow run."""
    cfg = FlowConfig.from_dict(run.config)
    steps = _step_seconds(run)
    wall = wall if wall is not None else sum(steps.values())
    m = run.metrics()
    syn, pl, rt, tm, gd = (m.get(s, {}) for s in ("synth", "place", "route", "timing", "gds"))
    return {
        "design": design, "size": size, "status": run.status, "failed_step": run.info().get("failed_step"),
        "error": run.info().get("error"), "clock_ns": cfg.clock_ns,
        "cells": syn.get("design__instance__count"), "hpwl_um": pl.get("placement__hpwl"),
        "rudy_max": rt.get("route__rudy__max"), "routed_wl_um": rt.get("route__wirelength"),
        "vias": rt.get("route__via__count"), "unrouted": rt.get("route__net__unrouted"),
        "wns_ns": tm.get("timing__setup__ws"), "fmax_mhz": tm.get("timing__fmax_mhz"),
        "power_mw": round(tm["power__total"] * 1e3, 4) if tm.get("power__total") is not None else None,
        "activity": (tm.get("power__activity_source") or "").split(":")[0],
        "gds_cells": gd.get("gds__instance__count"), "gds_bytes": gd.get("gds__file_bytes"),
        "settings": _non_defaults(cfg), "step_s": steps, "wall_s": round(wall, 1),
    }


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def readme_table(rows: list[dict]) -> str:
    head = ("| design | cells | HPWL (um) | routed WL (um) | vias | unrouted | WNS (ns) @ clock | fmax (MHz) | "
            "power (mW) | synth / place / route / timing / gds (s) | status |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        s = r["step_s"]
        steps = " / ".join(_fmt(s.get(k), ".1f") for k in ("synth", "place", "route", "timing", "gds"))
        status = r["status"] if r["status"] == "done" else f"{r['status']} at {r['failed_step']}"
        lines.append(f"| {r['design']} | {_fmt(r['cells'])} | {_fmt(r['hpwl_um'], ',.0f')} | "
                     f"{_fmt(r['routed_wl_um'], ',.0f')} | {_fmt(r['vias'])} | {_fmt(r['unrouted'])} | "
                     f"{_fmt(r['wns_ns'], '+.2f')} @ {r['clock_ns']:g} | {_fmt(r['fmax_mhz'], '.0f')} | "
                     f"{_fmt(r['power_mw'], '.3g')} | {steps} | {status} |")
    lines.append("")
    changed = [f"{r['design']}: {r['settings']}" for r in rows if r.get("settings")]
    lines.append(f"Default settings (utilisation 0.6, 4 routing layers) unless noted, osu018, {os.cpu_count()} "
                 "cores; power with testbench activity"
                 + (f"; not default: {'; '.join(changed)}" if changed else "")
                 + ". Produced by `make bench` (bench/bench_flow.py).")
    return "\n".join(lines)


def update_readme(table: str) -> bool:
    if not README.is_file():
        return False
    text = README.read_text()
    if MARK_START not in text or MARK_END not in text:
        return False
    new = re.sub(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), lambda _: f"{MARK_START}\n{table}\n{MARK_END}",
                 text, flags=re.S)
    README.write_text(new)
    return True


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["step_s"]]
    if not rows:
        return
    names = [r["design"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    bottom = [0.0] * len(rows)
    for step in ("synth", "floorplan", "place", "route", "timing", "gds", "verify"):
        vals = [r["step_s"].get(step, 0.0) for r in rows]
        ax1.bar(names, vals, bottom=bottom, label=step)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_ylabel("seconds per step")
    ax1.set_yscale("symlog", linthresh=1.0)
    ax1.legend(fontsize=8)
    hp = [r["hpwl_um"] or 0 for r in rows]
    wl = [r["routed_wl_um"] or 0 for r in rows]
    x = range(len(rows))
    ax2.bar([i - 0.2 for i in x], hp, width=0.4, label="placed HPWL")
    ax2.bar([i + 0.2 for i in x], wl, width=0.4, label="routed wirelength")
    ax2.set_xticks(list(x), names)
    ax2.set_yscale("log")
    ax2.set_ylabel("um")
    ax2.legend()
    fig.suptitle("Example designs, RTL to GDSII")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _print(row: dict) -> None:
    print(f"{row['design']:10s} {row['status']:7s} cells {_fmt(row['cells']):>6s}  "
          f"WL {_fmt(row['routed_wl_um'], ',.0f'):>9s} um  unrouted {_fmt(row['unrouted'])}  "
          f"WNS {_fmt(row['wns_ns'], '+.2f')} ns  {row['wall_s']:.0f} s", flush=True)


def main(argv: list[str]) -> int:
    """`bench_flow.py` runs every example; `bench_flow.py NAME ...` refreshes those rows only;
    `bench_flow.py --run RUN_FOLDER` records a row from a flow run made elsewhere (e.g. `cda flow run rv32e`)."""
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    examples = {s.name: s for s in list_examples()}
    new_rows: list[dict] = []
    if argv[:1] == ["--run"]:
        for folder in argv[1:]:
            folder = Path(folder).resolve()
            run = RunStore(folder.parent).get(folder.name)
            name = next((n for n, s in examples.items() if s.top == run.config.get("top")), run.config.get("top"))
            new_rows.append(row_from_run(run, name, examples[name].size if name in examples else "user"))
            _print(new_rows[-1])
    else:
        wanted = set(argv)
        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore(Path(tmp) / "runs")
            for spec in examples.values():
                if wanted and spec.name not in wanted:
                    continue
                new_rows.append(bench_design(spec, store))
                _print(new_rows[-1])
    # Rows of designs not run this time are kept from the previous results, in the examples' order.
    old = json.loads((RESULTS / "flow.json").read_text()).get("rows", []) if (RESULTS / "flow.json").is_file() else []
    by_name = {r["design"]: r for r in old}
    by_name.update({r["design"]: r for r in new_rows})
    order = list(examples) + [n for n in by_name if n not in examples]
    rows = [by_name[n] for n in order if n in by_name]
    out = {"bench": "flow", "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "rows": rows}
    write_json(RESULTS / "flow.json", out, indent=2)
    plot(rows, RESULTS / "flow.png")
    update_readme(readme_table(rows))
    failed = [r for r in new_rows if r["status"] != "done"]
    for r in failed:
        print(f"FAIL {r['design']}: {r['failed_step']}: {r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
