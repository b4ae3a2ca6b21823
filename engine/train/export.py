"""Export a fine-tuned model for llama.cpp and Ollama: merge the LoRA adapter, write safetensors, a GGUF, a Modelfile.

The GGUF carries the base's own tokenizer metadata when the base was imported from a GGUF (pre-tokenizer
"smollm", token list, merges, special ids, chat template), and tied embeddings are written once (token_embd;
llama.cpp uses it as the output matrix). ``agreement`` runs llama.cpp on the GGUF and transformers on the
merged folder on the same prompts and reports how often their greedy answers are identical.

Why merged GGUF + ``FROM``: Ollama's ``ADAPTER`` line accepts only some adapter layouts and base files; a merged
GGUF loads anywhere llama.cpp does. The GGUF is written with the ``gguf`` package using llama.cpp's Llama tensor
names and its rotary layout (q/k rows permuted so rotation pairs are adjacent, as ``convert_hf_to_gguf.py`` does).

Verification reads the file back and (1) compares every tensor with the merged model's and (2) runs a small
numpy forward pass written with llama.cpp's conventions (adjacent-pair RoPE, GQA, RMSNorm, SwiGLU) on the GGUF
tensors, comparing its next-token logits with the merged Hugging Face model's. (2) is what catches a wrong
permutation or a transposed matrix, which (1) alone cannot.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.runs import write_json
from engine.train.config import PROMPT_TEMPLATE, ExportConfig, TrainError
from engine.train.models import load_model_folder

log = logging.getLogger(__name__)

# Hugging Face Llama parameter name (per layer with {i}) -> GGUF tensor name (llama.cpp's LLM_ARCH_LLAMA).
HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


@dataclass
class ExportResult:
    out_dir: str
    merged_dir: str
    gguf_path: str
    modelfile_path: str
    verify: dict
    seconds: float


# ------------------------------------------------------------------------------------------------ merge
def merge_adapter(adapter_dir: str | Path, base_model: str | Path | None = None, with_base: bool = False):
    """(tokenizer, merged model[, base HF folder]): the adapter folded into the base weights. A plain model folder
    (no adapter) is returned as is, so a base model can be exported too."""
    from engine.train.lora import load_adapter
    from engine.train.models import resolve_base

    adapter_dir = Path(adapter_dir)
    if (adapter_dir / "config.json").is_file() and not (adapter_dir / "adapter_config.json").is_file():
        tokenizer, model = load_model_folder(adapter_dir)
        return (tokenizer, model.eval(), adapter_dir) if with_base else (tokenizer, model.eval())
    tokenizer, peft_model = load_adapter(adapter_dir, base_model)
    merged = peft_model.merge_and_unload()
    merged.eval()
    if not with_base:
        return tokenizer, merged
    recorded = base_model or json.loads((adapter_dir / "adapter_config.json").read_text()).get(
        "base_model_name_or_path")
    return tokenizer, merged, resolve_base(recorded).hf_dir


# ------------------------------------------------------------------------------------------------- GGUF
def rope_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores each head's rotary halves as [first half | second half]; llama.cpp rotates adjacent pairs.
    Reorder the rows of a q/k projection (n_head * head_dim, C) so head rows go (0, hd/2, 1, hd/2+1, ...)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_dims(config) -> dict:
    if getattr(config, "model_type", "") != "llama":
        raise TrainError(f"GGUF export here writes the Llama architecture; this model is {config.model_type!r}",
                         hint="the merged safetensors folder is written; convert it with llama.cpp's "
                              "convert_hf_to_gguf.py, or use a Llama-architecture base model")
    n_head = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    rope = getattr(config, "rope_parameters", None) or {}
    return {
        "n_layer": config.num_hidden_layers, "n_embd": config.hidden_size, "n_ff": config.intermediate_size,
        "n_head": n_head, "n_head_kv": config.num_key_value_heads or n_head, "head_dim": head_dim,
        "n_ctx": config.max_position_embeddings, "eps": config.rms_norm_eps,
        "rope_base": float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))),
        "rope_type": rope.get("rope_type", "default"), "vocab": config.vocab_size,
    }


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """The merged model's weights under GGUF names, in GGUF layout (q/k permuted), float32."""
    dims = _llama_dims(model.config)
    if dims["rope_type"] not in ("default", None):
        raise TrainError(f"rope scaling {dims['rope_type']!r} is not exported here", hint="export the merged folder")
    state = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if tied:  # one tensor: llama.cpp uses token_embd for the output when there is no output.weight
        state.pop("lm_head.weight", None)
    elif "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    out: dict[str, np.ndarray] = {}
    for hf_pattern, gg_pattern in HF_TO_GGUF.items():
        if tied and hf_pattern == "lm_head.weight":
            continue
        for i in range(dims["n_layer"]) if "{i}" in hf_pattern else [None]:
            hf = hf_pattern.format(i=i)
            if hf not in state:
                raise TrainError(f"the model has no tensor {hf}; it does not look like a plain Llama model")
            w = state.pop(hf)
            if hf.endswith("q_proj.weight"):
                w = rope_permute(w, dims["n_head"])
            elif hf.endswith("k_proj.weight"):
                w = rope_permute(w, dims["n_head_kv"])
            out[gg_pattern.format(i=i)] = np.ascontiguousarray(w)
    leftover = [k for k in state if not k.endswith("rotary_emb.inv_freq")]
    if leftover:
        raise TrainError(f"tensors with no GGUF name: {leftover[:5]}", hint="export the merged folder instead")
    return out


