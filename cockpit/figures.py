"""Plotly figures of a layout: cells, heat maps, convergence curves, the worst timing path.

All coordinates are microns (axis titles say so). Cells are drawn as filled rectangles in one trace (one polygon
per cell, separated by None) up to `max_rects`, and as WebGL points beyond that, so a 5,000+ cell design stays
smooth; the power grid likewise, one trace per net and layer, under the cells. A small trace is SVG, a big one
WebGL (`scatter`): the picture is the same, and a small design's page shows without setting up WebGL; routed
wires likewise, decided for all layers together (a few thousand segments in SVG, more in WebGL).
Nothing here reads files: cockpit.data does, these functions only draw arrays.

One look for one fact: every heat map of a quantity takes its colour scale, range and unit from HEAT_SCALES (the
same on every page and every frame of a run, so a colour means one number everywhere), and every metal layer has
one colour (METAL_COLORS) on every routing view.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from engine.flow.gds import LAYER_COLOURS as _GDS_COLOURS

CELL_COLOR = "rgba(11, 92, 173, 0.55)"
CELL_LINE = "rgba(11, 92, 173, 0.9)"
IO_COLOR = "#d9480f"
FIXED_COLOR = "rgba(90, 90, 90, 0.6)"
DIE_COLOR = "#1b2330"
PATH_COLOR = "#e8590c"
# White for empty through yellow and orange to dark red: readable on a projector, and "hot" means crowded.
HEAT_SCALE = [[0.0, "#ffffff"], [0.15, "#fff3c4"], [0.4, "#fdb44b"], [0.65, "#e8590c"], [0.85, "#b3261e"],
              [1.0, "#5c0a0a"]]
FONT = dict(size=15)
# Blue (fewer than before) through white to red (more): difference maps, 0 = no change.
DIFF_SCALE = [[0.0, "#1c4f8c"], [0.3, "#8fb8e8"], [0.5, "#ffffff"], [0.7, "#f4a582"], [1.0, "#8c1c13"]]
UM = "µm"


@dataclass(frozen=True)
class HeatScale:
    """How one quantity is coloured wherever it is drawn: scale, fixed range, unit for the colour bar."""

    colorscale: list
    zmin: float
    zmax: float
    unit: str

    def colorbar_title(self) -> str:
        return f"{self.unit}<br>fixed scale {self.zmin:g} to {self.zmax:g}"


# quantity -> its one scale. Ranges are fixed (not each map's own max) so frames of a run and runs of a design
# compare by eye; values past zmax saturate (the colour bar says where). Density: cell area / bin area, 1 = full,
# 2 = twice over-full (the placer's first frames, cells piled up). RUDY: wire demand / routing-track capacity of
# the allowed layers (engine.flow.congestion), 1 = every track used. RUDY demand is the raw wire density; 6 um/um^2
# is 1.5x what four osu018 metals offer.
HEAT_SCALES: dict[str, HeatScale] = {
    "density": HeatScale(HEAT_SCALE, 0.0, 2.0, "cell area ÷ bin area (1 = full)"),
    "rudy": HeatScale(HEAT_SCALE, 0.0, 1.5, "wire demand ÷ track capacity (1 = full)"),
    "rudy_demand": HeatScale(HEAT_SCALE, 0.0, 6.0, "µm of wire per µm²"),
    "density_diff": HeatScale(DIFF_SCALE, -1.0, 1.0, "density change (B − A)"),
    "rudy_diff": HeatScale(DIFF_SCALE, -0.75, 0.75, "congestion change (B − A)"),
}

# One colour per metal layer on every routing view: the engine's own GDS renderer's colours (its fallback when
# KLayout's LayoutView is missing), so a vector view and such a picture agree.
METAL_COLORS = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in _GDS_COLOURS.items()
                if name.startswith("metal")}
OTHER_LAYER_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]

# Supplies: red for power, green for ground; metal1 followpin rails drawn stronger than the stripes and rings above.
POWER_COLORS = {"POWER": (201, 42, 42), "GROUND": (12, 140, 90)}
SUPPLY_FALLBACK = [(201, 42, 42), (12, 140, 90), (130, 80, 200), (200, 120, 20)]


# A trace of at most this many points is drawn as SVG (go.Scatter), a bigger one with WebGL (go.Scattergl). Same
# picture; a WebGL context costs a few hundred ms to set up (seconds where the browser draws WebGL in software),
# while SVG stays quick up to some thousands of cells. A 2,000-cell layout is 12,000 polygon points.
SVG_MAX_POINTS = 12_000


def scatter(n_points: int, **kw) -> go.Scatter | go.Scattergl:
    """A scatter trace of `n_points` points: SVG when small (quick to show), WebGL when big (smooth to pan)."""
    return go.Scatter(**kw) if n_points <= SVG_MAX_POINTS else go.Scattergl(**kw)


def metal_color(layer: str, i: int = 0) -> str:
    """The layer's fixed colour (metal1..metal6), a palette colour by position for any other layer name."""
    return METAL_COLORS.get(layer.lower(), OTHER_LAYER_COLORS[i % len(OTHER_LAYER_COLORS)])


