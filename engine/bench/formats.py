"""One problem format for the training data (engine/train/data_v2.py) and the benchmark (engine/bench/v2.py).

A record is a chat exchange with a checkable answer:
- ``system``: the same short system prompt everywhere; ``prompt``: the user turn, holding every number the answer
  needs (the design, the reference run's measurements, the noise band, the change asked about, the options);
- ``schema``: the JSON schema of the answer (constrained decoding uses it); ``answer``: the gold answer as a JSON
  string that matches the schema;
- ``kind``, ``family``, ``design``, ``split``; ``truth``: what the engine measured (means over seeds, the band,
  the margin); ``uses``: the run ids behind the truth.

Kinds:
- direction : does a metric rise, fall or show no clear effect (change within the seed-to-seed noise band, which
              the prompt states) when one knob changes;
- choose    : which of 4 settings gives the lowest value of a metric (letters balanced over a set);
- percent   : the percent change of a metric relative to a reference run whose value the prompt gives;
- diagnose  : the run's own numbers and a 3 x 3 summary of its RUDY and density maps; which region is the hot
              spot, and which of 4 knob changes fixes the symptom best;
- act       : propose knob values; the engine runs the proposal and compares it with an oracle sweep (benchmark).

Scoring is JSON-only: an answer that is not a JSON object is a parse failure, one that is JSON but breaks the
schema a schema failure; both score 0 and are counted apart from wrong answers.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SYSTEM = ("You are a placement expert (analytical placer, 0.18 um cells). Use the question's numbers and your "
          "placement knowledge. Reply with one JSON object matching the schema.")
KINDS = ("direction", "choose", "percent", "diagnose", "act")
DIRECTIONS = ("rise", "fall", "no-clear-effect")
LETTERS = ("A", "B", "C", "D")
# 3 x 3 regions of the core, rows north to south, as the prompts print the maps
REGION_GRID = (("north-west", "north", "north-east"), ("west", "center", "east"),
               ("south-west", "south", "south-east"))
REGIONS = tuple(r for row in REGION_GRID for r in row)
PERCENT_TOL_PP = 2.0  # percent answers within max(2 points, 20% of the truth) score 1, within twice that 0.5
PERCENT_TOL_REL = 0.2

# Words for the metrics the problems ask about, used when the registry does not describe them.
_METRIC_FALLBACK = {
    "placement__hpwl": ("HPWL after legalisation and detailed placement", "um", 0.01),
    "placement__hpwl__global": ("HPWL after global placement", "um", 0.01),
    "placement__rudy__max": ("peak RUDY routing demand", "um/um^2", 0.02),
    "placement__rudy__mean": ("mean RUDY routing demand", "um/um^2", 0.01),
    "placement__rudy__top10": ("mean RUDY of the hottest 10% of bins", "um/um^2", 0.02),
    "placement__overflow": ("density overflow", "", 0.02),
    "placement__iterations": ("global placement iterations", "", 0.05),
    "placement__displacement__mean": ("mean legalisation displacement", "um", 0.03),
    "timing__setup__ws": ("worst setup slack", "ns", 0.02),
}


# Short names the prompts use (the prompt budget is ~320 tokens); the registry's label is the long form.
SHORT = {"placement__hpwl": "HPWL", "placement__hpwl__global": "global HPWL", "placement__rudy__max": "peak RUDY",
         "placement__rudy__mean": "mean RUDY", "placement__rudy__top10": "top-10% RUDY",
         "placement__overflow": "overflow", "placement__iterations": "iteration count",
         "placement__displacement__mean": "mean legalisation displacement", "timing__setup__ws": "worst slack"}


def short_name(name: str) -> str:
    return SHORT.get(name, metric_words(name)[0])


def metric_words(name: str) -> tuple[str, str, float]:
    """(label, unit, noise floor) of a metric: the registry's when it knows the metric, else the table above."""
    label, unit, noise = _METRIC_FALLBACK.get(name, (name, "", 0.01))
    try:
        from engine.registry import metric

        m = metric(name)
        noise = float(m.noise) if getattr(m, "noise", None) else noise
    except Exception:  # noqa: BLE001 - registry missing or metric unknown to it: the table above answers
        pass
    return label, unit, noise


