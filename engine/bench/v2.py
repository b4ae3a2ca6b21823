"""Benchmark v2: problems in the shared format (engine/bench/formats.py) on held-out designs, trivial baselines,
the engine oracle, and LLM runners; bootstrap CIs per kind; side-by-side comparison.

Build (``cda bench build``): every design on the list is placed through the engine with the reference setting and
its one-knob variants, 3 seeds each (engine/bench/derive.py, the same code the training data uses), and problems
are derived with a margin ``margin_x`` times the training data's, so every label sits well clear of the seed noise.
Act problems (small designs only) get an oracle sweep of >= 30 placements; a proposal is scored by placing it and
ranking it in that sweep. The default design list is the training data's test families, which no training example
used; any list of example designs, design folders or generated families can be given.

Answerers (``cda bench run --model``):
- baselines, always in the table: ``copy`` (no change: no-clear-effect, 0 %, the unchanged option, the reference
  settings), ``majority`` (the most common training label per kind), ``random`` (seeded, averaged over 5 seeds),
  ``rules`` (textbook rules of thumb, no engine);
- ``oracle``: the engine itself, re-measuring with fresh seeds: an upper bound, never ranked as a model;
- models: ``base`` (SmolLM2 base), ``lora:<adapter dir>``, ``gguf:<file>``, ``ollama:<name>``, ``hf:<folder>``,
  through engine.specialists.llm.answer_json (schema-constrained decoding), in ``--mode plain`` (chat template,
  one worked example) or ``rag-tools`` (plus retrieved passages and a fixed budget of engine runs on an analogous
  training-family design, never the problem's own design or settings).
"""
from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.bench.derive import collect, derive_all, design_line, run_design, shown
from engine.bench.formats import (
    DIRECTIONS,
    KINDS,
    LETTERS,
    NUMBER,
    REGIONS,
    Graded,
    Record,
    fmt_knob,
    grade,
    make_record,
    schema_for,
    short_name,
)
from engine.bench.sweep import Design, Sweeper, knob_range, seed_stats
from engine.errors import EngineError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS_V2 = ROOT / "assets" / "bench" / "problems_v2.jsonl"
COMMITTED_TRAIN = ROOT / "assets" / "training" / "data_v2" / "train.jsonl.gz"  # the one-shot examples
RESULTS_V2 = ROOT / "bench" / "results" / "v2"
DEFAULT_COUNTS = {"direction": 24, "choose": 20, "percent": 16, "diagnose": 14, "act": 8}
ACT_KNOBS = ("floorplan.utilization", "place.target_density", "place.gamma_base", "place.density_weight_init")
ORACLE_SEEDS = (4, 5, 6)
BASELINES = ("copy", "majority", "random", "rules")
SOLVED = 0.75


# ================================================================================================ designs
_GEN = re.compile(r"^g(\d+)-t([\d.]+)-m(\d+)(?:-s(\d+))?$")


def parse_design(spec: str) -> Design:
    """'g400-t1.6-m2' (a generated family; '-s<seed>' picks the instance), an example design name, or a design
    folder (anything engine.designs.resolve accepts)."""
    spec = spec.strip()
    m = _GEN.match(spec)
    if m:
        n, tail, macros = int(m.group(1)), float(m.group(2)), int(m.group(3))
        if not 20 <= n <= 20000:
            raise EngineError(f"generated design '{spec}': {n} cells is outside 20..20000")
        fam = f"g{n}-t{tail:g}-m{macros}"
        seed = int(m.group(4)) if m.group(4) else 100 + sum(map(ord, fam)) % 97
        return Design(f"{fam}-s{seed}", fam, "generated", n, seed, macros, tail)
    from engine.designs import resolve

    ds = resolve(spec)  # raises an EngineError naming the known designs
    if Path(spec).exists():  # a user's design folder: placed by its path, named by its folder
        return Design(str(Path(spec).resolve()), f"design:{ds.name}", "example")
    return Design(spec, f"example:{spec}", "example")


def default_designs() -> list[str]:
    from engine.train.data_v2 import TEST_FAMILIES

    return [f[len("example:"):] if f.startswith("example:") else f for f in TEST_FAMILIES]


def holdout_of(design: Design) -> str:
    from engine.train.data_v2 import split_of

    return split_of(design.family)


# ================================================================================================ act
def act_grid(u0: float) -> list[dict]:
    """The oracle sweep of an act problem: 4 utilisations x 2 target densities x 2 gammas x 2 density weights."""
    lo, hi = knob_range("floorplan.utilization")
    utils = sorted({round(min(hi, max(lo, u)), 2) for u in (u0 - 0.25, u0 - 0.15, u0 - 0.05, u0 + 0.05)})
    out = []
    for u in utils:
        for td in (1.0, round(u + 0.5 * (1 - u), 2)):
            for g in (2.0, 8.0):
                for dw in (3.0, 30.0):
                    out.append({"floorplan.utilization": u, "place.target_density": td, "place.gamma_base": g,
                                "place.density_weight_init": dw})
    return out


OBJECTIVES = {
    "hpwl_under_rudy": {"metric": "placement__hpwl", "constraint": "placement__rudy__top10", "factor": 0.9,
                        "text": "the lowest HPWL while the top-10% RUDY stays at or below {limit:.3f} um/um^2 "
                                "(10% under the reference)"},
    "rudy_under_hpwl": {"metric": "placement__rudy__top10", "constraint": "placement__hpwl", "factor": 1.05,
                        "text": "the lowest top-10% RUDY while the HPWL stays at or below {limit:.0f} um "
                                "(reference + 5%)"},
}


