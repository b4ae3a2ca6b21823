"""Does a LoRA run learn the skill or only the answer format? Teacher-forced answers on held-out families.

For each adapter folder given, the first N validation examples of each kind (data v2's val split: families no
training example used) are scored token for token under teacher forcing: an example counts as right when every
answer token is the model's top choice. The answers the model gives most often are listed next to the accuracy,
with the majority-label share of the same examples, so a model that answers one constant shows as one.
Writes bench/results/lora_probe.json (one entry per adapter, with its training curves' summary).

    .venv/bin/python bench/bench_lora_probe.py .cache/train/lora_v4/checkpoint [more adapters] --n 20
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from engine.runs import write_json  # noqa: E402
from engine.train.lora import IGNORE, encode_example, load_adapter, load_split  # noqa: E402

OUT = ROOT / "bench" / "results" / "lora_probe.json"


def probe(adapter: Path, data: Path, n: int, seed: int) -> dict:
    tok, model = load_adapter(adapter)
    rows = load_split(data, "val")
    random.Random(seed).shuffle(rows)
    by_kind: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        if len(by_kind[r.get("kind", "")]) < n:
            by_kind[r.get("kind", "")].append(r)
    out = {}
    with torch.no_grad():
        for kind, rs in sorted(by_kind.items()):
            right, answers, golds = 0, collections.Counter(), collections.Counter()
            for r in rs:
                enc = encode_example(tok, r, 512)
                if enc is None:
                    continue
                ids, labels = enc
                logits = model(input_ids=torch.tensor([ids])).logits[0]
                pos = [i for i, lab in enumerate(labels) if lab != IGNORE]
                pred = [int(logits[i - 1].argmax()) for i in pos]
                right += pred == [labels[i] for i in pos]
                # the answer the model gives on its own: greedy from the prompt (teacher forcing would splice)
                prompt = ids[: pos[0]]
                gen = model.generate(torch.tensor([prompt]), max_new_tokens=len(pos) + 4, do_sample=False,
                                     pad_token_id=tok.pad_token_id)[0, len(prompt):]
                answers[tok.decode(gen, skip_special_tokens=True).strip()[:48]] += 1
                golds[str(r["answer"])[:48]] += 1
            total = sum(golds.values())
            out[kind] = {"n": total, "exact": round(right / max(total, 1), 3),
                         "majority_label_share": round(golds.most_common(1)[0][1] / max(total, 1), 3),
                         "distinct_answers": len(answers), "top_answers": answers.most_common(4)}
    curves = {}
    for folder in (adapter, adapter.parent):
        f = folder / "curves.json"
        if f.is_file():
            c = json.loads(f.read_text())
            curves = {"steps": c["train"][-1]["step"] if c.get("train") else 0, "total_steps": c.get("total_steps"),
                      "n_train": c.get("n_train"), "val": [(v["step"], round(v["loss"], 4), v.get("exact"))
                                                           for v in c.get("val", [])],
                      "cpu_seconds": c.get("cpu_seconds"), "bf16": c.get("bf16"),
                      "prefix_cache_layers": c.get("prefix_cache_layers")}
            break
    cfg_file = next((f for f in (adapter / "config.json", adapter.parent / "config.json") if f.is_file()), None)
    cfg = json.loads(cfg_file.read_text()) if cfg_file else {}
    keep = ("lr", "r", "alpha", "layers_from", "target_modules", "max_per_kind", "max_examples", "epochs",
            "precision", "data_dir")
    return {"adapter": str(adapter), "config": {k: cfg.get(k) for k in keep}, "curves": curves, "kinds": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapters", nargs="+")
    ap.add_argument("--data", default=str(ROOT / ".cache" / "train" / "data_v2"))
    ap.add_argument("--n", type=int, default=20, help="validation examples per kind")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    old = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results = {r["adapter"]: r for r in old.get("runs", [])}
    for a in args.adapters:
        t = time.process_time()
        res = probe(Path(a), Path(args.data), args.n, args.seed)
        res["probe_cpu_s"] = round(time.process_time() - t, 1)
        results[res["adapter"]] = res
        print(json.dumps({k: (v["exact"], v["majority_label_share"], v["distinct_answers"])
                          for k, v in res["kinds"].items()}), a, flush=True)
    write_json(OUT, {"data": args.data, "n_per_kind": args.n, "runs": list(results.values())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
