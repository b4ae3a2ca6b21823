"""`cda optimize DESIGN... --searcher tpe|random|ppo --budget N [--concurrency K] [--address A] [--resume [RUN]]`,
`cda rl-pareto [RUN]` and `cda rl-transfer`. Defaults come from OptimizeConfig / EvalConfig (engine.rl.optimize,
engine.rl.evaluate)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def _knob_list(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    opt = sub.add_parser("optimize", help="tune the flow's knobs: TPE or random search on Ray Tune, or PPO",
                         description="Each trial is a real flow run (a child run of the optimisation); the "
                                     "optimisation itself is a run of kind 'optimize' (evaluations.jsonl, "
                                     "curve.json, best.json, the Ray Tune experiment in tune/, policy.pt).")
    opt.add_argument("design", nargs="*", help="example name, design folder or Verilog file; several designs "
                                               "train one PPO policy over all of them (none with --resume)")
    _common(opt)
    opt.add_argument("--policy", default=None, help="start PPO from a saved policy.pt (transfer to a new design)")
    opt.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN",
                     help="continue an unfinished optimisation run (its id; alone: the latest one of the "
                          "design): finished trials are kept, not run again")
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

    pf = sub.add_parser("rl-pareto", help="the Pareto front of an optimisation: trials no other beats on both "
                                          "routed wirelength and effective clock period",
                        description="Reads the run's evaluations.jsonl (also while it runs); failed, stopped "
                                    "and incomplete trials are left out and counted.")
    pf.add_argument("run", nargs="?", default="latest", help="optimisation run id (default: the newest one)")
    pf.add_argument("--design", default=None, help="one design of a multi-design run (default: each)")
    pf.add_argument("--json", action="store_true", help="print the fronts as JSON")
    pf.set_defaults(func=cmd_pareto)


def _common(p: argparse.ArgumentParser) -> None:
    # Light modules only: every `cda` command builds this parser (OptimizeConfig would import torch).
    from engine.rl.evaluate import EvalConfig
    from engine.rl.reward import RewardConfig
    from engine.rl.tune import DEFAULT_SEARCHER, SEARCHERS

    ev, rw = EvalConfig(), RewardConfig()
    p.add_argument("--searcher", "--agent", dest="agent", default=None, choices=sorted((*SEARCHERS, "ppo")),
                   help=f"who proposes knob settings: tpe (Optuna, on Ray Tune), random (on Ray Tune) or ppo "
                        f"(default {DEFAULT_SEARCHER}, or ppo with --policy; --agent is the old name)")
    p.add_argument("--budget", type=int, default=None, help="flow evaluations (trials) to spend; the design's "
                                                           "default run is not counted (default: OptimizeConfig's)")
    p.add_argument("--seed", type=int, default=None, help="seed of the searcher (default: OptimizeConfig's)")
    p.add_argument("--concurrency", "--parallel", dest="parallel", type=int, default=ev.parallel, metavar="N",
                   help="trials at once (Ray Tune's max_concurrent_trials; PPO: Ray tasks when > 1)")
    p.add_argument("--until", default=ev.until, help=f"last flow step of each trial (default {ev.until}; "
                                                     "floorplan, place or route are cheaper but blind to "
                                                     "routability and timing)")
    p.add_argument("--reward", default=rw.kind, choices=["qor", "ecp"],
                   help="weighted PPA score vs the design's default run, or AutoTuner's effective clock period")
    p.add_argument("--knobs", type=_knob_list, default=None, help="comma-separated knob names (default: all)")
    p.add_argument("--max-iterations", type=int, default=None,
                   help="cap the placer's iterations in every evaluation (quick runs)")
    p.add_argument("--address", "--ray-address", dest="ray_address", default=ev.ray_address,
                   help="join this Ray cluster ('auto', 'ray://host:10001'); default: start a small local Ray")
    p.add_argument("--no-ray", action="store_true", help="search in this process with Optuna, without Ray Tune")


def build_optimize_config(args: argparse.Namespace):
    from engine.rl.env import EnvConfig
    from engine.rl.evaluate import EvalConfig
    from engine.rl.knobs import get_knobs
    from engine.rl.optimize import OptimizeConfig
    from engine.rl.reward import RewardConfig
    from engine.rl.tune import TuneConfig

    knobs = [k.name for k in get_knobs(args.knobs)] if args.knobs else None
    ev = EvalConfig(until=args.until, parallel=args.parallel, ray_address=args.ray_address)
    if getattr(args, "max_iterations", None):
        ev.place_overrides["max_iterations"] = args.max_iterations
    tune = TuneConfig(scheduler="serial") if getattr(args, "no_ray", False) else TuneConfig()
    policy = getattr(args, "policy", None)
    defaults = OptimizeConfig()
    agent = args.agent or ("ppo" if policy else defaults.agent)
    return OptimizeConfig(agent=agent, budget=defaults.budget if args.budget is None else args.budget,
                          seed=defaults.seed if args.seed is None else args.seed,
                          env=EnvConfig(knobs=knobs, reward=RewardConfig(kind=args.reward), eval=ev),
                          policy=policy, tune=tune)


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


def _resumed_run(store, which: str, designs: list[str]):
    """The optimisation run to resume: by id, or ('latest') the newest unfinished one of these designs."""
    from engine.errors import EngineError
    from engine.rl.env import design_config

    if which != "latest":
        run = store.get(which)
        if run.info().get("kind") != "optimize":
            raise EngineError(f"run {which} is not an optimisation run")
        return run
    names = "+".join(design_config(d)[0] for d in designs) if designs else None
    for row in store.list(limit=200, kind="optimize", design=names):
        if row["status"] != "done":
            return store.get(row["id"])
    raise EngineError(f"no unfinished optimisation run{' of ' + names if names else ''} to resume",
                      hint="give the run id: --resume RUN")


def cmd_optimize(args: argparse.Namespace) -> int:
    from engine.errors import EngineError
    from engine.rl.env import design_config
    from engine.rl.optimize import OptimizeConfig, optimize, optimize_run_config
    from engine.runs import RunStore

    store = RunStore(args.runs_dir)
    if args.resume:
        run = _resumed_run(store, args.resume, args.design)
        conf = run.config
        cfg, designs = OptimizeConfig.from_dict(conf["optimize"]), list(conf["designs"])
        if args.design and [design_config(d)[0] for d in args.design] != [design_config(d)[0] for d in designs]:
            raise EngineError(f"run {run.id} optimises {', '.join(designs)}, not {', '.join(args.design)}")
    else:
        if not args.design:
            raise EngineError("give a design to optimise (or --resume RUN)")
        cfg, designs = build_optimize_config(args), list(args.design)
        names = [design_config(d)[0] for d in designs]
        run = store.create(optimize_run_config(designs, cfg), design="+".join(names), kind="optimize")
    print(f"cda optimize: {run.design} searcher={cfg.agent} budget={cfg.budget} until={cfg.env.eval.until} "
          f"concurrency={cfg.env.eval.parallel} run={run.id}{' (resumed)' if args.resume else ''}", flush=True)

    def progress(fraction: float, message: str) -> None:
        print(f"  {message}", flush=True)

    run = _with_sigint({"run": run}, lambda: optimize(designs, cfg, store, run=run, progress=progress,
                                                      resume=bool(args.resume)))
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
          f"stopped early: {summary.get('stopped_early', 0)}  time: {summary.get('seconds')} s"
          + (f"  (Ray start {summary['ray_start_s']} s)" if summary.get("ray_start_s") else "")
          + (f"  scheduler: {summary['scheduler']}" if summary.get("scheduler") else ""))
    if best:
        print(f"  best reward: {best.get('reward', 0):+.4f} (0 = the design's defaults)  run: {best.get('run_id')}")
        for k, v in (best.get("knobs") or {}).items():
            print(f"    {k} = {v}")
    if (run.dir / "policy.pt").exists():
        print(f"  policy: {run.dir / 'policy.pt'}")
    from engine.rl.pareto import run_fronts

    for name, front in run_fronts(run.dir).items():
        if front.note is None:
            print(f"  Pareto front ({name}): {len(front.front)} of {len(front.points)} finished trials; "
                  f"`cda rl-pareto {run.id}` lists them")
    return 0 if info["status"] == "done" else 130


def cmd_pareto(args: argparse.Namespace) -> int:
    import json

    from engine.errors import EngineError
    from engine.rl.pareto import format_front, run_fronts
    from engine.runs import RunStore

    store = RunStore(args.runs_dir)
    if args.run == "latest":
        rows = store.list(limit=1, kind="optimize")
        if not rows:
            raise EngineError("no optimisation run yet", hint="start one: `cda optimize counter --budget 8`")
        run = store.get(rows[0]["id"])
    else:
        run = store.get(args.run)
        if run.info().get("kind") != "optimize":
            raise EngineError(f"run {args.run} is not an optimisation run")
    found = run_fronts(run.dir)
    if args.design is not None:
        if args.design not in found:
            raise EngineError(f"run {run.id} has no trials of design {args.design}",
                              hint=f"its designs: {', '.join(found) or 'none yet'}")
        found = {args.design: found[args.design]}
    if args.json:
        print(json.dumps({"run": run.id, "fronts": {d: f.to_dict() for d, f in found.items()}}, indent=1,
                         default=str))
        return 0
    print(f"run {run.id} ({run.info().get('status')})")
    if not found:
        print("  no evaluations recorded yet")
    for front in found.values():
        print("\n".join(format_front(front)))
    return 0


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
