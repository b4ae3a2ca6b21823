"""Floorplan: the core from the target utilisation and aspect ratio, rows from the LEF site, IO pins spread on
the die edge on routing tracks (qrouter can only reach pins that sit on its tracks).
"""
from __future__ import annotations

import math

import numpy as np

from engine.errors import EngineError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.io.def_io import write_def
from engine.io.yosys_json import netlist_from_yosys_json
from engine.netlist import PIN_OUTPUT, Netlist, Row
from engine.pdk import Pdk
from engine.runs import write_json


def _snap_up(v: float, grid: float) -> float:
    return math.ceil(v / grid - 1e-9) * grid


def _track_positions(lo: float, hi: float, pitch: float, offset: float) -> np.ndarray:
    first = math.ceil((lo - offset) / pitch - 1e-9)
    last = math.floor((hi - offset) / pitch + 1e-9)
    return offset + pitch * np.arange(first, last + 1)


def make_floorplan(netlist: Netlist, pdk: Pdk, utilization: float, aspect_ratio: float, margin_um: float,
                   pin_layer_h: str = "metal2", pin_layer_v: str = "metal3", halo_um: float = 10.0) -> dict[str, str]:
    """Set die, core, rows and IO positions on ``netlist`` in place; returns {terminal: layer}.

    Hard macros (cells whose type is one of ``pdk.block_names``) get room of their own: the core is the standard
    cells' area at the utilisation plus each macro with its halo; the macros are fixed along the core's bottom
    edge, then its top edge (`place_macros`), and the rows are cut around them and their halo."""
    if not 0.05 <= utilization <= 1.0:
        raise EngineError(f"utilisation {utilization:.2f} is outside 0.05..1.0: above 1 the cells cannot fit the "
                          "core at all", hint="use a target utilisation between 0.3 and 0.8",
                          code="floorplan.utilization")
    if not 0.1 <= aspect_ratio <= 10:
        raise EngineError(f"aspect ratio {aspect_ratio} is outside 0.1..10", code="floorplan.aspect_ratio")
    site = pdk.site
    area = netlist.cell_area()
    if area <= 0:
        raise EngineError("the design has no cells to place", code="floorplan.no_cells")
    blocks = macro_cells(netlist, pdk)
    bw, bh = netlist.cell_w[blocks], netlist.cell_h[blocks]
    std_area = area - float((bw * bh).sum())
    core_area = std_area / utilization + float(((bw + halo_um) * (bh + halo_um)).sum())
    width = math.sqrt(core_area / aspect_ratio)
    n_rows = max(1, math.ceil(width * aspect_ratio / site.height_um - 1e-9))
    core_w = _snap_up(max(core_area / (n_rows * site.height_um), site.width_um), site.width_um)
    std = ~netlist.cell_is_io
    std[blocks] = False
    widest = float(netlist.cell_w[std].max()) if std.any() else site.width_um
    core_w = max(core_w, _snap_up(widest, site.width_um))
    if len(blocks):  # room for the widest macro beside a strip of rows, and for the tallest below a row
        core_w = max(core_w, _snap_up(float(bw.max()) + halo_um + widest, site.width_um))
        n_rows = max(n_rows, math.ceil((float(bh.max()) + halo_um) / site.height_um - 1e-9) + 1)
        core_w, n_rows = _fit_macros(bw, bh, core_w, n_rows, site, halo_um)
    core_h = n_rows * site.height_um
    # Die origin at (0, 0); the core starts on the site grid and on a whole row pitch so cells land on tracks.
    x_grid = site.width_um
    y_grid = 1.0
    for layer in pdk.routing_layers():
        if layer.direction == "HORIZONTAL" and layer.pitch_um:
            y_grid = layer.pitch_um
            break
    cx0 = _snap_up(margin_um, x_grid)
    cy0 = _snap_up(margin_um, y_grid)
    die_w = _snap_up(cx0 + core_w + margin_um, x_grid)
    die_h = _snap_up(cy0 + core_h + margin_um, y_grid)
    netlist.die = (0.0, 0.0, die_w, die_h)
    netlist.core = (cx0, cy0, cx0 + core_w, cy0 + core_h)
    netlist.rows = [Row(y=cy0 + r * site.height_um, x0=cx0, x1=cx0 + core_w, site_w=site.width_um,
                        height=site.height_um, orient="N" if r % 2 == 0 else "FS", site=site.name)
                    for r in range(n_rows)]
    if len(blocks):
        spots = _shelves(bw, bh, cx0, cy0, core_w, core_h, site, y_grid, halo_um)
        assert spots is not None  # _fit_macros made the core big enough
        for c, (mx, my) in zip(blocks, spots):
            netlist.x[c], netlist.y[c] = mx, my
            netlist.cell_fixed[c] = True
        netlist.rows = cut_rows(netlist.rows, [(netlist.x[c] - halo_um, netlist.y[c] - halo_um,
                                                netlist.x[c] + netlist.cell_w[c] + halo_um,
                                                netlist.y[c] + netlist.cell_h[c] + halo_um) for c in blocks])
    # Movable cells start in the core centre (the placer spreads them).
    mov = ~netlist.cell_fixed
    netlist.x[mov] = cx0 + core_w / 2 - netlist.cell_w[mov] / 2
    netlist.y[mov] = cy0 + core_h / 2 - netlist.cell_h[mov] / 2
    return place_io(netlist, pdk, pin_layer_h, pin_layer_v)