def _tokenizer_vocab(tokenizer) -> tuple[list[str], list[int], list[str], str]:
    """(tokens in id order, token types, merges, tokenizer model) from a fast BPE tokenizer's JSON."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise TrainError(f"GGUF tokenizer export supports byte-level BPE; this tokenizer is {model.get('type')}")
    vocab = dict(model["vocab"])
    for added in spec.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    n = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    for tok, idx in vocab.items():
        tokens[idx] = tok
    special = {a["id"] for a in spec.get("added_tokens", []) if a.get("special")}
    types = [3 if i in special else 1 for i in range(n)]  # 1 normal, 3 control
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges, "gpt2"


GGUF_DTYPES = ("f32", "f16", "q8_0")


def write_gguf(model, tokenizer, path: str | Path, name: str = "cda-specialist", dtype: str = "f32",
               base_meta: dict | None = None) -> Path:
    """Write the model (and its tokenizer) as a llama-architecture GGUF file.

    ``base_meta``: the base model's GGUF tokenizer fields (``gguf_meta.json`` of an imported base): written as
    they are, so llama.cpp splits text with the base's pre-tokenizer (SmolLM2: "smollm") and formats chats
    with its template. Without it they are derived from the HF tokenizer (pre-tokenizer "gpt-2")."""
    import gguf

    if dtype not in GGUF_DTYPES:
        raise TrainError(f"dtype {dtype!r} is not supported", hint=f"use one of {', '.join(GGUF_DTYPES)}")
    dims = _llama_dims(model.config)
    tensors = gguf_tensors(model)
    meta = dict(base_meta or {})
    if meta.get("tokenizer.ggml.tokens") and len(meta["tokenizer.ggml.tokens"]) != dims["vocab"]:
        log.warning("the base GGUF's vocabulary (%d) does not match the model's (%d); deriving the tokenizer",
                    len(meta["tokenizer.ggml.tokens"]), dims["vocab"])
        meta = {}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(dims["n_ctx"])
    w.add_embedding_length(dims["n_embd"])
    w.add_block_count(dims["n_layer"])
    w.add_feed_forward_length(dims["n_ff"])
    w.add_head_count(dims["n_head"])
    w.add_head_count_kv(dims["n_head_kv"])
    w.add_rope_dimension_count(dims["head_dim"])
    w.add_rope_freq_base(dims["rope_base"])
    w.add_layer_norm_rms_eps(dims["eps"])
    w.add_vocab_size(dims["vocab"])
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    if meta.get("tokenizer.ggml.tokens"):
        w.add_tokenizer_model(meta.get("tokenizer.ggml.model", "gpt2"))
        w.add_tokenizer_pre(meta.get("tokenizer.ggml.pre", "gpt-2"))
        w.add_token_list(meta["tokenizer.ggml.tokens"])
        w.add_token_types([int(t) for t in meta["tokenizer.ggml.token_type"]])
        if meta.get("tokenizer.ggml.merges"):
            w.add_token_merges(meta["tokenizer.ggml.merges"])
        for key, adder in (("tokenizer.ggml.bos_token_id", w.add_bos_token_id),
                           ("tokenizer.ggml.eos_token_id", w.add_eos_token_id),
                           ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id),
                           ("tokenizer.ggml.padding_token_id", w.add_pad_token_id)):
            if key in meta:
                adder(int(meta[key]))
        for key, add_flag in (("tokenizer.ggml.add_bos_token", w.add_add_bos_token),
                              ("tokenizer.ggml.add_eos_token", w.add_add_eos_token),
                              ("tokenizer.ggml.add_space_prefix", w.add_add_space_prefix)):
            if key in meta:
                add_flag(bool(meta[key]))
    else:
        tokens, types, merges, tok_model = _tokenizer_vocab(tokenizer)
        if len(tokens) != dims["vocab"]:
            # Real models often pad the embedding beyond the tokenizer; llama.cpp needs one entry per row.
            tokens += [f"[PAD{i}]" for i in range(len(tokens), dims["vocab"])]
            types += [5] * (dims["vocab"] - len(types))  # 5 = unused
            tokens, types = tokens[: dims["vocab"]], types[: dims["vocab"]]
        w.add_tokenizer_model(tok_model)
        w.add_tokenizer_pre("gpt-2")  # tokenizers' ByteLevel default splits with GPT-2's regex
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        for key, adder in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                           ("pad_token_id", w.add_pad_token_id)):
            tid = getattr(tokenizer, key, None)
            if tid is not None:
                adder(int(tid))
        w.add_add_bos_token(tokenizer("x", add_special_tokens=True)["input_ids"][0] == tokenizer.bos_token_id)
        w.add_add_eos_token(False)
    template = meta.get("tokenizer.chat_template") or getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        w.add_chat_template(template)
    for tname, arr in tensors.items():
        # Norm vectors stay f32 (llama.cpp expects it); matrices follow dtype.
        if arr.ndim == 2 and dtype == "q8_0" and arr.shape[1] % 32 == 0:
            q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(tname, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif arr.ndim == 2 and dtype in ("f16", "q8_0"):
            w.add_tensor(tname, arr.astype(np.float16))
        else:
            w.add_tensor(tname, arr.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    log.info("wrote %s (%d tensors, %.1f MB)", path, len(tensors), path.stat().st_size / 1e6)
    return path


def read_gguf(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, tensors) of a GGUF file; tensors as float32 numpy arrays in (rows, cols) order."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise TrainError(f"GGUF file {path} does not exist")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise TrainError(f"{path} is not a readable GGUF file: {exc}") from None
    meta: dict = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            meta[key] = field.contents()
        except Exception:  # a field type this gguf version cannot decode; not needed for verification
            continue
    tensors = {}
    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape)]
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            tensors[t.name] = np.array(t.data, dtype=np.float32).reshape(shape)
        else:
            tensors[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    return meta, tensors


def gguf_logits(meta: dict, t: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (T, V) of a llama GGUF for one token sequence, computed the way llama.cpp does (numpy, float64)."""
    n_layer = int(meta["llama.block_count"])
    n_head = int(meta["llama.attention.head_count"])
    n_kv = int(meta["llama.attention.head_count_kv"])
    eps = float(meta["llama.attention.layer_norm_rms_epsilon"])
    base = float(meta["llama.rope.freq_base"])
    hd = int(meta["llama.rope.dimension_count"])
    T = len(ids)

    def rmsnorm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope_adjacent(x):  # x (T, H, hd); llama.cpp "normal" rope rotates pairs (2i, 2i+1)
        inv = base ** (-np.arange(0, hd, 2) / hd)  # (hd/2,)
        ang = np.arange(T)[:, None] * inv[None, :]  # (T, hd/2)
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    g = {k: v.astype(np.float64) for k, v in t.items()}
    x = g["token_embd.weight"][ids]  # (T, C)
    causal = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(n_layer):
        h = rmsnorm(x, g[f"blk.{i}.attn_norm.weight"])
        q = rope_adjacent((h @ g[f"blk.{i}.attn_q.weight"].T).reshape(T, n_head, hd))
        k = rope_adjacent((h @ g[f"blk.{i}.attn_k.weight"].T).reshape(T, n_kv, hd))
        v = (h @ g[f"blk.{i}.attn_v.weight"].T).reshape(T, n_kv, hd)
        k, v = np.repeat(k, n_head // n_kv, axis=1), np.repeat(v, n_head // n_kv, axis=1)  # GQA
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + causal  # (H, T, T)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, n_head * hd)
        x = x + o @ g[f"blk.{i}.attn_output.weight"].T
        h = rmsnorm(x, g[f"blk.{i}.ffn_norm.weight"])
        gate = h @ g[f"blk.{i}.ffn_gate.weight"].T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ g[f"blk.{i}.ffn_up.weight"].T)) @ g[f"blk.{i}.ffn_down.weight"].T
    x = rmsnorm(x, g["output_norm.weight"])
    return x @ g.get("output.weight", g["token_embd.weight"]).T


