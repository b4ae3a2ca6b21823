"""The placement problems: what each asks, and how the engine computes its truth.

Four kinds, as in the issue:
- predict  : a metric (HPWL in um, or density overflow) for given knob values; a reference run at default
             settings is given in the question. Answer: {"value": number}.
- choose   : the best of 3-4 settings by an engine-measured metric. Answer: {"choice": "A"}.
- diagnose : a congested placement: where the RUDY hot spot is (3 x 3 region of the core), its peak RUDY and
             which of the listed knob changes lowers it most (each change was run by the engine).
             Answer: {"region": "north-east", "rudy_max": number, "knob": "place.target_density"}.
- act      : propose knob values for an objective; the engine runs the proposal and scores it against the
             default settings and the best settings the engine's own sweep found. Answer: {"settings": {...}}.

Every truth keeps the bench run ids that computed it and their key metrics, so `cda bench build` can be
checked against a fresh run (tests/test_bench_truth.py) and the page can link to the runs.
"""
from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.bench.measure import KNOBS, MEASURE_VERSION, PROPOSABLE, Measurement, Measurer, Source

log = logging.getLogger(__name__)

PROBLEMS_VERSION = 1
ASSETS_BENCH = Path(__file__).resolve().parents[2] / "assets" / "bench"
PROBLEMS_PATH = ASSETS_BENCH / f"problems_v{PROBLEMS_VERSION}.jsonl"
KINDS = ("predict", "choose", "diagnose", "act")

# Sources: the small and medium example designs, and synthetic netlists (some with fixed macros).
DESIGN_SOURCES = [Source("design", n) for n in ("counter", "gray_prio", "crc32", "uart", "alu", "fir")]
GEN_SOURCES = [Source("generated", "gen300_s1", 300, 1), Source("generated", "gen500_s2", 500, 2),
               Source("generated", "gen400m2_s3", 400, 3, 2), Source("generated", "gen600m3_s4", 600, 4, 3)]
SMALL_SOURCES = DESIGN_SOURCES[:4] + GEN_SOURCES
MACRO_SOURCES = [s for s in GEN_SOURCES if s.n_macros] + [Source("generated", "gen350m2_s5", 350, 5, 2)]

METRIC_TEXT = {"placement__hpwl": "total half-perimeter wirelength (HPWL, um)",
               "placement__overflow": "density overflow (fraction of movable area above the target density)",
               "placement__rudy__max": "peak RUDY routing demand (um of wire per um^2, 16 x 16 bins over the core)"}


@dataclass
class Problem:
    id: str
    kind: str
    source: dict
    settings: dict  # knob values of the problem's base placement (the rest at defaults)
    question: str
    answer_format: str
    topic: str = "placement"
    gold_terms: list[str] = field(default_factory=list)  # a retrieved passage naming these holds the gold fact
    options: dict = field(default_factory=dict)  # choose: label -> settings; diagnose: label -> knob change
    objective: dict = field(default_factory=dict)  # act: {"metric", "constraint_metric", "limit"}
    truth: dict = field(default_factory=dict)  # the answer, facts, runs and their key metrics
    version: int = PROBLEMS_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def src(self) -> Source:
        return Source.from_dict(self.source)


def load_problems(path: str | Path | None = None) -> list[Problem]:
    from engine.errors import EngineError

    path = Path(path or PROBLEMS_PATH)
    if not path.exists():
        raise EngineError(f"{path} does not exist", hint="run `cda bench build` to compute the problems")
    from engine.runs import read_jsonl

    out = []
    for n, d in read_jsonl(path, EngineError):
        try:
            out.append(Problem.from_dict(d))
        except TypeError as exc:
            raise EngineError(f"{path}:{n}: not a problem record ({exc})") from None
    return out


def save_problems(problems: list[Problem], path: str | Path | None = None) -> Path:
    path = Path(path or PROBLEMS_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(p.to_dict(), sort_keys=True) + "\n" for p in problems))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------- text helpers
def fmt_settings(settings: dict) -> str:
    if not settings:
        return "all knobs at their defaults"
    return ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(settings.items()))


def short_knob(name: str) -> str:
    return name.split(".", 1)[1]


def _record(m: Measurement, settings: dict) -> dict:
    keep = ("placement__hpwl", "placement__overflow", "placement__rudy__max", "placement__rudy__hot_region",
            "placement__iterations", "design__instance__count")
    return {"run_id": m.run_id, "key": m.key, "settings": settings, "metrics": {k: m.metrics[k] for k in keep}}


def _intro(src: Source, budget: int) -> str:
    return (f"{src.describe()[0].upper()}{src.describe()[1:]} is placed by the engine's global placer "
            f"(ePlace-style, seed 1, at most {budget} iterations; knobs not named are at their defaults: "
            f"{fmt_settings({k: v['default'] for k, v in KNOBS.items() if k != 'place.max_iterations'})}).")


