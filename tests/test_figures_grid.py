"""The cockpit's layout figures draw the power grid (vdd/gnd rails, stripes, rings: one trace per net and layer,
under the cells), heat maps of one quantity share one fixed, labelled scale, layouts are in um, and every routing
and GDS view names its metal layers' colours."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from page_helpers import app_page

from cockpit import data, figures
from engine.io.def_io import SpecialNet, SpecialVia, SpecialWire, read_def
from engine.pdk import load_pdk
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("streamlit").setLevel(logging.ERROR)  # cache_data outside a script run warns once per call


def _shapes(trace) -> int:
    """Rectangles in one polygon trace: 5 corners and a gap each."""
    x = np.asarray(trace.x, float)
    assert len(x) % 6 == 0
    return int(np.isnan(x).sum())


def _grid() -> list[SpecialNet]:
    vdd = SpecialNet("vdd", "POWER", [("*", "vdd")],
                     wires=[SpecialWire("metal1", 0.6, 0.0, 10.0, 50.0, 10.0),   # rail
                            SpecialWire("metal1", 0.6, 0.0, 30.0, 50.0, 30.0),   # rail
                            SpecialWire("metal4", 2.0, 20.0, 0.0, 20.0, 40.0)],  # stripe
                     vias=[SpecialVia("M1M2", "metal1", 20.0, 10.0)])
    # No USE line (a DEF as some tools write it): the name says it is the ground.
    gnd = SpecialNet("gnd", "", [("*", "gnd")],
                     wires=[SpecialWire("metal1", 0.6, 0.0, 20.0, 50.0, 20.0),
                            SpecialWire("metal4", 2.0, 40.0, 40.0, 40.0, 0.0),
                            SpecialWire("metal5", 2.0, 0.0, 39.0, 50.0, 39.0)])
    stub = SpecialNet("n42", "", [("u1", "A")], wires=[SpecialWire("metal2", 0.3, 1.0, 1.0, 1.0, 3.0)])
    return [vdd, gnd, stub]


def test_special_wires_become_rectangles_of_their_width():
    power = data.power_shapes(_grid())
    assert set(power) == {("vdd", "metal1"), ("vdd", "metal4"), ("gnd", "metal1"), ("gnd", "metal4"),
                          ("gnd", "metal5")}  # the router's pin stub n42 is not a supply; vias are not drawn
    np.testing.assert_allclose(power[("vdd", "metal1")], [[0, 9.7, 50, 10.3], [0, 29.7, 50, 30.3]])
    np.testing.assert_allclose(power[("vdd", "metal4")], [[19, 0, 21, 40]])
    np.testing.assert_allclose(power[("gnd", "metal4")], [[39, 0, 41, 40]])  # drawn top to bottom in the DEF


def test_layout_figure_draws_the_grid_under_the_cells_one_trace_per_net_and_layer():
    nets = _grid()
    power = data.power_shapes(nets)
    uses = {n.name: data.supply_use(n) for n in nets if data.supply_use(n)}
    assert uses == {"vdd": "POWER", "gnd": "GROUND"}
    fig = figures.layout_figure((0, 0, 50, 40), [5, 25], [10, 20], [4, 4], [10, 10], power=power, power_uses=uses)
    names = [t.name for t in fig.data]
    grid = [t for t in fig.data if (t.legendgroup or "").startswith("power-")]
    assert len(grid) == 5
    assert {t.name.split(" (")[0]: _shapes(t) for t in grid} == {
        "vdd · metal1": 2, "vdd · metal4": 1, "gnd · metal1": 1, "gnd · metal4": 1, "gnd · metal5": 1}
    # under the cells: plotly draws traces in order
    assert max(names.index(t.name) for t in grid) < names.index("cells")
    # one legend group per net (a click hides the whole net), vdd and gnd in different colours
    assert {t.legendgroup for t in grid} == {"power-vdd", "power-gnd"}
    vdd_rgb = {t.fillcolor.rsplit(",", 1)[0] for t in grid if t.legendgroup == "power-vdd"}
    gnd_rgb = {t.fillcolor.rsplit(",", 1)[0] for t in grid if t.legendgroup == "power-gnd"}
    assert len(vdd_rgb) == len(gnd_rgb) == 1 and vdd_rgb != gnd_rgb
    assert all(t.fill == "toself" for t in grid)
    assert fig.layout.showlegend
    # without a grid nothing changes: no supply traces, no legend
    bare = figures.layout_figure((0, 0, 50, 40), [5, 25], [10, 20], [4, 4], [10, 10])
    assert [t.name for t in bare.data] == ["cells"] and not bare.layout.showlegend


def test_fixture_floorplan_grid_is_drawn_whole(runs_dir):
    """On a real floorplan DEF: every special wire of vdd and gnd is one rectangle in the figure, and every row
    boundary has its metal1 rail."""
    root, run_id = runs_dir
    run = RunStore(root).get(run_id)
    lay = data.layout(run, "floorplan", "def", "floorplan.def")
    path = data.artefact(run, "floorplan", "def", "floorplan.def")
    nl = read_def(path, load_pdk(run.config.get("tech_dir")))
    supplies = [n for n in nl.special_nets or [] if n.use in ("POWER", "GROUND")]
    assert {n.name for n in supplies} == {"vdd", "gnd"}
    io = lay.is_io
    fig = figures.layout_figure(lay.die, lay.x[io], lay.y[io], lay.w[io], lay.h[io], is_io=io[io], rows=lay.rows,
                                power=lay.power, power_uses=lay.power_uses)
    grid = [t for t in fig.data if (t.legendgroup or "").startswith("power-")]
    for net in supplies:
        drawn = sum(_shapes(t) for t in grid if t.legendgroup == f"power-{net.name}")
        assert drawn == len(net.wires) > 0
    rails = np.vstack([v for (_, layer), v in lay.power.items() if layer == "metal1"])
    centres = (rails[:, 1] + rails[:, 3]) / 2
    height = nl.rows[0].height
    for y in sorted({r[2] for r in lay.rows} | {r[2] + height for r in lay.rows}):
        assert np.isclose(centres, y, atol=1e-6).any(), f"no rail drawn at the row boundary y = {y}"


def test_heat_maps_of_one_quantity_share_one_fixed_labelled_scale():
    rng = np.random.default_rng(0)
    run_a = rng.random((16, 16)) * 0.4  # a quiet run
    run_b = rng.random((32, 24)) * 3.0  # a crowded one, other bins
    a = figures.heatmap_figure(run_a, (0, 0, 100, 100), "rudy", title="A").data[0]
    b = figures.heatmap_figure(run_b, (0, 0, 300, 200), "rudy", title="B").data[0]
    assert (a.zmin, a.zmax) == (b.zmin, b.zmax) == (figures.HEAT_SCALES["rudy"].zmin, figures.HEAT_SCALES["rudy"].zmax)
    assert a.colorscale == b.colorscale
    assert a.colorbar.title.text == b.colorbar.title.text
    assert "capacity" in a.colorbar.title.text and "fixed scale" in a.colorbar.title.text
    d = figures.heatmap_figure(run_a, None, "density", title="D").data[0]
    assert "1 = full" in d.colorbar.title.text and d.zmax == figures.HEAT_SCALES["density"].zmax
    with pytest.raises(KeyError):
        figures.heatmap_figure(run_a, None, "temperature", title="?")


def test_placer_rudy_frames_use_the_routing_maps_ratio(runs_dir):
    """The Placement chapter divides the placer's RUDY (um/um^2) by the same capacity the routing step uses, so
    its map is the Routing chapter's quantity."""
    from engine.config import RouteConfig
    from engine.flow.congestion import routing_capacity

    root, run_id = runs_dir
    run = RunStore(root).get(run_id)
    cap = data.rudy_capacity(run)
    assert cap == pytest.approx(routing_capacity(load_pdk(None), RouteConfig().layers)) and cap > 0


