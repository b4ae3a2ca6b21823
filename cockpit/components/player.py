"""The placement player: the placer's frames animated in the browser, cells, density and RUDY side by side.

Re-rendering Plotly figures from the server managed one or two frames a second. This component
(placement_player/: index.html + player.js, plain <canvas>, no build step) receives a run's frames once and
compactly, keeps them, and draws them itself: live while the placer runs (the page's fragment sends only the
frames that are new since its last send, about once a second; the player spreads each batch over the time since
the previous one and shows the placer's own pace about a second behind it, the cells gliding between two frames,
LIVE_FPS pictures a second), then a replay that starts by itself at presenter pace.

The bundle (the component's arguments, JSON):
  run_key  the run and the place step's start time: a new key resets the player
  start    index of the first frame in ``frames``; the ones before were sent earlier in this session
  total    frames the run has now;  live: the placer is running;  done: placement has ended
  base     sent with start == 0: box [x0, y0, x1, y1] (um, what the positions are quantised over), core,
           cell sizes, I/O pins, the fixed colour scales (figures.HEAT_SCALES), cells drawn / in the design
  frames   per frame: iteration, hpwl, overflow; x, y as uint16 over the box (base64); density and rudy maps as
           uint8 over their fixed scale (base64, rows from the bottom)
  stage    once placement has ended: the stages after global placement as their own pictures (steps: legal, from
           stages.npz, and detailed, placed.def; or one "final" step for runs that did not save the legal positions
           apart, recorded: false), each with the same cells' positions and its density map, and the numbers of each
           stage (HPWL after global, legal, detailed; displacement of legalisation and of detailed placement)
  curves   HPWL and overflow of every iteration (history.json), once placement has ended
  pace, stage_dwell  the replay's seconds per frame (the page's, until the viewer moves the player's own slider),
           and how many frame times each stage after global placement stays on screen

When the player finds a gap (it was remounted, or missed a message) it asks for everything again through its
value ({"resend": nonce}); the page then sends from frame 0.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

from cockpit import data, figures
from engine.runs import Run

COMPONENT_DIR = Path(__file__).parent / "placement_player"
DRAW_LIMIT = 10000  # cells drawn per frame; above it the same fixed subsample on every frame (no flicker)
LIVE_FPS = 10.0     # pictures a second while live (between two placer frames the cells glide)
PACE_S = 0.5        # presenter pace of the replay, seconds per frame (the player has a slider, 0.1-1.0 s)
STAGE_DWELL = 3     # in a replay each stage after global placement (legal, detailed) stays this many frame times
Q16 = 65535
Q8 = 255

_component = components.declare_component("placement_player", path=str(COMPONENT_DIR))


# ------------------------------------------------------------------------------------------------ encoding
def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unb64(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


def quantise_positions(v, lo: float, hi: float) -> str:
    """Coordinates in [lo, hi] um as little-endian uint16 (0 = lo, 65535 = hi), base64; outside values clip."""
    span = max(float(hi) - float(lo), 1e-9)
    q = np.rint((np.asarray(v, np.float64) - lo) / span * Q16)
    return _b64(np.clip(np.nan_to_num(q), 0, Q16).astype("<u2"))


def dequantise_positions(s: str, lo: float, hi: float) -> np.ndarray:
    """The inverse of quantise_positions: within (hi - lo) / 65535 / 2 of the original (inside the box)."""
    return lo + _unb64(s, "<u2").astype(np.float64) / Q16 * (float(hi) - float(lo))


def quantise_lengths(v, span: float) -> str:
    """Cell widths or heights as uint16 fractions of the box side (the player scales them like positions)."""
    q = np.rint(np.asarray(v, np.float64) / max(float(span), 1e-9) * Q16)
    return _b64(np.clip(np.nan_to_num(q), 0, Q16).astype("<u2"))


def scale_spec(quantity: str) -> dict:
    """A heat scale (figures.HEAT_SCALES) as the player draws it: stops, fixed range, unit."""
    s = figures.HEAT_SCALES[quantity]
    return {"quantity": quantity, "stops": [[float(p), c] for p, c in s.colorscale], "zmin": s.zmin, "zmax": s.zmax,
            "unit": s.unit}


def quantise_map(grid, quantity: str) -> dict:
    """A bin map as uint8 over its quantity's fixed range (0 = zmin, 255 = zmax, values beyond saturate)."""
    s = figures.HEAT_SCALES[quantity]
    z = np.asarray(grid, np.float64)
    if z.ndim != 2:
        raise ValueError("a map needs a 2-D grid")
    q = np.rint(np.clip((np.nan_to_num(z) - s.zmin) / (s.zmax - s.zmin), 0.0, 1.0) * Q8).astype(np.uint8)
    return {"shape": [int(z.shape[0]), int(z.shape[1])], "q": _b64(q)}


