"""The committed training set (assets/training/data_v2, gzipped JSONL written by `cda bench data`): it loads
through the trainer's own reader, is in the benchmark's record format, and shares no family, design or prompt with
the benchmark's problems (whole families held out), so a score on the benchmark is a score on unseen designs."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from engine.bench.formats import Record
from engine.train.data_v2 import TEST_FAMILIES, VAL_FAMILIES, split_of
from engine.train.lora import load_split

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "assets" / "training" / "data_v2"
PROBLEMS = ROOT / "assets" / "bench" / "problems_v2.jsonl"


def test_committed_data_loads_and_holds_the_benchmark_formats():
    train, val = load_split(DATA, "train"), load_split(DATA, "val")
    assert len(train) >= 5000 and len(val) >= 300
    kinds = Counter(r["kind"] for r in train)
    assert set(kinds) >= {"direction", "choose", "percent", "diagnose"}
    for row in train[:200] + val[:50]:
        rec = Record.from_dict(row)
        assert rec.prompt and rec.system and json.loads(rec.answer) == rec.gold
    assert all(split_of(r["family"]) == "train" for r in train)
    assert all(r["family"] in VAL_FAMILIES for r in val)


def test_no_benchmark_family_design_or_prompt_is_in_the_training_data():
    problems = [json.loads(line) for line in PROBLEMS.read_text().splitlines() if line.strip()]
    assert {p["family"] for p in problems} <= set(TEST_FAMILIES)
    rows = load_split(DATA, "train") + load_split(DATA, "val")
    assert not {r["family"] for r in rows} & set(TEST_FAMILIES)
    assert not {r["design"] for r in rows} & {p["design"] for p in problems}
    assert not {r["prompt"] for r in rows} & {p["prompt"] for p in problems}


def test_general_models_see_one_committed_example_and_specialists_none(tmp_path):
    """The worked example shown before a general model's question comes from the committed set (the same on every
    machine); a tuned model, as a LoRA folder or as the GGUF `cda train export` wrote, is asked without one."""
    from engine.bench.v2 import COMMITTED_TRAIN, LLMAnswerer, is_specialist

    pool = LLMAnswerer._one_shot_pool(LLMAnswerer.__new__(LLMAnswerer))
    first = {}
    for row in load_split(DATA, "train"):
        first.setdefault(row["kind"], row["id"])
    assert COMMITTED_TRAIN.parent == DATA and {k: r.id for k, r in pool.items()} == first
    exported = tmp_path / "export"
    exported.mkdir()
    (exported / "model.gguf").write_bytes(b"")
    (exported / "config.json").write_text(json.dumps({"adapter_dir": "assets/specialist/adapter"}))
    assert is_specialist("lora:assets/specialist/adapter") and is_specialist(f"gguf:{exported / 'model.gguf'}")
    assert not is_specialist(f"gguf:{tmp_path / 'base.gguf'}") and not is_specialist("base")