def verify_gguf(model, tokenizer, gguf_path: str | Path, dtype: str = "f32",
                prompt: str = "How does target density change HPWL?") -> dict:
    """Read the GGUF back; compare tensors and next-token logits with the merged model. Raises on mismatch."""
    meta, back = read_gguf(gguf_path)
    expected = gguf_tensors(model)
    report: dict = {"n_tensors": len(back), "missing": sorted(set(expected) - set(back)),
                    "extra": sorted(set(back) - set(expected)), "tensor_max_abs_diff": {}}
    for name, want in expected.items():
        if name in back:
            if back[name].shape != want.shape:
                raise TrainError(f"GGUF tensor {name} has shape {back[name].shape}, expected {want.shape}")
            report["tensor_max_abs_diff"][name] = float(np.abs(back[name] - want).max())
    worst = max(report["tensor_max_abs_diff"].items(), key=lambda kv: kv[1])
    report["worst_tensor"], report["max_abs_diff"] = worst

    from engine.train.lora import prompt_text

    ids = tokenizer(prompt_text(tokenizer, {"prompt": prompt}),
                    add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
    ids = ids[: int(meta["llama.context_length"])]
    with torch.no_grad():
        hf_logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()  # (T, V)
    gg_logits = gguf_logits(meta, back, ids)
    report["logits_max_abs_diff"] = float(np.abs(hf_logits - gg_logits).max())
    report["logits_scale"] = float(np.abs(hf_logits).max())
    report["next_token_hf"] = int(hf_logits[-1].argmax())
    report["next_token_gguf"] = int(gg_logits[-1].argmax())
    tensor_tol = {"f32": 0.0, "f16": 1e-2, "q8_0": 0.1}[dtype]
    logit_tol = {"f32": 1e-3, "f16": 5e-2, "q8_0": 0.25}[dtype] * max(1.0, report["logits_scale"])
    report["ok"] = (not report["missing"] and report["max_abs_diff"] <= tensor_tol
                    and report["logits_max_abs_diff"] <= logit_tol)
    report["tolerances"] = {"tensor": tensor_tol, "logits": logit_tol}
    if not report["ok"]:
        keys = ("missing", "worst_tensor", "max_abs_diff", "logits_max_abs_diff")
        raise TrainError(f"GGUF verification failed: {json.dumps({k: report[k] for k in keys})}")
    return report


# -------------------------------------------------------------------------------------------- Modelfile
CHATML_TEMPLATE = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
                   "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
                   "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n")


