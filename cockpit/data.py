"""Readers of a run folder's artefacts for the pages (layouts, frames, heat maps, timing paths), cached by
file path and modification time so a polling page does not parse the same DEF twice."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from engine.runs import Run, read_json

log = logging.getLogger(__name__)


@dataclass
class Layout:
    """Cells of a DEF as arrays (microns, lower-left corners)."""

    die: tuple[float, float, float, float] | None
    core: tuple[float, float, float, float] | None
    rows: list[tuple[float, float, float]]  # (x0, x1, y)
    names: list[str]
    types: list[str]
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    is_io: np.ndarray
    is_fixed: np.ndarray

    @property
    def n_cells(self) -> int:
        return int((~self.is_io).sum())


def step_record(run: Run, step: str) -> dict:
    """The step's step.json (status, artefacts, seconds, message), {} when the step has not run."""
    try:
        return read_json(run.step_dir(step, create=False) / "step.json", {}) or {}
    except KeyError:
        return {}


def artefact(run: Run, step: str, name: str, fallback: str | None = None) -> Path | None:
    """Path of a step's artefact (by its name in step.json, else a known file name), None if missing."""
    folder = run.step_dir(step, create=False)
    fname = step_record(run, step).get("artefacts", {}).get(name) or fallback
    if not fname:
        return None
    path = folder / fname
    return path if path.exists() else None


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False)
def _pdk(tech_dir: str | None):
    from engine.pdk import load_pdk

    return load_pdk(tech_dir)


@st.cache_data(show_spinner=False, max_entries=16)
def _read_layout(path: str, mtime: float, tech_dir: str | None) -> Layout:
    from engine.io.def_io import read_def

    nl = read_def(path, _pdk(tech_dir))
    rows = [(r.x0, r.x1, r.y) for r in nl.rows] if nl.rows else []
    return Layout(die=nl.die, core=getattr(nl, "core", None), rows=rows, names=list(nl.cell_names),
                  types=list(nl.cell_types), x=nl.x.copy(), y=nl.y.copy(), w=nl.cell_w.copy(), h=nl.cell_h.copy(),
                  is_io=nl.cell_is_io.copy(), is_fixed=nl.cell_fixed.copy())


def layout(run: Run, step: str, name: str = "def", fallback: str | None = None) -> Layout | None:
    """The layout a step wrote as DEF (floorplan.def, placed.def, routed.def), None if not there yet."""
    path = artefact(run, step, name, fallback)
    if path is None:
        return None
    try:
        return _read_layout(str(path), _mtime(path), run.config.get("tech_dir"))
    except Exception as exc:  # noqa: BLE001 - a page shows a sentence, not a traceback
        log.warning("could not read %s: %s", path, exc)
        return None


# ------------------------------------------------------------------------------------------------ frames
def frame_files(run: Run) -> list[Path]:
    """The placer's frames in iteration order (03-place/frames/*.npz)."""
    folder = run.step_dir("place", create=False) / "frames"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.npz"))


@st.cache_data(show_spinner=False, max_entries=512)
def _read_frame(path: str, mtime: float) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def frame(path: Path) -> dict | None:
    try:
        return _read_frame(str(path), _mtime(path))
    except Exception as exc:  # noqa: BLE001 - a frame being written right now
        log.debug("frame %s unreadable: %s", path, exc)
        return None


def frame_cell_sizes(run: Run | None, f: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Widths and heights of a frame's cells (frames carry positions; sizes come from the floorplan DEF)."""
    if run is None:
        return None, None
    lay = layout(run, "floorplan", "def", "floorplan.def")
    cells = np.asarray(f.get("cells", np.arange(len(f["x"]))), int)
    if lay is None or len(cells) == 0 or cells.max() >= len(lay.w):
        return None, None
    return lay.w[cells], lay.h[cells]


def curves(run: Run) -> dict[str, np.ndarray]:
    """HPWL and overflow per iteration: from the step's history file if it has one, else from the frames."""
    folder = run.step_dir("place", create=False)
    hist = read_json(folder / "history.json")
    if isinstance(hist, dict) and hist.get("iteration"):
        return {k: np.asarray(v, float) for k, v in hist.items() if isinstance(v, list)}
    its, hp, ov = [], [], []
    for p in frame_files(run):
        f = frame(p)
        if f is None:
            continue
        its.append(f.get("iteration", len(its)))
        hp.append(f.get("hpwl", np.nan))
        ov.append(f.get("overflow", np.nan))
    return {"iteration": np.asarray(its, float), "hpwl": np.asarray(hp, float), "overflow": np.asarray(ov, float)}


# ------------------------------------------------------------------------------------------------ route/timing
def congestion(run: Run) -> dict[str, np.ndarray] | None:
    path = artefact(run, "route", "congestion", "congestion.npz")
    if path is None:
        return None
    try:
        return dict(_read_frame(str(path), _mtime(path)))
    except Exception:  # noqa: BLE001
        return None


def timing_paths(run: Run) -> list[dict]:
    path = artefact(run, "timing", "paths", "paths.json")
    data = read_json(path) if path else None
    if isinstance(data, dict):
        data = data.get("paths", [])
    return data if isinstance(data, list) else []


def text_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def json_file(path: Path | None):
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------------------ routed wires
_POINT = __import__("re").compile(r"\(\s*([-\d*]+)\s+([-\d*]+)(?:\s+[-\d]+)?\s*\)")


@st.cache_data(show_spinner=False, max_entries=8)
def _read_wires(path: str, mtime: float) -> dict[str, np.ndarray]:
    """{layer: (n, 4) segments x0, y0, x1, y1 in microns} from a routed DEF's NETS section."""
    import re

    text = Path(path).read_text(errors="replace")
    m = re.search(r"UNITS\s+DISTANCE\s+MICRONS\s+(\d+)", text)
    units = float(m.group(1)) if m else 1000.0
    sec = re.search(r"^NETS\s+\d+\s*;(.*?)^END\s+NETS", text, re.S | re.M)
    out: dict[str, list] = {}
    if not sec:
        return {}
    for stmt in sec.group(1).split(";"):
        parts = re.split(r"\+\s*ROUTED\b|\bNEW\b", stmt)
        for seg in parts[1:]:
            toks = seg.split()
            if not toks:
                continue
            layer = toks[0]
            px = py = None
            for xs, ys in _POINT.findall(seg):
                x = px if xs == "*" else float(xs) / units
                y = py if ys == "*" else float(ys) / units
                if px is not None and (x != px or y != py):
                    out.setdefault(layer, []).append((px, py, x, y))
                px, py = x, y
    return {k: np.asarray(v, float) for k, v in out.items()}


def routed_wires(run: Run) -> dict[str, np.ndarray]:
    path = artefact(run, "route", "def", "routed.def")
    if path is None:
        return {}
    try:
        return _read_wires(str(path), _mtime(path))
    except Exception as exc:  # noqa: BLE001
        log.warning("could not read wires from %s: %s", path, exc)
        return {}