def macro_cells(netlist: Netlist, pdk: Pdk) -> np.ndarray:
    """Indices of the hard-macro instances (types from the user's macro LEFs), in name order."""
    if not pdk.block_names:
        return np.zeros(0, dtype=np.int64)
    idx = [c for c, t in enumerate(netlist.cell_types) if t in pdk.block_names and not netlist.cell_is_io[c]]
    return np.asarray(sorted(idx, key=lambda c: netlist.cell_names[c]), dtype=np.int64)


def _shelves(bw: np.ndarray, bh: np.ndarray, cx0: float, cy0: float, core_w: float, core_h: float, site,
             y_grid: float, halo: float) -> list[tuple[float, float]] | None:
    """Lower-left corners for the macros: left to right along the core's bottom edge, then along its top edge,
    ``halo`` apart, x on the site grid and y on the horizontal track grid (so the pins keep their tracks); None
    when they do not fit. Deterministic: the order is the instances' name order, orientation N."""
    spots: list[tuple[float, float]] = []
    x_end = cx0 + core_w
    shelf, cursor = 0, cx0
    bottom_h = 0.0
    for w, h in zip(bw, bh):
        if cursor + w > x_end + 1e-6 and shelf == 0:
            shelf, cursor = 1, cx0
        if cursor + w > x_end + 1e-6:
            return None
        if shelf == 0:
            y = cy0
            bottom_h = max(bottom_h, float(h))
        else:
            y = math.floor((cy0 + core_h - h) / y_grid + 1e-9) * y_grid
            if y < cy0 + bottom_h + 2 * halo + site.height_um - 1e-6:
                return None
        spots.append((cursor, y))
        cursor = _snap_up(cursor + w + halo, site.width_um)
    return spots


def _fit_macros(bw: np.ndarray, bh: np.ndarray, core_w: float, n_rows: int, site, halo: float) -> tuple[float, int]:
    """The core grown (width, then rows, 5 % at a time) until the macros fit on its bottom and top edges."""
    for _ in range(200):
        if _shelves(bw, bh, 0.0, 0.0, core_w, n_rows * site.height_um, site, 1.0, halo) is not None:
            return core_w, n_rows
        core_w = _snap_up(core_w * 1.05, site.width_um)
        n_rows = max(n_rows + 1, int(n_rows * 1.05))
    raise EngineError(f"{len(bw)} macros do not fit the core even at {core_w:.0f} um wide",
                      hint="lower floorplan.macro_halo_um or floorplan.utilization", code="floorplan.utilization",
                      knob="floorplan.macro_halo_um")


