"""Runs the bad-input corpus (tests/bad_inputs/corpus.py) through the installed `cda` command, one subprocess per
case, and counts the outcomes the way issue #13 asks: clear message, traceback, hang, silent wrong result,
command executed. Writes bench/results/bad_inputs.json.

    .venv/bin/python bench/bench_bad_inputs.py [--timeout 300]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bad_inputs.corpus import CASES, Case, materialise  # noqa: E402 - the corpus lives with the tests

from engine.runs import write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bad_inputs.json"
README = ROOT / "README.md"
MARK_START, MARK_END = "<!-- bench-bad-inputs:start -->", "<!-- bench-bad-inputs:end -->"


def readme_text(out: dict) -> str:
    c, z = out["counts"], out["must_be_zero"]
    kinds = {k: sum(r["kind"] == k for r in out["rows"]) for k in ("injection", "message", "works")}
    return (f"{out['cases']} cases in `tests/bad_inputs/corpus.py` ({kinds['injection']} injection attempts, "
            f"{kinds['message']} broken or odd designs and commands, {kinds['works']} hostile-looking inputs "
            "that must just work), each run as its own `cda` process by `bench/bench_bad_inputs.py`:\n\n"
            "| clear message | works as it should | traceback | hang | silent wrong result | command executed |\n"
            "|---:|---:|---:|---:|---:|---:|\n"
            f"| {c.get('clear message', 0)} | {c.get('works', 0)} | {z['traceback']} | {z['hang']} | "
            f"{z['silent wrong']} | {z['command executed']} |\n")


def update_readme(out: dict) -> None:
    text = README.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        README.write_text(head + MARK_START + "\n" + readme_text(out) + MARK_END + tail)


def classify(case: Case, rc: int | None, text: str, canary_made: bool) -> str:
    if canary_made:
        return "command executed"
    if rc is None:
        return "hang"
    if "Traceback" in text:
        return "traceback"
    rc_ok = rc != 0 if case.rc == "nonzero" else rc == case.rc
    words_ok = all(w.lower() in text.lower() for w in case.expect)
    if rc_ok and words_ok:
        return "clear message" if case.kind != "works" else "works"
    return "silent wrong" if rc == 0 else "unclear message"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a case counts as a hang")
    ap.add_argument("--replot", action="store_true", help="only rewrite the README block from the saved JSON")
    args = ap.parse_args()
    if args.replot:
        update_readme(json.loads(RESULTS.read_text()))
        return 0
    cda = Path(sys.executable).with_name("cda")
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            root = tmp_path / "design"
            root.mkdir()
            canary = tmp_path / "canary"
            argv = materialise(case, root, canary)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([str(cda), "--runs-dir", str(tmp_path / "runs"), *argv], capture_output=True,
                                      text=True, timeout=args.timeout, cwd=ROOT)
                rc, text = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired:
                rc, text = None, ""
            outcome = classify(case, rc, text, canary.exists())
            last = [ln for ln in text.strip().splitlines() if ln.startswith(("error", "synthesis warning"))]
            rows.append({"id": case.id, "kind": case.kind, "outcome": outcome, "rc": rc,
                         "seconds": round(time.perf_counter() - t0, 2), "message": (last or [""])[-1][:300]})
            print(f"{case.id:<32} {outcome:<16} {rows[-1]['message'][:90]}", flush=True)
    counts = Counter(r["outcome"] for r in rows)
    out = {"cases": len(rows), "counts": dict(counts), "rows": rows,
           "must_be_zero": {k: counts.get(k, 0) for k in ("traceback", "hang", "silent wrong", "command executed")}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, out, indent=1)
    update_readme(out)
    print(json.dumps({"cases": len(rows), "counts": dict(counts)}))
    return 0 if not any(out["must_be_zero"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