def act_cost(metrics: dict, obj: dict) -> float | None:
    if not metrics.get("placement__converged", True):
        return None
    if float(metrics[obj["constraint"]]) > float(obj["limit"]):
        return None
    return float(metrics[obj["metric"]])


def make_act(sw: Sweeper, m, objective: str, min_feasible: int = 5) -> Record | None:
    spec = OBJECTIVES[objective]
    ref = sw.measure(m.design, m.settings["ref"], 1)
    obj = {"metric": spec["metric"], "constraint": spec["constraint"],
           "limit": round(float(ref["metrics"][spec["constraint"]]) * spec["factor"], 4)}
    u0 = float(m.settings["ref"]["floorplan.utilization"])
    sweep = []
    for s in act_grid(u0):
        r = sw.measure(m.design, s, 1)
        sweep.append({"settings": s, "run_id": r["run_id"], "cost": act_cost(r["metrics"], obj),
                      "metric": r["metrics"][obj["metric"]], "constraint": r["metrics"][obj["constraint"]]})
    feasible = [x for x in sweep if x["cost"] is not None]
    if len(feasible) < min_feasible:
        return None  # too tight: a proposal could hardly meet it, scores would be noise
    best = min(feasible, key=lambda x: x["cost"])
    ranges = {k: knob_range(k) for k in ACT_KNOBS}
    knobs = "; ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in ranges.items())
    q = (f"{design_line(m)} Reference ({shown(m.settings['ref'])}, seed 1): HPWL "
         f"{ref['metrics']['placement__hpwl']:.0f} um, RUDY top-10% {ref['metrics']['placement__rudy__top10']:.3f} "
         f"um/um^2, {ref['metrics']['placement__iterations']} iterations. Propose settings for "
         f"{spec['text'].format(limit=obj['limit'])}; placement must converge. Knobs you may set (others stay at "
         f"the reference): {knobs}.")
    truth = {"design": m.design.to_dict(), "objective": obj, "objective_name": objective,
             "reference": m.settings["ref"], "reference_cost": act_cost(ref["metrics"], obj),
             "best": best["settings"], "best_cost": best["cost"],
             "sweep": [{k: x[k] for k in ("settings", "cost", "run_id")} for x in sweep], "seed": 1}
    return make_record("act", m.design.family, m.design.name, q, schema_for("act", knobs=ranges),
                       {"settings": best["settings"]}, truth, [ref["run_id"]] + [x["run_id"] for x in sweep],
                       f"act/{objective}")


def act_scorer(sw: Sweeper) -> Callable[[Record, dict], tuple[float, dict]]:
    """Score of a proposal: place it (seed 1, as the sweep) and rank it in the oracle sweep: the share of feasible
    sweep settings it matches or beats; 0 when it breaks the constraint or does not converge."""
    def score(record: Record, settings: dict) -> tuple[float, dict]:
        t = record.truth
        full = {**t["reference"], **settings}
        design = Design.from_dict(t["design"])
        try:
            r = sw.measure(design, full, t.get("seed", 1))
        except EngineError as exc:
            return 0.0, {"error": exc.message}
        cost = act_cost(r["metrics"], t["objective"])
        costs = [x["cost"] for x in t["sweep"] if x["cost"] is not None]
        if cost is None:
            return 0.0, {"run_id": r["run_id"], "error": "constraint broken or not converged", "settings": full}
        rank = sum(c >= cost - 1e-9 for c in costs) / len(costs)
        return float(rank), {"run_id": r["run_id"], "cost": cost, "best_cost": t["best_cost"],
                             "qor_vs_best": round(cost / t["best_cost"], 4), "settings": full}
    return score


# ================================================================================================ build
@dataclass
class BuildV2Config:
    """What `cda bench build` computes."""

    designs: tuple[str, ...] = ()
    """Designs to benchmark on: generated families (g400-t1.6-m2), example designs or folders; empty = the
    training data's test families (held out of every training example)."""
    out: str = str(PROBLEMS_V2)
    """Problem file (JSON lines)."""
    counts: dict = field(default_factory=lambda: dict(DEFAULT_COUNTS))
    """Problems per kind (fewer when the designs do not give that many clear problems)."""
    margin_x: float = 2.0
    """Labels must clear the seed-noise margin of the training data by this factor."""
    act_max_cells: int = 450
    """Act problems only on designs up to this many cells (their oracle sweep places 32 settings)."""
    seed: int = 2026
    """Seed of the problem selection and option order."""
    root: str = ""
    """Sweep store (empty = .cache/bench/runs_v2, shared with the training data so placements are reused)."""
    overflow_symptom: bool = True
    """Also place the iteration-capped settings behind the overflow diagnosis (18 more placements a design)."""


def _take_balanced(recs: list[Record], n: int, label: Callable[[Record], str], rng: random.Random) -> list[Record]:
    """n records, labels as equal as the pool allows, designs spread (round-robin over labels, then designs)."""
    by_label: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        by_label[label(r)].append(r)
    for lab, lst in by_label.items():
        rng.shuffle(lst)
        seen: Counter = Counter()
        ranks = []
        for r in lst:  # the k-th record of a design gets rank k: a stable sort by rank spreads the designs
            ranks.append(seen[r.design])
            seen[r.design] += 1
        by_label[lab] = [r for _, r in sorted(zip(ranks, lst), key=lambda t: t[0])]
    out: list[Record] = []
    labels = sorted(by_label)
    while len(out) < n and any(by_label.values()):
        for lab in labels:
            if by_label[lab] and len(out) < n:
                out.append(by_label[lab].pop(0))
    return out


