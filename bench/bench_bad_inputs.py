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

from bad_inputs.corpus import CASES, Case  # noqa: E402 - the corpus lives with the tests

RESULTS = ROOT / "bench" / "results" / "bad_inputs.json"


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
    args = ap.parse_args()
    cda = Path(sys.executable).with_name("cda")
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            root = tmp_path / "design"
            root.mkdir()
            canary = tmp_path / "canary"
            for name, content in case.files.items():
                p = root / name
                p.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    p.write_bytes(content)
                else:
                    p.write_text(content.replace("{canary}", str(canary)), encoding="utf-8")
            argv = [a.replace("{dir}", str(root)).replace("{canary}", str(canary)) for a in case.argv]
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
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"cases": len(rows), "counts": dict(counts)}))
    return 0 if not any(out["must_be_zero"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
