"""Readers of a run folder's artefacts for the pages (layouts, frames, heat maps, timing paths, clock tree, log
tails), cached by file path and modification time: a page's rerun (a widget, a poll, a revisit) does not parse
the same file twice, and a file the flow rewrites is read again."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
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
    # The power grid: (net, layer) -> (n, 4) rectangles x0, y0, x1, y1 (rails, stripes, rings), from SPECIALNETS
    power: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    power_uses: dict[str, str] = field(default_factory=dict)  # supply net -> POWER / GROUND
    is_fill: np.ndarray | None = None  # filler cells (filled.def), None when the DEF has none

    @property
    def n_cells(self) -> int:
        return int((~self.is_io).sum())


POWER_USES = ("POWER", "GROUND")
# Net names a DEF without USE still means as supplies (qrouter's copy of SPECIALNETS can drop the USE line).
POWER_NAMES = {"vdd": "POWER", "vcc": "POWER", "vpwr": "POWER", "gnd": "GROUND", "vss": "GROUND", "vgnd": "GROUND"}


def supply_use(net) -> str:
    """POWER / GROUND for a supply special net (its USE, else its name), "" for any other special net."""
    use = (net.use or "").upper() or POWER_NAMES.get(net.name.lower(), "")
    return use if use in POWER_USES else ""


def power_shapes(special_nets) -> dict[tuple[str, str], np.ndarray]:
    """The supply wires of DEF SPECIALNETS as rectangles: (net, layer) -> (n, 4) x0, y0, x1, y1 in um.

    A special wire is a path of its width between two points, its ends flush with them (DEF special wiring has
    no end extension): a horizontal one spans x0..x1 and y +- width/2. Nets that are not supplies (a router's pin
    stubs) and vias are left out: at layout scale a via is a dot under a crossing that is already drawn.
    """
    out: dict[tuple[str, str], list] = {}
    for net in special_nets or []:
        if not supply_use(net):
            continue
        for w in net.wires:
            half = w.width_um / 2
            if w.y0 == w.y1:  # horizontal
                r = (min(w.x0, w.x1), w.y0 - half, max(w.x0, w.x1), w.y0 + half)
            elif w.x0 == w.x1:  # vertical
                r = (w.x0 - half, min(w.y0, w.y1), w.x0 + half, max(w.y0, w.y1))
            else:  # not Manhattan: its bounding box, widened
                r = (min(w.x0, w.x1) - half, min(w.y0, w.y1) - half, max(w.x0, w.x1) + half,
                     max(w.y0, w.y1) + half)
            out.setdefault((net.name, w.layer), []).append(r)
    return {k: np.asarray(v, float).reshape(-1, 4) for k, v in out.items()}


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


# A resource, not data: st.cache_data hands every caller a fresh copy (a pickle round trip), which for a 10k-cell
# layout was 80 ms of server CPU on every poll of the live Placement chapter. One shared Layout instead, its arrays
# made read-only, so a page that tried to change one in place would fail loudly rather than change it for everyone.
@st.cache_resource(show_spinner=False, max_entries=16)
def _read_layout(path: str, mtime: float, tech_dir: str | None) -> Layout:
    from engine.flow.fill import filler_cells
    from engine.io.def_io import read_def

    pdk = _pdk(tech_dir)
    macros = ((read_json(Path(path).parent.parent / "run.json", {}) or {}).get("config") or {}).get("macros")
    if macros:  # the run's hard macros (FlowConfig.macros) join the cells, as they did in the flow
        from engine.pdk import with_macros

        pdk = with_macros(pdk, macros)
    nl = read_def(path, pdk)
    rows = [(r.x0, r.x1, r.y) for r in nl.rows] if nl.rows else []
    fill_types = {name for name, _ in filler_cells(pdk)}
    is_fill = np.fromiter((t in fill_types for t in nl.cell_types), bool, count=len(nl.cell_types))
    lay = Layout(die=nl.die, core=getattr(nl, "core", None), rows=rows, names=list(nl.cell_names),
                 types=list(nl.cell_types), x=nl.x.copy(), y=nl.y.copy(), w=nl.cell_w.copy(), h=nl.cell_h.copy(),
                 is_io=nl.cell_is_io.copy(), is_fixed=nl.cell_fixed.copy(), power=power_shapes(nl.special_nets),
                 power_uses={n.name: supply_use(n) for n in nl.special_nets or [] if supply_use(n)},
                 is_fill=is_fill if is_fill.any() else None)
    return _read_only(lay)


def _read_only(lay: Layout) -> Layout:
    for a in (lay.x, lay.y, lay.w, lay.h, lay.is_io, lay.is_fixed, lay.is_fill, *lay.power.values()):
        if a is not None:
            a.flags.writeable = False
    return lay


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


@st.cache_data(show_spinner=False, max_entries=16)
def _routing_capacity(tech_dir: str | None, layers: int) -> float:
    from engine.flow.congestion import routing_capacity

    return float(routing_capacity(_pdk(tech_dir), layers))  # 25 ms a call: once per technology and layer count


def rudy_capacity(run: Run) -> float | None:
    """um of wire per um^2 the run's routing layers offer, to turn the placer's raw RUDY frames into the same
    demand / capacity ratio the routing step maps (engine.flow.congestion); None when it cannot be known."""
    cong = congestion(run)
    if cong is not None and "capacity_per_um2" in cong:
        return float(cong["capacity_per_um2"]) or None
    from engine.config import RouteConfig

    layers = int((run.config.get("route") or {}).get("layers", RouteConfig().layers))
    try:
        return _routing_capacity(run.config.get("tech_dir"), layers) or None
    except Exception as exc:  # noqa: BLE001 - a missing technology: the page shows no map, not a traceback
        log.warning("no routing capacity for %s: %s", run.id, exc)
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def _read_json_file(path: str, mtime: float):
    return json.loads(Path(path).read_text())


def cached_json(path: Path | None):
    """A JSON artefact, parsed once per file version (path and modification time); None if missing or broken."""
    if path is None:
        return None
    try:
        return _read_json_file(str(path), _mtime(Path(path)))
    except (OSError, ValueError):
        return None


def timing_paths(run: Run) -> list[dict]:
    data = cached_json(artefact(run, "timing", "paths", "paths.json"))
    if isinstance(data, dict):
        data = data.get("paths", [])
    return data if isinstance(data, list) else []


def clock_tree(run: Run) -> dict:
    """The clock tree cts wrote (tree.json: buffers, their loads, the clock port), {} when there is none."""
    data = cached_json(artefact(run, "cts", "tree", "tree.json"))
    return data if isinstance(data, dict) else {}


@st.cache_data(show_spinner=False, max_entries=32)
def _tail(path: str, mtime: float, lines: int) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def text_tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log, read once per file version."""
    if path is None or not Path(path).exists():
        return ""
    return _tail(str(path), _mtime(Path(path)), lines)


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


