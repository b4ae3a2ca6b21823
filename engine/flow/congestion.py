"""Routing congestion before routing: the RUDY map of a placement against the routing capacity of the layers.

RUDY (Spindler & Johannes, DATE 2007) spreads each net's half-perimeter wire uniformly over its bounding box; the
map itself comes from the placer's ``engine.place.metrics.rudy_map`` (one implementation for both). Here it is
turned into a demand / capacity ratio: a routing layer of pitch p offers 1/p um of wire per um^2, metal1 counts
at a fraction because the cells' own wiring and pins use most of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.netlist import Netlist
from engine.pdk import Pdk


@dataclass
class Congestion:
    ratio: np.ndarray  # (bins_y, bins_x) wire demand / routing capacity per bin; > 1 is over capacity
    demand: np.ndarray  # (bins_y, bins_x) RUDY wire density (um of wire per um^2)
    capacity_per_um2: float  # um of wire per um^2 the allowed layers offer
    region: tuple[float, float, float, float]  # x0, y0, x1, y1 of the map (the core) in um

    @property
    def max(self) -> float:
        return float(self.ratio.max()) if self.ratio.size else 0.0

    @property
    def overflow(self) -> float:
        """Share of bins whose demand exceeds capacity."""
        return float((self.ratio > 1.0).mean()) if self.ratio.size else 0.0

    @property
    def mean(self) -> float:
        return float(self.ratio.mean()) if self.ratio.size else 0.0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez_compressed(path, ratio=self.ratio, demand=self.demand, region=np.asarray(self.region),
                            capacity_per_um2=np.asarray(self.capacity_per_um2))
        return path


def routing_capacity(pdk: Pdk, layers: int, metal1_share: float = 0.5) -> float:
    """um of wire per um^2 that the first ``layers`` routing layers offer (one track per pitch)."""
    cap = 0.0
    for i, layer in enumerate(pdk.routing_layers()[:layers]):
        if not layer.pitch_um:
            continue
        cap += (metal1_share if i == 0 else 1.0) / layer.pitch_um
    return cap


def congestion(netlist: Netlist, pdk: Pdk, *, layers: int, bins: int = 64, metal1_share: float = 0.5) -> Congestion:
    """RUDY congestion of ``netlist`` at its current positions, over its core (or die)."""
    from engine.place.metrics import rudy_map

    region = netlist.core or netlist.die
    if region is None:
        raise ValueError("the netlist has no core or die area: run the floorplan first")
    # A bin smaller than a row is noise: one net in one bin reads as a hot spot.
    row_h = netlist.rows[0].height if netlist.rows else 0.0
    if row_h > 0:
        bins = min(int(bins), max(1, int(np.ceil(max(region[2] - region[0], region[3] - region[1]) / row_h))))
    bins = max(1, int(bins))
    # The placer's map is indexed [x, y]; the saved map is [y, x] like an image.
    demand = np.asarray(rudy_map(netlist, region, bins)).T
    cap = routing_capacity(pdk, layers, metal1_share)
    ratio = demand / cap if cap > 0 else np.zeros_like(demand)
    x0, y0, x1, y1 = (float(v) for v in region)
    return Congestion(ratio=ratio, demand=demand, capacity_per_um2=cap, region=(x0, y0, x1, y1))
