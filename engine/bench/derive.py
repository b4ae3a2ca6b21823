"""From measured placements to problem records: the one place both the training data (engine/train/data_v2.py)
and the benchmark (engine/bench/v2.py) make their problems, so the two share formats, prompts and labels.

``plan(design)``: a reference setting and one-knob variants (utilisation, target density, gamma, density weight);
optionally an iteration-capped setting with five fixes (the overflow symptom). ``collect`` gathers the seed runs of
each setting from a Sweeper; the ``derive_*`` functions turn them into records. The benchmark calls the same
functions with a larger margin (``margin_x``) so its labels sit further above the seed noise.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from engine.bench.formats import (
    LETTERS,
    Record,
    change_words,
    fmt_knob,
    fmt_map,
    fmt_num,
    make_record,
    map_region,
    metric_words,
    schema_for,
    short_name,
)
from engine.bench.sweep import SEEDS, Design, Sweeper, knob_defaults, noise_band, seed_stats

DIRECTION_METRICS = ("placement__hpwl", "placement__rudy__top10", "placement__rudy__mean", "placement__iterations",
                     "placement__displacement__mean")
PERCENT_METRICS = ("placement__hpwl", "placement__rudy__top10", "placement__rudy__mean")
CHOOSE_METRICS = ("placement__hpwl", "placement__rudy__top10")
CLEAR = 1.5  # a rise/fall label needs |change| >= CLEAR x band
INSIDE = 0.67  # a no-clear-effect label needs |change| <= INSIDE x band
SHOWN_KNOBS = ("floorplan.utilization", "place.target_density", "place.gamma_base", "place.density_weight_init")
CAP = 40  # iteration cap of the overflow symptom


# ================================================================================================ plan
def base_utilization(design: Design) -> float:
    return (0.5, 0.6, 0.7, 0.8)[sum(map(ord, design.name)) % 4]


def wants_overflow_set(design: Design) -> bool:
    return design.kind == "example" or sum(map(ord, design.name)) % 2 == 0


def plan(design: Design, overflow_set: bool | None = None) -> dict[str, dict]:
    """name -> settings (only the knobs that differ from the defaults)."""
    if overflow_set is None:
        overflow_set = wants_overflow_set(design)
    u0 = base_utilization(design)
    td_lo, td_mid = round(u0 + 0.4 * (1 - u0), 2), round(u0 + 0.7 * (1 - u0), 2)
    util = {"floorplan.utilization": u0}
    out = {
        "ref": dict(util),
        "util_lo": {"floorplan.utilization": round(u0 - 0.15, 2)},
        "util_hi": {"floorplan.utilization": round(min(0.85, u0 + 0.1), 2)},
        "td_lo": {**util, "place.target_density": td_lo},
        "td_mid": {**util, "place.target_density": td_mid},
        "gamma_lo": {**util, "place.gamma_base": 1.5},
        "gamma_hi": {**util, "place.gamma_base": 12.0},
        "dw_lo": {**util, "place.density_weight_init": 1.0},
        "dw_hi": {**util, "place.density_weight_init": 100.0},
    }
    if overflow_set:
        cap = {**util, "place.max_iterations": CAP}
        out.update({"cap": cap, "cap_iters": {**cap, "place.max_iterations": 120},
                    "cap_dw": {**cap, "place.density_weight_init": 100.0},
                    "cap_gamma": {**cap, "place.gamma_base": 12.0},
                    "cap_td": {**cap, "place.target_density": td_lo},
                    "cap_util": {**cap, "floorplan.utilization": round(u0 - 0.15, 2)}})
    return out


def run_design(sw: Sweeper, design: Design, cancel: Callable[[], bool] | None = None,
               overflow_symptom: bool = True) -> int:
    """Measure every planned setting with every seed; returns the number of new engine runs."""
    before = sw.new_runs
    for settings in plan(design, None if overflow_symptom else False).values():
        for seed in SEEDS:
            if cancel is not None and cancel():
                return sw.new_runs - before
            sw.measure(design, settings, seed)
    return sw.new_runs - before


# ============================================================================================= measured
@dataclass
class Measured:
    """The seed runs of each planned setting of one design (only settings with all seeds measured)."""

    design: Design
    settings: dict[str, dict]
    runs: dict[str, list[dict]]
    cells: int = 0

    def converged(self, name: str) -> bool:
        return all(r["metrics"]["placement__converged"] for r in self.runs[name])

    def stats(self, name: str, metric: str) -> dict:
        return seed_stats(self.runs[name], metric)

    def ids(self, *names: str) -> list[str]:
        return [r["run_id"] for n in names for r in self.runs[n]]


def collect(sw: Sweeper, design: Design) -> Measured | None:
    settings = plan(design)
    runs = {}
    for name, s in settings.items():
        found = [sw.cached(design, s, seed) for seed in SEEDS]
        recs = [r for r in found if r]
        if len(recs) == len(found) and all("placement__rudy__top10" in r["metrics"] for r in recs):
            runs[name] = recs
    if "ref" not in runs:
        return None
    cells = int(runs["ref"][0]["metrics"]["design__instance__count"])
    return Measured(design, {k: settings[k] for k in runs}, runs, cells)


# ============================================================================================== text
def shown(settings: dict) -> str:
    """The utilisation and every knob away from its default (every change a question asks about says from -> to,
    so the defaults themselves are never needed)."""
    defaults = knob_defaults()
    keep = {k: v for k, v in settings.items() if k == "floorplan.utilization" or v != defaults[k]}
    keep.setdefault("floorplan.utilization", defaults["floorplan.utilization"])
    return ", ".join(f"{k}={fmt_knob(v)}" for k, v in sorted(keep.items())) + ", other knobs default"


def run_line(m: Measured, name: str) -> str:
    st = {k: m.stats(name, k)["mean"] for k in ("placement__hpwl", "placement__rudy__top10", "placement__rudy__mean",
                                                 "placement__iterations")}
    return (f"HPWL {fmt_num(st['placement__hpwl'])} um, RUDY top-10% {st['placement__rudy__top10']:.3f} / mean "
            f"{st['placement__rudy__mean']:.3f} um/um^2, {st['placement__iterations']:.0f} iterations")


def design_line(m: Measured) -> str:
    return f"Design: {m.design.describe(m.cells)}."


def changed_knob(a: dict, b: dict) -> str | None:
    defaults = knob_defaults()
    diff = [k for k in set(a) | set(b) if a.get(k, defaults[k]) != b.get(k, defaults[k])]
    return diff[0] if len(diff) == 1 else None


def value_of(settings: dict, knob: str):
    return settings.get(knob, knob_defaults()[knob])


def change_text(knob: str, a: dict, b: dict) -> str:
    """``knob 0.7 -> 0.55 (lowered)``: the way of the change in a word, so that reading it needs no comparison of
    two decimals (which a 135M model does poorly); the metric's way is still the question."""
    return change_words(f"{knob} {fmt_knob(value_of(a, knob))} -> {fmt_knob(value_of(b, knob))}")


