"""Training, LM side: LoRA (answers-only loss, cancel, reload), search, GGUF export, on a tiny Llama (tiny_lm.py).

Everything runs for real on a very small model (a few seconds per stage on 2 cores)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_lm import build_tiny_lm  # noqa: E402

from engine.train import export as export_mod  # noqa: E402
from engine.train.config import ExportConfig, LoraTrainConfig, SearchConfig, TrainError  # noqa: E402
from engine.train.export import export_model, read_gguf, verify_gguf, write_gguf  # noqa: E402
from engine.train.lora import IGNORE, encode_example, load_adapter, train_lora  # noqa: E402
from engine.train.models import load_model_folder  # noqa: E402
from engine.train.search import run_search  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The models here are tiny: one thread avoids the cost of thread hand-offs (and of spinning on a busy machine).
torch.set_num_threads(1)
DOC = ("The analytical placer spreads standard cells with an electrostatic density penalty. The target density "
       "says how full each bin may get; a lower target spreads cells and raises HPWL, a higher one packs them. "
       "Gamma smooths the weighted-average wirelength. Overflow measures how much cell area sits above target.\n")


def _example(rng: random.Random, i: int) -> dict:
    d = rng.choice([0.6, 0.7, 0.8, 0.9])
    h = rng.randint(100, 999)
    above = d > 0.75
    return {"instruction": f"Run r{i} placed design d{i % 5} at target density {d} with HPWL {h} um. "
                           f"Is the target density above 0.75?",
            "answer": f"{'Yes' if above else 'No'}: {d} is {'above' if above else 'not above'} 0.75.",
            "phase": "place", "type": "threshold"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_lm")
    (root / "docs").mkdir()
    (root / "docs" / "placer.md").write_text(DOC * 20)
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 240), ("val", 24)):
        with (data / f"{split}.jsonl").open("w") as fh:
            for i in range(n):
                fh.write(json.dumps(_example(rng, i)) + "\n")
    return root


@pytest.fixture(scope="module")
def pretrained(workdir) -> tuple[Path, list[float]]:
    return build_tiny_lm(workdir / "tiny", [(workdir / "docs" / "placer.md").read_text()])


@pytest.fixture(scope="module")
def tiny_model(pretrained) -> Path:
    return pretrained[0]


def _lora_cfg(workdir: Path, tiny_model: Path, name: str, **kw) -> LoraTrainConfig:
    base = dict(base_model=str(tiny_model), data_dir=str(workdir / "data"), out_dir=str(workdir / name),
                r=8, alpha=16, lr=5e-3, batch_size=8, max_len=160, max_steps=30, eval_every=10,
                max_val_examples=24, checkpoint_every=10, seed=0)
    base.update(kw)
    return LoraTrainConfig(**base)


@pytest.fixture(scope="module")
def trained(workdir, tiny_model):
    return train_lora(_lora_cfg(workdir, tiny_model, "lora"))


def _logits(model, tokenizer, text: str = "### Instruction:\nIs 0.9 above 0.75?\n### Response:\n") -> torch.Tensor:
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits[0]


def test_tiny_model_is_a_normal_hf_folder(tiny_model, pretrained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "llama" and model.config.num_key_value_heads == 2
    ids = tok("target density")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == "target density"
    losses = pretrained[1]
    assert np.mean(losses[-5:]) < losses[0] - 1.0  # pre-training learned something


def test_prompt_tokens_are_masked(tiny_model):
    tok, _ = load_model_folder(tiny_model)
    ex = {"instruction": "Is 0.9 above 0.75?", "answer": "Yes."}
    ids, labels = encode_example(tok, ex, 160)
    n_prompt = len(tok("### Instruction:\nIs 0.9 above 0.75?\n### Response:\n")["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == "Yes."


def test_lora_lowers_validation_loss_and_writes_curves(trained):
    assert trained.state == "done" and trained.steps == 30
    assert trained.final_val_loss < trained.first_val_loss * 0.8
    out = Path(trained.out_dir)
    curves = json.loads((out / "curves.json").read_text())
    assert len(curves["train"]) == 30 and [p["step"] for p in curves["val"]] == [0, 10, 20, 30]
    assert curves["state"] == "done"
    assert (out / "curves.png").stat().st_size > 1000
    assert json.loads((out / "config.json").read_text())["r"] == 8
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_adapter_reloads_with_identical_logits(trained, tiny_model):
    tok, reloaded = load_adapter(trained.adapter_dir)
    want = _logits(trained.model, tok)
    got = _logits(reloaded, tok)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    _, base = load_model_folder(tiny_model)
    assert (want - _logits(base, tok)).abs().max() > 1e-3  # the adapter is not a no-op


def test_cancel_keeps_checkpoint(workdir, tiny_model):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # stop after the 4th step

    res = train_lora(_lora_cfg(workdir, tiny_model, "lora_cancel", max_steps=50), cancel=cancel)
    assert res.state == "cancelled" and res.steps == 4
    out = Path(res.out_dir)
    assert json.loads((out / "status.json").read_text())["state"] == "cancelled"
    assert json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"] == 4
    load_adapter(out / "checkpoint", base_model=tiny_model)  # the checkpoint is a loadable adapter


def test_export_gguf_round_trip(trained, workdir):
    res = export_model(ExportConfig(adapter_dir=trained.adapter_dir, out_dir=str(workdir / "export"),
                                    model_name="cda-test", dtype="f32", agreement_prompts=0))
    v = res.verify
    assert v["ok"] and v["max_abs_diff"] == 0.0 and not v["missing"] and v["n_tensors"] == 2 * 9 + 3
    assert v["logits_max_abs_diff"] < 1e-4 and v["next_token_hf"] == v["next_token_gguf"]
    meta, tensors = read_gguf(res.gguf_path)
    assert meta["general.architecture"] == "llama" and meta["general.name"] == "cda-test"
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert len(meta["tokenizer.ggml.tokens"]) == tensors["token_embd.weight"].shape[0]
    # The merged safetensors folder gives the adapter model's logits.
    tok, merged = load_model_folder(res.merged_dir)
    torch.testing.assert_close(_logits(merged, tok), _logits(trained.model, tok), rtol=1e-4, atol=1e-4)
    assert (Path(res.merged_dir) / "model.safetensors").is_file()
    modelfile = Path(res.modelfile_path).read_text()
    assert "FROM ./model.gguf" in modelfile
    assert 'TEMPLATE """### Instruction:\n{{ .Prompt }}\n### Response:\n"""' in modelfile
    assert "PARAMETER temperature" in modelfile and "PARAMETER num_ctx 160" in modelfile


