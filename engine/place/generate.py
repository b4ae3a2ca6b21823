"""Synthetic netlists for tests and benchmarks: 1k..200k cells with Rent-like locality and a realistic fanout.

Each cell drives one net. Cells get a hidden position on a square grid; a net's sinks are drawn around its
driver with heavy-tailed distances, so most nets are local and a few span the chip (as in real designs).
Widths follow osu018's mix (0.8 um sites, 10 um rows); IO terminals sit on the die edge; fixed macros are
optional. Everything is vectorised: 200k cells take about a second.
"""
from __future__ import annotations

import math

import numpy as np

from engine.netlist import IO_TYPE, Netlist, Row

# fanout (sinks per net) and its probability, close to synthesised control/datapath logic
_FANOUT = np.array([1, 2, 3, 4, 5, 6, 8, 10, 14, 20, 30, 48])
_FANOUT_P = np.array([0.52, 0.18, 0.09, 0.06, 0.04, 0.03, 0.025, 0.02, 0.015, 0.01, 0.006, 0.004])
# cell widths in sites (osu018: INVX1 2 sites, NAND2X1 3, AOI21 4, DFF 12, FAX1 15 ...)
_SITES = np.array([2, 3, 4, 5, 6, 7, 8, 12, 15])
_SITES_P = np.array([0.14, 0.22, 0.24, 0.1, 0.08, 0.07, 0.05, 0.08, 0.02])