def label_of(delta: float, band: float, margin_x: float = 1.0) -> str | None:
    if delta >= CLEAR * margin_x * band:
        return "rise"
    if delta <= -CLEAR * margin_x * band:
        return "fall"
    if abs(delta) <= INSIDE / margin_x * band:
        return "no-clear-effect"
    return None  # near the band edge: not a fair question


def comparisons(m: Measured) -> list[tuple[str, str, str]]:
    """(reference, changed, knob): ordered pairs of converged settings that differ in exactly one knob."""
    names = [n for n in m.settings if not n.startswith("cap") and m.converged(n)]
    out = []
    for a, b in itertools.permutations(names, 2):
        knob = changed_knob(m.settings[a], m.settings[b])
        if knob:
            out.append((a, b, knob))
    return out


def _truth_common(m: Measured) -> dict:
    return {"design": m.design.to_dict(), "seeds": list(SEEDS)}


# ============================================================================================== kinds
def derive_direction(m: Measured, rng: random.Random, margin_x: float = 1.0) -> list[Record]:
    out = []
    for a, b, knob in comparisons(m):
        for metric in DIRECTION_METRICS:
            sa, sb = m.stats(a, metric), m.stats(b, metric)
            floor = metric_words(metric)[2]
            name = short_name(metric)
            band = round(noise_band(sa, sb, floor), 5)  # as stored in the truth: prompt, label and verifier agree
            delta = (sb["mean"] - sa["mean"]) / max(abs(sa["mean"]), 1e-12)
            lab = label_of(delta, band, margin_x)
            if lab is None:
                continue
            t = rng.randrange(2)
            q = (f"{design_line(m)} Reference ({shown(m.settings[a])}): {run_line(m, a)}; means of {len(SEEDS)} "
                 f"seeds, {name} seed noise +/-{band * 100:.1f}%. ")
            q += (f"Change {change_text(knob, m.settings[a], m.settings[b])}, all else equal: does the {name} rise, "
                  "fall, or show no clear effect (within the noise)?" if t == 0 else
                  f"If {change_text(knob, m.settings[a], m.settings[b])}, what happens to the {name}: rise, fall or "
                  "no-clear-effect?")
            truth = {**_truth_common(m), "metric": metric, "knob": knob, "reference": m.settings[a],
                     "changed": m.settings[b], "ref_mean": sa["mean"], "new_mean": sb["mean"],
                     "delta": round(delta, 5), "band": round(band, 5)}
            out.append(make_record("direction", m.design.family, m.design.name, q, schema_for("direction"),
                                   {"direction": lab}, truth, m.ids(a, b), f"direction/{t}"))
    return out