# ------------------------------------------------------------------------------------------------ GDS colours
def _hex(argb: int) -> str:
    return f"#{argb & 0xFFFFFF:06x}"


@st.cache_data(show_spinner=False, max_entries=8)
def _gds_colours(gds_path: str, mtime: float, layers_json: str, renderer: str) -> dict[str, str]:
    return gds_layer_colours(gds_path, json_file(Path(layers_json)) if layers_json else None, renderer)


def gds_layer_colours(gds_path: str | Path, layers: dict | None, renderer: str = "klayout") -> dict[str, str]:
    """Drawing layer name -> the colour it has in the step's layout.png, in GDS layer order.

    ``layers`` is the step's layers.json (name -> 'layer/datatype'); a GDS keeps numbers only. The picture is
    KLayout's LayoutView with its default palette (engine.flow.gds.render_png), which gives each layer a colour
    in load order: the same view, loaded here on the same file, tells which. The PIL fallback draws metals in
    the engine's own colours. Pin, label and obstruction purposes (``metal1.PIN``) share their layer's colour and
    are left out.
    """
    names = {v: k for k, v in (layers or {}).items() if "." not in k}
    if renderer == "pil":
        from engine.flow.gds import LAYER_COLOURS

        return {n: "#{:02x}{:02x}{:02x}".format(*LAYER_COLOURS[n]) for n in sorted(names.values(), key=_layer_key)
                if n in LAYER_COLOURS}
    import klayout.lay as lay

    view = lay.LayoutView()
    view.load_layout(str(gds_path), True)
    found: dict[str, tuple[tuple[int, int], str]] = {}
    it = view.begin_layers()
    while not it.at_end():
        node = it.current()
        src = node.source.split("@")[0]  # '6/0@1'
        name = names.get(src)
        if name and node.visible:
            ld = tuple(int(v) for v in src.split("/"))
            found[name] = (ld, _hex(node.eff_fill_color()))
        it.next()
    return {n: c for n, (_, c) in sorted(found.items(), key=lambda kv: kv[1][0])}


def _layer_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def gds_view_box(gds_path: str | Path) -> tuple[float, float, float, float]:
    """The area (um) KLayout's LayoutView shows after zoom_fit, as engine.flow.gds.render_png sets it up: the
    picture covers this box (the layout plus KLayout's margin), not the bare bounding box."""
    import klayout.lay as lay

    view = lay.LayoutView()
    for key, value in (("text-visible", "false"), ("grid-visible", "false"), ("cell-box-visible", "false")):
        view.set_config(key, value)
    view.load_layout(str(gds_path), True)
    view.max_hier()
    view.zoom_fit()
    b = view.box()
    return (b.left, b.bottom, b.right, b.top)


@st.cache_data(show_spinner=False, max_entries=8)
def _gds_view_box(gds_path: str, mtime: float) -> tuple[float, float, float, float]:
    return gds_view_box(gds_path)


def gds_die(run: Run) -> tuple[float, float, float, float] | None:
    """Where the run's layout.png goes on micron axes (x0, y0, x1, y1): KLayout's view box for its picture, the
    GDS bounding box for the PIL fallback's; None if unknown."""
    mm = run.metrics().get("gds", {}) or {}
    bbox = mm.get("gds__bbox_um")
    bbox = tuple(float(v) for v in bbox) if isinstance(bbox, list) and len(bbox) == 4 else None
    gds = artefact(run, "gds", "gds", "design.gds")
    if gds is None or mm.get("gds__renderer", "klayout") == "pil":
        return bbox
    try:
        return _gds_view_box(str(gds), _mtime(gds))
    except Exception as exc:  # noqa: BLE001 - without KLayout's view, the bounding box is close
        log.warning("no KLayout view box for %s: %s", gds, exc)
        return bbox


def gds_colours(run: Run) -> dict[str, str]:
    """The layer legend of the run's layout.png ({} when there is no GDS or it cannot be read)."""
    gds = artefact(run, "gds", "gds", "design.gds")
    if gds is None:
        return {}
    layers = artefact(run, "gds", "layers", "layers.json")
    renderer = (run.metrics().get("gds", {}) or {}).get("gds__renderer", "klayout")
    try:
        return _gds_colours(str(gds), _mtime(gds), str(layers) if layers else "", str(renderer))
    except Exception as exc:  # noqa: BLE001 - the picture stays; only its legend is missing
        log.warning("no layer colours for %s: %s", gds, exc)
        return {}
