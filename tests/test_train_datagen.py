"""Training data generation: real engine runs on two small designs, examples whose numbers match the runs,
a split with no design in two parts, deduplication, the data card and the verifier."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.runs import RunStore
from engine.train.config import DatagenConfig, TrainError
from engine.train.datagen import (
    PHASES,
    check_examples,
    congestion_grid,
    fmt,
    generate_dataset,
    split_designs,
    verify_dataset,
)
from engine.train.tinymodel import read_jsonl


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("datagen")
    cfg = DatagenConfig(designs=("counter", "gray_prio"), out_dir=str(out / "data"), runs_dir=str(out / "runs"),
                        until="route", groups=("place",), utilizations=(0.5, 0.7), target_densities=(0.8, 1.0),
                        gammas=(1.0,), place_iterations=40, ray_workers=0, verify_sample=1, seed=0)
    card = generate_dataset(cfg)
    return cfg, card, Path(cfg.out_dir)


def test_examples_state_the_numbers_of_their_runs(dataset):
    cfg, card, out = dataset
    examples = read_jsonl(out / "all.jsonl")
    assert len(examples) == card["total"] > 50
    store = RunStore(cfg.runs_dir)
    checked = 0
    for ex in examples:
        assert ex["phase"] in PHASES and ex["run_id"] in ex["run_ids"] and ex["uses"]
        for u in ex["uses"]:
            run = store.get(u["run_id"])
            if u["key"] == "congestion_grid":
                assert congestion_grid(run.dir / "04-route" / "congestion.npz") == u["value"]
            else:
                assert run.metrics()[u["step"]][u["key"]] == u["value"], (ex["instruction"], u)
                if isinstance(u["value"], (int, float)) and not isinstance(u["value"], bool):
                    assert fmt(u["value"]) in ex["answer"], (ex["answer"], u)
            checked += 1
    assert checked > 100
    types = {e["type"] for e in examples}
    assert {"effect_target_density", "effect_utilization", "congestion_hotspot", "head_to_head"} <= types
    # Answers talk about the design and the knobs, never about run ids the asker cannot know.
    assert not any(e["run_id"] in e["answer"] for e in examples)


def test_split_by_design_and_dedup(dataset):
    _, card, out = dataset
    seen: dict[str, str] = {}
    total = 0
    for split in ("train", "val", "test"):
        rows = read_jsonl(out / f"{split}.jsonl") if (out / f"{split}.jsonl").stat().st_size else []
        total += len(rows)
        for r in rows:
            assert r["split"] == split
            assert seen.setdefault(r["design"], split) == split  # no design in two splits
    assert total == card["total"] and set(seen) == {"counter", "gray_prio"}
    assert len(set(seen.values())) == 2  # two designs: one for training, one held out
    instructions = [" ".join(e["instruction"].lower().split()) for e in read_jsonl(out / "all.jsonl")]
    assert len(instructions) == len(set(instructions))


def test_data_card_and_verifier(dataset):
    _, card, out = dataset
    saved = json.loads((out / "card.json").read_text())
    examples = read_jsonl(out / "all.jsonl")
    assert saved["per_phase"]["place"] == sum(e["phase"] == "place" for e in examples) > 0
    assert sum(saved["per_type"].values()) == saved["total"]
    assert saved["runs"]["done"] == saved["runs"]["total"] == 8
    assert "| place |" in (out / "card.md").read_text()
    assert card["verify"]["checked_runs"] == 1 and card["verify"]["checked_examples"] > 0
    assert card["verify"]["mismatches"] == 0  # the re-run (no step reuse) reproduces the stated numbers
    # A tampered number is caught.
    runs = {r["run_id"]: r for r in json.loads((out / "runs.json").read_text())["runs"]}
    bad = next(e for e in examples if e["uses"][0]["key"] == "placement__hpwl")
    bad = json.loads(json.dumps(bad))
    bad["uses"][0]["value"] *= 1.1
    assert check_examples([bad], runs)
    report = verify_dataset(out, sample=0, rerun=False)
    assert report["static_problems"] == 0


def test_split_designs_never_shares_a_design():
    split = split_designs([f"d{i}" for i in range(7)], (0.7, 0.15, 0.15), seed=3)
    assert sorted(split.values()).count("val") == 1 and sorted(split.values()).count("test") == 1
    assert split_designs(["a", "b"], (0.7, 0.15, 0.15), 0) in ({"a": "train", "b": "val"}, {"a": "val", "b": "train"})


def test_bad_inputs(tmp_path):
    with pytest.raises(EngineError):
        generate_dataset(DatagenConfig(designs=("no_such_design",), out_dir=str(tmp_path / "d"),
                                       runs_dir=str(tmp_path / "r"), ray_workers=0, until="floorplan"))
    with pytest.raises(TrainError, match="not a flow step"):
        generate_dataset(DatagenConfig(until="tapeout", out_dir=str(tmp_path / "d")))
    with pytest.raises(TrainError, match="not a generated data set"):
        verify_dataset(tmp_path)
