"""`cda optimize DESIGN... --agent ppo|random|tpe --budget N` and `cda rl-transfer`."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def _knob_list(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    opt = sub.add_parser("optimize", help="tune the flow's knobs with an agent (PPO, random search, TPE)",
                         description="Each evaluation is a real flow run; the optimisation itself is a run of "
                                     "kind 'optimize' (evaluations.jsonl, curve.json, best.json, policy.pt).")
    opt.add_argument("design", nargs="+", help="example name, design folder or Verilog file; several designs "
                                               "train one PPO policy over all of them")
    _common(opt)
    opt.add_argument("--policy", default=None, help="start PPO from a saved policy.pt (transfer to a new design)")
    opt.set_defaults(func=cmd_optimize)

    tr = sub.add_parser("rl-transfer", help="train a PPO policy on some designs, apply it to a new one, and "
                                            "compare with searching from scratch at the same small budget")
    tr.add_argument("--train", required=True, type=_knob_list, help="comma-separated training designs")
    tr.add_argument("--target", required=True, help="the new design")
    tr.add_argument("--train-budget", type=int, default=32, help="PPO evaluations on the training designs")
    tr.add_argument("--budget", type=int, default=8, help="evaluations on the new design (each agent)")
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--parallel", type=int, default=1, help="evaluations at once (Ray tasks when > 1)")
    tr.add_argument("--until", default="place", help="last flow step of each evaluation")
    tr.set_defaults(func=cmd_transfer)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", default="ppo", choices=["ppo", "random", "tpe"], help="who proposes knob settings")
    p.add_argument("--budget", type=int, default=24, help="flow evaluations to spend (baseline run not counted)")
    p.add_argument("--seed", type=int, default=1, help="seed of the agent")
    p.add_argument("--parallel", type=int, default=1, help="evaluations at once (Ray tasks when > 1)")
    p.add_argument("--until", default="place", help="last flow step of each evaluation: floorplan, place, "
                                                     "route or timing")
    p.add_argument("--reward", default="qor", choices=["qor", "ecp"], help="weighted QoR vs baseline, or "
                                                                          "AutoTuner's effective clock period")
    p.add_argument("--knobs", type=_knob_list, default=None, help="comma-separated knob names (default: all)")
    p.add_argument("--max-iterations", type=int, default=None,
                   help="cap the placer's iterations in every evaluation (quick runs)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")


def build_optimize_config(args: argparse.Namespace):
    from engine.rl.env import EnvConfig
    from engine.rl.evaluate import EvalConfig
    from engine.rl.knobs import get_knobs
    from engine.rl.optimize import OptimizeConfig
    from engine.rl.reward import RewardConfig

    knobs = [k.name for k in get_knobs(args.knobs)] if args.knobs else None
    ev = EvalConfig(until=args.until, parallel=args.parallel, ray_address=args.ray_address)
    if getattr(args, "max_iterations", None):
        ev.place_overrides["max_iterations"] = args.max_iterations
    return OptimizeConfig(agent=args.agent, budget=args.budget, seed=args.seed,
                          env=EnvConfig(knobs=knobs, reward=RewardConfig(kind=args.reward), eval=ev),
                          policy=getattr(args, "policy", None))


def _with_sigint(run_holder: dict, fn):
    """First Ctrl-C asks the optimisation to stop (keeping what it learned); the second one aborts."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        run = run_holder.get("run")
        if run is not None:
            run.request_cancel()
        print("\ncancelling after the evaluations in flight (Ctrl-C again to abort)...", file=sys.stderr)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_optimize(args: argparse.Namespace) -> int:
    from engine.rl.env import design_config
    from engine.rl.optimize import optimize, optimize_run_config
    from engine.runs import RunStore

    cfg = build_optimize_config(args)
    names = [design_config(d)[0] for d in args.design]
    store = RunStore(args.runs_dir)
    run = store.create(optimize_run_config(args.design, cfg), design="+".join(names), kind="optimize")
    print(f"cda optimize: {', '.join(names)} agent={cfg.agent} budget={cfg.budget} until={cfg.env.eval.until} "
          f"parallel={cfg.env.eval.parallel} run={run.id}", flush=True)

    def progress(fraction: float, message: str) -> None:
        print(f"  {message}", flush=True)

    run = _with_sigint({"run": run}, lambda: optimize(args.design, cfg, store, run=run, progress=progress))
    info = run.info()
    summary = info.get("summary", {})
    print(f"\nrun {run.id}  status: {info['status']}  folder: {run.dir}")
    if info["status"] == "failed":
        print(f"error: {info.get('error')}", file=sys.stderr)
        if info.get("hint"):
            print(f"hint: {info['hint']}", file=sys.stderr)
        return 1
    from engine.runs import read_json

    best = read_json(run.dir / "best.json", {}) or {}
    print(f"  evaluations: {summary.get('evaluations')}  failed: {summary.get('failures')}  "
          f"time: {summary.get('seconds')} s")
    if best:
        print(f"  best reward: {best.get('reward', 0):+.4f} (0 = the design's defaults)  run: {best.get('run_id')}")
        for k, v in (best.get("knobs") or {}).items():
            print(f"    {k} = {v}")
    if (run.dir / "policy.pt").exists():
        print(f"  policy: {run.dir / 'policy.pt'}")
    return 0 if info["status"] == "done" else 130


def cmd_transfer(args: argparse.Namespace) -> int:
    from engine.rl.transfer import TransferConfig, run_transfer
    from engine.runs import RunStore

    cfg = TransferConfig(train_designs=args.train, target=args.target, train_budget=args.train_budget,
                         budget=args.budget, seed=args.seed, parallel=args.parallel, until=args.until)
    result = run_transfer(cfg, RunStore(args.runs_dir), progress=lambda m: print(f"  {m}", flush=True))
    print(f"\ntransfer to {args.target} ({args.budget} evaluations each):")
    for name, row in result["agents"].items():
        print(f"  {name:<14} best reward {row['best']:+.4f}   first evaluation {row['first']:+.4f}   "
              f"run {row['run_id']}")
    print(f"  policy: {result['policy']}")
    return 0
