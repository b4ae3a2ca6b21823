"""Training data v2: placement problems in the benchmark's own formats (engine/bench/formats.py), from the current
placer, on many generated netlist families and the example designs.

Read top to bottom:
1. ``all_designs``: generated netlist families (cell count x net-length tail x macro count) and the example
   designs; ``split_of`` holds whole families out for validation and test (the benchmark's test problems come
   from the test families only).
2. ``engine.bench.derive.plan``: per design a reference setting and one-knob variants (utilisation, target
   density, gamma, density weight), plus, for half the designs, an iteration-capped setting with five fixes.
3. ``run_design``: every setting with 3 placer seeds through the engine (engine.bench.sweep.Sweeper: run store +
   journal, so a killed generation resumes and a rerun costs nothing).
4. ``derive_all`` (engine.bench.derive, shared with the benchmark): direction, choose, percent and diagnose
   records from the seed means; a change is called a rise or
   a fall only beyond the seed-to-seed band, "no-clear-effect" only well inside it, near the band edge nothing.
   Only converged placements (overflow <= target before the cap) feed direction, percent and choose; the capped
   runs are the overflow symptom themselves and are shown as such.
5. ``write``: {train,val,test}.jsonl, card.json, the data card assets/training/card_v2.md and a 48-record sample.
``verify`` re-runs a sample of records' settings in a fresh store and reports how many labels agree.
"""
from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.bench.derive import CLEAR, INSIDE, Measured, collect, derive_all, rederive, run_design
from engine.bench.formats import SYSTEM, Record
from engine.bench.sweep import Design, Sweeper
from engine.errors import EngineError
from engine.runs import write_json

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / ".cache" / "train" / "data_v2"
CARD_PATH = ROOT / "assets" / "training" / "card_v2.md"
SAMPLE_PATH = ROOT / "assets" / "training" / "sample_v2.jsonl"

SIZES = (150, 250, 400, 600, 800)
TAILS = (1.3, 1.6, 2.2)
MACROS = (0, 2, 4)
EXAMPLES = ("counter", "gray_prio", "crc32", "uart", "alu", "fir")
# Held-out families: chosen to span sizes, tails and macro counts; the benchmark's test problems use only these.
TEST_FAMILIES = ("g150-t2.2-m2", "g250-t1.3-m0", "g400-t1.6-m4", "g600-t2.2-m0", "g800-t1.3-m2", "example:uart",
                 "example:fir")
VAL_FAMILIES = ("g250-t1.6-m2", "g400-t2.2-m0", "g600-t1.3-m4", "example:gray_prio")


def family_name(n: int, tail: float, macros: int) -> str:
    return f"g{n}-t{tail}-m{macros}"


def all_designs(instances: int = 1) -> list[Design]:
    out = []
    for n, tail, m in itertools.product(SIZES, TAILS, MACROS):
        fam = family_name(n, tail, m)
        for k in range(instances):
            seed = 100 + 7 * k + sum(map(ord, fam)) % 97  # stable across processes (no hash())
            out.append(Design(f"{fam}-s{seed}", fam, "generated", n, seed, m, tail))
    out += [Design(name, f"example:{name}", "example") for name in EXAMPLES]
    return out


def split_of(family: str) -> str:
    return "test" if family in TEST_FAMILIES else "val" if family in VAL_FAMILIES else "train"


def ordered(designs: list[Design]) -> list[Design]:
    """Train designs first (the lead trains on them), small before large inside each split."""
    rank = {"train": 0, "val": 1, "test": 2}
    return sorted(designs, key=lambda d: (rank[split_of(d.family)], d.n_cells if d.kind == "generated" else 500,
                                          d.name))


