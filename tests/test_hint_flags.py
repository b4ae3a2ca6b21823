"""Every hint the engine gives names only flags that exist: a message that says "rerun with --foo" when `cda`
has no --foo sends the user nowhere."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# Flags of other programs a hint may quote (pip, make, pytest), not of `cda`.
FOREIGN = {"--no-deps", "--upgrade", "--user", "--force-reinstall"}


def cda_flags() -> set[str]:
    seen, todo = set(), [build_parser()]
    while todo:
        p = todo.pop()
        for action in p._actions:
            seen.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return seen


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def hint_texts():
    """(file, line, text) of every message and hint the engine raises or fails with: the string literals inside a
    ``hint=`` argument, and those of an ``...Error(...)`` or ``fail(...)`` call's arguments, in engine/."""
    for path in sorted((ROOT / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            values = [kw.value for kw in node.keywords if kw.arg == "hint"]
            name = _name(node.func)
            if name.endswith("Error") or name == "fail":
                values += list(node.args)
            for value in values:
                parts = [n.value for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if parts:
                    yield path.relative_to(ROOT), value.lineno, "".join(parts)


def test_every_flag_a_hint_names_exists():
    flags = cda_flags()
    assert {"--until", "--set", "--sdc", "--top"} <= flags  # the walk reaches the subcommands
    texts = list(hint_texts())
    assert len(texts) > 50  # the scan sees the hints
    wrong = [f"{f}:{line}: {flag}" for f, line, text in texts for flag in FLAG.findall(text)
             if flag not in flags and flag not in FOREIGN]
    assert not wrong, "hints name flags `cda` does not have:\n" + "\n".join(wrong)
