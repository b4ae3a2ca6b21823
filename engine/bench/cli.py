"""`cda bench build | run | compare | data`: the placement benchmark (engine/bench/v2.py) from the command line."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:6.1%}] {message}", file=sys.stderr, flush=True)


def _fmt_block(b: dict) -> str:
    lo, hi = b["ci95"]
    return f"{b['score']:.3f} [{lo:.3f}, {hi:.3f}]  solved {b['solved']}/{b['n']}"


def _parse_counts(text: str, kinds) -> dict:
    from engine.errors import EngineError

    out = {}
    for part in text.split(","):
        kind, _, n = part.partition("=")
        if kind not in kinds or not n.isdigit():
            raise EngineError(f"--counts wants kind=N,... with kinds {', '.join(kinds)}; got '{part}'")
        out[kind] = int(n)
    return out


def _cmd_build(args) -> int:
    from engine.bench.v2 import PROBLEMS_V2, BuildV2Config, build_v2

    cfg = BuildV2Config(out=args.out or str(PROBLEMS_V2), seed=args.seed, root=args.root,
                        designs=tuple(x for x in args.designs.split(",") if x.strip()) if args.designs else ())
    if args.counts:
        cfg.counts.update(_parse_counts(args.counts, tuple(cfg.counts)))
    if args.margin:
        cfg.margin_x = args.margin
    res = build_v2(cfg, progress=None if args.quiet else _progress)
    print(f"{res['problems']} problems {res['by_kind']} on {len(res['designs'])} designs "
          f"({res['engine_runs_new']} new placements) in {res['seconds']} s")
    if res["not_held_out"]:
        print(f"note: {', '.join(res['not_held_out'])} are in the training data; their scores do not show transfer")
    print(f"wrote {res['path']}")
    return 0


def _cmd_run(args) -> int:
    from engine.bench.v2 import PROBLEMS_V2, RunV2Config, run_v2

    cfg = RunV2Config(model=args.model, mode=args.mode, problems=args.problems or str(PROBLEMS_V2), out=args.out,
                      limit=args.limit, kinds=tuple(args.kinds.split(",")) if args.kinds else (),
                      host=args.host or "", shots=args.shots, tool_budget=args.tool_budget, root=args.root)
    res = run_v2(cfg, progress=None if args.quiet else _progress)
    s = res["summary"]
    tag = "  (oracle: an upper bound, not a model)" if res["family"] == "oracle" else ""
    print(f"{res['label']}: overall {_fmt_block(s['overall'])}  parse failures {s['overall']['parse_failures']}, "
          f"schema failures {s['overall']['schema_failures']}{tag}")
    for kind, b in s["by_kind"].items():
        print(f"  {kind:9s} {_fmt_block(b)}")
    print(f"results: {res['path']}")
    return 0


def _cmd_compare(args) -> int:
    from engine.bench.results import load_results
    from engine.bench.v2 import KINDS, compare_v2

    cmp = compare_v2([load_results(p) for p in args.results])
    if args.json:
        print(json.dumps(cmp, indent=1))
        return 0
    labels = cmp["labels"]
    print(f"{cmp['common_problems']} problems in common; oracle rows are an upper bound, not ranked")
    width = max(30, max(len(x) for x in labels) + 2)
    print(f"{'':10s}" + "".join(f"{x + (' [oracle]' if cmp['families'][x] == 'oracle' else ''):>{width}s}"
                                for x in labels))
    for kind in ["overall", *KINDS]:
        cells = []
        for la in labels:
            s = cmp["summaries"][la]
            b = s["overall"] if kind == "overall" else s["by_kind"].get(kind)
            cells.append(f"{b['score']:.3f} [{b['ci95'][0]:.2f},{b['ci95'][1]:.2f}]".rjust(width) if b
                         else "-".rjust(width))
        print(f"{kind:10s}" + "".join(cells))
    print(f"{'parse/sch':10s}" + "".join(
        f"{cmp['summaries'][la]['overall']['parse_failures']}/{cmp['summaries'][la]['overall']['schema_failures']}"
        .rjust(width) for la in labels))
    print("ranking (oracle excluded): " + " > ".join(cmp["ranking"]))
    for la, ids in cmp["solved_by_no_baseline"].items():
        print(f"solved by {la} and by no baseline: {len(ids)}" + (f" ({', '.join(ids[:6])})" if ids else ""))
    return 0


def _cmd_data(args) -> int:
    from engine.train.data_v2 import DataV2Config, generate

    cfg = DataV2Config(out_dir=args.out_dir, limit_designs=args.limit_designs, run=not args.no_run,
                       families=tuple(x for x in args.families.split(",") if x) if args.families else (),
                       verify_sample=args.verify, instances=args.instances, root=args.root)
    card = generate(cfg, progress=None if args.quiet else _progress)
    print(f"{card['total']} records {card['splits']} from {card['engine_runs']} placements of {card['designs']} "
          f"designs in {card['seconds']} s -> {cfg.out_dir}")
    if card.get("verify"):
        v = card["verify"]
        print(f"verifier: {v['agree']}/{v['checked']} records agree with fresh placements")
    return 0


def _cmd_verify_data(args) -> int:
    from engine.train.data_v2 import verify_committed

    v = verify_committed(args.data_dir, args.n, root=args.root or None)
    print(f"verifier: {v['agree']}/{v['checked']} records agree with fresh placements ({v['agreement'] * 100:.1f}%); "
          + ", ".join(f"{k} {a}/{n}" for k, (a, n) in v["per_kind"].items()))
    return 0


def register(subparsers) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = subparsers.add_parser("bench", help="placement problems with engine truth; run and compare models")
    sub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)

    b = sub.add_parser("build", help="compute problems with engine truth on a design list; write "
                                    "assets/bench/problems_v2.jsonl")
    b.add_argument("--designs", default="", help="comma-separated designs: generated families (g400-t1.6-m2), "
                   "example designs or design folders; default: the training data's held-out test families")
    b.add_argument("--out", default="", help="problem file to write (default assets/bench/problems_v2.jsonl)")
    b.add_argument("--seed", type=int, default=2026, help="seed of the problem selection")
    b.add_argument("--counts", default="", help="problems per kind, e.g. direction=24,choose=20,percent=16,"
                   "diagnose=14,act=8")
    b.add_argument("--margin", type=float, default=0.0, help="labels clear the seed noise by this factor over the "
                   "training data's (default 2)")
    b.add_argument("--root", default="", help="placement store (default .cache/bench/runs_v2, shared with "
                   "`cda bench data`)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=_cmd_build)

    r = sub.add_parser("run", help="a model or baseline answers every problem; results JSON")
    r.add_argument("--model", default="rules", help="copy | majority | random | rules | oracle | base | "
                   "lora:<adapter> | gguf:<file> | ollama:<name> | hf:<folder>")
    r.add_argument("--mode", default="plain", choices=("plain", "rag-tools"),
                   help="plain (chat template, one worked example) or rag-tools (+ retrieval and a fixed budget of "
                        "engine runs on an analogous design)")
    r.add_argument("--problems", default="", help="problem file (default assets/bench/problems_v2.jsonl)")
    r.add_argument("--shots", type=int, default=-1, help="worked examples before the question (LLMs); "
                   "-1 = one for general models, none for a LoRA specialist")
    r.add_argument("--tool-budget", type=int, default=4, help="rag-tools: engine runs per problem")
    r.add_argument("--root", default="", help="placement store (default .cache/bench/runs_v2)")
    r.add_argument("--out", default="", help="results JSON (default bench/results/<model>-<mode>.json)")
    r.add_argument("--limit", type=int, default=0, help="only the first N problems")
    r.add_argument("--kinds", default="", help="only these kinds, comma-separated (direction,choose,percent,"
                   "diagnose,act)")
    r.add_argument("--host", default="", help="Ollama server (default: the specialists' host)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compare", help="two or more results JSON side by side")
    c.add_argument("results", nargs="+", help="results JSON files from `cda bench run`")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(func=_cmd_compare)

    d = sub.add_parser("data", help="training data v2 in the benchmark's formats, from the current placer")
    d.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[2] / ".cache" / "train" / "data_v2"),
                   help="folder of train/val/test.jsonl")
    d.add_argument("--families", default="", help="only these families (comma-separated), e.g. g150-t1.6-m0")
    d.add_argument("--limit-designs", type=int, default=0, help="only the first N designs")
    d.add_argument("--instances", type=int, default=1, help="designs per generated family")
    d.add_argument("--no-run", action="store_true", help="derive from the placements already measured")
    d.add_argument("--verify", type=int, default=0, help="re-derive this many records from fresh placements")
    d.add_argument("--root", default="", help="placement store (default .cache/bench/runs_v2)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    d.set_defaults(func=_cmd_data)

    vd = sub.add_parser("verify-data", help="re-derive a sample of a data set's records from fresh placements")
    vd.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "assets" / "training" / "data_v2"),
                    help="folder of train/val.jsonl(.gz) and card.json (default: the committed set)")
    vd.add_argument("--n", type=int, default=40, help="records to re-derive (stratified by kind)")
    vd.add_argument("--root", default="", help="placement store (default: a fresh temporary one)")
    vd.set_defaults(func=_cmd_verify_data)