def derive_percent(m: Measured, rng: random.Random) -> list[Record]:
    out = []
    for a, b, knob in comparisons(m):
        for metric in PERCENT_METRICS:
            sa, sb = m.stats(a, metric), m.stats(b, metric)
            name, unit = short_name(metric), metric_words(metric)[1]
            delta = (sb["mean"] - sa["mean"]) / max(abs(sa["mean"]), 1e-12)
            t = rng.randrange(2)
            q = f"{design_line(m)} Reference ({shown(m.settings[a])}): {run_line(m, a)}. "
            q += (f"Predict the percent change of the {name} (reference {fmt_num(sa['mean'])} {unit}) for "
                  f"{change_text(knob, m.settings[a], m.settings[b])}; positive = higher." if t == 0 else
                  f"By what percent does the {name} change from {fmt_num(sa['mean'])} {unit} if "
                  f"{change_text(knob, m.settings[a], m.settings[b])}?")
            truth = {**_truth_common(m), "metric": metric, "knob": knob, "reference": m.settings[a],
                     "changed": m.settings[b], "ref_mean": sa["mean"], "new_mean": sb["mean"],
                     "band": round(noise_band(sa, sb, metric_words(metric)[2]), 5)}
            out.append(make_record("percent", m.design.family, m.design.name, q, schema_for("percent"),
                                   {"percent": round(delta * 100, 1)}, truth, m.ids(a, b), f"percent/{t}"))
    return out