def cut_rows(rows: list[Row], blocked: list[tuple[float, float, float, float]]) -> list[Row]:
    """The rows with the blocked rectangles (a macro and its halo) cut out; pieces shorter than a site dropped.
    Pieces keep their row's site grid (x0 moves by whole sites), so cells on them stay on the sites."""
    out: list[Row] = []
    for r in rows:
        spans = [(r.x0, r.x1)]
        for bx0, by0, bx1, by1 in blocked:
            if by0 >= r.y + r.height - 1e-6 or by1 <= r.y + 1e-6:
                continue
            lo = r.x0 + math.floor((bx0 - r.x0) / r.site_w + 1e-9) * r.site_w
            hi = r.x0 + math.ceil((bx1 - r.x0) / r.site_w - 1e-9) * r.site_w
            spans = [piece for a, b in spans for piece in ((a, min(b, lo)), (max(a, hi), b))]
            spans = [(a, b) for a, b in spans if b - a >= r.site_w - 1e-6]
        out += [Row(y=r.y, x0=a, x1=b, site_w=r.site_w, height=r.height, orient=r.orient, site=r.site)
                for a, b in spans]
    return out


def _pin_tracks(pdk: Pdk, name: str, knob: str) -> tuple[float, float]:
    """(pitch, offset) of the tracks IO pins on layer ``name`` sit on; a layer without tracks is the user's error."""
    routing = [layer.name for layer in pdk.routing_layers() if layer.pitch_um]
    try:
        layer = pdk.layer(name)
    except KeyError:
        layer = None
    if layer is None or not layer.pitch_um:
        what = "is not a layer of" if layer is None else "has no routing tracks (no PITCH) in"
        raise EngineError(f"pin layer {name!r} {what} {pdk.lef_path.name}", code="input.invalid", knob=knob,
                          hint=f"set {knob} to a routing layer: {', '.join(routing)}")
    return layer.pitch_um, layer.offset_um or 0.0


def place_io(netlist: Netlist, pdk: Pdk, pin_layer_h: str, pin_layer_v: str) -> dict[str, str]:
    """Inputs on the left then top edge, outputs on the right then bottom edge, evenly spread on tracks."""
    if netlist.die is None:
        raise EngineError("the IO pins cannot be placed before the die is sized", code="floorplan.pins")
    x0, y0, x1, y1 = netlist.die
    ph, oh = _pin_tracks(pdk, pin_layer_h, "floorplan.pin_layer_h")
    pv, ov = _pin_tracks(pdk, pin_layer_v, "floorplan.pin_layer_v")
    xs = _track_positions(x0 + ph, x1 - ph, ph, oh)  # top/bottom
    ys = _track_positions(y0 + pv, y1 - pv, pv, ov)  # left/right
    ios = [int(c) for c in np.flatnonzero(netlist.cell_is_io)]
    term_pin = {int(netlist.pin_cell[p]): p for p in range(netlist.n_pins) if netlist.cell_is_io[netlist.pin_cell[p]]}
    # The terminal pin of an input port drives (OUTPUT); keep the order of the ports as written.
    inputs = [c for c in ios if c in term_pin and netlist.pin_dir[term_pin[c]] == PIN_OUTPUT]
    others = [c for c in ios if c not in set(inputs)]
    sides: dict[str, list[int]] = {"left": [], "top": [], "right": [], "bottom": []}
    cap = {"left": len(ys), "right": len(ys), "top": len(xs), "bottom": len(xs)}
    total_cap = sum(cap.values())
    if len(ios) > total_cap:
        raise EngineError(f"{len(ios)} IO pins do not fit on the die edge ({total_cap} track positions)",
                          hint="lower the utilisation or change the aspect ratio to enlarge the die",
                          code="floorplan.pins")

    def fill(cells, order):
        for c in cells:
            for side in order:
                if len(sides[side]) < cap[side] // 2 or all(len(sides[s]) >= cap[s] // 2 for s in order):
                    if len(sides[side]) < cap[side]:
                        sides[side].append(c)
                        break

    fill(inputs, ["left", "top", "bottom", "right"])
    fill(others, ["right", "bottom", "top", "left"])
    layers: dict[str, str] = {}
    for side, cells in sides.items():
        if not cells:
            continue
        slots = ys if side in ("left", "right") else xs
        # Spread evenly over the available slots.
        idx = np.unique(np.round(np.linspace(0, len(slots) - 1, len(cells) + 2)[1:-1]).astype(int))
        if len(idx) < len(cells):
            idx = np.arange(len(cells)) + (len(slots) - len(cells)) // 2
        for c, k in zip(cells, idx):
            if side == "left":
                netlist.x[c], netlist.y[c] = x0, slots[k]
            elif side == "right":
                netlist.x[c], netlist.y[c] = x1, slots[k]
            elif side == "top":
                netlist.x[c], netlist.y[c] = slots[k], y1
            else:
                netlist.x[c], netlist.y[c] = slots[k], y0
            layers[netlist.cell_names[c]] = pin_layer_v if side in ("left", "right") else pin_layer_h
    return layers