def test_layouts_are_in_um(tmp_path):
    figs = [figures.layout_figure((0, 0, 10, 10), [1], [1], [2], [2]),
            figures.heatmap_figure(np.ones((4, 4)), (0, 0, 10, 10), "density", title="d")]
    from PIL import Image

    png = tmp_path / "l.png"
    Image.new("RGB", (20, 20)).save(png)
    figs.append(figures.image_figure(png, (0, 0, 10, 10)))
    for fig in figs:
        assert fig.layout.xaxis.title.text == "x (µm)" and fig.layout.yaxis.title.text == "y (µm)"


def test_wires_keep_their_layers_colour_whatever_else_is_routed():
    seg = np.array([[0.0, 0.0, 5.0, 0.0]])
    both = figures.add_wires(figures.layout_figure(None, [], []), {"metal1": seg, "metal2": seg})
    alone = figures.add_wires(figures.layout_figure(None, [], []), {"metal2": seg})
    colour = {t.name: t.line.color for t in both.data if t.name in ("metal1", "metal2")}
    assert colour["metal1"] != colour["metal2"]
    assert [t.line.color for t in alone.data if t.name == "metal2"] == [colour["metal2"]]
    assert alone.layout.showlegend


def test_gds_legend_names_the_colour_of_each_drawing_layer(tmp_path):
    import klayout.db as db

    layout = db.Layout()
    top = layout.create_cell("top")
    for ld in ((6, 0), (6, 2), (8, 0)):
        top.shapes(layout.layer(*ld)).insert(db.Box(0, 0, 1000, 1000))
    gds = tmp_path / "design.gds"
    layout.write(str(gds))
    layers = {"metal1": "6/0", "metal1.PIN": "6/2", "metal2": "8/0"}
    colours = data.gds_layer_colours(gds, layers, "klayout")
    assert list(colours) == ["metal1", "metal2"]  # pin purpose left out, GDS layer order
    assert all(c.startswith("#") and len(c) == 7 for c in colours.values()) and len(set(colours.values())) == 2
    # the PIL fallback draws metals in the engine's colours, the ones the cockpit's wire views use
    assert data.gds_layer_colours(gds, layers, "pil") == {k: figures.METAL_COLORS[k] for k in ("metal1", "metal2")}
    fig = figures.add_layer_legend(figures.image_figure(_png(tmp_path), (0, 0, 1, 1)), colours)
    legend = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in legend] == ["metal1", "metal2"] and fig.layout.showlegend


