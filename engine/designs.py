"""Example designs (assets/designs/<name>/ with design.json) and user designs (a file, files or a folder)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import FlowConfig
from engine.errors import EngineError, nearest

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DESIGNS_DIR = ASSETS / "designs"


@dataclass
class DesignSpec:
    name: str
    files: list[str]
    top: str = ""
    clock_port: str | None = None
    clock_ns: float = 10.0
    testbench: str | None = None
    description: str = ""
    size: str = ""
    # The design's own defaults for flow sections, from design.json's "flow_overrides" ({"route": {"layers": 6}}):
    # a large design may need a roomier floorplan and more routing layers than the flow's generic defaults.
    flow_overrides: dict = field(default_factory=dict)

    def flow_config(self) -> FlowConfig:
        """The FlowConfig a run of this design starts from: its files, top, clock, testbench and overrides."""
        data = FlowConfig(design_files=list(self.files), top=self.top, clock_port=self.clock_port,
                          clock_ns=self.clock_ns, testbench=self.testbench).to_dict()
        for section, values in self.flow_overrides.items():
            if section not in data:
                raise EngineError(f"design {self.name}: flow_overrides names an unknown section '{section}'")
            if isinstance(data[section], dict) and isinstance(values, dict):
                data[section].update(values)
            else:
                data[section] = values
        return FlowConfig.from_dict(data)


def _verilog_in(folder: Path) -> tuple[list[Path], Path | None]:
    found = sorted(p for ext in ("*.v", "*.sv") for p in folder.glob(ext))
    files = [p for p in found if not p.name.startswith("tb_")]
    tbs = [p for p in found if p.name.startswith("tb_")]
    return files, (tbs[0] if tbs else None)


# design.json: the keys a design folder may set, and the type each must have.
DESIGN_JSON_KEYS: dict[str, type | tuple[type, ...]] = {
    "top": str, "clock_port": (str, type(None)), "clock_ns": (int, float), "description": str, "size": str,
    "flow_overrides": dict, "macros": list, "blackbox": list,
}


def read_design_json(path: Path) -> dict:
    """design.json, checked: an object with known keys of the right types, names valid Verilog identifiers.

    Every field ends up in a tool script or a limit, so a bad one is refused here with the file and the key.
    """
    from engine.validate import InvalidInput, positive_number, verilog_identifier

    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise InvalidInput(f"{path}: must hold a JSON object ({{\"top\": ...}}), not a {type(meta).__name__}")
    for key, value in meta.items():
        if key not in DESIGN_JSON_KEYS:
            near = nearest(key, DESIGN_JSON_KEYS)
            hint = f"; did you mean '{near}'?" if near else f"; known keys: {', '.join(DESIGN_JSON_KEYS)}"
            raise InvalidInput(f"{path}: unknown key '{key}'{hint}")
        want = DESIGN_JSON_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, want):
            names = "/".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise InvalidInput(f"{path}: '{key}' must be {names.replace('NoneType', 'null')}, "
                               f"not {json.dumps(value)[:60]}")
    try:
        if meta.get("top"):
            verilog_identifier(meta["top"], "top module")
        if meta.get("clock_port"):
            verilog_identifier(meta["clock_port"], "clock port")
        if "clock_ns" in meta:
            positive_number(meta["clock_ns"], "clock_ns", high=1e6)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from None
    return meta


def _with_macros(folder: Path, meta: dict) -> dict:
    """flow_overrides plus design.json's "macros" (paths relative to the design folder) and "blackbox"."""
    from engine.config import macro_list

    out = dict(meta.get("flow_overrides", {}))
    if "macros" in meta:
        out["macros"] = [{k: str((folder / v).resolve()) if v else "" for k, v in m.items()}
                         for m in macro_list(meta["macros"])]
    if "blackbox" in meta:
        out["blackbox"] = list(meta["blackbox"])
    return out


def list_examples() -> list[DesignSpec]:
    out = []
    for d in sorted(DESIGNS_DIR.glob("*/design.json")):
        out.append(resolve(d.parent.name))
    return out


def resolve(spec: str | Path, extra: Sequence[str | Path] = ()) -> DesignSpec:
    """An example name, a design folder, or Verilog files -> DesignSpec (absolute paths)."""
    paths = [Path(spec), *map(Path, extra)]
    first = paths[0]
    if not first.exists() and (DESIGNS_DIR / str(spec)).is_dir():
        first = DESIGNS_DIR / str(spec)
        paths[0] = first
    if first.is_dir():
        meta = read_design_json(first / "design.json") if (first / "design.json").exists() else {}
        files, tb = _verilog_in(first)
        if not files:
            raise EngineError(f"{first}: no Verilog (.v or .sv) files in the folder")
        return DesignSpec(name=first.name, files=[str(f.resolve()) for f in files], top=meta.get("top", ""),
                          clock_port=meta.get("clock_port"), clock_ns=float(meta.get("clock_ns", 10.0)),
                          testbench=str(tb.resolve()) if tb else None, description=meta.get("description", ""),
                          size=meta.get("size", ""), flow_overrides=_with_macros(first, meta))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        names = ", ".join(e.name for e in list_examples())
        raise EngineError(f"not found: {', '.join(missing)} (give Verilog files, a folder, or an example: {names})")
    files = [p for p in paths if not p.name.startswith("tb_")]
    tbs = [p for p in paths if p.name.startswith("tb_")]
    return DesignSpec(name=files[0].stem if files else first.stem, files=[str(p.resolve()) for p in files],
                      testbench=str(tbs[0].resolve()) if tbs else None)