def default_system(tokenizer) -> str:
    """The system prompt the chat template adds when a conversation has none (SmolLM2 has one), or ''."""
    if not getattr(tokenizer, "chat_template", None):
        return ""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "X"}], tokenize=False)
    head = "<|im_start|>system\n"
    if text.startswith(head) and "<|im_end|>" in text:
        return text[len(head): text.index("<|im_end|>")]
    return ""


def modelfile_text(cfg: ExportConfig, n_ctx: int, gguf_name: str = "model.gguf", tokenizer=None) -> str:
    """An Ollama Modelfile whose TEMPLATE renders prompts as the model was fine-tuned on them: the ChatML turns
    of the chat template (SmolLM2, Qwen) with stop <|im_end|>, else the plain instruction template."""
    template_src = getattr(tokenizer, "chat_template", None) or ""
    lines = [f"# Create with: ollama create {cfg.model_name} -f Modelfile", f"FROM ./{gguf_name}"]
    if "<|im_start|>" in template_src:
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
        system = cfg.system or default_system(tokenizer)
        stops = ["<|im_end|>", "<|im_start|>"]
    else:
        instr, resp = PROMPT_TEMPLATE.split("{instruction}")
        lines.append(f'TEMPLATE """{instr}{{{{ .Prompt }}}}{resp}"""')
        system = cfg.system
        stops = [instr.strip(), "</s>"]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER temperature {cfg.temperature}", f"PARAMETER num_ctx {cfg.num_ctx or n_ctx}"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------- agreement
