"""Result sets side by side (the Benchmarks page and `make bench` read these): tables, not pictures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.bench.problems import KINDS


def list_result_files(folder: str | Path) -> list[Path]:
    """Results JSON files in a folder, newest first (files that are not results are skipped)."""
    folder = Path(folder)
    out = []
    for p in folder.glob("*.json"):
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "results" in data and "summary" in data:
            out.append(p)
    return sorted(out, key=lambda p: p.stat().st_mtime, reverse=True)


def short(answer: Any, limit: int = 80) -> str:
    """One line for an answer (dict, text or None)."""
    if answer is None:
        return "-"
    if isinstance(answer, dict):
        if set(answer) == {"value"} and isinstance(answer["value"], (int, float)):
            return f"{answer['value']:.4g}"
        if set(answer) == {"choice"}:
            return str(answer["choice"])
        if "settings" in answer and isinstance(answer["settings"], dict):
            return ", ".join(f"{k.split('.')[-1]}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                             for k, v in answer["settings"].items()) or "(defaults)"
        text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in answer.items())
    else:
        text = " ".join(str(answer).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_table(results: list[dict]) -> list[dict]:
    """Rows: overall and each kind; per result set the mean score, its 95% CI and problems solved."""
    rows = []
    for kind in ("overall", *KINDS):
        row: dict[str, Any] = {"kind": kind}
        for r in results:
            s = r["summary"]
            b = s["overall"] if kind == "overall" else s["by_kind"].get(kind)
            row[r["label"]] = (f"{b['score']:.3f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}] ({b['solved']}/{b['n']})"
                               if b else "-")
        rows.append(row)
    return rows


def side_by_side(results: list[dict], kind: str | None = None, only_differences: bool = False) -> list[dict]:
    """Problem by problem: each set's answer and score, and the truth."""
    by_id = [{row["id"]: row for row in r["results"]} for r in results]
    ids = [pid for pid in by_id[0] if all(pid in b for b in by_id[1:])]
    rows = []
    for pid in ids:
        first = by_id[0][pid]
        if kind and first["kind"] != kind:
            continue
        solved = [b[pid]["solved"] for b in by_id]
        if only_differences and len(set(solved)) == 1:
            continue
        row: dict[str, Any] = {"id": pid, "kind": first["kind"], "truth": short(first.get("truth"))}
        for r, b in zip(results, by_id):
            row[f"{r['label']} answer"] = short(b[pid].get("answer"))
            row[f"{r['label']} score"] = b[pid]["score"]
        rows.append(row)
    return rows


def markdown_table(results: list[dict]) -> str:
    """The README table: one row per result set, columns overall and per kind (mean [95% CI])."""
    head = "| model · mode | overall | " + " | ".join(KINDS) + " | retrieval hit / miss | mean latency |"
    sep = "|" + "---|" * (len(KINDS) + 4)
    lines = [head, sep]
    for r in results:
        s = r["summary"]

        def cell(b):
            return f"{b['score']:.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}]" if b else "-"

        ret = s.get("retrieval", {})
        hit_miss = (f"{ret['hit']['score']:.2f} / {ret['miss']['score']:.2f}" if "hit" in ret and "miss" in ret
                    else "n/a")
        lat = sum(x["latency_s"] for x in r["results"]) / max(len(r["results"]), 1)
        lines.append(f"| {r['model']} · {r['mode']} | {cell(s['overall'])} (solved {s['overall']['solved']}/"
                     f"{s['overall']['n']}) | " + " | ".join(cell(s["by_kind"].get(k)) for k in KINDS)
                     + f" | {hit_miss} | {lat:.2f} s |")
    return "\n".join(lines)
