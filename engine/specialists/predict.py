"""The tuned specialist's prediction for a what-if question, checked against the engine when it runs.

A question such as "what happens if I set the utilisation to 0.5?" on a selected run is asked of the tuned
specialist (assets/specialist/adapter, exported to GGUF and run in llama.cpp) in the benchmark's own direction
format (engine.bench.derive: the design, the reference numbers, the change with its way in a word, the metric's
seed noise), once per metric, with the answer constrained to {"direction": rise | fall | no-clear-effect}. The
chat shows the prediction before the engine's what-if run and, when that run finishes, says per metric whether
the engine agreed (one run, judged against the typical seed noise of the training data; near the noise, no
verdict).

Only the knobs the specialist was trained on are predicted (``TRAINED_KNOBS``); for the others the chat says so.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from engine.bench.derive import CLEAR, INSIDE
from engine.bench.formats import SYSTEM, change_words, fmt_knob, fmt_num, schema_for, short_name
from engine.errors import EngineError
from engine.specialists.tools import ToolResult

log = logging.getLogger(__name__)

TRAINED_KNOBS = ("floorplan.utilization", "place.target_density", "place.gamma_base", "place.density_weight_init")
METRICS = ("placement__hpwl", "placement__rudy__mean", "placement__iterations")
CARD = Path(__file__).resolve().parents[2] / "assets" / "training" / "data_v2" / "card.json"


@functools.lru_cache(maxsize=1)
def _bands() -> dict[str, float]:
    return {k: float(v) for k, v in json.loads(CARD.read_text())["noise_band_median"].items()}


def typical_band(metric: str) -> float:
    """The median seed-to-seed band of ``metric`` in the committed training data (its card.json): a user's run
    has one seed, so its prompt states the typical noise the specialist was trained with."""
    try:
        return _bands()[metric]
    except (OSError, KeyError, ValueError) as exc:
        raise EngineError(f"no noise band for {metric} in {CARD}: {exc}") from None


NEED = ("placement__hpwl", "placement__rudy__top10", "placement__rudy__mean", "placement__iterations")


def _knob_of(config: dict, knob: str) -> Any:
    section, _, key = knob.partition(".")
    value = (config.get(section) or {}).get(key)
    if value is None:
        from engine.specialists.tools import default_knob as _default_knob

        value = _default_knob(knob)
    return value


def direction_prompt(design: str, cells: int, config: dict, metrics: dict, knob: str, value: float,
                     metric: str) -> str:
    """The benchmark's direction question (template 0) for one run of a flow design."""
    shown = {k: _knob_of(config, k) for k in TRAINED_KNOBS}
    ref = ", ".join(f"{k}={fmt_knob(v)}" for k, v in sorted(shown.items()))
    band = typical_band(metric)
    name = short_name(metric)
    change = change_words(f"{knob} {fmt_knob(shown[knob])} -> {fmt_knob(value)}")
    return (f"Design: example design '{design}', {cells} cells, synthesised by Yosys. Reference ({ref}): HPWL "
            f"{fmt_num(metrics['placement__hpwl'])} um, RUDY top-10% {metrics['placement__rudy__top10']:.3f} / mean "
            f"{metrics['placement__rudy__mean']:.3f} um/um^2, {metrics['placement__iterations']:.0f} iterations; one "
            f"run, typical {name} seed noise +/-{band * 100:.1f}%. Change {change}, all else equal: does the {name} "
            "rise, fall, or show no clear effect (within the noise)?")


def specialist_backend(n_threads: int = 1):
    """llama.cpp on the tuned specialist's GGUF, or None (with the reason) when it is not exported."""
    from engine.specialists.llm import LLMError, llamacpp_backend
    from engine.specialists.resolve import resolve_gguf

    choice = resolve_gguf("specialist")
    if choice.path is None:
        return None, choice.note
    try:
        return llamacpp_backend(choice.path, 16, n_threads=n_threads), choice.label
    except LLMError as exc:
        return None, str(exc)