def fmt_num(v: float) -> str:
    """Numbers as prompts print them: 4 significant digits, no exponent for the sizes we meet."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return str(int(v))
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.3f}" if a >= 0.01 else f"{v:.4f}"


def fmt_value(name: str, v: float) -> str:
    unit = metric_words(name)[1]
    return f"{fmt_num(v)} {unit}".strip()


def fmt_knob(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\.?\d|e[-+]?\d)"
_CHANGE = re.compile(rf"\b([a-z_]+\.[a-z_]+) ({NUMBER}) -> ({NUMBER})(?! \()")


def change_words(text: str) -> str:
    """Every ``knob a -> b`` in ``text`` followed by the way it goes, ``(raised)`` or ``(lowered)``; idempotent.
    Problem sets written before the words were added (format 2) are brought up to date with it when read."""
    def word(m: re.Match) -> str:
        a, b = float(m.group(2)), float(m.group(3))
        return m.group(0) if a == b else f"{m.group(0)} ({'raised' if b > a else 'lowered'})"
    return _CHANGE.sub(word, text)


def fmt_settings(settings: dict) -> str:
    return ", ".join(f"{k}={fmt_knob(v)}" for k, v in sorted(settings.items()))


def fmt_map(grid: list[list[float]], scale: float = 100.0) -> str:
    """A 3 x 3 map as integers of value x scale, rows north to south: '31 42 30 / 55 97 61 / 20 33 18' (integers
    cost a third of the tokens of decimals)."""
    return " / ".join(" ".join(str(int(round(v * scale))) for v in row) for row in grid)


def map_region(grid: list[list[float]]) -> str:
    """The region of the largest value of a 3 x 3 map (rows north to south)."""
    flat = [(v, REGION_GRID[r][c]) for r, row in enumerate(grid) for c, v in enumerate(row)]
    return max(flat, key=lambda t: t[0])[1]


# ---------------------------------------------------------------------- schemas
def schema_for(kind: str, options: list[str] | None = None, knobs: dict[str, tuple[float, float]] | None = None
               ) -> dict:
    """The JSON schema of an answer of this kind (enums from the problem's own options)."""
    def obj(props: dict) -> dict:
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    if kind == "direction":
        return obj({"direction": {"type": "string", "enum": list(DIRECTIONS)}})
    if kind == "choose":
        return obj({"choice": {"type": "string", "enum": list(options or LETTERS)}})
    if kind == "percent":
        return obj({"percent": {"type": "number"}})
    if kind == "diagnose":
        return obj({"region": {"type": "string", "enum": list(REGIONS)},
                    "knob": {"type": "string", "enum": list(options or [])}})
    if kind == "act":
        props = {k: {"type": "number", "minimum": lo, "maximum": hi} for k, (lo, hi) in (knobs or {}).items()}
        return obj({"settings": {"type": "object", "properties": props, "additionalProperties": False}})
    raise ValueError(f"unknown kind {kind}")


# ---------------------------------------------------------------------- the record
@dataclass
class Record:
    id: str
    kind: str
    family: str
    design: str
    prompt: str
    schema: dict
    answer: str  # JSON text of the gold answer
    truth: dict = field(default_factory=dict)
    uses: list[str] = field(default_factory=list)  # run ids behind the truth
    split: str = ""
    system: str = SYSTEM
    template: str = ""  # which prompt template made it (the data card counts them)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Record:
        known = set(cls.__dataclass_fields__)
        rec = cls(**{k: v for k, v in d.items() if k in known})
        rec.prompt = change_words(rec.prompt)  # migration: sets written before the change words (a no-op after)
        return rec

    @property
    def gold(self) -> dict:
        return json.loads(self.answer)

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.prompt}]


def make_record(kind: str, family: str, design: str, prompt: str, schema: dict, answer: dict, truth: dict,
                uses: list[str], template: str) -> Record:
    rid = hashlib.sha1(f"{kind}\0{prompt}".encode()).hexdigest()[:12]
    # Keys in the schema's order: grammar-constrained decoding (llama.cpp) emits them in that order, so a model
    # trained on another order would be forced off what it learned.
    order = list(schema.get("properties", {}))
    ordered = {k: answer[k] for k in order if k in answer} | {k: v for k, v in answer.items() if k not in order}
    return Record(id=f"{kind[:3]}-{rid}", kind=kind, family=family, design=design, prompt=prompt, schema=schema,
                  answer=json.dumps(ordered), truth=truth, uses=sorted(set(uses)), template=template)