def select(records: list[Record], counts: dict, rng: random.Random) -> list[Record]:
    out = []
    for kind in KINDS:
        pool = [r for r in records if r.kind == kind]
        n = int(counts.get(kind, 0))
        if kind == "direction":
            out += _take_balanced(pool, n, lambda r: r.gold["direction"], rng)
        elif kind == "choose":
            out += _take_balanced(pool, n, lambda r: r.gold["choice"], rng)
        elif kind == "percent":
            out += _take_balanced(pool, n, lambda r: r.truth["metric"], rng)
        elif kind == "diagnose":
            out += _take_balanced(pool, n, lambda r: r.template + r.gold["knob"], rng)
        else:
            out += _take_balanced(pool, n, lambda r: r.template, rng)
    return out


def rebalance_letters(records: list[Record], rng: random.Random) -> None:
    """Reassign choose letters so each is correct equally often in the selected set (options re-ordered)."""
    chooses = [r for r in records if r.kind == "choose"]
    targets = [LETTERS[i % 4] for i in range(len(chooses))]
    rng.shuffle(targets)
    for r, letter in zip(chooses, targets):
        old = r.gold["choice"]
        if old == letter:
            continue
        opts, means = r.truth["options"], r.truth["means"]
        swap = {old: letter, letter: old}
        r.truth["options"] = {swap.get(x, x): opts[x] for x in LETTERS}
        r.truth["means"] = {swap.get(x, x): means[x] for x in LETTERS}
        parts = dict(re.findall(r"([ABCD]): ([^;]+?)(?=; [ABCD]: |\. Which)", r.prompt))
        new_lines = "; ".join(f"{x}: {parts[swap.get(x, x)]}" for x in LETTERS)
        start, end = r.prompt.index("A: "), r.prompt.index(". Which")
        r.prompt = r.prompt[:start] + new_lines + r.prompt[end:]
        r.answer = json.dumps({"choice": letter})


def build_v2(cfg: BuildV2Config | None = None, progress: Callable[[float, str], None] | None = None) -> dict:
    cfg = cfg or BuildV2Config()
    t0 = time.time()
    rng = random.Random(cfg.seed)
    sw = Sweeper(cfg.root or None)
    designs = [parse_design(s) for s in (cfg.designs or default_designs())]
    measured = []
    for i, d in enumerate(designs):
        if progress:
            progress(i / max(len(designs), 1), f"placing {d.name} (3 seeds per setting)")
        run_design(sw, d, overflow_symptom=cfg.overflow_symptom)
        m = collect(sw, d)
        if m is not None:
            measured.append(m)
    records = derive_all(measured, lambda fam: "bench", cfg.seed, margin_x=cfg.margin_x)
    acts = []
    if cfg.counts.get("act", 0):
        small = [m for m in measured if m.cells <= cfg.act_max_cells]
        for j, (m, objective) in enumerate((m, o) for m in small for o in OBJECTIVES):
            if progress:
                progress(0.8 + 0.2 * j / max(2 * len(small), 1), f"act sweep on {m.design.name} ({objective})")
            rec = make_act(sw, m, objective)
            if rec is not None:
                acts.append(rec)
    chosen = select(records + acts, cfg.counts, rng)
    rebalance_letters(chosen, rng)
    for r in chosen:
        r.split = "bench"
        r.truth["holdout"] = holdout_of(Design.from_dict(r.truth["design"]))
    ids = [r.id for r in chosen]
    if len(set(ids)) != len(ids):
        raise EngineError("duplicate problems in the selection (a bug: please report)")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in chosen))
    tmp.replace(out)
    not_held = sorted({r.design for r in chosen if r.truth["holdout"] != "test"})
    summary = {"problems": len(chosen), "by_kind": dict(Counter(r.kind for r in chosen)),
               "designs": [d.name for d in designs], "engine_runs_new": sw.new_runs, "placer": sw.placer,
               "not_held_out": not_held, "seconds": round(time.time() - t0, 1), "path": str(out),
               "label_balance": {"direction": dict(Counter(r.gold["direction"] for r in chosen
                                                           if r.kind == "direction")),
                                 "choose": dict(Counter(r.gold["choice"] for r in chosen if r.kind == "choose"))}}
    out.with_name(out.stem + "_summary.json").write_text(json.dumps(summary, indent=1))
    if not_held:
        log.warning("designs %s are used by training data (not held out): their scores do not show transfer",
                    ", ".join(not_held))
    return summary


def load_v2(path: str | Path | None = None) -> list[Record]:
    path = Path(path or PROBLEMS_V2)
    if not path.exists():
        raise EngineError(f"{path} does not exist", hint="run `cda bench build` to compute the problems")
    from engine.runs import read_jsonl

    out = []
    for n, d in read_jsonl(path, EngineError):
        if not isinstance(d, dict) or "prompt" not in d or "schema" not in d:
            raise EngineError(f"{path}:{n}: not a benchmark problem (no prompt/schema)",
                              hint="build a problem set with `cda bench build`")
        out.append(Record.from_dict(d))
    return out


def is_v2_file(path: str | Path) -> bool:
    try:
        with Path(path).open() as fh:
            first = fh.readline()
        return '"prompt"' in first and '"schema"' in first
    except OSError:
        return False