def dequantise_map(m: dict, quantity: str) -> np.ndarray:
    """The inverse of quantise_map: within (zmax - zmin) / 510 of the original, for values inside the range."""
    s = figures.HEAT_SCALES[quantity]
    q = _unb64(m["q"], np.uint8).reshape(m["shape"]).astype(np.float64)
    return s.zmin + q / Q8 * (s.zmax - s.zmin)


def encode_frame(f: dict, pick: np.ndarray, box, *, rudy_capacity: float | None = None) -> dict:
    """One placer frame (engine.flow.place's npz as a dict) for the player: the `pick` cells' positions and the
    two maps on their fixed scales (RUDY as demand / capacity when the capacity is known)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    out = {"it": int(f.get("iteration", 0)), "hpwl": float(f.get("hpwl", 0.0)),
           "overflow": float(f.get("overflow", 0.0)),
           "x": quantise_positions(np.asarray(f["x"])[pick], x0, x1),
           "y": quantise_positions(np.asarray(f["y"])[pick], y0, y1)}
    if "density" in f:
        out["density"] = quantise_map(f["density"], "density")
    if "rudy" in f:
        rudy = np.asarray(f["rudy"], np.float64)
        out["rudy"] = quantise_map(rudy / rudy_capacity if rudy_capacity else rudy, rudy_quantity(rudy_capacity))
    return out


def decode_frame(e: dict, box, *, rudy_capacity: float | None = None) -> dict:
    """What the player reads back from an encoded frame (tests use it: positions in um, maps in their units)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    out = {"iteration": e["it"], "hpwl": e["hpwl"], "overflow": e["overflow"],
           "x": dequantise_positions(e["x"], x0, x1), "y": dequantise_positions(e["y"], y0, y1)}
    if "density" in e:
        out["density"] = dequantise_map(e["density"], "density")
    if "rudy" in e:
        out["rudy"] = dequantise_map(e["rudy"], rudy_quantity(rudy_capacity))
    return out


def rudy_quantity(capacity: float | None) -> str:
    """The RUDY map's scale: demand / track capacity when the capacity is known, raw wire density otherwise."""
    return "rudy" if capacity else "rudy_demand"


def density_map(x, y, w, h, core, shape) -> np.ndarray:
    """Cell area / bin area on a (ny, nx) grid over the core (rows from the bottom): the legal placement's map,
    the same quantity the placer's frames carry. Exact overlap of each cell with each bin, O(cells x bins)."""
    cx0, cy0, cx1, cy1 = (float(v) for v in core)
    ny, nx = int(shape[0]), int(shape[1])
    ex = np.linspace(cx0, cx1, nx + 1)
    ey = np.linspace(cy0, cy1, ny + 1)
    x = np.asarray(x, float)[:, None]
    y = np.asarray(y, float)[:, None]
    ox = np.clip(np.minimum(x + np.asarray(w, float)[:, None], ex[None, 1:]) - np.maximum(x, ex[None, :-1]), 0, None)
    oy = np.clip(np.minimum(y + np.asarray(h, float)[:, None], ey[None, 1:]) - np.maximum(y, ey[None, :-1]), 0, None)
    area = (ex[1] - ex[0]) * (ey[1] - ey[0])
    return (oy.T @ ox) / max(area, 1e-12)   # (ny, nx)


# ------------------------------------------------------------------------------------------------ a run's bundle
@st.cache_data(show_spinner=False, max_entries=4096)
def _encoded(path: str, mtime: float, box: tuple, limit: int, cap: float | None) -> dict | None:
    f = data.frame(Path(path))
    if f is None:
        return None
    cells = np.asarray(f.get("cells", np.arange(len(f["x"]))))
    return encode_frame(f, figures.subsample(len(cells), limit), box, rudy_capacity=cap)


def _box(lay, f: dict | None) -> tuple[float, float, float, float] | None:
    if lay is not None and lay.die:
        return tuple(float(v) for v in lay.die)
    if f is not None and "core" in f:
        return tuple(float(v) for v in np.asarray(f["core"]).tolist())
    return None