# ---------------------------------------------------------------------- generators
Measure = Callable[[Source, dict], Measurement]


def make_predict(pid: str, src: Source, settings: dict, metric: str, measure: Measure) -> Problem:
    budget = int(settings["place.max_iterations"])
    ref_settings = {"place.max_iterations": budget}
    ref = measure(src, ref_settings)
    m = measure(src, settings)
    changed = {k: v for k, v in settings.items() if k != "place.max_iterations"}
    question = (f"{_intro(src, budget)} With default settings, run {ref.run_id} measured HPWL = "
                f"{ref.metrics['placement__hpwl']:.1f} um and overflow = {ref.metrics['placement__overflow']:.3f}. "
                f"Predict the {METRIC_TEXT[metric]} after placement with {fmt_settings(changed)}.")
    return Problem(id=pid, kind="predict", source=src.to_dict(), settings=settings, question=question,
                   answer_format='{"value": <number>}', gold_terms=[short_knob(k) for k in changed],
                   truth={"answer": {"value": m.metrics[metric]}, "metric": metric,
                          "runs": [_record(ref, ref_settings), _record(m, settings)]})


def make_choose(pid: str, src: Source, budget: int, options: list[dict], metric: str, measure: Measure,
                min_margin: float = 0.01) -> Problem | None:
    labels = "ABCD"[: len(options)]
    runs, values = [], {}
    for lab, opt in zip(labels, options):
        s = {**opt, "place.max_iterations": budget}
        m = measure(src, s)
        runs.append(_record(m, s))
        values[lab] = float(m.metrics[metric])
    ranked = sorted(values, key=values.get)
    best, second = ranked[0], ranked[1]
    margin = (values[second] - values[best]) / max(abs(values[second]), 1e-12)
    if margin < min_margin:
        return None  # too close to call: a coin flip is not a fair question
    lines = "; ".join(f"{lab}: {fmt_settings(opt)}" for lab, opt in zip(labels, options))
    knobs = sorted({short_knob(k) for opt in options for k in opt})
    question = (f"{_intro(src, budget)} Which option gives the lowest {METRIC_TEXT[metric]}? Options: {lines}.")
    return Problem(id=pid, kind="choose", source=src.to_dict(), settings={"place.max_iterations": budget},
                   question=question, answer_format='{"choice": "A"|"B"|...}', gold_terms=knobs,
                   options=dict(zip(labels, options)),
                   truth={"answer": {"choice": best}, "metric": metric, "values": values, "margin": round(margin, 4),
                          "runs": runs})


def diagnose_candidates(settings: dict) -> dict[str, dict]:
    """The knob changes a diagnose problem offers; each is run by the engine to find the one that helps most."""
    util = float(settings.get("floorplan.utilization", KNOBS["floorplan.utilization"]["default"]))
    return {"floorplan.utilization": {"floorplan.utilization": round(max(0.35, util - 0.25), 3)},
            "place.target_density": {"place.target_density": 0.7},
            "place.density_weight_init": {"place.density_weight_init": 100.0},
            "place.gamma_base": {"place.gamma_base": 12.0}}


def make_diagnose(pid: str, src: Source, settings: dict, measure: Measure, min_gain: float = 0.03) -> Problem | None:
    base = measure(src, settings)
    budget = int(settings["place.max_iterations"])
    cands = diagnose_candidates(settings)
    runs = [_record(base, settings)]
    peaks = {}
    for knob, change in cands.items():
        s = {**settings, **change}
        m = measure(src, s)
        runs.append(_record(m, s))
        peaks[knob] = float(m.metrics["placement__rudy__max"])
    best = min(peaks, key=peaks.get)
    base_peak = float(base.metrics["placement__rudy__max"])
    if peaks[best] > base_peak * (1 - min_gain):
        return None  # no offered change clearly helps: not a fair "which knob fixes it"
    offered = "; ".join(f"{k} -> {v[k]:g}" for k, v in cands.items())
    changed = {k: v for k, v in settings.items() if k != "place.max_iterations"}
    question = (f"{_intro(src, budget)} With {fmt_settings(changed)} the placement is congested. Where is the RUDY "
                f"hot spot (one of: center, north, south, east, west, north-east, north-west, south-east, "
                f"south-west), what is its peak RUDY (um/um^2, 16 x 16 bins over the core), and which single knob "
                f"change lowers the peak RUDY most? Changes to consider: {offered}.")
    return Problem(id=pid, kind="diagnose", source=src.to_dict(), settings=settings, question=question,
                   answer_format='{"region": "<region>", "rudy_max": <number>, "knob": "<knob name>"}',
                   gold_terms=[short_knob(best)], options=cands,
                   truth={"answer": {"region": base.metrics["placement__rudy__hot_region"], "rudy_max": base_peak,
                                     "knob": best},
                          "hot_bin": base.metrics["placement__rudy__hot_bin"], "peaks_after_change": peaks,
                          "runs": runs})


