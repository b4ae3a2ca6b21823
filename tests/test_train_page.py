"""The Training page under AppTest: empty state, the data card, live LoRA curves, search trials, export files, and a
job started and cancelled from the page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.bench.formats import make_record, schema_for
from engine.jobs import JobQueue
from engine.runs import RunStore
from engine.train.config import LoraTrainConfig, SearchConfig
from engine.train.data_v2 import card_markdown, data_card

PAGE = Path(__file__).resolve().parent.parent / "pages" / "10_training.py"


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)  # the CLI's default output folders (.cache/train/*) are relative
    return tmp_path


def _write_results(root: Path) -> None:
    cache = root / ".cache" / "train"
    recs = [make_record("choose", fam, fam, f"question on {fam}: A, B, C or D?", schema_for("choose"),
                        {"choice": "B"}, {}, [], "choose/0") for fam in ("g150-t1.6-m0", "g250-t1.6-m2")]
    card = data_card(recs, [], 12.0, type("Sweep", (), {"placer": "abc"})())
    data = root / LoraTrainConfig().data_dir  # where `cda bench data` writes and LoRA reads
    data.mkdir(parents=True)
    (data / "card.json").write_text(json.dumps(card))
    (data / "card.md").write_text(card_markdown(card))
    (cache / "lora").mkdir()
    (cache / "lora" / "curves.json").write_text(json.dumps({
        "train": [{"step": s, "loss": 3 - s / 10} for s in range(1, 11)],
        "val": [{"step": 0, "loss": 3.2}, {"step": 10, "loss": 2.1}], "total_steps": 10, "n_train": 80,
        "n_val": 8, "device": "cpu", "bf16": False, "state": "done"}))
    (cache / "lora" / "status.json").write_text(json.dumps({"state": "done", "step": 10, "total_steps": 10}))
    (cache / "lora" / "config.json").write_text(json.dumps({"base_model": "tiny", "r": 8, "alpha": 16, "lr": 1e-3}))
    (cache / "lora" / "adapter").mkdir()
    (cache / "search").mkdir()
    (cache / "search" / "trials.json").write_text(json.dumps([
        {"number": i, "state": "done", "params": {"lr": 1e-3 * (i + 1), "r": 4, "alpha": 8.0}, "val_loss": 2.0 + i,
         "seconds": 3.0} for i in range(2)]))
    (cache / "export").mkdir()
    (cache / "export" / "verify.json").write_text(json.dumps({
        "ok": True, "n_tensors": 21, "max_abs_diff": 0.0, "logits_max_abs_diff": 4e-7, "next_token_hf": 5,
        "next_token_gguf": 5}))
    (cache / "export" / "Modelfile").write_text('FROM ./model.gguf\nPARAMETER temperature 0.2\n')
    (cache / "export" / "model.gguf").write_bytes(b"GGUF" + bytes(100))


def test_empty_page_explains_how_to_start(workspace):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Training"
    infos = " ".join(i.value for i in at.info)
    assert "No data set yet" in infos and "No fine-tuning yet" in infos and "No export yet" in infos


def test_page_shows_card_curves_trials_and_export(workspace):
    _write_results(workspace)
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "**2** problems from **0** placements" in text
    assert "validation loss from **3.200** to **2.100**" in text
    assert "**2/2** trials finished" in text and "best validation loss **2.0000**" in text
    assert any("GGUF read back: 21 tensors" in s.value for s in at.success)
    assert any("FROM ./model.gguf" in c.value for c in at.code)
    assert at.metric[0].value == "2"


def test_start_and_cancel_a_search_job_from_the_page(workspace):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    form = [n for n in at.number_input if n.label == "Trials"][0]
    form.set_value(2)
    [n for n in at.number_input if n.label == "Steps per trial"][0].set_value(9)
    [b for b in at.button if b.label == "Start"][1].click().run()  # the forms in order: LoRA, search
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(workspace / "runs")
    rows = store.list(kind="train-search")
    assert len(rows) == 1
    cfg = SearchConfig.from_dict(store.get(rows[0]["id"]).config)
    assert cfg.n_trials == 2 and cfg.base.max_steps == 9 and cfg.base.eval_every == 3
    JobQueue(store).cancel(rows[0]["id"])
    assert JobQueue(store).wait(rows[0]["id"], timeout_s=120) in ("cancelled", "failed")