def generate_netlist(n_cells: int = 1000, *, utilization: float = 0.6, seed: int = 0, site_w: float = 0.8,
                     row_h: float = 10.0, n_io: int | None = None, n_macros: int = 0, macro_frac: float = 0.15,
                     margin_um: float = 10.0, name: str | None = None,
                     tail: float = 1.6) -> Netlist:
    """A floorplanned Netlist (rows, core, die, fixed IO terminals) with movable cells at the core centre.

    utilization: movable cell area / free core area; n_macros fixed blocks take macro_frac of the core.
    tail: Pareto shape of sink distances; lower gives more long nets (a higher Rent exponent), higher more local.
    """
    if n_cells < 2:
        raise ValueError("generate_netlist needs at least 2 cells")
    rng = np.random.default_rng(seed)
    n = int(n_cells)
    fp = _FANOUT_P / _FANOUT_P.sum()
    sp = _SITES_P / _SITES_P.sum()
    sites = rng.choice(_SITES, n, p=sp)
    w = sites * site_w
    h = np.full(n, row_h)

    # hidden grid positions give locality: cell c sits at (gx, gy) in a side x side grid
    side = int(math.ceil(math.sqrt(n)))
    slot = rng.permutation(side * side)[:n]
    cell_at = np.full(side * side, -1, dtype=np.int64)
    cell_at[slot] = np.arange(n)
    gx, gy = slot % side, slot // side

    fanout = rng.choice(_FANOUT, n, p=fp)
    drivers = np.repeat(np.arange(n), fanout)                            # (S,) driver of each sink
    scale = 1.0 + rng.pareto(tail, len(drivers))                          # heavy tail: a few long nets
    ang = rng.uniform(0, 2 * np.pi, len(drivers))
    sx = np.clip(np.rint(gx[drivers] + scale * np.cos(ang)), 0, side - 1).astype(np.int64)
    sy = np.clip(np.rint(gy[drivers] + scale * np.sin(ang)), 0, side - 1).astype(np.int64)
    sink = cell_at[sy * side + sx]
    empty = sink < 0                                                     # grid holes: random nearby cell
    sink[empty] = rng.integers(0, n, int(empty.sum()))
    same = sink == drivers
    sink[same] = (sink[same] + 1) % n

    # pins: one output per cell (driving its net) then one input per sink
    n_out = n
    pin_cell = np.concatenate([np.arange(n), sink]).astype(np.int32)
    pin_dir = np.concatenate([np.ones(n, np.int8), np.zeros(len(sink), np.int8)])
    frac = rng.uniform(0.1, 0.9, len(pin_cell))
    pin_dx = np.floor(frac * sites[pin_cell]) * site_w + site_w / 2
    pin_dy = rng.uniform(0.2, 0.8, len(pin_cell)) * row_h
    net_of_pin = np.concatenate([np.arange(n), drivers])

    # core: movable area / utilisation (+ macro area), square, whole rows and sites
    mov_area = float((w * h).sum())
    core_area = mov_area / utilization / (1.0 - macro_frac if n_macros else 1.0)
    n_rows = max(1, int(math.ceil(math.sqrt(core_area) / row_h)))
    n_sites = max(int(sites.max()) + 1, int(math.ceil(core_area / (n_rows * row_h) / site_w)))
    cx0, cy0 = margin_um, margin_um
    cx1, cy1 = cx0 + n_sites * site_w, cy0 + n_rows * row_h
    die = (0.0, 0.0, cx1 + margin_um, cy1 + margin_um)
    rows = [Row(y=cy0 + r * row_h, x0=cx0, x1=cx1, site_w=site_w, height=row_h,
                orient="N" if r % 2 == 0 else "FS") for r in range(n_rows)]

    names = [f"c{i}" for i in range(n)]
    types = [f"GEN{s}" for s in sites]
    cw, ch = list(w), list(h)
    fixed = [False] * n
    is_io = [False] * n
    xs = list(np.full(n, (cx0 + cx1) / 2))
    ys = list(np.full(n, (cy0 + cy1) / 2))
    extra_pin_cell, extra_dx, extra_dy, extra_net, extra_dir = [], [], [], [], []

    # fixed macros: squares on the site/row grid that do not overlap
    placed: list[tuple[float, float, float, float]] = []
    if n_macros:
        msz_rows = max(1, int(math.sqrt(macro_frac * core_area / n_macros) / row_h))
        msz_sites = max(1, int(msz_rows * row_h / site_w))
        tries = 0
        while len(placed) < n_macros and tries < 1000:
            tries += 1
            r = int(rng.integers(0, max(1, n_rows - msz_rows + 1)))
            s = int(rng.integers(0, max(1, n_sites - msz_sites + 1)))
            box = (cx0 + s * site_w, cy0 + r * row_h, cx0 + (s + msz_sites) * site_w, cy0 + (r + msz_rows) * row_h)
            if any(not (box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]) for b in placed):
                continue
            placed.append(box)
        for k, (bx0, by0, bx1, by1) in enumerate(placed):
            ci = len(names)
            names.append(f"macro{k}")
            types.append("MACRO")
            cw.append(bx1 - bx0)
            ch.append(by1 - by0)
            fixed.append(True)
            is_io.append(False)
            xs.append(bx0)
            ys.append(by0)
            # a few pins on the macro joining nets of cells near its hidden location
            mcol = int((bx0 + bx1) / 2 / cx1 * (side - 1))
            mrow = int((by0 + by1) / 2 / cy1 * (side - 1))
            for j in range(8):
                c = cell_at[min(side - 1, mrow + j % 3) * side + min(side - 1, mcol + j // 3)]
                if c < 0:
                    continue
                extra_pin_cell.append(ci)
                extra_dx.append((j + 0.5) / 8 * (bx1 - bx0))
                extra_dy.append(0.0)
                extra_net.append(int(c))
                extra_dir.append(0)

    # IO terminals on the die edge, each joining the net of a cell near the same border in hidden space
    n_io = n_io if n_io is not None else int(min(2000, max(8, 2 * math.sqrt(n))))
    t = rng.uniform(0, 4, n_io)
    for k in range(n_io):
        edge, f = int(t[k]), t[k] - int(t[k])
        if edge == 0:
            px, py, hx, hy = die[0] + f * die[2], die[1], f, 0.0
        elif edge == 1:
            px, py, hx, hy = die[2], die[1] + f * die[3], 1.0, f
        elif edge == 2:
            px, py, hx, hy = die[0] + f * die[2], die[3], f, 1.0
        else:
            px, py, hx, hy = die[0], die[1] + f * die[3], 0.0, f
        c = cell_at[int(hy * (side - 1)) * side + int(hx * (side - 1))]
        if c < 0:
            c = int(rng.integers(0, n))
        ci = len(names)
        names.append(f"io{k}")
        types.append(IO_TYPE)
        cw.append(0.0)
        ch.append(0.0)
        fixed.append(True)
        is_io.append(True)
        xs.append(px)
        ys.append(py)
        extra_pin_cell.append(ci)
        extra_dx.append(0.0)
        extra_dy.append(0.0)
        extra_net.append(int(c))
        extra_dir.append(2)

    pin_cell = np.concatenate([pin_cell, np.asarray(extra_pin_cell, dtype=np.int32)])
    pin_dx = np.concatenate([pin_dx, np.asarray(extra_dx, dtype=np.float64)])
    pin_dy = np.concatenate([pin_dy, np.asarray(extra_dy, dtype=np.float64)])
    pin_dir = np.concatenate([pin_dir, np.asarray(extra_dir, dtype=np.int8)])
    net_of_pin = np.concatenate([net_of_pin, np.asarray(extra_net, dtype=np.int64)])
    order = np.argsort(net_of_pin, kind="stable")
    deg = np.bincount(net_of_pin, minlength=n_out)
    net_start = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(deg, out=net_start[1:])
    nl = Netlist(
        name=name or f"gen{n}_s{seed}",
        cell_names=names, cell_types=types,
        cell_w=np.asarray(cw, dtype=np.float64), cell_h=np.asarray(ch, dtype=np.float64),
        cell_fixed=np.asarray(fixed, dtype=bool), cell_is_io=np.asarray(is_io, dtype=bool),
        x=np.asarray(xs, dtype=np.float64), y=np.asarray(ys, dtype=np.float64),
        pin_cell=pin_cell, pin_dx=pin_dx, pin_dy=pin_dy,
        pin_names=["Y" if d == 1 else "A" for d in pin_dir.tolist()], pin_dir=pin_dir,
        net_names=[f"n{i}" for i in range(n_out)], net_start=net_start, net_pins=order.astype(np.int32),
        net_weight=np.ones(n_out), die=die, core=(cx0, cy0, cx1, cy1), rows=rows,
    )
    return nl