DEFAULT_PROMPTS = (
    "In one sentence: what does a placer's target density control?",
    "Raising the target density from 0.7 to 0.9 usually makes HPWL rise or fall? Answer in one word.",
    "What is HPWL short for?",
    "Name one way to reduce routing congestion after placement.",
    "What does negative setup slack mean?",
    "List two inputs an analytical placer needs.",
    "Is overflow of 0.05 better or worse than overflow of 0.3 for a placement?",
    "What does a clock tree synthesis step insert?",
)


def _as_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, dict):
        from engine.train.lora import messages_of

        return messages_of(prompt)
    return list(prompt)


def agreement_report(gguf_path: str | Path, hf_dir: str | Path, prompts, max_tokens: int = 32,
                     n_threads: int = 2, schema: dict | None = None) -> dict:
    """Greedy answers of llama.cpp (the GGUF, its own chat template) and transformers (the HF folder, its chat
    template) on the same prompts; {"fraction", "n", "same", "details"}. ``prompts``: strings, message lists or
    data rows ({"system", "prompt"}). With ``schema`` both decode under the JSON constraint and the parsed
    answers are compared."""
    from engine.specialists.llm import HFBackend, LlamaCppBackend, LLMError, answer_json

    try:
        llama = LlamaCppBackend(gguf_path, max_new_tokens=max_tokens, n_threads=n_threads)
    except LLMError as exc:
        raise TrainError(str(exc)) from None
    hf = HFBackend(hf_dir, max_new_tokens=max_tokens, n_threads=1)
    details = []
    for prompt in prompts:
        msgs = _as_messages(prompt)
        # a data row's own schema (benchmark and training rows have one): the constrained answer is what the
        # product uses, and free text of f16 vs fp32 weights may part after a few dozen greedy tokens
        row_schema = schema if schema is not None else (prompt.get("schema") if isinstance(prompt, dict) else None)
        if row_schema is not None:
            a, raw_a = answer_json(llama, msgs, row_schema, max_tokens)
            b, raw_b = answer_json(hf, msgs, row_schema, max_tokens)
            same = a is not None and a == b
        else:
            raw_a, raw_b = llama.generate_text(msgs, max_tokens), hf.generate_text(msgs, max_tokens)
            same = raw_a.strip() == raw_b.strip()
        details.append({"prompt": msgs[-1]["content"][:200], "llamacpp": raw_a, "transformers": raw_b,
                        "same": same})
    n_same = sum(d["same"] for d in details)
    return {"fraction": n_same / max(1, len(details)), "n": len(details), "same": n_same, "details": details}


def agreement(gguf_path: str | Path, hf_dir: str | Path, prompts, max_tokens: int = 32, **kw) -> float:
    """Fraction of prompts on which llama.cpp and transformers give the same greedy answer."""
    return agreement_report(gguf_path, hf_dir, prompts, max_tokens, **kw)["fraction"]


