"""`cda place FILE.aux|RUN_ID [--out DIR] [--fix-macros]`: the placer alone on Bookshelf input or a run's floorplan."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from engine.errors import EngineError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("place", help="place a Bookshelf netlist (.aux) or a run's floorplan with our placer")
    p.add_argument("target", help="a Bookshelf .aux file, or a run id ('last' = the latest run)")
    p.add_argument("--out", default=None, help="folder for the results (Bookshelf input: default ./<name>-placed; "
                                                "a run: the placed DEF is also copied here)")
    p.add_argument("--iterations", type=int, default=None, help="global placement iteration cap (default 1000)")
    p.add_argument("--target-density", type=float, default=None, help="bin density to spread to (default 0.9)")
    p.add_argument("--target-overflow", type=float, default=None, help="stop at this overflow (default 0.10)")
    p.add_argument("--no-detailed", action="store_true", help="skip detailed placement")
    p.add_argument("--device", default=None, help="torch device (cpu, cuda, ...)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: automatic)")
    p.add_argument("--frames", type=int, default=None, help="write a frame every N iterations (0 = none)")
    p.add_argument("--fix-macros", action="store_true",
                   help="Bookshelf input: fix the movable macros (nodes taller than a row) at their .pl positions "
                        "instead of placing them")
    p.set_defaults(func=cmd_place)


def _config(args: argparse.Namespace):
    from engine.place.config import PlaceConfig

    cfg = PlaceConfig()
    if args.iterations is not None:
        if args.iterations < 1:
            raise EngineError("--iterations must be at least 1")
        cfg.max_iterations = args.iterations
        cfg.min_iterations = min(cfg.min_iterations, args.iterations)
    if args.target_density is not None:
        if not 0.1 <= args.target_density <= 1.0:
            raise EngineError("--target-density must be between 0.1 and 1.0")
        cfg.target_density = args.target_density
    if args.target_overflow is not None:
        cfg.target_overflow = args.target_overflow
    if args.no_detailed:
        cfg.detailed = False
    if args.device:
        cfg.device = args.device
    if args.threads is not None:
        cfg.num_threads = args.threads
    if args.frames is not None:
        cfg.frame_every = args.frames
    return cfg


def _progress(fraction: float, message: str) -> None:
    print(f"  place {fraction:4.0%} {message}", flush=True)


def cmd_place(args: argparse.Namespace) -> int:
    cfg = _config(args)
    target = args.target
    if target.endswith(".aux") or Path(target).is_file():
        return _place_bookshelf(Path(target), cfg, args.out, fix=args.fix_macros)
    if args.fix_macros:
        raise EngineError("--fix-macros applies to a Bookshelf .aux input; a run's macros come from its floorplan")
    return _place_run(target, cfg, args)


def _place_bookshelf(aux: Path, cfg, out: str | None, fix: bool = False) -> int:
    import numpy as np

    from engine.io.bookshelf import read_bookshelf, write_bookshelf
    from engine.place.api import place

    netlist = read_bookshelf(aux)
    if fix:
        from engine.place.macros import fix_macros

        netlist, n_fixed = fix_macros(netlist)
        print(f"  fixed {n_fixed} movable macros at their .pl positions", flush=True)
    out_dir = Path(out) if out else Path.cwd() / f"{netlist.name}-placed"
    out_dir.mkdir(parents=True, exist_ok=True)
    frames_dir = out_dir / "frames"
    on_frame = None
    if cfg.frame_every > 0:
        frames_dir.mkdir(exist_ok=True)

        def on_frame(frame: dict) -> None:
            arrays: dict[str, Any] = {k: np.asarray(v) for k, v in frame.items()}
            np.savez(frames_dir / f"frame_{frame['iteration']:05d}.npz", **arrays)

    result = place(netlist, cfg, progress=_progress, on_frame=on_frame)
    aux_out = write_bookshelf(result.netlist, out_dir, netlist.name)
    from engine.runs import write_json

    write_json(out_dir / "metrics.json", result.metrics)
    _summary(result.metrics)
    print(f"placed netlist: {aux_out}")
    return 0


def _place_run(run_id: str, cfg, args: argparse.Namespace) -> int:
    from engine.config import FlowConfig
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(args.runs_dir)
    if run_id == "last":
        run = store.latest()
        if run is None:
            raise EngineError("there are no runs yet; start one with `cda flow run <design>`")
    else:
        try:
            run = store.get(run_id)
        except (KeyError, FileNotFoundError, EngineError):
            raise EngineError(f"'{run_id}' is neither a Bookshelf .aux file nor a run id (see `cda runs list`)") \
                from None
    config = FlowConfig.from_dict(run.config)
    defaults = type(cfg)()
    for name in cfg.__dataclass_fields__:
        if getattr(cfg, name) != getattr(defaults, name):
            config.place[name] = getattr(cfg, name)
    run = run_flow(config, store, steps=["place"], run=run, reuse=False, progress=lambda s, f, m: _progress(f, m))
    info = run.info()
    if run.status != "done":
        print(f"error: placement failed: {info.get('error', run.status)}", file=sys.stderr)
        return 1
    metrics = run.step_metrics("place")
    _summary(metrics)
    placed = run.step_dir("place", create=False) / "placed.def"
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        shutil.copy(placed, Path(args.out) / "placed.def")
        placed = Path(args.out) / "placed.def"
    print(f"placed DEF: {placed}")
    return 0


def _summary(metrics: dict) -> None:
    keys = ("placement__hpwl__global", "placement__hpwl__legal", "placement__hpwl", "placement__overflow",
            "placement__iterations", "placement__macros__movable", "placement__macros__displacement__max",
            "placement__runtime_s")
    for k in keys:
        if k in metrics:
            print(f"  {k:<28} {metrics[k]}")
