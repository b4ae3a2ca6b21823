"""Net weights for timing-driven placement: from a static timing proxy or from an STA run's worst paths.

Proxy (no STA needed, so `cda place` can use it): the netlist as a graph of cells, an edge from each net's driver
to each of its sinks, delay of an edge = 1 logic level + the net's placed HPWL / mean HPWL x wire_share. The
longest path through a net (arrival at its driver + the edge + the longest path from its sink on) over the longest
path of the design is its criticality; only nets within `window` (10 %) of the longest path count, squared (the
rest get 1), as slack-based weighting does (the nets far from critical gain nothing from being shorter).
Sequential cells (type names with DFF/LATCH) and IO terminals start and end paths, so flops break the loops; any
loop left among combinational cells is broken where the fewest edges remain.

Slack file: a 05-timing/paths.json (OpenSTA's worst paths). Each sink pin (a cell input, an output port) of a path
names the net the path reaches it through; each such net gets the criticality of its worst path,
(slack_max - slack) / (slack_max - wns) over the reported paths.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from engine.place.errors import PlaceError

log = logging.getLogger(__name__)

SEQUENTIAL_WORDS = ("DFF", "LATCH", "FLOP", "SDFF", "DLAT")


def weights_from_criticality(crit: np.ndarray, weight_max: float) -> np.ndarray:
    """(N,) weights 1 + (weight_max - 1) x criticality, criticality clipped to [0, 1]."""
    return 1.0 + (float(weight_max) - 1.0) * np.clip(crit, 0.0, 1.0)


def _edges(netlist):
    """Driver cell -> sink cell edges (E,), with the net of each edge."""
    deg = np.diff(np.asarray(netlist.net_start, dtype=np.int64))
    net_of_slot = np.repeat(np.arange(len(deg)), deg)
    pins = np.asarray(netlist.net_pins, dtype=np.int64)
    pdir = np.asarray(netlist.pin_dir)[pins]
    cell = np.asarray(netlist.pin_cell, dtype=np.int64)[pins]
    drv_slot = np.flatnonzero(pdir == 1)
    # one driver per net (the first output pin); nets with no driver have no edges
    driver = np.full(len(deg), -1, dtype=np.int64)
    driver[net_of_slot[drv_slot[::-1]]] = cell[drv_slot[::-1]]
    sink_slot = np.flatnonzero(pdir != 1)
    e_net = net_of_slot[sink_slot]
    e_src = driver[e_net]
    e_dst = cell[sink_slot]
    ok = (e_src >= 0) & (e_src != e_dst)
    return e_src[ok], e_dst[ok], e_net[ok]


def _longest(n: int, src: np.ndarray, dst: np.ndarray, d: np.ndarray, start_free: np.ndarray) -> np.ndarray:
    """Longest arrival at each node over a graph with cycles broken: Kahn's order level by level (vectorised).

    start_free (n,) bool: nodes whose incoming edges are ignored (path start points: flops, IO)."""
    use = ~start_free[dst]
    src, dst, d = src[use], dst[use], d[use]
    indeg = np.bincount(dst, minlength=n)
    order = np.argsort(src, kind="stable")
    src, dst, d = src[order], dst[order], d[order]
    first = np.searchsorted(src, np.arange(n + 1))
    arr = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    frontier = np.flatnonzero(indeg == 0)
    while True:
        if len(frontier) == 0:
            left = np.flatnonzero(~done)
            if len(left) == 0:
                break
            frontier = left[indeg[left] == indeg[left].min()]   # break a loop where the fewest edges remain
        done[frontier] = True
        lo, hi = first[frontier], first[frontier + 1]
        cnt = hi - lo
        if cnt.sum() == 0:
            frontier = np.empty(0, dtype=np.int64)
            continue
        idx = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
        t, val = dst[idx], arr[src[idx]] + d[idx]
        np.maximum.at(arr, t, val)
        np.subtract.at(indeg, t, 1)
        cand = np.unique(t)
        frontier = cand[(indeg[cand] <= 0) & ~done[cand]]
    return arr


def proxy_criticality(netlist, x: np.ndarray | None = None, y: np.ndarray | None = None, *,
                      wire_share: float = 0.5, window: float = 0.1) -> np.ndarray:
    """(N,) criticality in [0, 1] of each net from the static proxy (1 = on the longest path)."""
    n, n_nets = netlist.n_cells, netlist.n_nets
    crit = np.zeros(n_nets)
    src, dst, e_net = _edges(netlist)
    if len(src) == 0:
        return crit
    hp = np.asarray(netlist.net_hpwl(x, y), dtype=np.float64)
    mean_hp = float(hp[hp > 0].mean()) if (hp > 0).any() else 1.0
    d = 1.0 + wire_share * hp[e_net] / mean_hp                                   # (E,) edge delay
    types = [t.upper() for t in netlist.cell_types]
    seq = np.array([any(w in t for w in SEQUENTIAL_WORDS) for t in types], dtype=bool)
    ends = seq | np.asarray(netlist.cell_is_io, dtype=bool)
    arrival = _longest(n, src, dst, d, ends)                                     # from path starts
    # longest path from a node to an end: the same on the reversed graph (edges out of path ends are ignored)
    onward = _longest(n, dst, src, d, ends)
    arr_src = np.where(ends[src], 0.0, arrival[src])
    through = arr_src + d + np.where(ends[dst], 0.0, onward[dst])                # (E,) longest path via edge
    dmax = float(through.max())
    if dmax <= 0:
        return crit
    per_net = np.zeros(n_nets)
    np.maximum.at(per_net, e_net, through / dmax)
    # squared: a datapath has many nets near the longest path (fir: half of them within 10 %), and weighting them
    # all alike only stretches the rest of the design
    return np.clip((per_net - (1.0 - window)) / window, 0.0, 1.0) ** 2


def slack_criticality(netlist, paths_json: str | Path) -> np.ndarray:
    """(N,) criticality from a 05-timing/paths.json; nets on no reported path get 0."""
    path = Path(paths_json)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlaceError(f"cannot read the timing weights file {path}: {exc}",
                         hint="place.timing_weights_file takes a 05-timing/paths.json of an earlier run") from None
    paths = [p for p in data.get("paths", []) if isinstance(p, dict) and p.get("slack_ns") is not None]
    crit = np.zeros(netlist.n_nets)
    if not paths:
        return crit
    pin_net = netlist.pin_net()
    # sink pins only: a path reaches a sink through its net (a driver pin is reached through its cell's arc)
    pin_dir = np.asarray(netlist.pin_dir)
    index = {(netlist.cell_names[c], netlist.pin_names[p]): int(pin_net[p])
             for p, c in enumerate(np.asarray(netlist.pin_cell).tolist()) if pin_dir[p] != 1}
    cell_of = {name: i for i, name in enumerate(netlist.cell_names)}
    slacks = np.array([float(p["slack_ns"]) for p in paths])
    lo, hi = float(slacks.min()), float(slacks.max())
    for p, s in zip(paths, slacks):
        c = 1.0 if hi <= lo else (hi - s) / (hi - lo)
        for pin in p.get("pins", [])[1:]:
            inst = pin.get("instance") or pin.get("pin")
            key = (inst, pin.get("pin_name"))
            if key not in index and inst in cell_of:   # IO terminals: the pin's name may differ from the port's
                c_i = cell_of[inst]
                hits = np.flatnonzero((np.asarray(netlist.pin_cell) == c_i) & (pin_dir != 1))
                if len(hits) == 1:
                    key = (inst, netlist.pin_names[int(hits[0])])
            net = index.get(key, -1)
            if net >= 0:
                crit[net] = max(crit[net], c)
    log.info("timing weights: %d nets on %d reported paths", int((crit > 0).sum()), len(paths))
    return crit