def answer_accuracy(model: str, data: str | Path, n: int = 50, max_tokens: int = 96, n_threads: int = 2,
                    seed: int = 0) -> dict:
    """Exact-match accuracy of a model's JSON answers on data rows (a held-out split), decoded under each row's
    ``schema`` when it has one (else any JSON object): {"accuracy", "parse_failures", "n", "per_kind", "rows"}.

    ``model``: as ``engine.specialists.llm.open_backend`` takes it (smollm2, a .gguf, hf:<folder or adapter>).
    A quick check between training and the benchmark; the benchmark's own scorer is the measure."""
    from engine.specialists.llm import LLMError, answer_json, open_backend
    from engine.train.lora import messages_of, read_examples

    try:
        backend, name = open_backend(model, max_new_tokens=max_tokens, n_threads=n_threads)
    except LLMError as exc:
        raise TrainError(str(exc)) from None
    rows = read_examples(Path(data) / "val.jsonl" if Path(data).is_dir() else data)
    if n and len(rows) > n:
        rows = random.Random(seed).sample(rows, n)
    out: list[dict] = []
    per_kind: dict[str, dict] = {}
    for row in rows:
        value, raw = answer_json(backend, messages_of(row), row.get("schema"), max_tokens, model=name)
        gold = json.loads(row["answer"]) if isinstance(row["answer"], str) else row["answer"]
        ok = value is not None and value == gold
        kind = per_kind.setdefault(str(row.get("kind", "?")), {"n": 0, "correct": 0, "parse_failures": 0})
        kind["n"] += 1
        kind["correct"] += ok
        kind["parse_failures"] += value is None
        out.append({"id": row.get("id"), "kind": row.get("kind"), "gold": gold, "answer": value, "raw": raw,
                    "correct": ok})
    n_rows = max(1, len(out))
    return {"model": model, "n": len(out), "accuracy": sum(r["correct"] for r in out) / n_rows,
            "parse_failures": sum(r["answer"] is None for r in out), "per_kind": per_kind, "rows": out}


def _agreement_prompts(cfg: ExportConfig, adapter_dir: Path) -> list:
    """Prompts for the export's agreement check: cfg.agreement_data, else the LoRA run's val.jsonl, else built-in."""
    from engine.train.lora import read_examples

    candidates = [Path(cfg.agreement_data)] if cfg.agreement_data else []
    run_cfg = adapter_dir.parent / "config.json"
    if not cfg.agreement_data and run_cfg.is_file():
        data = Path(json.loads(run_cfg.read_text()).get("data_dir", ""))
        candidates.append(data / "val.jsonl" if data.is_dir() else data)
    for path in candidates:
        if path.is_file():
            rows = read_examples(path)
            if rows:
                return rows[: cfg.agreement_prompts]
    return list(DEFAULT_PROMPTS[: cfg.agreement_prompts])


def export_model(cfg: ExportConfig | None = None) -> ExportResult:
    """Merge, write merged/ (safetensors + tokenizer), model.gguf, Modelfile, verify.json; returns the paths.

    verify.json holds the tensor and logit check and, when llama-cpp-python is installed, the greedy-answer
    agreement between llama.cpp on the GGUF and transformers on merged/."""
    from engine.train.models import gguf_meta_of

    cfg = cfg or ExportConfig()
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, merged, base_dir = merge_adapter(cfg.adapter_dir, cfg.base_model or None, with_base=True)
    merged_dir = out / "merged"
    for attr in ("quantization_config",):  # a base loaded from GGUF may still carry it
        if hasattr(merged.config, attr):
            delattr(merged.config, attr)
    merged.save_pretrained(merged_dir)  # safetensors
    tokenizer.save_pretrained(merged_dir)
    base_meta = gguf_meta_of(base_dir).get("gguf") if base_dir else None
    gguf_path = write_gguf(merged, tokenizer, out / "model.gguf", cfg.model_name, cfg.dtype, base_meta)
    report = verify_gguf(merged, tokenizer, gguf_path, cfg.dtype)
    report["pre_tokenizer"] = (base_meta or {}).get("tokenizer.ggml.pre", "gpt-2")
    if cfg.agreement_prompts:
        try:
            import llama_cpp  # noqa: F401 - only to know whether the check can run
        except ImportError:
            report["agreement"] = {"skipped": "llama-cpp-python is not installed"}
        else:
            prompts = _agreement_prompts(cfg, Path(cfg.adapter_dir))
            report["agreement"] = agreement_report(gguf_path, merged_dir, prompts)
    write_json(out / "verify.json", report, indent=1)
    modelfile = out / "Modelfile"
    modelfile.write_text(modelfile_text(cfg, merged.config.max_position_embeddings, tokenizer=tokenizer))
    write_json(out / "config.json", cfg.to_dict(), indent=1)
    result = ExportResult(out_dir=str(out), merged_dir=str(merged_dir), gguf_path=str(gguf_path),
                          modelfile_path=str(modelfile), verify=report, seconds=round(time.time() - t0, 2))
    log.info("exported to %s: GGUF verified (max tensor diff %g, logits diff %g) in %.1f s", out,
             report["max_abs_diff"], report["logits_max_abs_diff"], result.seconds)
    return result
