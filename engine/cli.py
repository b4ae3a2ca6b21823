"""`cda`: the command line. Each component registers its own sub-commands (``register(subparsers)`` in
``engine/<component>/cli.py``); heavy imports happen inside the handlers so `cda runs list` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from engine.errors import EngineError

# Modules that add sub-commands. The flow's (flow, runs) comes first: it is the spine of the tool.
COMMAND_MODULES = (
    "engine.flow.cli",
    "engine.jobs",
    "engine.place.cli",
    "engine.rl.cli",
    "engine.specialists.cli",
    "engine.train.cli",
    "engine.bench.cli",
    "engine.registry.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cda", description="CDA Cockpit: RTL to GDSII with real open tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    parser.add_argument("--runs-dir", default=None, help="run store folder (default $CDA_RUNS_DIR or ./runs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue  # a component not installed in this tree
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EngineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        if exc.log_path:
            print(f"log: {exc.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cda metrics list | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not bad input: one line for the user, the traceback with -v
        if args.verbose:
            raise
        print(f"internal error (a bug in cda, please report it): {type(exc).__name__}: {exc}; "
              "run again with -v to see the traceback", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
