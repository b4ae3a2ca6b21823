"""Automatic scoring of answers against the engine's truth. Every score is in [0, 1]; "solved" means >= 0.75.

- predict  : relative error |a - t| / |t| in bands: <= 5% -> 1.0, <= 10% -> 0.8, <= 25% -> 0.5, <= 50% -> 0.2,
             else 0. (For overflow the denominator is max(|t|, 0.05) so a tiny truth does not punish 0.01 off.)
- choose   : exact match of the option label -> 1, else 0.
- diagnose : required facts present, each worth 1/3: the hot-spot region (exact, synonyms accepted), the peak
             RUDY (within 15% of the truth) and the knob whose change the engine verified lowers it most.
- act      : the engine runs the proposal (knob values outside their ranges or unknown knobs score 0). A
             proposal that breaks the constraint scores 0; otherwise score = (default cost - proposal cost) /
             (default cost - best cost the engine's sweep found), clipped to [0, 1]. The QoR ratio
             proposal / default is reported alongside.

Answers may be a dict in the answer format, or text: the first JSON object in it is used, else the facts are
read from the words (a number for predict, an option letter for choose, region/knob names and a number for
diagnose). Summaries give per-kind and overall means with bootstrap 95% confidence intervals, and the
ChipNeMo-style split: problems where retrieval found a passage with the gold terms vs not.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.bench.measure import KNOBS, PROPOSABLE, Measurer
from engine.bench.problems import KINDS, Problem, act_cost

SOLVED = 0.75
PREDICT_BANDS = ((0.05, 1.0), (0.10, 0.8), (0.25, 0.5), (0.50, 0.2))
RUDY_TOL = 0.15
REGIONS = ("north-east", "north-west", "south-east", "south-west", "center", "north", "south", "east", "west")
_REGION_SYNONYMS = {"centre": "center", "middle": "center", "central": "center", "northeast": "north-east",
                    "northwest": "north-west", "southeast": "south-east", "southwest": "south-west",
                    "top-right": "north-east", "top-left": "north-west", "bottom-right": "south-east",
                    "bottom-left": "south-west", "top": "north", "bottom": "south", "right": "east", "left": "west"}


@dataclass
class Score:
    score: float
    solved: bool
    detail: dict = field(default_factory=dict)  # what was compared: parsed answer, error, facts, QoR


# ---------------------------------------------------------------------- parsing
def parse_answer(answer: Any) -> dict | None:
    """A dict from an answer: the dict itself, or the first JSON object found in text, else None."""
    if isinstance(answer, dict):
        return answer
    if not isinstance(answer, str):
        return None
    start = answer.find("{")
    while start != -1:
        depth = 0
        for end in range(start, len(answer)):
            if answer[end] == "{":
                depth += 1
            elif answer[end] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        val = json.loads(answer[start:end + 1])
                        if isinstance(val, dict):
                            return val
                    except json.JSONDecodeError:
                        pass
                    break
        start = answer.find("{", start + 1)
    return None


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _first_number(text: str) -> float | None:
    m = _NUM.search(text or "")
    return float(m.group()) if m else None


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, str):
        return _first_number(v)
    return None


def normalize_region(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    t = text.strip().lower().replace("_", "-").replace(" ", "-")
    t = _REGION_SYNONYMS.get(t, t)
    if t in REGIONS:
        return t
    low = " " + re.sub(r"[^a-z]+", " ", text.lower()) + " "
    for r in REGIONS:  # compound regions first
        if " " + r.replace("-", " ") + " " in low:
            return r
    for word, r in _REGION_SYNONYMS.items():
        if " " + word.replace("-", " ") + " " in low:
            return r
    return None


def normalize_knob(text: Any, allowed: list[str] | tuple[str, ...] = tuple(KNOBS)) -> str | None:
    if not isinstance(text, str):
        return None
    t = text.strip().lower()
    for k in allowed:
        if t == k or t == k.split(".", 1)[1]:
            return k
    for k in allowed:  # the knob named somewhere in free text
        if k in t or k.split(".", 1)[1] in t:
            return k
    return None


# ---------------------------------------------------------------------- per kind
def score_predict(problem: Problem, answer: Any) -> Score:
    truth = float(problem.truth["answer"]["value"])
    d = parse_answer(answer)
    value = _as_float(d.get("value")) if d else None
    if value is None and isinstance(answer, (str, int, float)):
        value = _as_float(answer)
    if value is None:
        return Score(0.0, False, {"error": "no number in the answer"})
    floor = 0.05 if problem.truth.get("metric") == "placement__overflow" else 1e-9
    rel = abs(value - truth) / max(abs(truth), floor)
    s = next((pts for band, pts in PREDICT_BANDS if rel <= band), 0.0)
    return Score(s, s >= SOLVED, {"value": value, "truth": truth, "rel_error": round(rel, 4)})


def score_choose(problem: Problem, answer: Any) -> Score:
    labels = list(problem.options)
    d = parse_answer(answer)
    choice = d.get("choice") if d else None
    if choice is None and isinstance(answer, str):
        m = re.search(r"\b(?:option\s*)?([A-D])\b", answer)
        choice = m.group(1) if m else None
    choice = str(choice).strip().upper().removeprefix("OPTION").strip() if choice is not None else None
    truth = problem.truth["answer"]["choice"]
    if choice not in labels:
        return Score(0.0, False, {"choice": choice, "truth": truth, "error": f"not one of {labels}"})
    ok = choice == truth
    return Score(float(ok), ok, {"choice": choice, "truth": truth})


def score_diagnose(problem: Problem, answer: Any) -> Score:
    truth = problem.truth["answer"]
    d = parse_answer(answer) or {}
    text = answer if isinstance(answer, str) else ""
    region = normalize_region(d.get("region")) or (normalize_region(text) if text else None)
    peak = _as_float(d.get("rudy_max"))
    if peak is None and text:
        m = re.search(r"rudy[^0-9\-+.]{0,40}([-+]?\d*\.?\d+)", text, re.I)
        peak = float(m.group(1)) if m else None
    knob = normalize_knob(d.get("knob"), list(problem.options)) or (
        normalize_knob(text, list(problem.options)) if text else None)
    facts = {"region": region == truth["region"],
             "rudy_max": peak is not None and abs(peak - truth["rudy_max"]) <= RUDY_TOL * abs(truth["rudy_max"]),
             "knob": knob == truth["knob"]}
    s = sum(facts.values()) / len(facts)
    return Score(s, s >= SOLVED, {"facts": facts, "region": region, "rudy_max": peak, "knob": knob,
                                  "truth": truth})


def proposal_settings(problem: Problem, answer: Any) -> tuple[dict | None, str]:
    """The knob values of an act answer merged over the problem's settings, or (None, why not)."""
    d = parse_answer(answer)
    if not d:
        return None, "no JSON object in the answer"
    prop = d.get("settings", d)
    if not isinstance(prop, dict) or not prop:
        return None, "no knob values in the answer"
    out = dict(problem.settings)
    for k, v in prop.items():
        knob = normalize_knob(k, PROPOSABLE)
        if knob is None:
            return None, f"'{k}' is not a knob that may be proposed ({', '.join(PROPOSABLE)})"
        val = _as_float(v)
        if val is None:
            return None, f"knob {knob} needs a number, not {v!r}"
        lo, hi = KNOBS[knob]["lo"], KNOBS[knob]["hi"]
        if not lo <= val <= hi:
            return None, f"knob {knob} = {val:g} is outside {lo:g}..{hi:g}"
        out[knob] = val
    return out, ""


