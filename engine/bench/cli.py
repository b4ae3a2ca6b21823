"""`cda bench build | run | compare | verify`: the placement benchmark from the command line."""
from __future__ import annotations

import json
import os
import sys


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:6.1%}] {message}", file=sys.stderr, flush=True)


def _store(args):
    from engine.runs import RunStore

    return RunStore(args.runs_dir) if getattr(args, "runs_dir", None) else None


def _fmt_block(b: dict) -> str:
    lo, hi = b["ci95"]
    return f"{b['score']:.3f} [{lo:.3f}, {hi:.3f}]  solved {b['solved']}/{b['n']}"


def _cmd_build(args) -> int:
    from engine.bench.build import BuildConfig, build

    cfg = BuildConfig(out=args.out, seed=args.seed)
    if args.counts:
        for part in args.counts.split(","):
            kind, _, n = part.partition("=")
            if kind not in cfg.counts or not n.isdigit():
                from engine.errors import EngineError

                raise EngineError(f"--counts wants kind=N,... with kinds {', '.join(cfg.counts)}; got '{part}'")
            cfg.counts[kind] = int(n)
    res = build(cfg, _store(args), progress=None if args.quiet else _progress)
    print(f"{res['problems']} problems {res['by_kind']} from {res['engine_runs']} engine runs in {res['seconds']} s")
    print(f"wrote {res['path']} and {res['truth_path']}")
    return 0


def _cmd_run(args) -> int:
    from engine.bench.runner import RunnerConfig, run_bench

    cfg = RunnerConfig(model=args.model, mode=args.mode, problems=args.problems, out=args.out, limit=args.limit,
                       kinds=tuple(args.kinds.split(",")) if args.kinds else (), host=args.host or "",
                       timeout_s=args.timeout, retrieval=args.retrieval)
    res = run_bench(cfg, _store(args), progress=None if args.quiet else _progress)
    s = res["summary"]
    print(f"{res['label']}: overall {_fmt_block(s['overall'])}")
    for kind, b in s["by_kind"].items():
        print(f"  {kind:9s} {_fmt_block(b)}")
    for name, b in s["retrieval"].items():
        print(f"  retrieval {name:5s} {_fmt_block(b)}")
    print(f"results: {res['path']}")
    return 0


def _cmd_compare(args) -> int:
    from engine.bench.runner import compare, load_results

    cmp = compare([load_results(p) for p in args.results])
    if args.json:
        print(json.dumps(cmp, indent=1))
        return 0
    labels = cmp["labels"]
    print(f"{cmp['common_problems']} problems in common")
    kinds = sorted({k for s in cmp["summaries"].values() for k in s["by_kind"]})
    width = max(len(x) for x in labels) + 2
    print(f"{'':10s}" + "".join(f"{x:>{width + 26}s}" for x in labels))
    for kind in ["overall", *kinds]:
        cells = []
        for la in labels:
            s = cmp["summaries"][la]
            b = s["overall"] if kind == "overall" else s["by_kind"].get(kind)
            cells.append(f"{_fmt_block(b):>{width + 26}s}" if b else f"{'-':>{width + 26}s}")
        print(f"{kind:10s}" + "".join(cells))
    for key, ids in cmp["solved_only_by"].items():
        print(f"solved by {key}: {len(ids)}" + (f" ({', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''})" if ids else ""))
    return 0


def _cmd_verify(args) -> int:
    from engine.bench.measure import Measurer
    from engine.bench.problems import load_problems, verify_problem

    problems = load_problems(args.problems)
    chosen = [p for p in problems if p.id in set(args.ids.split(","))] if args.ids else problems[: args.sample]
    measurer = Measurer(_store(args), use_store_cache=False)
    built = sorted({p.truth.get("placer", "?") for p in chosen})
    print(f"truths built with placer {', '.join(built)}; this placer is {measurer.placer}")
    bad = []
    for p in chosen:
        diffs = verify_problem(p, measurer)
        print(f"{p.id}: {'ok' if not diffs else f'{len(diffs)} differences'}")
        bad += diffs
    for line in bad:
        print("  " + line)
    return 1 if bad else 0


def register(subparsers) -> None:
    from engine.bench.problems import PROBLEMS_PATH

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = subparsers.add_parser("bench", help="placement problems with engine truth; run and compare models")
    sub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)

    b = sub.add_parser("build", help="compute every problem's truth with the engine; write assets/bench/problems_v1.jsonl")
    b.add_argument("--out", default=str(PROBLEMS_PATH), help="problem file to write")
    b.add_argument("--seed", type=int, default=2026, help="seed of the problem generator")
    b.add_argument("--counts", default="", help="problems per kind, e.g. predict=20,choose=16,diagnose=12,act=12")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=_cmd_build)

    r = sub.add_parser("run", help="a model answers every problem (baseline or specialist); results JSON")
    r.add_argument("--model", default="engine", help="engine | rules | ollama:<name> | hf:<folder> | tiny")
    r.add_argument("--mode", default="specialist", choices=("baseline", "specialist"),
                   help="baseline: plain prompt; specialist: routing + retrieval + engine tools")
    r.add_argument("--problems", default=str(PROBLEMS_PATH), help="problem file")
    r.add_argument("--out", default="", help="results JSON (default bench/results/<model>-<mode>.json)")
    r.add_argument("--limit", type=int, default=0, help="only the first N problems")
    r.add_argument("--kinds", default="", help="only these kinds, comma-separated (predict,choose,diagnose,act)")
    r.add_argument("--host", default="", help="Ollama server (default: the specialists' host)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds per model call")
    r.add_argument("--retrieval", default="auto", choices=("auto", "specialists", "bench"),
                   help="specialist mode's retrieval: the specialists' knowledge base (auto when it loads) or the "
                        "bench's own passages")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compare", help="two or more results JSON side by side")
    c.add_argument("results", nargs="+", help="results JSON files from `cda bench run`")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(func=_cmd_compare)

    v = sub.add_parser("verify", help="re-run problems' truth runs fresh and report any difference")
    v.add_argument("--problems", default=str(PROBLEMS_PATH), help="problem file")
    v.add_argument("--sample", type=int, default=3, help="check the first N problems")
    v.add_argument("--ids", default="", help="check these problem ids instead (comma-separated)")
    v.set_defaults(func=_cmd_verify)