def _legend(fig: go.Figure) -> go.Figure:
    """The legend beside the plot (a layout keeps its aspect ratio, so the room beside it is free); a click hides
    or shows a trace, a double click shows that one alone."""
    fig.update_layout(showlegend=True, legend=dict(x=1.01, y=1, xanchor="left", yanchor="top", font=dict(size=13),
                                                   itemclick="toggle", itemdoubleclick="toggleothers"))
    return fig


def _base_layout(fig: go.Figure, die, title: str | None = None, height: int = 560) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, font=dict(size=18)) if title else None,
        height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10), font=FONT,
        plot_bgcolor="#fafbfc", paper_bgcolor="white", showlegend=False, uirevision="layout",
    )
    fig.update_xaxes(showgrid=False, zeroline=False, title_text=f"x ({UM})", automargin=True)
    fig.update_yaxes(showgrid=False, zeroline=False, title_text=f"y ({UM})", scaleanchor="x", scaleratio=1,
                     automargin=True)
    if die is not None:
        x0, y0, x1, y1 = die
        pad = 0.02 * max(x1 - x0, y1 - y0)
        fig.update_xaxes(range=[x0 - pad, x1 + pad])
        fig.update_yaxes(range=[y0 - pad, y1 + pad])
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=DIE_COLOR, width=2))
    return fig