def _png(tmp_path: Path) -> Path:
    from PIL import Image

    p = tmp_path / "layout.png"
    Image.new("RGB", (10, 10)).save(p)
    return p


def test_floorplan_page_draws_the_grid(runs_dir):
    _, run_id = runs_dir
    at = app_page(ROOT / "pages" / "03_floorplan.py", run_id)
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    names = [t.get("name", "") for c in charts for t in c.get("data", [])]
    assert any(n.startswith("vdd · metal1") for n in names) and any(n.startswith("gnd · metal1") for n in names)
    assert "Power grid" in " ".join(m.value for m in at.markdown)


def test_gds_picture_sits_on_the_um_it_shows(tmp_path):
    """layout.png covers KLayout's view box, margin included: mapped through gds_view_box, the picture of a box
    lands on the box's own microns (the bare bounding box would put it several um off)."""
    import klayout.db as db
    from PIL import Image

    from engine.flow.gds import render_png

    layout = db.Layout()
    layout.dbu = 0.001
    top = layout.create_cell("top")
    top.shapes(layout.layer(6, 0)).insert(db.Box(10_000, 5_000, 60_000, 45_000))  # 10..60 x 5..45 um
    gds = tmp_path / "design.gds"
    layout.write(str(gds))
    png = tmp_path / "layout.png"
    if render_png(gds, png, 800) != "klayout":
        pytest.skip("KLayout's LayoutView is not available here")
    x0, y0, x1, y1 = data.gds_view_box(gds)
    im = np.asarray(Image.open(png).convert("RGB")).astype(int)
    bg = im[0, 0]
    ys, xs = np.nonzero(np.abs(im - bg).sum(axis=2) > 60)
    h, w = im.shape[:2]
    left, right = x0 + xs.min() / w * (x1 - x0), x0 + (xs.max() + 1) / w * (x1 - x0)
    top_um, bottom_um = y1 - ys.min() / h * (y1 - y0), y1 - (ys.max() + 1) / h * (y1 - y0)
    tol = 0.5  # um: a few pixels and the frame line KLayout draws around a shape
    assert left == pytest.approx(10, abs=tol) and right == pytest.approx(60, abs=tol)
    assert bottom_um == pytest.approx(5, abs=tol) and top_um == pytest.approx(45, abs=tol)
    # the bare bounding box (10..60 um) is what the picture would be stretched over otherwise: visibly off
    assert 10 + xs.min() / w * 50 > 10 + 2 * tol
