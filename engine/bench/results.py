"""Benchmark result files (written by `cda bench run`, read by `cda bench compare` and the Benchmarks page) and the
interval every score carries."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"


def bootstrap_ci(scores: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so a result file is reproducible)."""
    if not scores:
        return (float("nan"), float("nan"))
    a = np.asarray(scores, dtype=np.float64)
    if len(a) == 1:
        return (float(a[0]), float(a[0]))
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def load_results(path: str | Path) -> dict:
    """A results JSON file, or an error that says what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path} does not exist", hint="run `cda bench run` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EngineError(f"{path} is not a results file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise EngineError(f"{path} is not a results file (no 'results')")
    return data


def result_files(folder: str | Path) -> list[Path]:
    """Results files (``"version": 2``) in folder/v2 and folder itself, newest first; other JSON is skipped."""
    folder = Path(folder)
    out = []
    for d in (folder / "v2", folder):
        if not d.is_dir():
            continue
        for f in d.glob("*.json"):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("version") == 2 and "results" in data:
                out.append(f)
    return sorted(out, key=lambda f: f.stat().st_mtime, reverse=True)


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