def act_sweep(objective: str, settings: dict) -> list[dict]:
    """Settings the engine tries to find a good answer for an act problem (the truth is the best of these)."""
    util = float(settings.get("floorplan.utilization", KNOBS["floorplan.utilization"]["default"]))
    if objective == "placement__hpwl":
        return [{"floorplan.utilization": min(0.85, util + 0.15)}, {"place.gamma_base": 2.0},
                {"place.density_weight_init": 3.0}, {"place.target_density": 1.0},
                {"floorplan.utilization": min(0.85, util + 0.15), "place.density_weight_init": 30.0}]
    return [{"floorplan.utilization": max(0.35, util - 0.2)}, {"place.target_density": 0.7},
            {"place.density_weight_init": 30.0}, {"place.gamma_base": 8.0},
            {"place.target_density": 0.7, "place.density_weight_init": 30.0}]


def act_cost(metrics: dict, objective: dict) -> float | None:
    """The objective value of a run, or None when its constraint is violated."""
    if float(metrics[objective["constraint_metric"]]) > float(objective["limit"]):
        return None
    return float(metrics[objective["metric"]])


def make_act(pid: str, src: Source, settings: dict, metric: str, measure: Measure) -> Problem | None:
    budget = int(settings["place.max_iterations"])
    base = measure(src, settings)
    if metric == "placement__hpwl":
        objective = {"metric": "placement__hpwl", "constraint_metric": "placement__overflow",
                     "limit": round(float(base.metrics["placement__overflow"]) * 1.1, 4)}
        goal = (f"lowest HPWL while the density overflow stays at or below {objective['limit']:.4f} "
                "(the default's overflow + 10%)")
    else:
        objective = {"metric": "placement__rudy__max", "constraint_metric": "placement__hpwl",
                     "limit": round(float(base.metrics["placement__hpwl"]) * 1.15, 2)}
        goal = (f"lowest peak RUDY while HPWL stays at or below {objective['limit']:.1f} um "
                "(the default's HPWL + 15%)")
    base_cost = act_cost(base.metrics, objective)
    runs = [_record(base, settings)]
    best_s, best_cost = dict(settings), base_cost
    for change in act_sweep(metric, settings):
        s = {**settings, **change}
        m = measure(src, s)
        runs.append(_record(m, s))
        c = act_cost(m.metrics, objective)
        if c is not None and (best_cost is None or c < best_cost):
            best_s, best_cost = s, c
    if base_cost is None or best_cost is None or best_cost >= base_cost * 0.99:
        return None  # the engine found nothing clearly better than the default: no room to score proposals
    knobs = ", ".join(f"{k} ({KNOBS[k]['lo']:g}..{KNOBS[k]['hi']:g})" for k in PROPOSABLE)
    base_text = (f"Default settings give HPWL {base.metrics['placement__hpwl']:.1f} um, overflow "
                 f"{base.metrics['placement__overflow']:.3f}, peak RUDY {base.metrics['placement__rudy__max']:.3f} "
                 f"(run {base.run_id}).")
    question = (f"{_intro(src, budget)} {base_text} Propose knob values for the {goal}. You may set: {knobs}; "
                "the engine runs your proposal and scores it against the defaults.")
    proposal = {k: v for k, v in best_s.items() if k in PROPOSABLE}
    return Problem(id=pid, kind="act", source=src.to_dict(), settings=settings, question=question,
                   answer_format='{"settings": {"<knob>": <number>, ...}}',
                   gold_terms=sorted({short_knob(k) for k in proposal}) or ["utilization"], objective=objective,
                   truth={"answer": {"settings": proposal}, "default_cost": base_cost, "best_cost": best_cost,
                          "runs": runs})


