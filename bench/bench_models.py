"""`make bench`: every model reachable here answers the placement problems; the table goes into README.md.

Models, in order: the rule-of-thumb baseline (no LLM, no engine), the engine-grounded specialist (engine tools +
retrieval, no LLM), the project's own tiny model from engine/train as baseline and as specialist (its LoRA
adapter when one was trained; the base model is built first if missing), and each Ollama model the specialists'
host lists (none here: no server). Results: bench/results/<model>-<mode>.json, bench_models.json, bench_models.png.
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

from engine.bench.problems import PROBLEMS_PATH, load_problems  # noqa: E402
from engine.bench.report import markdown_table  # noqa: E402
from engine.bench.runner import RESULTS_DIR, RunnerConfig, run_bench, tiny_model_folder  # noqa: E402
from engine.errors import EngineError  # noqa: E402

log = logging.getLogger("bench_models")
START, END = "<!-- bench-models:start -->", "<!-- bench-models:end -->"


def ollama_models() -> list[str]:
    try:
        import ollama

        from engine.specialists.config import SpecialistConfig

        listed = ollama.Client(host=SpecialistConfig().host, timeout=3).list()
        return [m.model for m in listed.models][:2]
    except Exception:  # noqa: BLE001 - no server is the normal case here
        return []


def ensure_tiny() -> str | None:
    try:
        return str(tiny_model_folder())
    except EngineError:
        pass
    try:
        from engine.train.config import TinyModelConfig
        from engine.train.tinymodel import build_tiny_model

        log.warning("building the project's tiny model (a few minutes) ...")
        build_tiny_model(TinyModelConfig())
        return str(tiny_model_folder())
    except Exception as exc:  # noqa: BLE001 - the table says the model was not available
        log.warning("the tiny model could not be built: %s", exc)
        return None


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = ["overall", "predict", "choose", "diagnose", "act"]
    fig, ax = plt.subplots(figsize=(9, 4))
    w = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        s = r["summary"]
        blocks = [s["overall"] if k == "overall" else s["by_kind"].get(k) for k in kinds]
        y = [b["score"] if b else 0 for b in blocks]
        err = [[(b["score"] - b["ci95"][0]) if b else 0 for b in blocks],
               [(b["ci95"][1] - b["score"]) if b else 0 for b in blocks]]
        ax.bar(np.arange(len(kinds)) + i * w, y, w, yerr=err, capsize=3, label=f"{r['model']} · {r['mode']}")
    ax.set_xticks(np.arange(len(kinds)) + w * (len(results) - 1) / 2, kinds)
    ax.set_ylabel("mean score (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, len(results)), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tiny", action="store_true", help="leave the project's tiny model out (it is slow on CPU)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="answer length cap for local models")
    ap.add_argument("--from-results", action="store_true",
                    help="rewrite the README table and plot from the result files of the last run (no model runs)")
    args = ap.parse_args(argv)
    if args.from_results:
        from engine.bench.runner import load_results

        last = json.loads((RESULTS_DIR / "bench_models.json").read_text())
        results = [load_results(p) for p in last["results"]]
        plot(results, RESULTS_DIR / "bench_models.png")
        write_readme(results, last["problems"], last["models_used"], last.get("missing", ""))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    problems = load_problems(PROBLEMS_PATH)
    runs = [("rules", "baseline"), ("engine", "specialist")]
    tiny = None if args.no_tiny else ensure_tiny()
    if tiny:
        runs += [("tiny", "baseline"), ("tiny", "specialist")]
    runs += [(f"ollama:{m}", mode) for m in ollama_models() for mode in ("baseline", "specialist")]
    results = []
    t0 = time.monotonic()
    for model, mode in runs:
        t = time.monotonic()
        res = run_bench(RunnerConfig(model=model, mode=mode, max_new_tokens=args.max_new_tokens), problems=problems)
        log.warning("%s %s: %.3f in %.0f s", model, mode, res["summary"]["overall"]["score"], time.monotonic() - t)
        results.append(res)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, RESULTS_DIR / "bench_models.png")
    table = markdown_table(results)
    used = "; ".join(f"{r['model']} · {r['mode']}: {', '.join(r['models_used'])}" for r in results)
    missing = "" if tiny else (" The project's tiny model was left out (--no-tiny)." if args.no_tiny else
                               " The project's tiny model could not be built, so it is not in the table.")
    if not any(m.startswith("ollama:") for m, _ in runs):
        missing += " No Ollama server answered, so no Ollama model is in the table."
    by = {f"{r['model']}-{r['mode']}": r["summary"]["overall"]["score"] for r in results}
    summary = {"problems": len(problems), "problems_file": str(PROBLEMS_PATH.relative_to(ROOT)),
               "seconds": round(time.monotonic() - t0, 1), "scores": by, "models_used": used, "missing": missing,
               "results": [str(Path(r["path"]).relative_to(ROOT)) for r in results]}
    (RESULTS_DIR / "bench_models.json").write_text(json.dumps(summary, indent=1))
    write_readme(results, len(problems), used, missing)
    print(table)
    print(f"models used: {used}")
    return 0


def write_readme(results: list[dict], n_problems: int, used: str, missing: str) -> None:
    table = markdown_table(results)
    block = (f"{START}\n{n_problems} placement problems (assets/bench/problems_v1.jsonl, truth computed by the "
             f"engine), `make bench` on this machine. Mean score per kind with bootstrap 95% CI; solved = score >= "
             f"0.75; retrieval hit / miss = ChipNeMo's split (a retrieved passage names the gold knob, or not). "
             f"Models used — {used}.{missing}\n\n{table}\n\n"
             "Read with care: the engine-grounded specialist answers predict and choose by running the same placer "
             "that computed the truth, so its full marks there are by construction (what a tool-using specialist "
             "gains over guessing); diagnose depends on retrieval naming the right knob to try, and act on its "
             "4-run search against the engine's own sweep. The rules baseline uses the reference run given in "
             "each question, which is why it does well on predict.\n\n"
             f"![scores](bench/results/bench_models.png)\n{END}")
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        readme.write_text(text)
    else:
        log.warning("README.md has no %s / %s markers; table not written there", START, END)


if __name__ == "__main__":
    sys.exit(main())