# =============================================================================================== write
@dataclass
class DataV2Config:
    """What `cda bench data` generates."""

    out_dir: str = str(OUT_DIR)
    """Folder of {train,val,test}.jsonl and card.json."""
    root: str = ""
    """Sweep store (run store + journal); empty = .cache/bench/runs_v2."""
    instances: int = 1
    """Designs per generated family (different generator seeds)."""
    limit_designs: int = 0
    """Only the first N designs of the ordered list (0 = all); a smoke test uses 1-2."""
    families: tuple[str, ...] = ()
    """Only these families (empty = all)."""
    run: bool = True
    """Run missing placements (False: derive from what the journal already holds)."""
    seed: int = 2026
    """Seed of the record derivation (templates, option order, letters)."""
    write_card: bool = True
    """Write assets/training/card_v2.md and sample_v2.jsonl."""
    sample_size: int = 48
    """Records in the committed sample."""
    verify_sample: int = 0
    """Records whose labels the verifier re-derives from fresh runs (0 = no verifier)."""
    overflow_symptom: bool = True
    """Also place the iteration-capped settings of the overflow diagnosis (half the designs; 18 runs each)."""


def select_designs(cfg: DataV2Config) -> list[Design]:
    ds = ordered(all_designs(cfg.instances))
    if cfg.families:
        ds = [d for d in ds if d.family in cfg.families]
    if cfg.limit_designs:
        ds = ds[: cfg.limit_designs]
    return ds


