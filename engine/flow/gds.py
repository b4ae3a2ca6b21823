"""GDSII with KLayout's Python module: merge the LEF and the routed DEF into one layout, write it, read it back to
check it (one top cell of the design's name, a bounding box, as many cell instances as the netlist has), and render
a PNG of it.

The osu018 cells come as LEF abstracts (outline, pins, obstructions); Debian ships no GDS of their transistors, so
the GDSII holds each cell's outline, pins and obstructions plus the real routing from qrouter. A foundry flow would
swap the abstracts for the cells' full layouts at this point.

Before the layout is built, filler cells close every gap of every row (engine.flow.fill): the DEF KLayout reads is
``filled.def``, the routed DEF plus its fillers.
"""
from __future__ import annotations

import logging
from pathlib import Path

from engine.errors import EngineError
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.fill import FillResult, filler_cells, write_filled_def
from engine.io.def_io import read_def
from engine.runs import write_json

log = logging.getLogger(__name__)

OUTLINE_LAYER = "OUTLINE"  # cell outlines (boundary of each placed cell)

# Colours of the fallback renderer (the LayoutView has its own palette).
LAYER_COLOURS = {"metal1": (70, 110, 255), "metal2": (230, 60, 200), "metal3": (60, 200, 110),
                  "metal4": (250, 170, 40), "metal5": (40, 210, 230), "metal6": (240, 80, 80),
                  OUTLINE_LAYER: (120, 120, 140)}


def load_lefdef(def_path: Path, lef_path: Path | list[Path]):
    """The DEF with its LEF as a KLayout Layout (cells as outlines, pins and obstructions; wires as drawn).
    ``lef_path`` may list the hard macros' LEFs after the technology's: a macro without a GDS of its own is
    drawn the same way, as its LEF outline, pins and obstructions."""
    import klayout.db as db

    opt = db.LoadLayoutOptions()
    cfg = opt.lefdef_config
    cfg.lef_files = [str(p) for p in ([lef_path] if isinstance(lef_path, (str, Path)) else lef_path)]
    cfg.read_lef_with_def = False
    # The LEF macros name FOREIGN layouts we do not have: take their geometry from the LEF itself.
    cfg.macro_resolution_mode = 1
    cfg.produce_cell_outlines = True
    cfg.cell_outline_layer = OUTLINE_LAYER
    cfg.produce_routing = True
    cfg.produce_pins = True
    cfg.produce_obstructions = True
    cfg.create_other_layers = True
    layout = db.Layout()
    layout.read(str(def_path), opt)
    return layout


def count_instances(layout, cell_names: set[str]) -> int:
    """Instances under the top cell whose cell is a library cell (vias are instances too, and do not count)."""
    top = layout.top_cell()
    n = 0
    for inst in top.each_inst():
        if layout.cell(inst.cell_index).name in cell_names:
            n += inst.size() if inst.is_regular_array() else 1
    return n


def layer_table(layout) -> dict[str, str]:
    """Layer name -> 'layer/datatype' as written to the GDS (GDSII keeps numbers only)."""
    out = {}
    for li in layout.layer_indexes():
        info = layout.get_info(li)
        out[info.name or f"{info.layer}/{info.datatype}"] = f"{info.layer}/{info.datatype}"
    return out


def render_png(gds_path: Path, png_path: Path, width: int) -> str:
    """Render with KLayout's LayoutView (headless); fall back to drawing the shapes with PIL. -> renderer used."""
    try:
        import klayout.lay as lay

        view = lay.LayoutView()
        view.set_config("background-color", "#101418")
        view.set_config("text-visible", "false")
        view.set_config("grid-visible", "false")
        view.set_config("cell-box-visible", "false")
        view.load_layout(str(gds_path), True)
        view.max_hier()
        view.zoom_fit()
        box = view.box()
        height = max(64, int(round(width * box.height() / max(box.width(), 1e-9))))
        view.save_image(str(png_path), int(width), height)
        if png_path.is_file() and png_path.stat().st_size > 0:
            return "klayout"
    except Exception as exc:  # noqa: BLE001 - a missing Qt-less view falls back to PIL
        log.info("KLayout LayoutView could not render (%s); drawing with PIL", exc)
    _render_pil(gds_path, png_path, width)
    return "pil"


def _render_pil(gds_path: Path, png_path: Path, width: int) -> None:
    import klayout.db as db
    from PIL import Image, ImageDraw

    layout = db.Layout()
    layout.read(str(gds_path))
    top = layout.top_cell()
    bbox = top.dbbox()
    scale = width / max(bbox.width(), 1e-9)
    height = max(64, int(round(bbox.height() * scale)))
    img = Image.new("RGB", (int(width), height), (16, 20, 24))
    draw = ImageDraw.Draw(img, "RGBA")

    def px(x: float, y: float) -> tuple[float, float]:
        return (x - bbox.left) * scale, height - (y - bbox.bottom) * scale

    for li in layout.layer_indexes():
        name = (layout.get_info(li).name or "").split(".")[0]
        colour = LAYER_COLOURS.get(name)
        if colour is None:
            continue
        it = top.begin_shapes_rec(li)
        while not it.at_end():
            shape = it.shape()
            if shape.is_box() or shape.is_path() or shape.is_polygon():
                b = shape.dbbox().transformed(it.dtrans())
                x0, y1 = px(b.left, b.bottom)
                x1, y0 = px(b.right, b.top)
                if name == OUTLINE_LAYER:
                    draw.rectangle([x0, y0, x1, y1], outline=colour + (200,))
                else:
                    draw.rectangle([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)], fill=colour + (150,))
            it.next()
    img.save(png_path)