# ================================================================================================ baselines
def _options(record: Record) -> list[str]:
    return list(record.schema["properties"]["knob"]["enum"]) if record.kind == "diagnose" else []


def _change_of(record: Record, knob: str) -> tuple[float, float] | None:
    m = re.search(re.escape(knob) + rf" ({NUMBER}) -> ({NUMBER})", record.prompt)
    return (float(m.group(1)), float(m.group(2))) if m else None


class CopyBaseline:
    """Says nothing changes: no-clear-effect, 0 %, the 'no change' option (else A), the reference settings."""

    name, family = "copy", "baseline"

    def answer(self, record: Record, rng: random.Random | None = None) -> dict:
        if record.kind == "direction":
            return {"direction": "no-clear-effect"}
        if record.kind == "percent":
            return {"percent": 0.0}
        if record.kind == "choose":
            m = re.search(r"([ABCD]): no change", record.prompt)
            return {"choice": m.group(1) if m else "A"}
        if record.kind == "diagnose":
            return {"knob": _options(record)[0], "region": "center"}
        return {"settings": {k: v for k, v in record.truth["reference"].items() if k in ACT_KNOBS}}


class MajorityBaseline:
    """The most common answer per kind in the training data (or, without it, in the problem set itself)."""

    name, family = "majority", "baseline"

    def __init__(self, records: list[Record], train_path: str | Path | None = None):
        from engine.runs import read_jsonl
        from engine.train.data_v2 import OUT_DIR

        # The committed training split first, so every machine computes the same baseline; the problem set's own
        # labels only when no training data exists at all (then the row says so).
        candidates = [Path(train_path)] if train_path else [COMMITTED_TRAIN, OUT_DIR / "train.jsonl"]
        source = records
        self.source = "problem set"
        for path in candidates:
            if not path.is_file():
                continue
            try:
                source = [Record.from_dict(row) for _, row in read_jsonl(path, EngineError)]
                self.source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
                break
            except (EngineError, TypeError, KeyError):
                continue
        self.top: dict[str, Any] = {}
        for kind in ("direction", "choose"):
            c = Counter(r.answer for r in source if r.kind == kind)
            if c:
                self.top[kind] = json.loads(c.most_common(1)[0][0])
        pct = [r.gold["percent"] for r in source if r.kind == "percent"]
        self.top["percent"] = {"percent": float(np.median(pct)) if pct else 0.0}
        self.knob = Counter(r.gold["knob"] for r in source if r.kind == "diagnose")
        self.region = Counter(r.gold["region"] for r in source if r.kind == "diagnose")

    def answer(self, record: Record, rng: random.Random | None = None) -> dict:
        if record.kind in self.top:
            return dict(self.top[record.kind])
        if record.kind == "diagnose":
            opts = _options(record)
            knob = max(opts, key=lambda k: self.knob.get(k, 0))
            return {"knob": knob, "region": self.region.most_common(1)[0][0] if self.region else "center"}
        return CopyBaseline().answer(record)


class RandomBaseline:
    """Uniform over the schema's choices; percent uniform in -30..30; act uniform over the knob ranges."""

    name, family = "random", "baseline"

    def answer(self, record: Record, rng: random.Random | None = None) -> dict:
        rng = rng or random.Random(0)
        if record.kind == "direction":
            return {"direction": rng.choice(DIRECTIONS)}
        if record.kind == "choose":
            return {"choice": rng.choice(LETTERS)}
        if record.kind == "percent":
            return {"percent": round(rng.uniform(-30, 30), 1)}
        if record.kind == "diagnose":
            return {"knob": rng.choice(_options(record)), "region": rng.choice(REGIONS)}
        props = record.schema["properties"]["settings"]["properties"]
        return {"settings": {k: round(rng.uniform(v["minimum"], v["maximum"]), 3) for k, v in props.items()}}


# Textbook directions: sign of a metric's change when a knob rises (+1 up, -1 down, 0 no clear effect).
RULES = {
    ("floorplan.utilization", "placement__hpwl"): -1, ("floorplan.utilization", "placement__rudy__top10"): +1,
    ("floorplan.utilization", "placement__rudy__mean"): +1, ("floorplan.utilization", "placement__iterations"): 0,
    ("floorplan.utilization", "placement__displacement__mean"): 0,
    ("place.target_density", "placement__hpwl"): -1, ("place.target_density", "placement__rudy__top10"): +1,
    ("place.target_density", "placement__rudy__mean"): +1, ("place.target_density", "placement__iterations"): 0,
    ("place.target_density", "placement__displacement__mean"): 0,
    ("place.gamma_base", "placement__hpwl"): +1, ("place.gamma_base", "placement__rudy__top10"): 0,
    ("place.gamma_base", "placement__rudy__mean"): 0, ("place.gamma_base", "placement__iterations"): -1,
    ("place.gamma_base", "placement__displacement__mean"): 0,
    ("place.density_weight_init", "placement__hpwl"): +1, ("place.density_weight_init", "placement__rudy__top10"): 0,
    ("place.density_weight_init", "placement__rudy__mean"): 0,
    ("place.density_weight_init", "placement__iterations"): -1,
    ("place.density_weight_init", "placement__displacement__mean"): 0,
}
_METRIC_OF_NAME = {short_name(k): k for k in ("placement__hpwl", "placement__rudy__top10", "placement__rudy__mean",
                                              "placement__iterations", "placement__displacement__mean")}