def test_gguf_logit_check_catches_wrong_rope_layout(trained, workdir, monkeypatch):
    tok, merged = export_mod.merge_adapter(trained.adapter_dir)
    monkeypatch.setattr(export_mod, "rope_permute", lambda w, n: w)  # HF layout written as is: wrong for llama.cpp
    path = write_gguf(merged, tok, workdir / "bad.gguf")
    with pytest.raises(TrainError, match="GGUF verification failed"):
        verify_gguf(merged, tok, path)  # tensors equal what was written; only the logits reveal the bug


def test_two_trial_search(workdir, tiny_model):
    base = _lora_cfg(workdir, tiny_model, "unused", max_steps=6, eval_every=3, max_val_examples=8)
    summary = run_search(SearchConfig(base=base, out_dir=str(workdir / "search"), n_trials=2, seed=1))
    trials = json.loads((workdir / "search" / "trials.json").read_text())
    assert len(trials) == 2 and all(t["state"] == "done" and t["val_loss"] > 0 for t in trials)
    assert summary["best"]["val_loss"] == min(t["val_loss"] for t in trials)
    assert all(t["params"]["alpha"] / t["params"]["r"] in (1.0, 2.0, 4.0) for t in trials)
    assert (workdir / "search" / "trials.png").is_file() and (workdir / "search" / "best.json").is_file()
    # Run again with one more trial: the finished two are kept (SQLite study), only the third one runs.
    more = run_search(SearchConfig(base=base, out_dir=str(workdir / "search"), n_trials=3, seed=1))
    assert [t["number"] for t in more["trials"]] == [0, 1, 2]
    assert more["trials"][:2] == trials and more["trials"][2]["state"] in ("done", "pruned")


