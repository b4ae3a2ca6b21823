"""Bench: every example design through synthesis (Yosys on osu018) and verification (Icarus, RTL vs gates).

Checks what the test suite leaves out for time: the large design really is over 5,000 cells and its
gate-level netlist matches its RTL. Writes bench/results/designs_verify.json and designs_verify.png.
Run: `.venv/bin/python bench/bench_designs_verify.py` (or `make bench`). Exit code 1 when a check fails.
"""
from __future__ import annotations

import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

from engine.designs import list_examples
from engine.flow.flow import run_flow
from engine.runs import RunStore, write_json

ROOT = Path(__file__).resolve().parent.parent
LARGE_MIN_CELLS = 5000
RESULTS = ROOT / "bench" / "results"


def _seconds(run, step_id: str) -> float:
    rec = json.loads((run.step_dir(step_id, create=False) / "step.json").read_text())
    return float(rec.get("seconds", 0.0))


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        for spec in list_examples():
            cfg = spec.flow_config()
            t0 = time.monotonic()
            run = run_flow(cfg, store, steps=["synth", "verify"], reuse=False)
            wall = time.monotonic() - t0
            if run.status != "done":
                failures.append(f"{spec.name}: {run.info().get('error')}")
                continue
            s, v = run.step_metrics("synth"), run.step_metrics("verify")
            row = {"design": spec.name, "size": spec.size, "cells": s["design__instance__count"],
                   "area_um2": s["design__instance__area"],
                   "flip_flops": s["design__instance__count__sequential"],
                   "synth_s": round(_seconds(run, "synth"), 2), "verify_s": round(_seconds(run, "verify"), 2),
                   "sim_rtl_s": v.get("verify__sim__rtl_s"), "sim_gate_s": v.get("verify__sim__gate_s"),
                   "verify_status": v["verify__status"], "tests": v["verify__tests__count"],
                   "mismatches": v["verify__mismatch__count"], "wall_s": round(wall, 2)}
            rows.append(row)
            print(f"{spec.name:10s} {row['size']:6s} {row['cells']:6d} cells  synth {row['synth_s']:6.1f} s  "
                  f"verify {row['verify_s']:5.1f} s  {row['verify_status']} ({row['tests']} lines, "
                  f"{row['mismatches']} mismatches)")
            if row["verify_status"] != "pass":
                failures.append(f"{spec.name}: verify {row['verify_status']}")
            if spec.size == "large" and row["cells"] <= LARGE_MIN_CELLS:
                failures.append(f"{spec.name}: {row['cells']} cells, a large design needs > {LARGE_MIN_CELLS}")
            if spec.name == "counter" and row["cells"] >= 100:
                failures.append(f"counter: {row['cells']} cells, should stay under 100")
    out = {"bench": "designs_verify", "host": platform.node(), "python": platform.python_version(),
           "rows": rows, "failures": failures}
    write_json(RESULTS / "designs_verify.json", out, indent=2)
    _plot(rows, RESULTS / "designs_verify.png")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    names = [r["design"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(names, [r["cells"] for r in rows], color="#4c78a8")
    ax1.set_yscale("log")
    ax1.axhline(LARGE_MIN_CELLS, color="#e45756", ls="--", lw=1, label=f"{LARGE_MIN_CELLS} cells")
    ax1.set_ylabel("standard cells after synthesis (osu018)")
    ax1.legend()
    x = range(len(rows))
    ax2.bar([i - 0.2 for i in x], [r["sim_rtl_s"] or 0 for r in rows], width=0.4, label="RTL sim")
    ax2.bar([i + 0.2 for i in x], [r["sim_gate_s"] or 0 for r in rows], width=0.4, label="gate-level sim")
    ax2.set_xticks(list(x), names)
    ax2.set_ylabel("seconds (Icarus compile + run)")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Example designs: size and verification time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
