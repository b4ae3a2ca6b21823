"""Example designs (assets/designs/<name>/ with design.json) and user designs (a file, files or a folder)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import FlowConfig
from engine.errors import EngineError

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
    files = sorted(p for p in folder.glob("*.v") if not p.name.startswith("tb_"))
    tbs = sorted(folder.glob("tb_*.v"))
    return files, (tbs[0] if tbs else None)


def list_examples() -> list[DesignSpec]:
    out = []
    for d in sorted(DESIGNS_DIR.glob("*/design.json")):
        out.append(resolve(d.parent.name))
    return out


def resolve(spec: str | Path, extra: list[str | Path] = ()) -> DesignSpec:
    """An example name, a design folder, or Verilog files -> DesignSpec (absolute paths)."""
    paths = [Path(spec), *map(Path, extra)]
    first = paths[0]
    if not first.exists() and (DESIGNS_DIR / str(spec)).is_dir():
        first = DESIGNS_DIR / str(spec)
        paths[0] = first
    if first.is_dir():
        meta = {}
        if (first / "design.json").exists():
            try:
                meta = json.loads((first / "design.json").read_text())
            except json.JSONDecodeError as exc:
                raise EngineError(f"{first / 'design.json'}:{exc.lineno}: {exc.msg}") from None
        files, tb = _verilog_in(first)
        if not files:
            raise EngineError(f"{first}: no Verilog (.v) files in the folder")
        return DesignSpec(name=first.name, files=[str(f.resolve()) for f in files], top=meta.get("top", ""),
                          clock_port=meta.get("clock_port"), clock_ns=float(meta.get("clock_ns", 10.0)),
                          testbench=str(tb.resolve()) if tb else None, description=meta.get("description", ""),
                          size=meta.get("size", ""), flow_overrides=dict(meta.get("flow_overrides", {})))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        names = ", ".join(e.name for e in list_examples())
        raise EngineError(f"not found: {', '.join(missing)} (give Verilog files, a folder, or an example: {names})")
    files = [p for p in paths if not p.name.startswith("tb_")]
    tbs = [p for p in paths if p.name.startswith("tb_")]
    return DesignSpec(name=files[0].stem if files else first.stem, files=[str(p.resolve()) for p in files],
                      testbench=str(tbs[0].resolve()) if tbs else None)