def _rect_polys(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygon coordinates of n rectangles for one trace: 5 corners + a None gap each, (6n,)."""
    n = len(x)
    px = np.empty((n, 6))
    py = np.empty((n, 6))
    px[:, 0] = px[:, 3] = px[:, 4] = x
    px[:, 1] = px[:, 2] = x + w
    py[:, 0] = py[:, 1] = py[:, 4] = y
    py[:, 2] = py[:, 3] = y + h
    px[:, 5] = np.nan
    py[:, 5] = np.nan
    return px.ravel(), py.ravel()


def subsample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `limit` of n items, the same ones on every call (frames replay without flicker)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def power_traces(power: dict, uses: dict | None = None) -> list[go.Scatter | go.Scattergl]:
    """The power grid as filled rectangles: one trace per (net, layer), shapes joined by None gaps.

    ``power`` maps (net, layer) -> (n, 4) rectangles x0, y0, x1, y1 in um (cockpit.data.power_shapes); ``uses``
    maps net -> POWER / GROUND for its colour. Traces of one net share a legend group, so a click on the legend
    hides or shows that whole net.
    """
    uses = uses or {}
    nets = sorted({net for net, _ in power}, key=lambda n: (uses.get(n) != "POWER", n))
    traces = []
    for k, net in enumerate(nets):
        rgb = POWER_COLORS.get(uses.get(net, ""), SUPPLY_FALLBACK[k % len(SUPPLY_FALLBACK)])
        for layer in sorted(layer for n, layer in power if n == net):
            rects = np.asarray(power[(net, layer)], float).reshape(-1, 4)
            if not len(rects):
                continue
            px, py = _rect_polys(rects[:, 0], rects[:, 1], rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1])
            alpha = 0.75 if layer.lower() == "metal1" else 0.4
            colour = f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha})"
            traces.append(scatter(len(px), x=px, y=py, mode="lines", fill="toself", fillcolor=colour,
                                       line=dict(color=colour, width=0.5), hoverinfo="skip",
                                       name=f"{net} · {layer} ({len(rects)})", legendgroup=f"power-{net}"))
    return traces


def power_summary(power: dict, uses: dict | None = None) -> str:
    """One line about the grid: per net, how many shapes on which layer ('**vdd** 7 on metal1, 4 on metal4')."""
    uses = uses or {}
    nets = sorted({net for net, _ in power}, key=lambda n: (uses.get(n) != "POWER", n))
    return " · ".join(f"**{net}** " + ", ".join(f"{len(power[(net, layer)])} on {layer}"
                                                for layer in sorted(lay for n, lay in power if n == net))
                      for net in nets)


def layout_figure(die, x, y, w=None, h=None, *, is_io=None, is_fixed=None, rows=None, title: str | None = None,
                  power: dict | None = None, power_uses: dict | None = None, is_fill=None,
                  max_rects: int = 6000, max_points: int = 30000, height: int = 560) -> go.Figure:
    """Cells of a placement: rectangles (or points when there are many), IO pins, rows, the die outline; the
    power grid (``power``, see power_traces) under the cells and filler cells (``is_fill``) apart, both in the
    legend when given."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = len(x)
    w = np.full(n, 1.0) if w is None else np.asarray(w, float)
    h = np.full(n, 1.0) if h is None else np.asarray(h, float)
    io = np.zeros(n, bool) if is_io is None else np.asarray(is_io, bool)
    fixed = np.zeros(n, bool) if is_fixed is None else np.asarray(is_fixed, bool)
    fill = np.zeros(n, bool) if is_fill is None else np.asarray(is_fill, bool)
    fig = go.Figure(power_traces(power, power_uses) if power else None)
    if rows:
        for r in rows[:: max(1, len(rows) // 60)]:
            fig.add_shape(type="line", x0=r[0], x1=r[1], y0=r[2], y1=r[2], line=dict(color="#dde3ea", width=1),
                          layer="below")
    if fill.any():
        f = np.flatnonzero(fill & ~io)
        px, py = _rect_polys(x[f], y[f], w[f], h[f])
        fig.add_trace(scatter(len(px), x=px, y=py, mode="lines", fill="toself", fillcolor="rgba(150, 160, 175, 0.25)",
                                   line=dict(color="rgba(150, 160, 175, 0.6)", width=0.5), hoverinfo="skip",
                                   name=f"filler cells ({len(f):,})"))
    movable = np.flatnonzero(~io & ~fill)
    if len(movable) <= max_rects:
        px, py = _rect_polys(x[movable], y[movable], w[movable], h[movable])
        fig.add_trace(scatter(len(px), x=px, y=py, mode="lines", fill="toself", fillcolor=CELL_COLOR,
                                   line=dict(color=CELL_LINE, width=0.5), hoverinfo="skip", name="cells"))
    else:
        pick = movable[subsample(len(movable), max_points)]
        fig.add_trace(go.Scattergl(x=x[pick] + w[pick] / 2, y=y[pick] + h[pick] / 2, mode="markers",
                                   marker=dict(size=3, color=CELL_LINE), hoverinfo="skip", name="cells"))
    if fixed[~io].any():
        f = np.flatnonzero(fixed & ~io)
        px, py = _rect_polys(x[f], y[f], w[f], h[f])
        fig.add_trace(scatter(len(px), x=px, y=py, mode="lines", fill="toself", fillcolor=FIXED_COLOR,
                                   line=dict(width=0.5, color="#555"), hoverinfo="skip", name="fixed"))
    if io.any():
        fig.add_trace(scatter(int(io.sum()), x=x[io] + w[io] / 2, y=y[io] + h[io] / 2, mode="markers",
                                   marker=dict(size=7, symbol="diamond", color=IO_COLOR), name="I/O pins",
                                   hoverinfo="skip"))
    _base_layout(fig, die, title, height)
    return _legend(fig) if power or fill.any() else fig


def _heat_trace(grid, die, quantity: str, **colorbar) -> tuple[go.Heatmap, tuple[float, float, float, float]]:
    """One bin map (rows = y bins from the bottom, cols = x bins) stretched over the die on the quantity's fixed
    scale (HEAT_SCALES); ``colorbar`` adds placement keys to its colour bar. Returns the trace and the box drawn."""
    if quantity not in HEAT_SCALES:
        raise KeyError(f"no heat scale for {quantity!r}; known: {', '.join(HEAT_SCALES)}")
    scale = HEAT_SCALES[quantity]
    z = np.asarray(grid, float)
    if z.ndim != 2:
        raise ValueError("heat map needs a 2-D grid")
    ny, nx = z.shape
    x0, y0, x1, y1 = die if die is not None else (0, 0, nx, ny)
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    trace = go.Heatmap(z=z, x0=x0 + dx / 2, dx=dx, y0=y0 + dy / 2, dy=dy, colorscale=scale.colorscale,
                       zmin=scale.zmin, zmax=scale.zmax, zauto=False,
                       colorbar=dict(title=dict(text=scale.colorbar_title(), side="right"), thickness=14, **colorbar),
                       hovertemplate=f"x %{{x:.0f}} {UM}, y %{{y:.0f}} {UM}: %{{z:.2f}} ({scale.unit})<extra></extra>")
    return trace, (x0, y0, x1, y1)


def heatmap_figure(grid, die, quantity: str, *, title: str, height: int = 420) -> go.Figure:
    """A bin map (rows = y bins from the bottom, cols = x bins) stretched over the die, coloured on the
    quantity's one fixed scale (HEAT_SCALES)."""
    trace, _ = _heat_trace(grid, die, quantity)
    return _base_layout(go.Figure(trace), die, title, height)


def heatmaps_figure(maps: list[tuple[np.ndarray, str, str]], die, *, height: int = 420) -> go.Figure:
    """Bin maps side by side in one figure, each ``(grid, quantity, title)`` on its quantity's fixed scale
    (HEAT_SCALES) with its own colour bar: the same pictures as heatmap_figure each, for one chart's cost in the
    browser instead of one per map (on a loaded machine each Plotly chart is a few hundred ms of a page's settle)."""
    from plotly.subplots import make_subplots

    n = len(maps)
    if n == 0:
        raise ValueError("no maps to draw")
    gap = 0.16 if n > 1 else 0.0
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for _, _, t in maps], horizontal_spacing=gap)
    width = (1.0 - gap * (n - 1)) / n
    for i, (grid, quantity, _) in enumerate(maps):
        right = i * (width + gap) + width
        trace, (x0, y0, x1, y1) = _heat_trace(grid, die, quantity, x=right + 0.01, xanchor="left", len=0.9)
        fig.add_trace(trace, row=1, col=i + 1)
        suffix = "" if i == 0 else str(i + 1)
        fig.update_yaxes(scaleanchor=f"x{suffix}", scaleratio=1, row=1, col=i + 1)
        if die is not None:
            fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=DIE_COLOR, width=2),
                          xref=f"x{suffix}", yref=f"y{suffix}")
    fig.update_annotations(font=dict(size=16))  # the maps' titles (make_subplots puts them over each map)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT, plot_bgcolor="#fafbfc",
                      paper_bgcolor="white", showlegend=False, uirevision="heatmaps")
    fig.update_xaxes(showgrid=False, zeroline=False, title_text=f"x ({UM})", automargin=True)
    fig.update_yaxes(showgrid=False, zeroline=False, automargin=True)
    fig.update_yaxes(title_text=f"y ({UM})", row=1, col=1)  # the next map's y axis is the same: its title would
    if die is not None:                                    # sit on the colour bar before it
        x0, y0, x1, y1 = die
        pad = 0.02 * max(x1 - x0, y1 - y0)
        fig.update_xaxes(range=[x0 - pad, x1 + pad])
        fig.update_yaxes(range=[y0 - pad, y1 + pad])
    return fig


