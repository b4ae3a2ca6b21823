"""Benchmark result files and their intervals (engine/bench/results.py): what `cda bench compare` and the page read."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.bench.results import bootstrap_ci, load_results, result_files, short
from engine.cli import main
from engine.errors import EngineError


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_scores():
    rng = np.random.default_rng(1)
    few = list(rng.integers(0, 2, 20).astype(float))
    many = list(rng.integers(0, 2, 400).astype(float))
    for scores in (few, many):
        lo, hi = bootstrap_ci(scores)
        assert lo <= float(np.mean(scores)) <= hi
    assert (bootstrap_ci(many)[1] - bootstrap_ci(many)[0]) < (bootstrap_ci(few)[1] - bootstrap_ci(few)[0])
    assert bootstrap_ci(few) == bootstrap_ci(few)  # seeded: a result file is reproducible
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    assert all(np.isnan(bootstrap_ci([])))


def test_bad_result_files_give_clear_errors(tmp_path, capsys):
    with pytest.raises(EngineError, match="does not exist"):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EngineError, match="not a results file"):
        load_results(bad)
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(EngineError, match="no 'results'"):
        load_results(tmp_path / "empty.json")
    assert main(["bench", "compare", str(bad), str(bad)]) == 1
    assert "not a results file" in capsys.readouterr().err


def test_result_files_lists_only_v2_results_newest_first(tmp_path):
    (tmp_path / "v2").mkdir()
    old = {"version": 1, "results": [], "summary": {}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "noise.json").write_text("[1, 2]")
    a, b = tmp_path / "v2" / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"version": 2, "results": []}))
    b.write_text(json.dumps({"version": 2, "results": []}))
    os.utime(a, (1, 1))
    assert result_files(tmp_path) == [b, a]


def test_short_answer_lines():
    assert short(None) == "-"
    assert short({"value": 12.3456}) == "12.35"
    assert short({"choice": "B"}) == "B"
    assert short({"settings": {"place.target_density": 0.8}}) == "target_density=0.8"
    assert short("x " * 100, 10).endswith("…") and len(short("x " * 100, 10)) == 10