class LetterBalancer:
    """Hands out the correct letter of the next choose problem so each letter is correct equally often."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.counts = Counter({x: 0 for x in LETTERS})

    def next(self) -> str:
        low = min(self.counts.values())
        pick = self.rng.choice([x for x in LETTERS if self.counts[x] == low])
        self.counts[pick] += 1
        return pick

    def give_back(self, letter: str) -> None:
        self.counts[letter] -= 1


def _option_text(m: Measured, ref: str, name: str) -> str:
    if name == ref:
        return "no change"
    knob = changed_knob(m.settings[ref], m.settings[name])
    assert knob is not None, f"plan() gives options that each change one knob: {ref} vs {name}"
    return change_text(knob, m.settings[ref], m.settings[name])


def choose_from(m: Measured, names: list[str], metric: str, letter: str, rng: random.Random,
                margin_x: float = 1.0) -> Record | None:
    """A choose record over four settings (the reference or one-knob variants of it), the best at ``letter``;
    None when the best is not clear of the seed noise."""
    ref = "ref"
    if any(n != ref and changed_knob(m.settings[ref], m.settings[n]) is None for n in names):
        return None
    floor = metric_words(metric)[2]
    name = short_name(metric)
    st = {n: m.stats(n, metric) for n in names}
    ranked = sorted(names, key=lambda n: st[n]["mean"])
    best, second = ranked[0], ranked[1]
    band = max(floor, *((st[n]["max"] - st[n]["min"]) / max(abs(st[n]["mean"]), 1e-12) for n in names))
    margin = (st[second]["mean"] - st[best]["mean"]) / max(abs(st[best]["mean"]), 1e-12)
    if margin < margin_x * CLEAR * band:
        return None
    others = [n for n in names if n != best]
    rng.shuffle(others)
    order = others[:]
    order.insert(LETTERS.index(letter), best)
    lines = "; ".join(f"{x}: {_option_text(m, ref, n)}" for x, n in zip(LETTERS, order))
    q = (f"{design_line(m)} Reference ({shown(m.settings[ref])}): {run_line(m, ref)}. Options (one change to the "
         f"reference each): {lines}. Which option gives the lowest {name}? (Seed noise is "
         f"+/-{band * 100:.1f}%; one option is clearly best.)")
    truth = {**_truth_common(m), "metric": metric, "options": {x: m.settings[n] for x, n in zip(LETTERS, order)},
             "means": {x: st[n]["mean"] for x, n in zip(LETTERS, order)}, "margin": round(margin, 5),
             "band": round(band, 5)}
    return make_record("choose", m.design.family, m.design.name, q, schema_for("choose"), {"choice": letter}, truth,
                       m.ids(*names), "choose/0")


def derive_choose(m: Measured, rng: random.Random, balancer: LetterBalancer, per_metric: int = 6,
                  margin_x: float = 1.0) -> list[Record]:
    names = [n for n in m.settings if not n.startswith("cap") and m.converged(n)]
    out: list[Record] = []
    if len(names) < 4 or "ref" not in names:
        return out
    combos = list(itertools.combinations(names, 4))
    for metric in CHOOSE_METRICS:
        rng.shuffle(combos)
        made = 0
        for combo in combos:
            if made >= per_metric:
                break
            letter = balancer.next()
            rec = choose_from(m, list(combo), metric, letter, rng, margin_x)
            if rec is None:
                balancer.give_back(letter)
                continue
            out.append(rec)
            made += 1
    return out


def _diag_prompt(m: Measured, sym: str, symptom: str, question: str, options: list[str], map_key: str) -> str:
    r = m.runs[sym][0]  # the run's own numbers: its seed-1 run
    met = r["metrics"]
    shown_map = (f"RUDY map (x0.01 um/um^2, 3x3, rows north to south): {fmt_map(r['rudy3'])}" if map_key == "rudy3"
                 else f"cell density map (%, 3x3, rows north to south): {fmt_map(r['density3'])}")
    return (f"{design_line(m)} Run ({shown(m.settings[sym])}): overflow {met['placement__overflow']:.3f} (target "
            f"{met['placement__target_overflow']:.2f}) after {met['placement__iterations']} iterations, RUDY top-10% "
            f"{met['placement__rudy__top10']:.2f} / mean {met['placement__rudy__mean']:.2f} um/um^2. Symptom: "
            f"{symptom}. {shown_map}. {question} Options: {'; '.join(options)}.")


def _diag_record(m: Measured, sym: str, changes: list[str], metric: str, symptom: str, question: str,
                 region_map: str, template: str, margin_x: float = 1.0) -> Record | None:
    floor = metric_words(metric)[2]
    st = {c: m.stats(c, metric) for c in changes}
    ranked = sorted(changes, key=lambda c: st[c]["mean"])
    band = max(floor, *((st[c]["max"] - st[c]["min"]) / max(abs(st[c]["mean"]), 1e-12) for c in changes))
    margin = (st[ranked[1]]["mean"] - st[ranked[0]]["mean"]) / max(abs(st[ranked[0]]["mean"]), 1e-12)
    if margin < margin_x * CLEAR * band:
        return None
    maybe_knobs = [changed_knob(m.settings[sym], m.settings[c]) for c in changes]
    knobs = [k for k in maybe_knobs if k is not None]
    if len(knobs) != len(maybe_knobs) or len(set(knobs)) != len(knobs):
        return None
    q = _diag_prompt(m, sym, symptom, question, [change_text(k, m.settings[sym], m.settings[c])
                                                 for k, c in zip(knobs, changes)], region_map)
    r = m.runs[sym][0]
    best_knob = knobs[changes.index(ranked[0])]
    truth = {**_truth_common(m), "metric": metric, "symptom_settings": m.settings[sym], "symptom_run": r["run_id"],
             "options": {k: m.settings[c] for k, c in zip(knobs, changes)},
             "means": {k: st[c]["mean"] for k, c in zip(knobs, changes)}, "margin": round(margin, 5),
             "band": round(band, 5), "region_map": region_map}
    return make_record("diagnose", m.design.family, m.design.name, q, schema_for("diagnose", knobs),
                       {"knob": best_knob, "region": map_region(r[region_map])}, truth, m.ids(sym, *changes),
                       template)


def derive_diagnose(m: Measured, rng: random.Random, margin_x: float = 1.0) -> list[Record]:
    out = []
    if "ref" in m.runs and "util_lo" in m.runs:
        r = m.runs["ref"][0]["metrics"]
        ratio = r["placement__rudy__top10"] / max(r["placement__rudy__mean"], 1e-9)
        symptom = f"congestion hot spot, top-10% RUDY {ratio:.1f}x the mean"
        question = "Which region is the RUDY hot spot, and which one change lowers the top-10% RUDY most?"
        for td, g, dw in itertools.product(("td_lo", "td_mid"), ("gamma_lo", "gamma_hi"), ("dw_lo", "dw_hi")):
            changes = ["util_lo", td, g, dw]
            if not all(c in m.runs and m.converged(c) for c in changes):
                continue
            rng.shuffle(changes)
            rec = _diag_record(m, "ref", changes, "placement__rudy__top10", symptom, question, "rudy3",
                               "diagnose/congestion", margin_x)
            if rec is not None:
                out.append(rec)
    if "cap" in m.runs and not any(x["metrics"]["placement__converged"] for x in m.runs["cap"]):
        symptom = f"the iteration cap {CAP} was reached before the overflow target"
        question = "Which region is the densest, and which one change lowers the overflow most?"
        fixes = ["cap_iters", "cap_dw", "cap_gamma", "cap_td", "cap_util"]
        for drop in fixes:
            changes = [c for c in fixes if c != drop and c in m.runs]
            if len(changes) != 4:
                continue
            rng.shuffle(changes)
            rec = _diag_record(m, "cap", changes, "placement__overflow", symptom, question, "density3",
                               "diagnose/overflow", margin_x)
            if rec is not None:
                out.append(rec)
    return out


def balance_directions(records: list[Record], rng: random.Random) -> list[Record]:
    """At most as many no-clear-effect labels per split as the larger of rise and fall (the rest dropped)."""
    out: list[Record] = []
    by_split: dict[str, list[Record]] = {}
    for r in records:
        if r.kind == "direction":
            by_split.setdefault(r.split, []).append(r)
        else:
            out.append(r)
    for recs in by_split.values():
        lab = Counter(r.gold["direction"] for r in recs)
        keep_none = max(lab.get("rise", 0), lab.get("fall", 0))
        nones = [r for r in recs if r.gold["direction"] == "no-clear-effect"]
        rng.shuffle(nones)
        keep = {r.id for r in nones[:keep_none]}
        out += [r for r in recs if r.gold["direction"] != "no-clear-effect" or r.id in keep]
    return out


def derive_all(measured: list[Measured], split_of: Callable[[str], str], seed: int = 2026,
               margin_x: float = 1.0) -> list[Record]:
    rng = random.Random(seed)
    balancer = LetterBalancer(rng)
    made: list[Record] = []
    for m in measured:
        made += derive_direction(m, rng, margin_x)
        made += derive_percent(m, rng)
        made += derive_choose(m, rng, balancer, margin_x=margin_x)
        made += derive_diagnose(m, rng, margin_x)
    seen, unique = set(), []
    for r in made:
        if r.id not in seen:
            seen.add(r.id)
            r.split = split_of(r.family)
            unique.append(r)
    return balance_directions(unique, rng)


# ============================================================================================== verify
def rederive(record: Record, sw: Sweeper) -> dict | None:
    """The record's gold answer recomputed from placements of the same settings and seeds in ``sw``."""
    t = record.truth
    d = Design.from_dict(t["design"])

    def mean(settings: dict, metric: str) -> dict:
        return seed_stats([sw.measure(d, settings, s) for s in t["seeds"]], metric)

    if record.kind == "direction":
        a, b = mean(t["reference"], t["metric"]), mean(t["changed"], t["metric"])
        delta = (b["mean"] - a["mean"]) / max(abs(a["mean"]), 1e-12)
        # judged against the band the prompt states: which side of it the fresh change falls on
        return {"direction": "rise" if delta > t["band"] else "fall" if delta < -t["band"] else "no-clear-effect"}
    if record.kind == "choose":
        means = {x: mean(s, t["metric"])["mean"] for x, s in t["options"].items()}
        return {"choice": min(means, key=means.__getitem__)}
    if record.kind == "percent":
        a, b = mean(t["reference"], t["metric"]), mean(t["changed"], t["metric"])
        return {"percent": round((b["mean"] - a["mean"]) / max(abs(a["mean"]), 1e-12) * 100, 1)}
    if record.kind == "diagnose":
        means = {k: mean(s, t["metric"])["mean"] for k, s in t["options"].items()}
        run = sw.measure(d, t["symptom_settings"], t["seeds"][0])
        return {"knob": min(means, key=means.__getitem__), "region": map_region(run[t["region_map"]])}
    return None
