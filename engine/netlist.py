"""The netlist every part of the engine shares: flat numpy arrays plus names.

Coordinates are microns, positions are cells' lower-left corners. Pins hang off cells at an offset from the
cell's lower-left corner; nets are a CSR over pins (``net_pins[net_start[i]:net_start[i+1]]``). IO terminals are
cells of type ``PIN`` with zero size, fixed on the die edge once a floorplan exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from engine.errors import EngineError

IO_TYPE = "PIN"
PIN_INPUT, PIN_OUTPUT, PIN_INOUT = 0, 1, 2


@dataclass(frozen=True)
class Row:
    """A placement row: ``y`` of its bottom, sites from ``x0`` to ``x1`` of width ``site_w``."""

    y: float
    x0: float
    x1: float
    site_w: float
    height: float
    orient: str = "N"
    site: str = "core"

    @property
    def num_sites(self) -> int:
        return int(round((self.x1 - self.x0) / self.site_w))


@dataclass
class Netlist:
    name: str
    cell_names: list[str]
    cell_types: list[str]
    cell_w: np.ndarray  # (C,)
    cell_h: np.ndarray  # (C,)
    cell_fixed: np.ndarray  # (C,) bool
    cell_is_io: np.ndarray  # (C,) bool
    x: np.ndarray  # (C,) lower-left x
    y: np.ndarray  # (C,) lower-left y
    pin_cell: np.ndarray  # (P,) int32
    pin_dx: np.ndarray  # (P,) offset from the cell's lower-left
    pin_dy: np.ndarray  # (P,)
    pin_names: list[str]
    pin_dir: np.ndarray  # (P,) int8: 0 in, 1 out, 2 inout
    net_names: list[str]
    net_start: np.ndarray  # (N+1,) int64
    net_pins: np.ndarray  # (P,) int32, pins grouped by net
    net_weight: np.ndarray  # (N,)
    die: tuple[float, float, float, float] | None = None
    core: tuple[float, float, float, float] | None = None
    rows: list[Row] = field(default_factory=list)
    cell_orient: list[str] | None = None
    special_nets: list | None = None  # DEF SPECIALNETS (engine.io.def_io.SpecialNet): the power grid, kept as is

    # ------------------------------------------------------------------ sizes
    @property
    def n_cells(self) -> int:
        return len(self.cell_names)

    @property
    def n_pins(self) -> int:
        return len(self.pin_cell)

    @property
    def n_nets(self) -> int:
        return len(self.net_names)

    @property
    def movable(self) -> np.ndarray:
        return ~self.cell_fixed

    @property
    def n_movable(self) -> int:
        return int(self.movable.sum())

    def movable_area(self) -> float:
        m = self.movable
        return float((self.cell_w[m] * self.cell_h[m]).sum())

    def cell_area(self) -> float:
        core = ~self.cell_is_io
        return float((self.cell_w[core] * self.cell_h[core]).sum())

    def net_degree(self) -> np.ndarray:
        return np.diff(self.net_start)

    def pin_net(self) -> np.ndarray:
        """(P,) the net of each pin (-1 for a pin on no net)."""
        out = np.full(self.n_pins, -1, dtype=np.int64)
        out[self.net_pins] = np.repeat(np.arange(self.n_nets), self.net_degree())
        return out

    # ------------------------------------------------------------------ geometry
    def pin_positions(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = self.x if x is None else x
        y = self.y if y is None else y
        return x[self.pin_cell] + self.pin_dx, y[self.pin_cell] + self.pin_dy

    def net_hpwl(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> np.ndarray:
        """(N,) half-perimeter wirelength of each net (0 for nets with fewer than two pins), unweighted."""
        px, py = self.pin_positions(x, y)
        deg = self.net_degree()
        out = np.zeros(self.n_nets)
        has = deg > 0
        if not has.any():
            return out
        starts = self.net_start[:-1][has]
        ox, oy = px[self.net_pins], py[self.net_pins]
        w = np.maximum.reduceat(ox, starts) - np.minimum.reduceat(ox, starts)
        h = np.maximum.reduceat(oy, starts) - np.minimum.reduceat(oy, starts)
        out[has] = w + h
        return out

    def hpwl(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> float:
        """Total weighted half-perimeter wirelength in microns."""
        return float((self.net_hpwl(x, y) * self.net_weight).sum())

    def copy(self) -> Netlist:
        return replace(
            self,
            x=self.x.copy(),
            y=self.y.copy(),
            cell_fixed=self.cell_fixed.copy(),
            rows=list(self.rows),
            cell_orient=list(self.cell_orient) if self.cell_orient is not None else None,
        )

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.cell_names)}

    def validate(self) -> None:
        """Check the arrays agree with each other; raises EngineError naming what is wrong."""
        c, p, n = self.n_cells, self.n_pins, self.n_nets
        for arr_name in ("cell_w", "cell_h", "cell_fixed", "cell_is_io", "x", "y"):
            if len(getattr(self, arr_name)) != c:
                raise EngineError(f"netlist {self.name}: {arr_name} has {len(getattr(self, arr_name))} entries, "
                                  f"expected {c}")
        if len(self.net_start) != n + 1 or self.net_start[0] != 0 or self.net_start[-1] != len(self.net_pins):
            raise EngineError(f"netlist {self.name}: net CSR is inconsistent")
        if p and (self.pin_cell.min() < 0 or self.pin_cell.max() >= c):
            raise EngineError(f"netlist {self.name}: a pin refers to a cell that does not exist")
        if len(self.net_pins) and (self.net_pins.min() < 0 or self.net_pins.max() >= p):
            raise EngineError(f"netlist {self.name}: a net refers to a pin that does not exist")
        if not (np.isfinite(self.x).all() and np.isfinite(self.y).all()):
            raise EngineError(f"netlist {self.name}: some positions are NaN or infinite")


class NetlistBuilder:
    """Accumulates cells, pins and nets by name, then freezes them into a Netlist."""

    def __init__(self, name: str):
        self.name = name
        self.cells: list[tuple[str, str, float, float, bool, bool, float, float]] = []
        self.cell_idx: dict[str, int] = {}
        self.pins: list[tuple[int, float, float, str, int]] = []
        self.net_members: dict[str, list[int]] = {}
        self.net_weights: dict[str, float] = {}

    def add_cell(self, name: str, ctype: str, w: float, h: float, *, fixed: bool = False, io: bool = False,
                 x: float = 0.0, y: float = 0.0) -> int:
        if name in self.cell_idx:
            raise EngineError(f"netlist {self.name}: instance '{name}' defined twice")
        self.cell_idx[name] = len(self.cells)
        self.cells.append((name, ctype, w, h, fixed, io, x, y))
        return self.cell_idx[name]

    def add_pin(self, cell: int, net: str | None, dx: float, dy: float, pin_name: str, direction: int) -> int:
        self.pins.append((cell, dx, dy, pin_name, direction))
        pid = len(self.pins) - 1
        if net is not None:
            self.net_members.setdefault(net, []).append(pid)
        return pid

    def build(self) -> Netlist:
        names = list(self.net_members)
        deg = np.array([len(self.net_members[n]) for n in names], dtype=np.int64)
        start = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum(deg, out=start[1:])
        net_pins = np.array([p for n in names for p in self.net_members[n]], dtype=np.int32)
        cells = self.cells
        return Netlist(
            name=self.name,
            cell_names=[c[0] for c in cells],
            cell_types=[c[1] for c in cells],
            cell_w=np.array([c[2] for c in cells], dtype=np.float64),
            cell_h=np.array([c[3] for c in cells], dtype=np.float64),
            cell_fixed=np.array([c[4] for c in cells], dtype=bool),
            cell_is_io=np.array([c[5] for c in cells], dtype=bool),
            x=np.array([c[6] for c in cells], dtype=np.float64),
            y=np.array([c[7] for c in cells], dtype=np.float64),
            pin_cell=np.array([p[0] for p in self.pins], dtype=np.int32),
            pin_dx=np.array([p[1] for p in self.pins], dtype=np.float64),
            pin_dy=np.array([p[2] for p in self.pins], dtype=np.float64),
            pin_names=[p[3] for p in self.pins],
            pin_dir=np.array([p[4] for p in self.pins], dtype=np.int8),
            net_names=names,
            net_start=start,
            net_pins=net_pins,
            net_weight=np.array([self.net_weights.get(n, 1.0) for n in names], dtype=np.float64),
        )