# ---------------------------------------------------------------------- the set
def generate_problems(measurer: Measurer, *, counts: dict[str, int] | None = None, seed: int = 2026,
                      progress: Callable[[float, str], None] | None = None) -> list[Problem]:
    """The benchmark set: deterministic for a seed; each truth computed through ``measurer``."""
    counts = {"predict": 20, "choose": 16, "diagnose": 12, "act": 12, **(counts or {})}
    rng = random.Random(seed)
    measure = measurer.measure
    total = sum(counts.values())
    out: list[Problem] = []

    def note(msg: str) -> None:
        log.info("%s", msg)
        if progress:
            progress(len(out) / max(total, 1), msg)

    # predict -------------------------------------------------------------
    for i in range(counts["predict"]):
        src = (SMALL_SOURCES + DESIGN_SOURCES[4:])[i % 10]
        budget = rng.choice([60, 150])
        metric = "placement__overflow" if budget == 60 and rng.random() < 0.6 else "placement__hpwl"
        s = {"floorplan.utilization": rng.choice([0.45, 0.5, 0.7, 0.8]),
             "place.target_density": rng.choice([0.8, 0.9, 1.0]), "place.max_iterations": budget}
        if rng.random() < 0.3:
            s["place.density_weight_init"] = rng.choice([2.0, 50.0])
        out.append(make_predict(f"predict-{i + 1:03d}", src, s, metric, measure))
        note(f"predict {i + 1}/{counts['predict']}")

    # choose --------------------------------------------------------------
    def one_knob(knob: str, values: list[float]):
        return lambda: [{knob: v} for v in rng.sample(values, 3)]

    families = [
        ("placement__hpwl", 150, one_knob("floorplan.utilization", [0.4, 0.5, 0.6, 0.7, 0.8])),
        ("placement__overflow", 60, one_knob("place.target_density", [0.6, 0.7, 0.8, 0.9, 1.0])),
        ("placement__overflow", 60, one_knob("place.density_weight_init", [1.0, 3.0, 10.0, 30.0, 100.0])),
        ("placement__hpwl", 150, one_knob("place.gamma_base", [1.0, 2.0, 4.0, 8.0, 12.0])),
        ("placement__rudy__max", 150, lambda: [{"floorplan.utilization": u, "place.target_density": t}
                                               for u, t in zip(rng.sample([0.45, 0.6, 0.75], 3),
                                                               rng.sample([0.7, 0.85, 1.0], 3))]),
    ]
    i = tries = 0
    while i < counts["choose"] and tries < counts["choose"] * 3:
        metric, budget, opts = families[tries % len(families)]
        src = SMALL_SOURCES[(tries * 3) % len(SMALL_SOURCES)]
        tries += 1
        p = make_choose(f"choose-{i + 1:03d}", src, budget, opts(), metric, measure)
        if p is not None:
            out.append(p)
            i += 1
            note(f"choose {i}/{counts['choose']}")

    # diagnose ------------------------------------------------------------
    diag_sources = MACRO_SOURCES + DESIGN_SOURCES[:4] + [GEN_SOURCES[0], GEN_SOURCES[1]]
    i = tries = 0
    while i < counts["diagnose"] and tries < counts["diagnose"] * 3:
        src = diag_sources[tries % len(diag_sources)]
        tries += 1
        s = {"floorplan.utilization": rng.choice([0.75, 0.8, 0.85]), "place.target_density": 1.0,
             "place.max_iterations": rng.choice([60, 150])}
        p = make_diagnose(f"diagnose-{i + 1:03d}", src, s, measure)
        if p is not None:
            out.append(p)
            i += 1
            note(f"diagnose {i}/{counts['diagnose']}")

    # act -----------------------------------------------------------------
    i = tries = 0
    while i < counts["act"] and tries < counts["act"] * 3:
        src = SMALL_SOURCES[(tries * 5 + 1) % len(SMALL_SOURCES)]
        metric = ("placement__hpwl", "placement__rudy__max")[tries % 2]
        tries += 1
        s = {"place.max_iterations": rng.choice([60, 150])}
        p = make_act(f"act-{i + 1:03d}", src, s, metric, measure)
        if p is not None:
            out.append(p)
            i += 1
            note(f"act {i}/{counts['act']}")
    for p in out:
        p.truth["measure_version"] = MEASURE_VERSION
        p.truth["placer"] = measurer.placer
    return out


def truth_runs(problem: Problem) -> list[dict]:
    return list(problem.truth.get("runs", []))


def verify_problem(problem: Problem, measurer: Measurer, rel_tol: float = 1e-3) -> list[str]:
    """Re-measure every run of a problem's truth and list the metrics that differ by more than rel_tol.

    A difference after the placer code changed (another fingerprint) means the truths are stale: rebuild them."""
    bad = []
    stale = problem.truth.get("placer") not in (None, measurer.placer)
    suffix = " (the placer changed since the build: run `cda bench build`)" if stale else ""
    for rec in truth_runs(problem):
        m = measurer.measure(problem.src, rec["settings"])
        for k, v in rec["metrics"].items():
            new = m.metrics[k]
            if isinstance(v, (int, float)) and isinstance(new, (int, float)):
                if abs(new - v) > rel_tol * max(abs(v), 1e-9):
                    bad.append(f"{problem.id} {rec['run_id']} {k}: stored {v} vs fresh {new} (run {m.run_id}){suffix}")
            elif new != v:
                bad.append(f"{problem.id} {rec['run_id']} {k}: stored {v} vs fresh {new} (run {m.run_id}){suffix}")
    return bad