def predict_what_if(knob: str, value: float, run_id: str | None = None, runs_dir: str | None = None,
                    backend=None, label: str = "tuned specialist", n_threads: int = 1) -> ToolResult:
    """Ask the specialist which way each of ``METRICS`` goes when ``knob`` is set to ``value`` on the run."""
    from engine.specialists.llm import LLMError, answer_json
    from engine.specialists.tools import base_run
    from engine.specialists.tools import run_store as _store

    if knob not in TRAINED_KNOBS:
        return ToolResult("predict", False, f"The tuned specialist was trained on {', '.join(TRAINED_KNOBS)}; "
                          f"it makes no prediction for {knob}.", [], {})
    try:
        base = base_run(_store(runs_dir), run_id, need="place")
    except EngineError as exc:
        return ToolResult("predict", False, f"No prediction: {exc.message}", [], {})
    info, m = base.info(), base.flat_metrics()
    if any(not isinstance(m.get(k), (int, float)) for k in NEED):
        return ToolResult("predict", False, f"No prediction: run {base.id} has no placement numbers "
                          "(HPWL, RUDY, iterations).", [base.id], {})
    if backend is None:
        backend, label = specialist_backend(n_threads)
        if backend is None:
            return ToolResult("predict", False, f"No prediction: {label}.", [base.id], {})
    config = info.get("config") or {}
    cells = int(m.get("design__instance__count") or m.get("synth__cell__count") or 0)
    old = _knob_of(config, knob)
    preds: dict[str, str] = {}
    for metric in METRICS:
        prompt = direction_prompt(str(info.get("design", "design")), cells, config, m, knob, value, metric)
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        try:
            parsed, _raw = answer_json(backend, msgs, schema_for("direction"), 16)
        except LLMError as exc:
            return ToolResult("predict", False, f"No prediction: {exc}", [base.id], {})
        if parsed:
            preds[metric] = str(parsed["direction"])
    if not preds:
        return ToolResult("predict", False, "The specialist gave no valid answer.", [base.id], {})
    lines = [f"- {short_name(k)}: **{v}**" for k, v in preds.items()]
    text = (f"Prediction of the {label} for {change_words(f'{knob} {fmt_knob(old)} -> {fmt_knob(value)}')} on run "
            f"{base.id} (no engine run; a 135M model trained on placements of other designs):\n" + "\n".join(lines))
    return ToolResult("predict", True, text, [base.id], {"knob": knob, "old": old, "value": value,
                                                         "predictions": preds, "model": label})


def measured_label(before: float, after: float, metric: str) -> str | None:
    """The engine's answer from one run, judged against the typical noise (None: too near the noise to say)."""
    if not before:
        return None
    delta, band = (after - before) / abs(before), typical_band(metric)
    if delta >= CLEAR * band:
        return "rise"
    if delta <= -CLEAR * band:
        return "fall"
    return "no-clear-effect" if abs(delta) <= INSIDE * band else None


def check_prediction(pred: ToolResult, what_if: ToolResult) -> str:
    """One line per predicted metric: what the engine measured in the what-if run and whether it agrees."""
    if not (pred.ok and what_if.ok):
        return ""
    table = what_if.data.get("metrics") or {}
    lines, right, judged = [], 0, 0
    for metric, guess in pred.data["predictions"].items():
        row = table.get(metric)
        if not row or not isinstance(row.get("before"), (int, float)) or not isinstance(row.get("after"), (int, float)):
            continue
        got = measured_label(row["before"], row["after"], metric)
        change = (row["after"] - row["before"]) / abs(row["before"]) if row["before"] else 0.0
        if got is None:
            lines.append(f"- {short_name(metric)}: predicted {guess}; measured {change:+.1%}, within the noise "
                         "band's edge (no verdict)")
            continue
        judged += 1
        right += got == guess
        lines.append(f"- {short_name(metric)}: predicted {guess}; measured {change:+.1%} ({got}): "
                     f"{'right' if got == guess else 'wrong'}")
    if not lines:
        return ""
    return f"The specialist's prediction against the engine ({right} of {judged} right; one run):\n" + "\n".join(lines)