class FloorplanStep(Step):
    id = "floorplan"
    inputs = (Input("synth", "netlist_json"),)
    outputs = ("def", "pins")
    uses = ("floorplan", "tech_dir")
    version = 3  # 3: hard macros fixed, rows cut around them; 2: the power grid in SPECIALNETS

    def run(self, ctx: StepContext) -> StepResult:
        fp = ctx.config.floorplan
        top = ctx.metrics("synth").get("design__top") or ctx.config.top
        netlist = netlist_from_yosys_json(ctx.artefact("synth", "netlist_json"), ctx.pdk, top)
        try:
            layers = make_floorplan(netlist, ctx.pdk, fp.utilization, fp.aspect_ratio, fp.core_margin_um,
                                    fp.pin_layer_h, fp.pin_layer_v, fp.macro_halo_um)
        except EngineError as exc:
            raise ctx.fail(exc.message, hint=exc.hint or "change floorplan.utilization or aspect_ratio",
                           code=exc.code if exc.code != EngineError.default_code else "floorplan.utilization",
                           knob=exc.knob) from None
        pdn_metrics: dict = {}
        if fp.power_grid:
            from engine.flow.pdn import build_grid, constant_pins, grid_metrics, tie_constants

            try:
                grid = build_grid(netlist, ctx.pdk, stripe_pitch_um=fp.pdn_stripe_pitch_um,
                                  strap_tracks=fp.pdn_strap_tracks, stripe_layer_name=fp.pdn_stripe_layer)
            except EngineError as exc:
                raise ctx.fail(exc.message, hint=exc.hint, code="floorplan.power_grid",
                               knob=exc.knob or "floorplan.power_grid") from None
            ties = tie_constants(grid, constant_pins(ctx.artefact("synth", "netlist_json"), top),
                                 set(netlist.cell_names))
            netlist.special_nets = grid.nets
            pdn_metrics = {**grid_metrics(grid), "floorplan__pdn__tie__count": ties}
        write_def(netlist, ctx.step_dir / "floorplan.def", ctx.pdk, pin_layers=layers)
        write_json(ctx.step_dir / "pins.json", layers)
        assert netlist.core is not None and netlist.die is not None  # make_floorplan sized them
        cx0, cy0, cx1, cy1 = netlist.core
        die = netlist.die
        core_area = (cx1 - cx0) * (cy1 - cy0)
        util = netlist.cell_area() / core_area
        blocks = macro_cells(netlist, ctx.pdk)
        metrics = {
            "floorplan__macro__count": int(len(blocks)),
            "floorplan__macro__area_um2": round(float((netlist.cell_w[blocks] * netlist.cell_h[blocks]).sum()), 3),
            "floorplan__die__width_um": round(die[2] - die[0], 3),
            "floorplan__die__height_um": round(die[3] - die[1], 3),
            "floorplan__die__area_um2": round((die[2] - die[0]) * (die[3] - die[1]), 3),
            "floorplan__core__width_um": round(cx1 - cx0, 3),
            "floorplan__core__height_um": round(cy1 - cy0, 3),
            "floorplan__core__area_um2": round(core_area, 3),
            "floorplan__utilization": round(util, 4),
            "floorplan__row__count": len(netlist.rows),
            "floorplan__site__count": int(sum(r.num_sites for r in netlist.rows)),
            "floorplan__io__count": int(netlist.cell_is_io.sum()),
            **pdn_metrics,
        }
        return StepResult(metrics=metrics, artefacts={"def": "floorplan.def", "pins": "pins.json"},
                          message=f"core {cx1 - cx0:.0f} x {cy1 - cy0:.0f} um, {len(netlist.rows)} rows, "
                                  f"utilisation {util:.0%}")
