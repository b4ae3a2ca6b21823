"""`make bench`: the v2 benchmark table: trivial baselines, the engine oracle and every model reachable here.

Rows, on the same problems (assets/bench/problems_v2.jsonl, built by `cda bench build` on held-out designs):
- baselines, always: copy-reference, majority label, random (seeded, averaged), textbook rules;
- the engine oracle (fresh seeds): an upper bound, marked as one and never ranked;
- the base model (SmolLM2-135M-Instruct, imported by `make setup`) in plain and rag-tools modes;
- the LoRA specialist (assets/specialist/adapter, or --adapter) in plain and rag-tools modes, when present;
- a GGUF file given with --gguf, and each Ollama model the specialists' host lists (none here: no server).
Results: bench/results/v2/<model>-<mode>.json, bench/results/bench_models_v2.json and bench_models_v2.png.
A model that cannot be loaded is listed under "missing" with the reason, never silently dropped.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.chdir(ROOT)

from engine.bench.v2 import (  # noqa: E402
    BASELINES,
    KINDS,
    PROBLEMS_V2,
    RESULTS_V2,
    RunV2Config,
    compare_v2,
    load_v2,
    markdown_v2,
    run_v2,
)
from engine.errors import EngineError  # noqa: E402
from engine.runs import write_json  # noqa: E402

log = logging.getLogger("bench_models")
START, END = "<!-- bench-models:start -->", "<!-- bench-models:end -->"
ADAPTER = ROOT / "assets" / "specialist" / "adapter"
SUMMARY = ROOT / "bench" / "results" / "bench_models_v2.json"
PLOT = ROOT / "bench" / "results" / "bench_models_v2.png"


def ollama_models() -> list[str]:
    try:
        import ollama

        from engine.specialists.config import SpecialistConfig

        listed = ollama.Client(host=SpecialistConfig().host, timeout=3).list()
        return [m.model for m in listed.models][:2]
    except Exception:  # noqa: BLE001 - no server is the normal case here
        return []


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = ["overall", *KINDS]
    fig, ax = plt.subplots(figsize=(11, 4.2))
    w = 0.85 / max(len(results), 1)
    for i, r in enumerate(results):
        s = r["summary"]
        blocks = [s["overall"] if k == "overall" else s["by_kind"].get(k) for k in kinds]
        y = [b["score"] if b else 0 for b in blocks]
        err = [[(b["score"] - b["ci95"][0]) if b else 0 for b in blocks],
               [(b["ci95"][1] - b["score"]) if b else 0 for b in blocks]]
        oracle = r.get("family") == "oracle"
        ax.bar(np.arange(len(kinds)) + i * w, y, w, yerr=err, capsize=2, hatch="//" if oracle else None,
               alpha=0.55 if oracle else 1.0,
               label=f"{r['model']} · {r['mode']}" + (" (oracle, upper bound)" if oracle else ""))
    ax.set_xticks(np.arange(len(kinds)) + w * (len(results) - 1) / 2, kinds)
    ax.set_ylabel("mean score (95% bootstrap CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plan_runs(args) -> tuple[list[tuple[str, str]], list[str]]:
    """(model, mode) pairs to run, and the reasons models are missing."""
    runs = [(b, "plain") for b in BASELINES] + [("oracle", "plain")]
    missing = []
    llm_modes = ("plain", "rag-tools") if not args.plain_only else ("plain",)
    try:
        from engine.train.models import resolve_base

        resolve_base(None).require_hf()
        runs += [("base", m) for m in llm_modes]
    except Exception as exc:  # noqa: BLE001 - reported in the table's notes
        missing.append(f"base model: {exc}")
    adapter = Path(args.adapter) if args.adapter else ADAPTER
    if (adapter / "adapter_config.json").is_file():
        runs += [(f"lora:{adapter}", m) for m in llm_modes]
    else:
        missing.append(f"LoRA specialist: no adapter at {adapter}")
    if args.gguf:
        runs += [(f"gguf:{args.gguf}", m) for m in llm_modes]
    models = ollama_models()
    runs += [(f"ollama:{m}", mode) for m in models for mode in llm_modes]
    if not models:
        missing.append("Ollama: no server answered")
    return runs, missing


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default=str(PROBLEMS_V2), help="v2 problem file")
    ap.add_argument("--adapter", default="", help="LoRA adapter folder (default assets/specialist/adapter)")
    ap.add_argument("--gguf", default="", help="also run this GGUF file through llama.cpp")
    ap.add_argument("--plain-only", action="store_true", help="language models in plain mode only")
    ap.add_argument("--limit", type=int, default=0, help="only the first N problems (a quick look)")
    ap.add_argument("--readme", action="store_true", help="also write the table between the README markers")
    ap.add_argument("--from-results", action="store_true", help="redo the table and plot from the last results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if args.from_results:  # the result files already in bench/results/v2 (each run by `cda bench run`)
        results = []
        for f in sorted(RESULTS_V2.glob("*.json")):
            data = json.loads(f.read_text())
            same = Path(data.get("problems_file", "")).resolve() == Path(args.problems).resolve()
            if data.get("version") == 2 and same:
                data["path"] = str(f)
                results.append(data)
        missing = plan_runs(args)[1]
        last = {"problems_file": str(Path(args.problems).resolve().relative_to(ROOT))}
    else:
        problems = load_v2(args.problems)
        runs, missing = plan_runs(args)
        results = []
        for model, mode in runs:
            t = time.monotonic()
            try:
                res = run_v2(RunV2Config(model=model, mode=mode, problems=args.problems, limit=args.limit),
                             records=problems[: args.limit] if args.limit else problems)
            except EngineError as exc:
                missing.append(f"{model} · {mode}: {exc.message}")
                log.warning("%s %s failed: %s", model, mode, exc.message)
                continue
            log.warning("%s %s: %.3f in %.0f s", model, mode, res["summary"]["overall"]["score"],
                        time.monotonic() - t)
            results.append(res)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    plot(results, PLOT)
    cmp = compare_v2(results) if len(results) > 1 else {}
    table = markdown_v2(results)
    summary = {"problems_file": str(Path(args.problems).resolve().relative_to(ROOT)) if not args.from_results
               else last["problems_file"],
               "problems": results[0]["n_problems"] if results else 0,
               "scores": {r["label"]: r["summary"]["overall"] for r in results},
               "by_kind": {r["label"]: r["summary"]["by_kind"] for r in results},
               "families": {r["label"]: r.get("family") for r in results},
               "ranking": cmp.get("ranking", []), "solved_by_no_baseline": cmp.get("solved_by_no_baseline", {}),
               "missing": missing, "runtime_agreement": runtime_agreement(results),
               "results": [str(Path(r["path"]).resolve().relative_to(ROOT)) if "path" in r
                           else str((RESULTS_V2 / f"{r['label']}.json").relative_to(ROOT)) for r in results]}
    write_json(SUMMARY, summary, indent=1)
    if args.readme:
        write_readme(table, summary)
    print(table)
    if missing:
        print("missing: " + "; ".join(missing))
    return 0


def runtime_agreement(results: list[dict]) -> dict:
    """Same answers from transformers (lora:<adapter>) and llama.cpp (gguf:<its export>) on the same problems? A
    pair is the adapter's plain row and the plain row of a GGUF exported from the same adapter weights (same file
    digest), never two different adapters."""
    def answers(r: dict) -> dict:
        out = {}
        for x in r["results"]:
            try:
                out[x["id"]] = json.loads(x["answer"]) if isinstance(x["answer"], str) else x["answer"]
            except (TypeError, json.JSONDecodeError):
                out[x["id"]] = x["answer"]
        return out

    def digest(r: dict) -> str | None:  # recorded when the row ran (engine.bench.v2.adapter_digest)
        return r.get("adapter_sha256")

    plain = [r for r in results if r.get("mode") == "plain"]
    for hf in (r for r in plain if str(r.get("model", "")).startswith("lora:") and digest(r)):
        for cpp in (r for r in plain if str(r.get("model", "")).startswith("gguf:")):
            if digest(cpp) != digest(hf):
                continue
            a, b = answers(hf), answers(cpp)
            common = sorted(set(a) & set(b))
            same = sum(a[i] == b[i] for i in common)
            return {"transformers": hf["label"], "llama_cpp": cpp["label"], "problems": len(common), "same": same,
                    "fraction": round(same / len(common), 4) if common else None,
                    "differ": [i for i in common if a[i] != b[i]]}
    return {}


def write_readme(table: str, summary: dict) -> None:
    block = (f"{START}\n{summary['problems']} placement problems ({summary['problems_file']}: held-out designs, "
             "truth from 3 placer seeds, labels clear of the seed noise), `make bench` on this machine. Mean score "
             "per kind with bootstrap 95% CI; parse / schema failures counted apart (they score 0). The oracle "
             "re-measures with fresh seeds: an upper bound, not a model."
             + (f" Missing: {'; '.join(summary['missing'])}." if summary["missing"] else "")
             + f"\n\n{table}\n\n![scores](bench/results/bench_models_v2.png)\n{END}")
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        readme.write_text(text)
    else:
        log.warning("README.md has no %s / %s markers; table not written there", START, END)


if __name__ == "__main__":
    sys.exit(main())