def _base(run: Run, f: dict, box, lay, cap: float | None, limit: int) -> dict:
    cells = np.asarray(f.get("cells", np.arange(len(f["x"]))), int)
    pick = figures.subsample(len(cells), limit)
    x0, y0, x1, y1 = box
    core = tuple(float(v) for v in np.asarray(f["core"]).tolist()) if "core" in f else (lay.core if lay else box)
    base = {"box": list(box), "core": list(core), "drawn": int(len(pick)), "cells": int(len(cells)),
            "scales": {"density": scale_spec("density"), "rudy": scale_spec(rudy_quantity(cap))}}
    if lay is not None and len(cells) and cells.max() < len(lay.w):
        base["w"] = quantise_lengths(lay.w[cells[pick]], x1 - x0)
        base["h"] = quantise_lengths(lay.h[cells[pick]], y1 - y0)
        base["cells"] = int(lay.n_cells)
        io = lay.is_io
        if io.any():
            base["io"] = {"x": quantise_positions(lay.x[io] + lay.w[io] / 2, x0, x1),
                          "y": quantise_positions(lay.y[io] + lay.h[io] / 2, y0, y1)}
    return base


# ------------------------------------------------------------------------------------------------ stages
STAGE_LABELS = {"legal": "after legalisation (Tetris + Abacus)", "detailed": "after detailed placement",
                "final": "after legalisation + detailed placement"}


@st.cache_data(show_spinner=False, max_entries=16)
def _read_stages(path: str, mtime: float) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def read_stages(run: Run) -> dict | None:
    """The place step's stages.npz (engine.flow.place.write_stages: positions after global placement,
    legalisation and detailed placement, each stage's HPWL, displacement), None for runs that did not record it."""
    path = data.artefact(run, "place", "stages", "stages.npz")
    if path is None:
        return None
    try:
        return _read_stages(str(path), path.stat().st_mtime)
    except Exception:  # noqa: BLE001 - unreadable: the page says it was not recorded, as for an old run
        return None


def stage_numbers(run: Run) -> dict:
    """Each stage's HPWL (um) and the displacement of legalisation and detailed placement, from stages.npz when
    the run has it, else from the step's metrics; `recorded` says whether the legal positions were saved apart."""
    m = run.metrics().get("place", {})
    s = read_stages(run)
    out = {"recorded": s is not None, "hpwl_global": m.get("placement__hpwl__global"),
           "hpwl_legal": m.get("placement__hpwl__legal"), "hpwl": m.get("placement__hpwl"),
           "moves": m.get("placement__detailed__moves"), "disp_mean": m.get("placement__displacement__mean"),
           "disp_max": m.get("placement__displacement__max"), "legalize_s": m.get("placement__runtime__legalize_s"),
           "detailed_s": m.get("placement__runtime__detailed_s"), "iterations": m.get("placement__iterations"),
           "global_s": m.get("placement__runtime__global_s")}
    if s is not None:
        for key, name in (("hpwl_global", "hpwl_global"), ("hpwl_legal", "hpwl_legal"), ("hpwl", "hpwl_detailed"),
                          ("disp_mean", "disp_legal_mean"), ("disp_max", "disp_legal_max")):
            if name in s:
                out[key] = round(float(s[name]), 3)
        if "disp_detailed_mean" in s:
            out.update(detailed_disp_mean=round(float(s["disp_detailed_mean"]), 3),
                       detailed_disp_max=round(float(s["disp_detailed_max"]), 3),
                       detailed_moved=int(s["disp_detailed_moved"]), movable=int(np.sum(s["movable"])))
        out["stages"] = [str(v) for v in s["stages"]]
    return out


@st.cache_data(show_spinner=False, max_entries=32)
def _stage_cached(key: tuple, _run: Run, _last: dict, _lay_fp, box: tuple, limit: int) -> dict | None:
    run, last, lay_fp = _run, _last, _lay_fp
    lay = data.layout(run, "place", "def", "placed.def")
    if lay is None or lay_fp is None:
        return None
    cells = np.asarray(last.get("cells", np.arange(len(last["x"]))), int)
    if not len(cells) or cells.max() >= len(lay.x) or lay.names[: len(lay_fp.names)] != lay_fp.names:
        return None  # not the same cells in the same order: no before/after to draw
    sel = cells[figures.subsample(len(cells), limit)]
    x0, y0, x1, y1 = box
    out = stage_numbers(run)
    mov = ~lay.is_io
    shape = np.asarray(last["density"]).shape if "density" in last and "core" in last else None
    core = np.asarray(last["core"]).tolist() if shape else None

    def step(name: str, x: np.ndarray, y: np.ndarray, hpwl) -> dict:
        e = {"name": name, "label": STAGE_LABELS[name], "hpwl": hpwl,
             "x": quantise_positions(x[sel], x0, x1), "y": quantise_positions(y[sel], y0, y1)}
        if shape:
            e["density"] = quantise_map(density_map(x[mov], y[mov], lay.w[mov], lay.h[mov], core, shape), "density")
        return e

    s = read_stages(run)
    if s is not None and "x_legal" in s and len(s["x_legal"]) == len(lay.x) and list(s["names"]) == lay.names:
        steps = [step("legal", s["x_legal"].astype(float), s["y_legal"].astype(float), out["hpwl_legal"])]
        if "x_detailed" in s:
            steps.append(step("detailed", lay.x, lay.y, out["hpwl"]))
    else:
        out["recorded"] = False
        steps = [step("final", lay.x, lay.y, out["hpwl"])]
    out["steps"] = steps
    return out