def test_bad_inputs_give_clear_errors(workdir, tiny_model, tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        load_model_folder(tmp_path / "nope")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(TrainError, match="could not be loaded"):
        load_model_folder(corrupt)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("")
    with pytest.raises(TrainError, match="no training examples"):
        train_lora(_lora_cfg(workdir, tiny_model, "x", data_dir=str(empty)))
    (empty / "train.jsonl").write_text('{"instruction": "a"\n')
    with pytest.raises(TrainError, match=r"train.jsonl:1 is not valid JSON"):
        train_lora(_lora_cfg(workdir, tiny_model, "x", data_dir=str(empty)))
    with pytest.raises(TrainError, match="not linear layers"):
        train_lora(_lora_cfg(workdir, tiny_model, "x", target_modules=("c_attn",)))
    with pytest.raises(TrainError, match="not a LoRA adapter folder"):
        load_adapter(tmp_path)


def test_cli_reports_bad_model_folder_without_traceback(tmp_path, workdir):
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "train", "lora", "--base-model", str(tmp_path / "nope"),
                           "--data-dir", str(workdir / "data"), "--out-dir", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "error: model folder" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ speed paths: prefix cache, bf16, answer-only head
def test_prefix_cache_gives_the_full_models_loss_and_gradients(workdir, tiny_model):
    """The cached path (frozen layer 0 run once, only layer 1 per step) computes what the whole model computes:
    the same loss and the same adapter gradients, up to the cache's bf16 rounding."""
    from engine.train.lora import Forward, attach_lora, collate, encode_all, load_split

    tok, base = load_model_folder(tiny_model)
    model = attach_lora(base, _lora_cfg(workdir, tiny_model, "unused", layers_from=1, dropout=0.0))
    with torch.no_grad():  # adapters away from their zero init, or the check would compare two base models
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    enc, _ = encode_all(tok, load_split(workdir / "data", "train")[:12], 160)
    idx = list(range(len(enc)))
    results = []
    for first in (0, 1):
        fwd = Forward(model, tok.pad_token_id, torch.device("cpu"), None, first_layer=first)
        cache = fwd.build_cache(enc, batch_size=5) if first else None
        model.zero_grad()
        loss, n, _ = fwd.loss(enc, idx, cache)
        (loss / n).backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
        results.append((float(loss) / n, grads))
    assert fwd.first == 1 and len(cache) == len(enc) and cache[0].dtype == torch.bfloat16
    assert [c.shape[0] for c in cache] == [len(ids) for ids, _ in enc]  # no padding kept
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-2)
    assert set(results[0][1]) == set(results[1][1]) and all(".1." in k for k in results[0][1])
    for k, g in results[0][1].items():
        assert torch.allclose(results[1][1][k], g, rtol=5e-2, atol=5e-3 * float(g.abs().max())), k
    # The full model's own loss (HF's causal-LM loss, every position through the head) is the same number too.
    batch = collate(enc, tok.pad_token_id)
    with torch.no_grad():
        hf_loss = float(model(**batch).loss)
    assert results[0][0] == pytest.approx(hf_loss, rel=1e-5)
    # Layer numbers survive the swap: the stack is whole again after each pass.
    assert len(model.get_base_model().get_decoder().layers) == 2


def test_cached_training_learns_and_saves_an_adapter_for_its_layers(workdir, tiny_model):
    """Training on the cache follows the same curve as training the same layers without it, and saves an
    adapter for those layers (numbered as in the whole model)."""
    res = train_lora(_lora_cfg(workdir, tiny_model, "lora_cached", layers_from=1, max_steps=30))
    plain = train_lora(_lora_cfg(workdir, tiny_model, "lora_uncached", layers_from=1, max_steps=30,
                                 cache_prefix=False))
    curves = json.loads((Path(res.out_dir) / "curves.json").read_text())
    assert res.state == "done" and curves["prefix_cache_layers"] == 1
    assert json.loads((Path(plain.out_dir) / "curves.json").read_text())["prefix_cache_layers"] == 0
    assert res.final_val_loss < res.first_val_loss * 0.9
    assert res.final_val_loss == pytest.approx(plain.final_val_loss, rel=0.03)
    assert all(0.0 <= p["exact"] <= 1.0 for p in curves["val"]) and curves["cpu_seconds"] > 0
    from safetensors.torch import load_file

    keys = load_file(str(Path(res.adapter_dir) / "adapter_model.safetensors"))
    assert keys and all(".layers.1." in k for k in keys)
    tok, reloaded = load_adapter(res.adapter_dir)
    _, base = load_model_folder(tiny_model)
    assert (_logits(reloaded, tok) - _logits(base, tok)).abs().max() > 1e-3


def test_answer_loss_counts_exact_answers():
    from engine.train.lora import answer_loss

    head = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(4) * 10)  # the hidden state's one-hot position is the predicted token
    hidden = torch.zeros(2, 4, 4)
    hidden[0, 1, 2] = hidden[0, 2, 3] = 1  # example 0 predicts 2 then 3: both right
    hidden[1, 1, 2] = hidden[1, 2, 0] = 1  # example 1 predicts 2 then 0: the second is wrong
    labels = torch.tensor([[IGNORE, IGNORE, 2, 3], [IGNORE, IGNORE, 2, 3]])
    loss, n, exact = answer_loss(head, hidden, labels)
    assert n == 4 and exact.tolist() == [True, False] and float(loss) > 0


def test_cap_per_kind_and_precision_choices(monkeypatch):
    from engine.train import lora

    rows = [{"kind": "a", "i": i} for i in range(10)] + [{"kind": "b", "i": i} for i in range(3)]
    kept = lora.cap_per_kind(rows, 4, seed=0)
    assert [r["kind"] for r in kept].count("a") == 4 and [r["kind"] for r in kept].count("b") == 3
    assert kept == sorted(kept, key=rows.index) and kept == lora.cap_per_kind(rows, 4, seed=0)
    cpu = torch.device("cpu")
    assert lora.pick_precision("fp32", cpu) is None
    monkeypatch.setattr(lora, "cpu_has_bf16", lambda: False)
    assert lora.pick_precision("auto", cpu) is None
    with pytest.raises(TrainError, match="no native bf16"):
        lora.pick_precision("bf16", cpu)
    with pytest.raises(TrainError, match="not one of"):
        lora.pick_precision("fp8", cpu)
    monkeypatch.setattr(lora, "cpu_has_bf16", lambda: True)
    assert lora.pick_precision("auto", cpu) is torch.bfloat16