def generate(cfg: DataV2Config | None = None, progress: Callable[[float, str], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> dict:
    cfg = cfg or DataV2Config()
    t0 = time.time()
    sw = Sweeper(cfg.root or None)
    designs = select_designs(cfg)
    measured = []
    for i, d in enumerate(designs):
        if cfg.run:
            try:
                n = run_design(sw, d, cancel, cfg.overflow_symptom)
            except EngineError as exc:
                log.warning("design %s skipped: %s", d.name, exc.message)
                continue
            log.info("design %d/%d %s: %d new runs (%.0f s so far)", i + 1, len(designs), d.name, n, time.time() - t0)
            if progress:
                progress((i + 1) / len(designs), f"{d.name}: {n} new runs")
        m = collect(sw, d)
        if m is not None:
            measured.append(m)
        if cancel is not None and cancel():
            break
    records = derive_all(measured, split_of, cfg.seed)
    card = write(records, measured, cfg, time.time() - t0, sw)
    card["new_runs"] = sw.new_runs
    if cfg.verify_sample:
        card["verify"] = verify(records, cfg.verify_sample, seed=cfg.seed)
        card["verify"]["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_json(Path(cfg.out_dir, "verify_v2.json"), card["verify"], indent=1)
        write_json(Path(cfg.out_dir, "card.json"), card, indent=1)
        if cfg.write_card:
            CARD_PATH.write_text(card_markdown(card))
    return card


def _jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write(records: list[Record], measured: list[Measured], cfg: DataV2Config, seconds: float, sw: Sweeper) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        _jsonl(out / f"{split}.jsonl", [r.to_dict() for r in records if r.split == split])
    card = data_card(records, measured, seconds, sw)
    if (out / "verify_v2.json").is_file():  # the last verifier report on this data (it says when it ran)
        card["verify"] = json.loads((out / "verify_v2.json").read_text())
    write_json(out / "card.json", card, indent=1)
    if cfg.write_card:
        CARD_PATH.parent.mkdir(parents=True, exist_ok=True)
        CARD_PATH.write_text(card_markdown(card))
        rng = random.Random(cfg.seed)
        by_kind = defaultdict(list)
        for r in records:
            by_kind[r.kind].append(r)
        sample = []
        per = max(1, cfg.sample_size // max(len(by_kind), 1))
        for kind in sorted(by_kind):
            sample += rng.sample(by_kind[kind], min(per, len(by_kind[kind])))
        _jsonl(SAMPLE_PATH, [r.to_dict() for r in sample[: cfg.sample_size]])
    return card


def data_card(records: list[Record], measured: list[Measured], seconds: float, sw: Sweeper) -> dict:
    bands = defaultdict(list)
    for r in records:
        if r.kind == "direction":
            bands[r.truth["metric"]].append(r.truth["band"])
    labels = {k: dict(Counter(json.dumps(r.gold, sort_keys=True) for r in records if r.kind == k))
              for k in ("direction", "choose")}
    labels["diagnose_knob"] = dict(Counter(r.gold["knob"] for r in records if r.kind == "diagnose"))
    pct = sorted(r.gold["percent"] for r in records if r.kind == "percent")
    runs = sum(len(v) for m in measured for v in m.runs.values())
    conv = sum(all(x["metrics"]["placement__converged"] for x in v) for m in measured
               for n, v in m.runs.items() if not n.startswith("cap"))
    total_settings = sum(1 for m in measured for n in m.runs if not n.startswith("cap"))
    return {
        "total": len(records),
        "splits": dict(Counter(r.split for r in records)),
        "kinds": {s: dict(Counter(r.kind for r in records if r.split == s)) for s in ("train", "val", "test")},
        "templates": dict(Counter(r.template for r in records)),
        "families_per_split": {s: sorted({m.design.family for m in measured if split_of(m.design.family) == s})
                               for s in ("train", "val", "test")},
        "designs": len(measured),
        "engine_runs": runs,
        "converged_settings": f"{conv}/{total_settings}",
        "label_balance": labels,
        "percent_quantiles": [pct[int(q * (len(pct) - 1))] for q in (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1)] if pct else [],
        "noise_band_median": {k: round(sorted(v)[len(v) // 2], 5) for k, v in bands.items()},
        "noise_band_max": {k: round(max(v), 5) for k, v in bands.items()},
        "placer": sw.placer,
        "placers_of_runs": dict(Counter(r.get("placer", "unrecorded (before 22:05)") for m in measured
                                        for v in m.runs.values() for r in v)),
        "seconds": round(seconds, 1),
        "placement_cpu_seconds": round(sum(r["metrics"].get("placement__runtime_s", 0.0) for m in measured
                                           for v in m.runs.values() for r in v), 1),
        "system": SYSTEM,
    }


def card_markdown(card: dict) -> str:
    L = ["# Training data v2: the data card", "",
         f"{card['total']} records from {card['engine_runs']} placements (engine.place: global placement, "
         f"legalisation, detailed placement) of {card['designs']} designs, 3 placer seeds per setting (placer "
         f"code fingerprints of the runs: {card.get('placers_of_runs', {})}; the verifier below re-runs a sample "
         f"with the current placer, {card['placer']}). Same formats as the benchmark (engine/bench/formats.py): "
         "every record is a system prompt, a user prompt holding every number the answer needs, a JSON schema "
         "and a JSON answer.", "",
         "## Splits (whole families held out)", "", "| split | records | kinds | families |", "|---|---:|---|---|"]
    for s in ("train", "val", "test"):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(card["kinds"][s].items()))
        L.append(f"| {s} | {card['splits'].get(s, 0)} | {kinds} | {', '.join(card['families_per_split'][s])} |")
    if not card["splits"].get("test"):
        L += ["", "The test families were not placed in this generation (`--families` left them out): the benchmark's "
              "problems (assets/bench/problems_v2.jsonl, built by `cda bench build`) come from them."]
    L += ["", "A copy of train and val is committed gzipped in assets/training/data_v2/ (the trainer reads "
          "`<split>.jsonl.gz`), so `cda train lora --data-dir assets/training/data_v2` needs no placements."]
    L += ["", "## Templates", "", "| template | records |", "|---|---:|"]
    L += [f"| {t} | {n} |" for t, n in sorted(card["templates"].items())]
    L += ["", "## Label balance", ""]
    for k, v in card["label_balance"].items():
        L.append(f"- {k}: " + ", ".join(f"{a} {n}" for a, n in sorted(v.items())))
    L += [f"- percent answers, quantiles 0/10/25/50/75/90/100%: {card['percent_quantiles']}", "",
          "## Noise band", "",
          "A direction label is claimed only beyond the seed-to-seed band: the larger max-min range over the 3 "
          f"seeds of the two settings, relative to the reference mean, never below the metric's noise floor. "
          f"Rise/fall needs |change| >= {CLEAR} x band, no-clear-effect <= {INSIDE} x band; the cases between are "
          "dropped. The prompt states the band.", "", "| metric | median band | max band |", "|---|---:|---:|"]
    L += [f"| {k} | {v * 100:.2f}% | {card['noise_band_max'][k] * 100:.2f}% |"
          for k, v in card["noise_band_median"].items()]
    L += ["", f"Converged settings (all 3 seeds stopped at overflow <= target before the cap): "
          f"{card['converged_settings']}; only those feed direction, percent and choose. The iteration-capped runs "
          "are the overflow symptom of diagnose/overflow and are shown as capped.", ""]
    if card.get("verify"):
        v = card["verify"]
        L += ["## Verifier", "", f"{v['checked']} records re-derived from fresh placements with the current placer "
              f"(a new run store, no reuse; {v.get('fresh_runs', '?')} placements, {v.get('at', '')}): {v['agree']} "
              f"agree ({v['agreement'] * 100:.1f}%; percent within the benchmark's tolerance). Per kind: "
              + ", ".join(f"{k} {a}/{n}" for k, (a, n) in v["per_kind"].items()), ""]
    L += ["## System prompt", "", "> " + card["system"], "",
          f"The placements took {card.get('placement_cpu_seconds', 0):.0f} s of placer time (one thread each; "
          f"runs are reused from the journal on a rerun); deriving the records took {card['seconds']:.0f} s. "
          "Sample: assets/training/sample_v2.jsonl.", ""]
    return "\n".join(L)


# ============================================================================================== verify
COMMITTED_DIR = ROOT / "assets" / "training" / "data_v2"


def verify_committed(data_dir: str | Path = COMMITTED_DIR, n: int = 40, seed: int = 2026,
                     root: str | Path | None = None) -> dict:
    """The verifier on a committed data set (no regeneration): ``n`` records of its train and val splits re-derived
    from fresh placements; the result goes into the folder's card.json (and the data card when it is the
    committed set)."""
    from engine.runs import read_jsonl

    folder = Path(data_dir)
    records = []
    for split in ("train", "val"):
        for name in (f"{split}.jsonl.gz", f"{split}.jsonl"):
            if (folder / name).is_file():
                records += [Record.from_dict(row) for _, row in read_jsonl(folder / name, EngineError)]
                break
    if not records:
        raise EngineError(f"no train/val records in {folder}", hint="`cda bench data` writes a data set")
    result = verify(records, n, seed=seed, root=root)
    result["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    card_path = folder / "card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        card["verify"] = result
        write_json(card_path, card, indent=1)
        if folder.resolve() == COMMITTED_DIR.resolve():
            CARD_PATH.write_text(card_markdown(card))
    return result


def verify(records: list[Record], n: int, seed: int = 0, root: str | Path | None = None) -> dict:
    """Re-derive ``n`` records (stratified by kind) from placements in a fresh store; percent agrees within the
    benchmark's tolerance."""
    import tempfile

    from engine.bench.formats import percent_score

    rng = random.Random(seed)
    by_kind = defaultdict(list)
    for r in records:
        by_kind[r.kind].append(r)
    chosen = []
    for kind in sorted(by_kind):
        chosen += rng.sample(by_kind[kind], min(max(1, n // len(by_kind)), len(by_kind[kind])))
    with tempfile.TemporaryDirectory(prefix="verify_v2_") as tmp:
        sw = Sweeper(root or tmp)
        per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        details = []
        for r in chosen:
            fresh = rederive(r, sw)
            if r.kind == "percent":
                ok = percent_score(fresh["percent"], r.gold["percent"]) >= 1.0
            else:
                ok = fresh == r.gold
            per_kind[r.kind][0] += int(ok)
            per_kind[r.kind][1] += 1
            if not ok:
                details.append({"id": r.id, "gold": r.gold, "fresh": fresh})
    agree = sum(a for a, _ in per_kind.values())
    return {"checked": len(chosen), "agree": agree, "agreement": round(agree / max(len(chosen), 1), 4),
            "per_kind": {k: tuple(v) for k, v in per_kind.items()}, "disagreements": details[:20],
            "fresh_runs": sw.new_runs}


def load_records(path: str | Path) -> list[Record]:
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path} does not exist", hint="generate the data with `cda bench data`")
    return [Record.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["DataV2Config", "generate", "verify", "load_records", "all_designs", "split_of",
           "TEST_FAMILIES", "VAL_FAMILIES"]
