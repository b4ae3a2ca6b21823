"""Rules of the architecture that a test can hold: the engine is headless."""
import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"


def test_engine_never_imports_streamlit_or_cockpit():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("streamlit", "cockpit", "pages"):
                    offenders.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_engine_has_no_print_outside_cli_layers():
    """The engine logs; only command-line modules write to the terminal."""
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py") or path.parent.name == "cli":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno}")
    assert not offenders, "print() in the engine: " + ", ".join(offenders)
