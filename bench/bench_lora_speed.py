"""CPU cost of one LoRA training step on SmolLM2-135M-Instruct, three ways: the whole model in fp32, the whole
model under bf16 autocast, and the adapted layers only on a frozen-prefix cache (layers_from=18, bf16).

Same 8 training examples (data v2), same adapter (r 8 on q/k/v/o, random B so the adapter is not a no-op), one
torch thread, CPU seconds (process time: load-independent). Also the loss each path computes, which must agree.
Writes bench/results/lora_speed.json.
"""
from __future__ import annotations

import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from engine.runs import write_json  # noqa: E402
from engine.train.config import LoraTrainConfig  # noqa: E402
from engine.train.lora import Forward, attach_lora, cpu_has_bf16, encode_all, load_base, load_split  # noqa: E402

OUT = ROOT / "bench" / "results" / "lora_speed.json"


def main() -> int:
    torch.set_num_threads(1)
    tok, base = load_base(None)
    rows = load_split(ROOT / ".cache" / "train" / "data_v2", "train")
    random.Random(0).shuffle(rows)
    enc, _ = encode_all(tok, rows[:16], 320)
    model = attach_lora(base, LoraTrainConfig(r=8, layers_from=18, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    idx = list(range(8))
    tokens = sum(len(enc[i][0]) for i in idx)
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "bf16_native": cpu_has_bf16()},
           "examples_per_step": len(idx), "tokens_per_step": tokens, "paths": {}}
    for name, amp, first in (("full fp32", None, 0), ("full bf16", torch.bfloat16, 0),
                             ("prefix cache L18 bf16", torch.bfloat16, 18)):
        fwd = Forward(model, tok.pad_token_id, torch.device("cpu"), amp, first_layer=first)
        cache, cache_s = None, None
        if first:
            t = time.process_time()
            cache = fwd.build_cache(enc)
            cache_s = round((time.process_time() - t) / len(enc), 4)
        model.train()
        t = time.process_time()
        for _ in range(3):
            loss, n, _ = fwd.loss(enc, idx, cache)
            (loss / n).backward()
            model.zero_grad()
        step = (time.process_time() - t) / 3
        out["paths"][name] = {"cpu_s_per_step": round(step, 3), "cpu_s_per_1k_tokens": round(step / tokens * 1000, 3),
                              "loss_per_token": round(float(loss) / n, 4), "cache_cpu_s_per_example": cache_s}
        print(name, out["paths"][name], flush=True)
    write_json(OUT, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