def _known_metrics(problem: Problem, settings: dict) -> dict | None:
    """Metrics of a truth run with the same settings (saves running the engine again)."""
    from engine.bench.measure import normalize_settings

    want = normalize_settings(settings)
    for rec in problem.truth.get("runs", []):
        if normalize_settings(rec["settings"]) == want:
            return rec["metrics"]
    return None


def score_act(problem: Problem, answer: Any, measurer: Measurer | None) -> Score:
    settings, why = proposal_settings(problem, answer)
    if settings is None:
        return Score(0.0, False, {"error": why})
    metrics = _known_metrics(problem, settings)
    run_id = None
    if metrics is None:
        if measurer is None:
            return Score(0.0, False, {"error": "the proposal needs an engine run and no measurer was given"})
        m = measurer.measure(problem.src, settings)
        metrics, run_id = m.metrics, m.run_id
    obj = problem.objective
    cost = act_cost(metrics, obj)
    default, best = float(problem.truth["default_cost"]), float(problem.truth["best_cost"])
    detail = {"settings": settings, "metric": obj["metric"], "value": metrics[obj["metric"]],
              "constraint": f"{obj['constraint_metric']} <= {obj['limit']}",
              "constraint_value": metrics[obj["constraint_metric"]], "default_cost": default, "best_cost": best,
              "run_id": run_id}
    if cost is None:
        return Score(0.0, False, {**detail, "error": "the proposal breaks the constraint"})
    s = float(np.clip((default - cost) / max(default - best, 1e-12), 0.0, 1.0))
    detail["qor_ratio"] = round(cost / default, 4)
    return Score(s, s >= SOLVED, detail)


def score_answer(problem: Problem, answer: Any, measurer: Measurer | None = None) -> Score:
    if answer is None:
        return Score(0.0, False, {"error": "no answer"})
    if problem.kind == "predict":
        return score_predict(problem, answer)
    if problem.kind == "choose":
        return score_choose(problem, answer)
    if problem.kind == "diagnose":
        return score_diagnose(problem, answer)
    if problem.kind == "act":
        return score_act(problem, answer, measurer)
    raise ValueError(f"unknown problem kind {problem.kind}")


# ---------------------------------------------------------------------- summaries
def bootstrap_ci(scores: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if not scores:
        return (float("nan"), float("nan"))
    a = np.asarray(scores, dtype=np.float64)
    if len(a) == 1:
        return (float(a[0]), float(a[0]))
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def _block(rows: list[dict]) -> dict:
    scores = [float(r["score"]) for r in rows]
    return {"n": len(rows), "score": round(float(np.mean(scores)), 4) if scores else None,
            "ci95": list(bootstrap_ci(scores)), "solved": sum(bool(r["solved"]) for r in rows)}


def summarize(results: list[dict]) -> dict:
    """Per-kind and overall scores with 95% CIs, and the retrieval split (hit / miss / no retrieval)."""
    out = {"overall": _block(results), "by_kind": {}, "retrieval": {}}
    for k in KINDS:
        rows = [r for r in results if r["kind"] == k]
        if rows:
            out["by_kind"][k] = _block(rows)
    for name, want in (("hit", True), ("miss", False), ("none", None)):
        rows = [r for r in results if r.get("retrieval_hit") is want]
        if rows:
            out["retrieval"][name] = _block(rows)
    return out