# ---------------------------------------------------------------------- parsing and checking
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


def parse_json_answer(raw: Any) -> dict | None:
    """A dict from a model's reply: the dict itself, or the reply's text parsed as one JSON object (a code fence
    around it is tolerated). Anything else (prose, two objects, an array) is None: a parse failure."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    text = _FENCE.sub("", raw.strip()).strip()
    try:
        val = json.loads(text)
    except json.JSONDecodeError:
        # a JSON object followed by an end-of-turn marker or whitespace garbage is still that object
        try:
            val, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError:
            return None
        if text[end:].strip() and not text[end:].strip().startswith("<|"):
            return None
    return val if isinstance(val, dict) else None


def schema_errors(answer: dict, schema: dict) -> list[str]:
    """What is wrong with an answer against our (flat) schemas; [] when it conforms."""
    errs: list[str] = []
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in answer:
            errs.append(f"missing '{key}'")
    if schema.get("additionalProperties") is False:
        errs += [f"unexpected '{k}'" for k in answer if k not in props]
    for key, spec in props.items():
        if key not in answer:
            continue
        v = answer[key]
        t = spec.get("type")
        if t == "number" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            errs.append(f"'{key}' is not a number")
        elif t == "string" and not isinstance(v, str):
            errs.append(f"'{key}' is not a string")
        elif t == "object":
            if not isinstance(v, dict):
                errs.append(f"'{key}' is not an object")
            else:
                errs += [f"{key}.{e}" for e in schema_errors(v, {**spec, "required": spec.get("required", [])})]
        if "enum" in spec and v not in spec["enum"]:
            errs.append(f"'{key}' = {v!r} is not one of {spec['enum']}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in spec and v < spec["minimum"] or "maximum" in spec and v > spec["maximum"]:
                errs.append(f"'{key}' = {v} is outside {spec.get('minimum')}..{spec.get('maximum')}")
    return errs


@dataclass
class Graded:
    score: float
    solved: bool
    status: str  # ok | parse_failure | schema_failure
    detail: dict = field(default_factory=dict)


def percent_score(pred: float, truth: float) -> float:
    tol = max(PERCENT_TOL_PP, PERCENT_TOL_REL * abs(truth))
    err = abs(pred - truth)
    return 1.0 if err <= tol else 0.5 if err <= 2 * tol else 0.0


def grade(record: Record, raw: Any, act_score=None) -> Graded:
    """Score a reply to a record. ``act_score(record, settings) -> (score, detail)`` runs the engine for act."""
    ans = parse_json_answer(raw)
    if ans is None:
        return Graded(0.0, False, "parse_failure", {"raw": str(raw)[:200]})
    errs = schema_errors(ans, record.schema)
    if errs:
        return Graded(0.0, False, "schema_failure", {"errors": errs[:5], "answer": ans})
    gold = record.gold
    if record.kind in ("direction", "choose"):
        key = "direction" if record.kind == "direction" else "choice"
        ok = ans[key] == gold[key]
        return Graded(float(ok), ok, "ok", {"answer": ans[key], "gold": gold[key]})
    if record.kind == "percent":
        s = percent_score(float(ans["percent"]), float(gold["percent"]))
        return Graded(s, s >= 1.0, "ok", {"answer": ans["percent"], "gold": gold["percent"]})
    if record.kind == "diagnose":
        facts = {"knob": ans["knob"] == gold["knob"], "region": ans["region"] == gold["region"]}
        s = 0.7 * facts["knob"] + 0.3 * facts["region"]  # the fix matters most; reading the map is the rest
        return Graded(s, all(facts.values()), "ok", {"facts": facts, "answer": ans, "gold": gold})
    if record.kind == "act":
        if act_score is None:
            return Graded(0.0, False, "ok", {"error": "act needs the engine to score (no act_score given)"})
        s, detail = act_score(record, ans["settings"])
        return Graded(s, s >= 0.75, "ok", detail)
    raise ValueError(f"unknown kind {record.kind}")