def layer_bars_html(values: dict[str, float], unit: str = UM) -> str:
    """Wire per metal layer as a small HTML bar list, each bar in its layer's METAL_COLORS colour (the colours of
    the routing view beside it). Plain HTML: a page shows it without another Plotly chart."""
    import html

    top = max((float(v) for v in values.values()), default=0.0) or 1.0
    rows = []
    for i, (layer, v) in enumerate(values.items()):
        pct = max(0.0, float(v)) / top * 100
        rows.append(f'<div style="display:flex;align-items:center;gap:0.5rem;margin:0.25rem 0">'
                    f'<span style="width:4.5rem">{html.escape(str(layer))}</span>'
                    f'<span style="flex:1;background:#eef1f4;height:1.1rem;border-radius:3px">'
                    f'<span style="display:block;width:{pct:.1f}%;height:100%;background:{metal_color(layer, i)};'
                    f'border-radius:3px"></span></span>'
                    f'<span style="width:6.5rem;text-align:right">{float(v):,.0f} {html.escape(unit)}</span></div>')
    return '<div style="font-size:0.95rem">' + "".join(rows) + "</div>"


def curves_figure(iterations, hpwl, overflow, *, current: int | None = None, height: int = 320) -> go.Figure:
    """HPWL (left axis) and overflow (right axis) against the placer iteration."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=iterations, y=hpwl, name="HPWL (µm)", mode="lines", line=dict(color="#0b5cad", width=3)))
    fig.add_trace(go.Scatter(x=iterations, y=overflow, name="overflow", mode="lines", yaxis="y2",
                             line=dict(color="#d9480f", width=3, dash="dot")))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="#888", width=1, dash="dash"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), font=FONT, uirevision="curves",
                      legend=dict(orientation="h", y=1.12, x=0), plot_bgcolor="#fafbfc",
                      xaxis=dict(title="iteration"), yaxis=dict(title="HPWL (µm)", rangemode="tozero"),
                      yaxis2=dict(title="overflow", overlaying="y", side="right", range=[0, 1.05], dtick=0.2,
                                  tickformat=".1f", showgrid=False))
    return fig


def add_wires(fig: go.Figure, wires: dict, *, max_segments: int = 60000) -> go.Figure:
    """Routed wire segments, one trace per metal layer in its METAL_COLORS colour, named in the legend
    (subsampled beyond max_segments in all); SVG for a few thousand segments, WebGL beyond."""
    total = sum(len(v) for v in wires.values()) or 1
    # SVG while all the layers' segments together stay small (a small design's page then needs no WebGL context:
    # in software WebGL that alone cost the Routing chapter about a second, bench_cockpit), WebGL for all beyond
    drawn = sum(min(len(v), max(1, int(max_segments * len(v) / total))) for v in wires.values())
    trace = go.Scatter if 3 * drawn <= SVG_MAX_POINTS else go.Scattergl
    for i, (layer, seg) in enumerate(sorted(wires.items())):
        if len(seg) == 0:
            continue
        keep = seg[subsample(len(seg), max(1, int(max_segments * len(seg) / total)))]
        xs = np.column_stack([keep[:, 0], keep[:, 2], np.full(len(keep), np.nan)]).ravel()
        ys = np.column_stack([keep[:, 1], keep[:, 3], np.full(len(keep), np.nan)]).ravel()
        fig.add_trace(trace(x=xs, y=ys, mode="lines", name=layer, hoverinfo="skip",
                            line=dict(color=metal_color(layer, i), width=1.5), opacity=0.8))
    return _legend(fig)


def add_layer_legend(fig: go.Figure, colours: dict[str, str]) -> go.Figure:
    """A legend of layer name -> colour for a picture (a rendered GDS): one empty marker trace per layer."""
    for name, colour in colours.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                                 marker=dict(size=12, symbol="square", color=colour)))
    return _legend(fig) if colours else fig


def add_path(fig: go.Figure, xs, ys, labels=None, *, name: str = "worst path") -> go.Figure:
    """Draw a timing path (pin positions in order) over a layout figure."""
    fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines+markers", name=name,
                             line=dict(color=PATH_COLOR, width=4), marker=dict(size=9, color=PATH_COLOR),
                             text=labels, hovertemplate="%{text}<extra></extra>" if labels else None))
    if len(xs):
        fig.add_trace(go.Scatter(x=[xs[0], xs[-1]], y=[ys[0], ys[-1]], mode="markers+text",
                                 text=["start", "end"], textposition="top center",
                                 marker=dict(size=14, color=["#2b8a3e", "#c92a2a"], symbol="circle"),
                                 textfont=dict(size=15, color="#1b2330"), hoverinfo="skip"))
    return fig


@functools.lru_cache(maxsize=8)
def _png_uri(path: str, mtime_ns: int, size: int) -> tuple[str, int, int]:
    """A PNG as a data URI with its pixel size, read and encoded once per file version (path, mtime, size)."""
    import base64

    from PIL import Image

    data = Path(path).read_bytes()
    with Image.open(path) as im:
        w, h = im.size
    return "data:image/png;base64," + base64.b64encode(data).decode(), w, h


def image_figure(png_path, die=None, *, height: int = 700) -> go.Figure:
    """A rendered layout image that zooms and pans, placed on micron axes when `die` (x0, y0, x1, y1) is given.

    The PNG goes to the browser as one compressed data URI (a layout image), not as a pixel array: a 1400 px
    render would otherwise be millions of numbers in the figure's JSON.
    """
    st_ = Path(png_path).stat()
    uri, w, h = _png_uri(str(png_path), st_.st_mtime_ns, st_.st_size)
    x0, y0, x1, y1 = die if die is not None else (0.0, 0.0, float(w), float(h))
    fig = go.Figure(go.Scatter(x=[x0, x1], y=[y0, y1], mode="markers", marker=dict(opacity=0), hoverinfo="skip",
                               showlegend=False))
    fig.add_layout_image(source=uri, xref="x", yref="y",
                         x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0, sizing="stretch", layer="below")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), font=FONT, dragmode="zoom",
                      plot_bgcolor="white", showlegend=False)
    unit = f" ({UM})" if die is not None else " (px)"
    fig.update_xaxes(showgrid=False, zeroline=False, range=[x0, x1], title_text="x" + unit, automargin=True)
    fig.update_yaxes(showgrid=False, zeroline=False, range=[y0, y1], title_text="y" + unit, scaleanchor="x",
                     automargin=True)
    return fig


def bar_figure(labels, values, *, title: str, xlabel: str = "", height: int = 340) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(values), y=list(labels), orientation="h", marker_color="#0b5cad"))
    fig.update_layout(title=dict(text=title, x=0.01), height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT,
                      yaxis=dict(autorange="reversed"), xaxis=dict(title=xlabel), plot_bgcolor="#fafbfc")
    return fig
