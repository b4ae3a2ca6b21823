"""Export a fine-tuned model for Ollama: merge the LoRA adapter, write safetensors and a GGUF file, and a Modelfile.

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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.train.config import PROMPT_TEMPLATE, ExportConfig, TrainError
from engine.train.tinymodel import load_model_folder

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
def merge_adapter(adapter_dir: str | Path, base_model: str | Path | None = None):
    """(tokenizer, merged model): the adapter folded into the base weights. A plain model folder (no adapter)
    is returned as is, so a base model can be exported too."""
    from engine.train.lora import load_adapter

    adapter_dir = Path(adapter_dir)
    if (adapter_dir / "config.json").is_file() and not (adapter_dir / "adapter_config.json").is_file():
        tokenizer, model = load_model_folder(adapter_dir)
        return tokenizer, model.eval()
    tokenizer, peft_model = load_adapter(adapter_dir, base_model)
    merged = peft_model.merge_and_unload()
    merged.eval()
    return tokenizer, merged


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
    if "lm_head.weight" not in state:  # tied embeddings
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    out: dict[str, np.ndarray] = {}
    for hf_pattern, gg_pattern in HF_TO_GGUF.items():
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


def write_gguf(model, tokenizer, path: str | Path, name: str = "cda-tiny", dtype: str = "f32") -> Path:
    """Write the model (and its tokenizer) as a llama-architecture GGUF file."""
    import gguf

    if dtype not in ("f32", "f16"):
        raise TrainError(f"dtype {dtype!r} is not supported", hint="use 'f32' or 'f16'")
    dims = _llama_dims(model.config)
    tensors = gguf_tensors(model)
    tokens, types, merges, tok_model = _tokenizer_vocab(tokenizer)
    if len(tokens) != dims["vocab"]:
        # Real models often pad the embedding beyond the tokenizer; llama.cpp needs one entry per row.
        tokens += [f"[PAD{i}]" for i in range(len(tokens), dims["vocab"])]
        types += [5] * (dims["vocab"] - len(types))  # 5 = unused
        tokens, types = tokens[: dims["vocab"]], types[: dims["vocab"]]

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
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(tok_model)
    w.add_tokenizer_pre("gpt-2")  # our tokenizer splits with GPT-2's regex (tokenizers' ByteLevel default)
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
    for tname, arr in tensors.items():
        # Norm vectors stay f32 (llama.cpp expects it); matrices follow dtype.
        w.add_tensor(tname, arr.astype(np.float16) if dtype == "f16" and arr.ndim == 2 else arr.astype(np.float32))
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
    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])
               for t in reader.tensors}
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

    ids = tokenizer(PROMPT_TEMPLATE.format(instruction=prompt), add_special_tokens=True)["input_ids"]
    ids = ids[: int(meta["llama.context_length"])]
    with torch.no_grad():
        hf_logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()  # (T, V)
    gg_logits = gguf_logits(meta, back, ids)
    report["logits_max_abs_diff"] = float(np.abs(hf_logits - gg_logits).max())
    report["logits_scale"] = float(np.abs(hf_logits).max())
    report["next_token_hf"] = int(hf_logits[-1].argmax())
    report["next_token_gguf"] = int(gg_logits[-1].argmax())
    tensor_tol = 0.0 if dtype == "f32" else 1e-2
    logit_tol = (1e-3 if dtype == "f32" else 5e-2) * max(1.0, report["logits_scale"])
    report["ok"] = (not report["missing"] and report["max_abs_diff"] <= tensor_tol
                    and report["logits_max_abs_diff"] <= logit_tol)
    report["tolerances"] = {"tensor": tensor_tol, "logits": logit_tol}
    if not report["ok"]:
        raise TrainError(f"GGUF verification failed: {json.dumps({k: report[k] for k in ('missing', 'worst_tensor', 'max_abs_diff', 'logits_max_abs_diff')})}")
    return report


# -------------------------------------------------------------------------------------------- Modelfile
def modelfile_text(cfg: ExportConfig, n_ctx: int, gguf_name: str = "model.gguf") -> str:
    """An Ollama Modelfile whose TEMPLATE is exactly the prompt the model was fine-tuned on."""
    instr, resp = PROMPT_TEMPLATE.split("{instruction}")
    template = instr + "{{ .Prompt }}" + resp
    lines = [f"# Create with: ollama create {cfg.model_name} -f Modelfile", f"FROM ./{gguf_name}",
             f'TEMPLATE """{template}"""']
    if cfg.system:
        lines.append(f'SYSTEM """{cfg.system}"""')
    lines += [f"PARAMETER temperature {cfg.temperature}", f"PARAMETER num_ctx {cfg.num_ctx or n_ctx}",
              f'PARAMETER stop "{instr.strip()}"', 'PARAMETER stop "</s>"']
    return "\n".join(lines) + "\n"


def export_model(cfg: ExportConfig | None = None) -> ExportResult:
    """Merge, write merged/ (safetensors + tokenizer), model.gguf, Modelfile, verify.json; returns the paths."""
    cfg = cfg or ExportConfig()
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, merged = merge_adapter(cfg.adapter_dir, cfg.base_model or None)
    merged_dir = out / "merged"
    merged.save_pretrained(merged_dir)  # safetensors
    tokenizer.save_pretrained(merged_dir)
    gguf_path = write_gguf(merged, tokenizer, out / "model.gguf", cfg.model_name, cfg.dtype)
    report = verify_gguf(merged, tokenizer, gguf_path, cfg.dtype)
    (out / "verify.json").write_text(json.dumps(report, indent=1))
    modelfile = out / "Modelfile"
    modelfile.write_text(modelfile_text(cfg, merged.config.max_position_embeddings))
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    result = ExportResult(out_dir=str(out), merged_dir=str(merged_dir), gguf_path=str(gguf_path),
                          modelfile_path=str(modelfile), verify=report, seconds=round(time.time() - t0, 2))
    log.info("exported to %s: GGUF verified (max tensor diff %g, logits diff %g) in %.1f s", out,
             report["max_abs_diff"], report["logits_max_abs_diff"], result.seconds)
    return result