class GdsStep(Step):
    id = "gds"
    inputs = (Input("synth", "netlist_json"), Input("place", "def"), Input("cts", "def", required=False),
              Input("route", "def", required=False))
    outputs = ("gds",)
    uses = ("gds", "tech_dir")
    version = 2  # 2: filler cells in every row gap (filled.def)

    def run(self, ctx: StepContext) -> StepResult:
        from engine.flow.route import placed_def_path

        try:
            import klayout.db as db
        except ImportError:
            raise ctx.fail("KLayout's Python module is not installed: pip install klayout",
                           code="gds.klayout_missing") from None
        if ctx.has_artefact("route", "def"):
            def_path, routed = ctx.artefact("route", "def"), True
        else:
            def_path, routed = placed_def_path(ctx), False
        top_name = ctx.metrics("synth").get("design__top") or ctx.config.top
        expected = ctx.metrics("synth").get("design__instance__count")
        if ctx.has_artefact("cts", "def"):  # the clock tree's and fanout repair's buffers are cells too
            expected = ctx.metrics("cts").get("cts__cell__count", expected)
        ctx.progress(0.05, "filling the gaps of every row with filler cells")
        fillers = filler_cells(ctx.pdk)
        fill = FillResult()
        if fillers:
            try:
                fill = write_filled_def(def_path, ctx.step_dir / "filled.def", read_def(def_path, ctx.pdk), ctx.pdk)
            except (EngineError, ValueError) as exc:
                raise ctx.fail(f"could not add filler cells to {def_path.name}: {exc}", code="gds.mismatch") from None
            def_path = ctx.step_dir / "filled.def"
        else:
            log.warning("%s has no filler cell (CLASS CORE SPACER or FILL*): the rows keep their gaps",
                        ctx.pdk.lef_path.name)
        ctx.progress(0.1, f"KLayout: reading the LEF and {def_path.name}")
        try:
            layout = load_lefdef(def_path, ctx.pdk.lef_paths)
        except RuntimeError as exc:
            raise ctx.fail(f"KLayout could not read {def_path.name} with {ctx.pdk.lef_path.name}: {exc}",
                           code="gds.mismatch") from None
        ctx.check_cancel()
        gds_path = ctx.step_dir / "design.gds"
        opts = db.SaveLayoutOptions()
        opts.format = "GDS2"
        layout.write(str(gds_path), opts)
        write_json(ctx.step_dir / "layers.json", layer_table(layout))

        ctx.progress(0.5, "reading the GDSII back to check it")
        back = db.Layout()
        back.read(str(gds_path))
        tops = back.top_cells()
        if len(tops) != 1:
            raise ctx.fail(f"the GDSII has {len(tops)} top cells ({', '.join(c.name for c in tops)}); expected one",
                           code="gds.mismatch")
        top = tops[0]
        if top_name and top.name != top_name:
            raise ctx.fail(f"the GDSII's top cell is '{top.name}', expected the design's top '{top_name}'",
                           code="gds.mismatch")
        fill_types = {name for name, _ in fillers}
        instances = count_instances(back, set(ctx.pdk.macros) - fill_types)
        if expected is not None and instances != expected:
            raise ctx.fail(f"the GDSII holds {instances} cell instances but the netlist has {expected}",
                           hint="the DEF and the netlist disagree; run place and route again", code="gds.mismatch")
        fill_instances = count_instances(back, fill_types) if fill_types else 0
        if fill_instances != len(fill.fills):
            raise ctx.fail(f"the GDSII holds {fill_instances} filler cells but {len(fill.fills)} were placed",
                           code="gds.mismatch")
        bbox = top.dbbox()
        ctx.progress(0.7, "rendering the layout")
        renderer = render_png(gds_path, ctx.step_dir / "layout.png", ctx.config.gds.png_width)
        metrics = {
            "gds__top_cell": top.name,
            "gds__instance__count": instances,
            "gds__bbox_um": [round(bbox.left, 3), round(bbox.bottom, 3), round(bbox.right, 3), round(bbox.top, 3)],
            "gds__file_bytes": gds_path.stat().st_size,
            "gds__layer__count": len(back.layer_indexes()),
            "gds__routed": routed,
            "gds__renderer": renderer,
            "gds__cells_are_abstracts": True,
            "fill__cell__count": len(fill.fills),
            "fill__filled_fraction": round(fill.filled_fraction, 6),
        }
        return StepResult(
            metrics=metrics,
            artefacts={"gds": "design.gds", "png": "layout.png", "layers": "layers.json",
                       **({"filled_def": "filled.def"} if fillers else {})},
            message=f"{gds_path.stat().st_size / 1024:.0f} KiB GDSII, {instances} cells, {len(fill.fills)} fillers, "
                    f"{bbox.width():.0f} x {bbox.height():.0f} um{'' if routed else ' (unrouted)'}")