def _asked_metric(record: Record) -> str:
    m = record.truth.get("metric")
    if m:
        return m
    for name, key in sorted(_METRIC_OF_NAME.items(), key=lambda kv: -len(kv[0])):
        if f"the {name}" in record.prompt:
            return key
    return "placement__hpwl"


class RulesBaseline:
    """Rules of thumb a textbook gives, no engine: denser packing shortens wires and raises routing demand; a
    smoother wirelength model and a stronger early density pull cost wirelength; capped runs need iterations;
    congestion is relieved by room (utilisation); hot spots sit in the middle."""

    name, family = "rules", "baseline"

    def _sign(self, record: Record, knob: str, metric: str) -> int:
        ch = _change_of(record, knob)
        if ch is None:
            return 0
        up = 1 if ch[1] > ch[0] else -1
        return up * RULES.get((knob, metric), 0)

    def answer(self, record: Record, rng: random.Random | None = None) -> dict:
        metric = _asked_metric(record)
        if record.kind in ("direction", "percent"):
            knob = next((k for k in ACT_KNOBS if _change_of(record, k)), "floorplan.utilization")
            sign = self._sign(record, knob, metric)
            if record.kind == "direction":
                return {"direction": {1: "rise", -1: "fall", 0: "no-clear-effect"}[sign]}
            ch = _change_of(record, knob) or (1.0, 1.0)
            if knob == "floorplan.utilization" and metric == "placement__hpwl":
                return {"percent": round((np.sqrt(ch[0] / ch[1]) - 1) * 100, 1)}  # wires scale with core side
            if knob == "floorplan.utilization" and metric != "placement__hpwl":
                return {"percent": round((np.sqrt(ch[1] / ch[0]) - 1) * 100, 1)}
            return {"percent": 3.0 * sign}
        if record.kind == "choose":
            scores = {}
            for x in LETTERS:
                m = re.search(rf"{x}: ([a-z_.]+) ({NUMBER}) -> ({NUMBER})", record.prompt)
                if not m:
                    scores[x] = 0.0
                    continue
                knob, a, b = m.group(1), float(m.group(2)), float(m.group(3))
                scores[x] = (1 if b > a else -1) * RULES.get((knob, metric), 0)
            return {"choice": min(LETTERS, key=lambda x: scores[x])}
        if record.kind == "diagnose":
            opts = _options(record)
            if "iteration cap" in record.prompt:
                pref = ["place.max_iterations", "place.density_weight_init", "floorplan.utilization"]
            else:
                pref = ["floorplan.utilization", "place.target_density", "place.density_weight_init"]
            knob = next((k for k in pref if k in opts), opts[0])
            return {"knob": knob, "region": "center"}
        ref = record.truth["reference"]
        u = float(ref.get("floorplan.utilization", 0.6))
        if record.truth["objective"]["metric"] == "placement__hpwl":
            return {"settings": {"floorplan.utilization": round(u - 0.1, 2), "place.target_density": 1.0}}
        return {"settings": {"floorplan.utilization": round(u - 0.15, 2), "place.target_density": 0.9}}


class Oracle:
    """The engine answers: it re-measures the problem's settings with fresh seeds (4, 5, 6) and reads the answer
    off; for act it proposes the sweep's best. An upper bound with the seed noise left in, not a model."""

    name, family = "oracle", "oracle"

    def __init__(self, sw: Sweeper):
        self.sw = sw

    def _mean(self, design: Design, settings: dict, metric: str) -> float:
        return seed_stats([self.sw.measure(design, settings, s) for s in ORACLE_SEEDS], metric)["mean"]

    def answer(self, record: Record, rng: random.Random | None = None) -> dict:
        t = record.truth
        d = Design.from_dict(t["design"])
        if record.kind in ("direction", "percent"):
            a, b = self._mean(d, t["reference"], t["metric"]), self._mean(d, t["changed"], t["metric"])
            delta = (b - a) / max(abs(a), 1e-12)
            if record.kind == "percent":
                return {"percent": round(delta * 100, 1)}
            band = t["band"]
            return {"direction": "rise" if delta > band else "fall" if delta < -band else "no-clear-effect"}
        if record.kind == "choose":
            means = {x: self._mean(d, s, t["metric"]) for x, s in t["options"].items()}
            return {"choice": min(means, key=means.get)}
        if record.kind == "diagnose":
            from engine.bench.formats import map_region

            means = {k: self._mean(d, s, t["metric"]) for k, s in t["options"].items()}
            sym = self.sw.measure(d, t["symptom_settings"], 1)
            return {"knob": min(means, key=means.get), "region": map_region(sym[t["region_map"]])}
        return {"settings": {k: v for k, v in t["best"].items() if k in ACT_KNOBS}}


