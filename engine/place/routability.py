"""Routability-driven cell inflation (RePlAce / DREAMPlace routability mode, with RUDY as the congestion map).

Between rounds of global placement, each real movable cell reads the RUDY of the bin under its centre, relative
to the mean RUDY of the core: r = rudy / mean. A cell in a bin with r above the threshold grows its area by
(r / threshold)^2 (DREAMPlace uses util^2.5 against routing capacity; the square of a relative map is the same
shape), its cumulative inflation capped at inflation_max. The added area is scaled down so that it fits into the
whitespace (target density x free area - cell area), since inflating beyond it would only raise the overflow
everywhere. The inflated sizes enter the density term only; wirelength and legalisation see the real sizes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.place.density import BinGrid


@dataclass
class RudyStats:
    top10: float   # mean RUDY of the hottest 10 % of bins (um / um^2)
    max: float
    mean: float

    @classmethod
    def of(cls, rudy: torch.Tensor) -> RudyStats:
        flat = rudy.reshape(-1)
        k = max(1, int(round(0.1 * flat.numel())))
        return cls(top10=float(torch.topk(flat, k).values.mean()), max=float(flat.max()), mean=float(flat.mean()))


def bin_of_centres(cx: torch.Tensor, cy: torch.Tensor, grid: BinGrid, bins: int) -> torch.Tensor:
    """(n,) flat index (ix * bins + iy) of the bin under each centre on a bins x bins map over the grid's box."""
    bw, bh = (grid.x1 - grid.x0) / bins, (grid.y1 - grid.y0) / bins
    ix = torch.clamp(torch.floor((cx - grid.x0) / bw).long(), 0, bins - 1)
    iy = torch.clamp(torch.floor((cy - grid.y0) / bh).long(), 0, bins - 1)
    return ix * bins + iy


def inflation_step(rudy: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, area: torch.Tensor,
                   ratio: torch.Tensor, grid: BinGrid, *, threshold: float, inflation_max: float,
                   whitespace: float) -> torch.Tensor:
    """New cumulative area ratios (n,) >= the old `ratio` for cells at centres (cx, cy) with real `area`.

    rudy (b, b) on the grid's box; whitespace: the area (um^2) the inflation may add in all, over all rounds."""
    b = rudy.shape[0]
    mean = torch.clamp(rudy.mean(), min=1e-30)
    rel = (rudy / mean).reshape(-1)[bin_of_centres(cx, cy, grid, b)]            # (n,)
    grow = torch.clamp(rel / threshold, min=1.0) ** 2
    new = torch.clamp(ratio * grow, max=inflation_max)
    new = torch.maximum(new, ratio)
    added = float((area * (new - 1.0)).sum())
    if added > whitespace > 0:
        old_added = float((area * (ratio - 1.0)).sum())
        room = max(whitespace - old_added, 0.0)
        step = float((area * (new - ratio)).sum())
        new = ratio + (new - ratio) * (room / step if step > 0 else 0.0)
    elif whitespace <= 0:
        new = ratio.clone()
    return new