def _stage(run: Run, last_path: Path, last: dict, box, lay_fp, limit: int) -> dict | None:
    """The stages after global placement for the frames' cells: legalised (stages.npz) and detailed (placed.def),
    or, for a run that did not save the legal positions apart, the final one alone; with each stage's numbers.
    Cached on the files' times: the page sends it on every full page run."""
    placed = data.artefact(run, "place", "def", "placed.def")
    sp = data.artefact(run, "place", "stages", "stages.npz")
    mt = [p.stat().st_mtime if p is not None else 0.0 for p in (placed, sp, last_path)]
    key = (str(run.dir), str(last_path), *mt)
    return _stage_cached(key, run, last, lay_fp, tuple(box), limit)


def bundle(run: Run, *, start: int = 0, with_stage: bool = True, limit: int = DRAW_LIMIT,
           pace_s: float = PACE_S) -> dict | None:
    """The player's arguments for `run` from frame `start` on (see the module doc); None without frames.
    `with_stage`: add the legalised stage and the curves once placement has ended (once per player is enough)."""
    files = data.frame_files(run)
    if not files:
        return None
    first = data.frame(files[0])
    if first is None:
        return None
    lay = data.layout(run, "floorplan", "def", "floorplan.def")
    box = _box(lay, first)
    if box is None:
        return None
    cap = data.rudy_capacity(run)
    prog = run.progress().get("place", {})
    place_m = run.metrics().get("place", {})
    done = bool(place_m) and prog.get("status") != "running"
    start = max(0, min(int(start), len(files)))
    frames = []
    for p in files[start:]:
        e = _encoded(str(p), p.stat().st_mtime if p.exists() else 0.0, tuple(box), limit, cap)
        if e is None:  # being written right now: the next send brings it
            break
        frames.append(e)
    out = {"run_key": f"{run.id}:{prog.get('started', '')}", "start": start, "total": start + len(frames),
           "live": prog.get("status") == "running", "done": done, "pace": float(pace_s), "live_fps": LIVE_FPS,
           "stage_dwell": STAGE_DWELL,
           "frames": frames}
    if start == 0:
        out["base"] = _base(run, first, box, lay, cap, limit)
    if done and with_stage:
        last = data.frame(files[-1])
        if last is not None:
            out["stage"] = _stage(run, files[-1], last, box, lay, limit)
        c = data.curves(run)
        if len(c.get("iteration", [])) > 1:
            out["curves"] = {k: [round(float(v), 5) for v in c[k]] for k in ("iteration", "hpwl", "overflow")}
        # The replay starts by itself when the placer was quicker than a replay at presenter pace.
        out["autoplay"] = float(place_m.get("placement__runtime__global_s", 0.0)) < len(files) * pace_s
    return out


def _sent_key(key: str) -> str:
    return f"_player_sent:{key}"


def forget(key: str) -> None:
    """Call at the top of a page run: a full page run may mount a new player, so the next send is complete."""
    st.session_state.pop(_sent_key(key), None)


def show(run: Run, *, key: str, height: int = 800, pace_s: float = PACE_S) -> dict | None:
    """Draw the player for `run`. Called again within a fragment, it sends only what is new since its last call
    (frames, then the legalised stage once); a page run after forget(key) sends everything."""
    sent = st.session_state.get(_sent_key(key))
    asked = st.session_state.get(key)
    resend = asked.get("resend") if isinstance(asked, dict) else None
    if sent is not None and (sent.get("run") != run.id or resend != sent.get("answered")):
        sent = None  # another run, or the player asked for everything again (remounted, or missed a message)
    start = int(sent["frames"]) if sent else 0
    b = bundle(run, start=start, with_stage=not (sent and sent.get("stage")), pace_s=pace_s)
    if b is None:
        # No frame yet: read what the first send needs now (the floorplan's cells: seconds for a 10k-cell DEF on a
        # busy machine), not after the first frame has come; both are cached for the sends that follow.
        data.layout(run, "floorplan", "def", "floorplan.def")
        data.rudy_capacity(run)
        return None
    st.session_state[_sent_key(key)] = {"run": run.id, "frames": b["total"], "answered": resend,
                                        "stage": bool(b.get("stage")) or bool(sent and sent.get("stage"))}
    _component(**b, key=key, default=None, height=height)
    return b