# ================================================================================================ models
class LLMAnswerer:
    """A language model answering through engine.specialists.llm.answer_json (schema-constrained JSON)."""

    family = "model"

    def __init__(self, spec: str, mode: str, shots: int = 1, max_tokens: int = 64, host: str = "",
                 tool_budget: int = 4, sw: Sweeper | None = None):
        self.spec, self.mode, self.shots, self.max_tokens = spec, mode, shots, max_tokens
        self.name = spec
        self.tool_budget = tool_budget
        self.sw = sw
        self.model_name: str | None = None
        self.backend = self._backend(spec, host)
        self._examples = self._one_shot_pool() if shots else {}
        self._retriever = None

    def _backend(self, spec: str, host: str):
        from engine.specialists import llm

        kind, _, arg = spec.partition(":")
        try:
            if kind == "base":
                from engine.train.models import resolve_base

                return llm.hf_backend(resolve_base(arg or None).require_hf(), self.max_tokens)
            if kind == "hf":
                return llm.hf_backend(arg, self.max_tokens)
            if kind == "gguf":
                return llm.llamacpp_backend(arg, self.max_tokens, n_threads=1)
            if kind == "lora":
                if hasattr(llm, "lora_backend"):
                    return llm.lora_backend(arg, self.max_tokens)
                return _peft_backend(arg, self.max_tokens)
            if kind == "ollama":
                from engine.specialists.config import SpecialistConfig

                cfg = SpecialistConfig(host=host) if host else SpecialistConfig()
                backend = llm.OllamaBackend(cfg)
                present = backend.list_models()
                match = next((m for m in present if llm._same_model(m, arg)), None)
                if match is None:
                    raise EngineError(f"Ollama at {cfg.host} has no model '{arg}' (it has: "
                                      f"{', '.join(present) or 'none'})", hint=f"`ollama pull {arg}`")
                self.model_name = match
                return backend
        except llm.LLMError as exc:
            raise EngineError(str(exc)) from None
        raise EngineError(f"unknown model '{spec}'", hint="models: copy, majority, random, rules, oracle, base, "
                          "lora:<adapter dir>, gguf:<file>, ollama:<name>, hf:<folder>")

    def _one_shot_pool(self) -> dict[str, Record]:
        """One fixed worked example per kind from the committed training split (never a benchmark design), so
        every machine shows a general model the same example; a local data set when none is committed."""
        from engine.runs import read_jsonl
        from engine.train.data_v2 import OUT_DIR

        pool: dict[str, Record] = {}
        for path in (COMMITTED_TRAIN, OUT_DIR / "train.jsonl"):
            if not path.is_file():
                continue
            for _, row in read_jsonl(path, EngineError):
                r = Record.from_dict(row)
                pool.setdefault(r.kind, r)
                if len(pool) == 4:
                    break
            break
        return pool

    def messages(self, record: Record) -> tuple[list[dict], dict]:
        notes: dict = {}
        msgs = [{"role": "system", "content": record.system}]
        ex = self._examples.get(record.kind)
        if ex is not None:
            msgs += [{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": ex.answer}]
        user = record.prompt
        if self.mode == "rag-tools":
            extra, notes = self.context(record)
            user = f"{user}\n\n{extra}"
        msgs.append({"role": "user", "content": user})
        return msgs, notes

    def context(self, record: Record) -> tuple[str, dict]:
        """Retrieved passages and analogous engine runs (a fixed budget, never this design)."""
        from engine.bench.knowledge import Retriever

        if self._retriever is None:
            self._retriever = Retriever(k=2, backend="bench")
        passages = self._retriever.search(record.prompt)
        lines = [f"Knowledge: {p.text}" for p in passages]
        tool_lines, runs = analogue_tools(record, self.sw, self.tool_budget) if self.sw else ([], [])
        return "\n".join(lines + tool_lines), {"passages": [p.id for p in passages], "tool_runs": runs}

    def answer(self, record: Record, rng: random.Random | None = None):
        from engine.specialists import llm

        msgs, notes = self.messages(record)
        try:
            cap = max(self.max_tokens, 192) if record.kind == "act" else self.max_tokens
            _parsed, raw = llm.answer_json(self.backend, msgs, record.schema, cap, model=self.model_name)
        except llm.LLMError as exc:
            raise EngineError(str(exc)) from None
        return raw, notes


def is_specialist(spec: str) -> bool:
    """A LoRA adapter, or a GGUF that `cda train export` wrote (its folder's config.json names the adapter): the
    tuned model is asked as it was trained, with no worked example before the question."""
    kind, _, arg = spec.partition(":")
    if kind == "lora":
        return True
    if kind == "gguf":
        cfg = Path(arg).parent / "config.json"
        try:
            return bool(json.loads(cfg.read_text()).get("adapter_dir"))
        except (OSError, ValueError, AttributeError):
            return False
    return False


def adapter_digest(spec: str) -> str | None:
    """sha256 of the LoRA weights behind ``lora:<dir>`` or behind a ``gguf:<file>`` that `cda train export` wrote
    (its folder's config.json names the adapter); None for anything else or when the file is gone."""
    import hashlib

    kind, _, arg = spec.partition(":")
    folder: Path | None = None
    if kind == "lora":
        folder = Path(arg)
    elif kind == "gguf":
        try:
            src = json.loads((Path(arg).parent / "config.json").read_text()).get("adapter_dir")
        except (OSError, ValueError, AttributeError):
            src = None
        folder = Path(src) if src else None
    if folder is None:
        return None
    f = folder / "adapter_model.safetensors"
    return hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else None


def _peft_backend(adapter: str, max_tokens: int):
    """An HFBackend over base + LoRA adapter (engine.train.lora.load_adapter), until llm has its own."""
    import threading

    from engine.specialists.llm import HFBackend
    from engine.train.lora import load_adapter

    tok, model = load_adapter(adapter)
    b = HFBackend.__new__(HFBackend)
    b.model_dir, b.max_new_tokens, b.tokenizer, b.model = Path(adapter), max_tokens, tok, model.eval()
    b._lock = threading.Lock()
    return b


def analogue_design(design: Design) -> Design:
    """A training-family design close to this one (same size class and macros, typical net lengths), or the
    nearest generated training design for an example design."""
    from engine.train.data_v2 import all_designs, split_of

    train = [d for d in all_designs() if split_of(d.family) == "train" and d.kind == "generated"
             and d.name != design.name]
    n = design.n_cells or 400
    return min(train, key=lambda d: (abs(d.n_cells - n), abs(d.n_macros - design.n_macros), abs(d.tail - 1.6)))


def analogue_tools(record: Record, sw: Sweeper, budget: int) -> tuple[list[str], list[str]]:
    """Engine runs on an analogous training design with the same settings the problem asks about (seed 1), at
    most ``budget`` runs; the problem's own design is never placed, so its truth is never read."""
    t = record.truth
    d = Design.from_dict(t["design"])
    a = analogue_design(d)
    todo: list[tuple[str, dict]] = []
    if record.kind in ("direction", "percent"):
        todo = [("reference", t["reference"]), ("changed", t["changed"])]
    elif record.kind == "choose":
        todo = list(t["options"].items())
    elif record.kind == "diagnose":
        todo = [(k, s) for k, s in t["options"].items()]
    elif record.kind == "act":
        u = float(t["reference"].get("floorplan.utilization", 0.6))
        todo = [("reference", t["reference"]), ("utilization -0.1", {**t["reference"], "floorplan.utilization":
                                                                       round(u - 0.1, 2)}),
                ("target_density 0.9", {**t["reference"], "place.target_density": 0.9}),
                ("gamma_base 8", {**t["reference"], "place.gamma_base": 8.0})]
    lines, runs = [], []
    for label, s in todo[:budget]:
        try:
            r = sw.measure(a, s, 1)
        except EngineError:
            continue
        met = r["metrics"]
        runs.append(r["run_id"])
        lines.append(f"Tool run on a similar design ({a.describe(met['design__instance__count'])}), {label} "
                     f"({', '.join(f'{k}={fmt_knob(v)}' for k, v in sorted(s.items()))}): HPWL "
                     f"{met['placement__hpwl']:.0f} um, overflow {met['placement__overflow']:.3f}, RUDY top-10% "
                     f"{met['placement__rudy__top10']:.3f}, {met['placement__iterations']} iterations.")
    return lines, runs


# ================================================================================================ run
@dataclass
class RunV2Config:
    """One benchmark v2 run."""

    model: str = "rules"
    """copy | majority | random | rules | oracle | base | lora:<dir> | gguf:<file> | ollama:<name> | hf:<folder>."""
    mode: str = "plain"
    """plain (chat template + one worked example) or rag-tools (+ retrieval + analogous engine runs)."""
    problems: str = str(PROBLEMS_V2)
    """Problem file written by `cda bench build`."""
    out: str = ""
    """Results JSON; empty = bench/results/v2/<model>-<mode>.json."""
    limit: int = 0
    """Only the first N problems (0 = all)."""
    kinds: tuple[str, ...] = ()
    """Only these kinds (empty = all)."""
    shots: int = -1
    """Worked examples (from the training split) before the question, for language models; -1 = one for general
    models, none for a LoRA specialist (it was trained on the bare format)."""
    max_tokens: int = 96
    """Answer length cap for language models (act answers get at least 192: four knob values)."""
    tool_budget: int = 4
    """Engine runs per problem in rag-tools mode (on an analogous training design)."""
    random_repeats: int = 5
    """The random baseline is averaged over this many seeds."""
    host: str = ""
    """Ollama server for ollama:<name>."""
    root: str = ""
    """Sweep store (empty = the shared .cache/bench/runs_v2)."""


def make_answerer(cfg: RunV2Config, records: list[Record], sw: Sweeper):
    name = cfg.model.strip()
    if cfg.mode not in ("plain", "rag-tools"):
        raise EngineError(f"unknown mode '{cfg.mode}' for v2 problems; modes are plain and rag-tools")
    if name == "copy":
        return CopyBaseline()
    if name == "majority":
        return MajorityBaseline(records)
    if name == "random":
        return RandomBaseline()
    if name == "rules":
        return RulesBaseline()
    if name in ("oracle", "engine"):
        return Oracle(sw)
    shots = cfg.shots if cfg.shots >= 0 else (0 if is_specialist(name) else 1)
    return LLMAnswerer(name, cfg.mode, shots, cfg.max_tokens, cfg.host, cfg.tool_budget, sw)


def score_rows(rows: list[dict]) -> dict:
    from engine.bench.results import bootstrap_ci

    def block(rs: list[dict]) -> dict:
        s = [float(r["score"]) for r in rs]
        return {"n": len(rs), "score": round(float(np.mean(s)), 4) if s else None, "ci95": list(bootstrap_ci(s)),
                "solved": sum(bool(r["solved"]) for r in rs),
                "parse_failures": sum(r["status"] == "parse_failure" for r in rs),
                "schema_failures": sum(r["status"] == "schema_failure" for r in rs),
                "errors": sum(bool(r.get("error")) for r in rs)}

    out = {"overall": block(rows), "by_kind": {}}
    for k in KINDS:
        rs = [r for r in rows if r["kind"] == k]
        if rs:
            out["by_kind"][k] = block(rs)
    return out


def run_v2(cfg: RunV2Config, progress: Callable[[float, str], None] | None = None,
           records: list[Record] | None = None, answerer=None) -> dict:
    """Answer, grade and time every problem; write and return the results. ``answerer`` (an object with
    ``name``, ``family`` and ``answer(record, rng) -> raw | (raw, notes)``) replaces the one --model names."""
    sw = Sweeper(cfg.root or None)
    if answerer is None and cfg.model.strip() not in (*BASELINES, "oracle", "engine"):
        answerer = make_answerer(cfg, [], sw)  # a model that cannot load (or a dead server) fails before any work
    records = records if records is not None else load_v2(cfg.problems)
    if cfg.kinds:
        unknown = set(cfg.kinds) - set(KINDS)
        if unknown:
            raise EngineError(f"unknown kind(s) {sorted(unknown)}; kinds are {', '.join(KINDS)}")
        records = [r for r in records if r.kind in cfg.kinds]
    if cfg.limit:
        records = records[: cfg.limit]
    if not records:
        raise EngineError("no problems to run (check --kinds / --limit and the problem file)")
    if answerer is None:
        answerer = make_answerer(cfg, records, sw)
    scorer = act_scorer(sw)
    repeats = cfg.random_repeats if answerer.name == "random" else 1
    rows = []
    for n, rec in enumerate(records):
        graded: list[Graded] = []
        raws, notes, error, latency = [], {}, None, 0.0
        for rep in range(repeats):
            t0 = time.perf_counter()
            try:
                out = answerer.answer(rec, random.Random(1000 * rep + n))
                raw, notes = out if isinstance(out, tuple) else (out, {})
            except EngineError as exc:
                raw, error = None, exc.message
            except Exception as exc:  # noqa: BLE001 - one failing answer scores 0; the run goes on
                raw, error = None, f"{type(exc).__name__}: {exc}"
            latency += time.perf_counter() - t0
            g = grade(rec, raw, scorer) if raw is not None else Graded(0.0, False, "error", {"error": error})
            graded.append(g)
            raws.append(raw)
        score = float(np.mean([g.score for g in graded]))
        rows.append({"id": rec.id, "kind": rec.kind, "design": rec.design, "family": rec.family,
                     "answer": raws[0], "gold": rec.gold, "score": round(score, 4),
                     "solved": score >= SOLVED if repeats > 1 else graded[0].solved,
                     "status": graded[0].status, "detail": graded[0].detail, "latency_s": round(latency / repeats, 3),
                     "error": error, "notes": notes})
        if progress:
            progress((n + 1) / len(records), f"{rec.id} {rec.kind}: {score:.2f}")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{cfg.model}-{cfg.mode}")
    family = getattr(answerer, "family", "model")
    result = {"label": label, "model": cfg.model, "mode": cfg.mode, "family": family,
              "ranked": family == "model" or family == "baseline",
              "note": "upper bound: the engine itself, not a model" if family == "oracle" else "",
              "problems_file": str(cfg.problems), "n_problems": len(rows), "shots": getattr(answerer, "shots", 0),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "summary": score_rows(rows), "results": rows, "version": 2}
    if isinstance(answerer, MajorityBaseline):
        result["note"] = f"majority labels from {answerer.source}"
    digest = adapter_digest(cfg.model)
    if digest:  # which adapter weights answered (a folder's files change; the digest pairs runtimes later)
        result["adapter_sha256"] = digest
    out = Path(cfg.out) if cfg.out else RESULTS_V2 / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    result["path"] = str(out)
    return result


def compare_v2(results: list[dict]) -> dict:
    """Side by side on the problems all sets answered: per-kind scores with CIs, parse failures, and the problems
    a model solves that no baseline solves (the oracle is listed, never counted as a baseline or a model)."""
    if len(results) < 2:
        raise EngineError("compare needs two or more result sets")
    labels = [r["label"] for r in results]
    by_id = [{row["id"]: row for row in r["results"]} for r in results]
    common = [pid for pid in by_id[0] if all(pid in b for b in by_id[1:])]
    summaries = {la: score_rows([b[pid] for pid in common]) for la, b in zip(labels, by_id)}
    baselines = [i for i, r in enumerate(results) if r.get("family") == "baseline"]
    solved_by_baseline = {pid for pid in common for i in baselines if by_id[i][pid]["solved"]}
    only = {la: [pid for pid in common if b[pid]["solved"] and pid not in solved_by_baseline]
            for la, b, r in zip(labels, by_id, results) if r.get("family") == "model"}
    ranked = sorted((la for la, r in zip(labels, results) if r.get("family") != "oracle"),
                    key=lambda la: -(summaries[la]["overall"]["score"] or 0))
    return {"labels": labels, "families": {la: r.get("family", "model") for la, r in zip(labels, results)},
            "common_problems": len(common), "summaries": summaries, "ranking": ranked,
            "solved_by_no_baseline": only}


def markdown_v2(results: list[dict]) -> str:
    """One row per answerer: overall and per kind (mean [95% CI]), parse failures; the oracle marked."""
    head = "| answerer | kind | overall | " + " | ".join(KINDS) + " | parse / schema failures |"
    lines = [head, "|" + "---|" * (len(KINDS) + 4)]
    order = sorted(results, key=lambda r: ({"model": 0, "baseline": 1, "oracle": 2}.get(r.get("family"), 0),
                                           -(r["summary"]["overall"]["score"] or 0)))
    for r in order:
        s = r["summary"]

        def cell(b):
            return f"{b['score']:.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}]" if b else "-"

        fam = "oracle (upper bound, not ranked)" if r.get("family") == "oracle" else r.get("family", "model")
        lines.append(f"| {r['model']} · {r['mode']} | {fam} | {cell(s['overall'])} | "
                     + " | ".join(cell(s["by_kind"].get(k)) for k in KINDS)
                     + f" | {s['overall']['parse_failures']} / {s['overall']['schema_failures']} |")
    return "\n".join(lines)

