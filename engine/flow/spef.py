"""Wire parasitics as SPEF, estimated from routed (or placed) wire lengths and the LEF's per-layer R and C.

Each net becomes a star: the driver pin, a hub node, and one branch per sink. The net's wire length (routed, per
layer, from qrouter's DEF; or, before routing, the half-perimeter of the placed pins) sets its total R and C with
the LEF's RPERSQ (ohm/square), CPERSQDIST (pF/um^2) and EDGECAPACITANCE (pF/um). A branch's resistance follows the
Manhattan distance from the driver to that sink; the capacitance is split between the hub and the sinks. This is
an estimate (no coupling, no via resistance), good enough for a wire-aware WNS on a 0.18 um library where the
drivers' resistance dominates. The file formats are engine.io's: the routed DEF's wiring (def_io.read_routing) and
SPEF (io.spef).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.io.def_io import read_routing
from engine.io.spef import Spef, SpefConn, SpefNet, spef_name
from engine.io.spef import write_spef as write_spef_file
from engine.netlist import PIN_INPUT, PIN_OUTPUT, Netlist
from engine.pdk import Pdk


@dataclass
class NetWires:
    """The routing of one net in a routed DEF."""

    length_um: dict[str, float] = field(default_factory=dict)  # layer -> wire length
    vias: int = 0

    @property
    def total_um(self) -> float:
        return float(sum(self.length_um.values()))


def read_routed_wires(def_path: str | Path, routing_layers: set[str] | None = None) -> tuple[dict[str, NetWires], int]:
    """Wire length per layer and via count of every net in a routed DEF's NETS (and SPECIALNETS) sections, from
    engine.io.def_io.read_routing; wiring on a layer outside ``routing_layers`` (when given) is not counted.

    -> ({net: NetWires}, DEF units per micron)."""
    routing = read_routing(def_path)
    out: dict[str, NetWires] = {}
    for net in routing.nets:
        wires = out.setdefault(net.name, NetWires())  # a net in both sections: its stubs join its wiring
        for seg in net.segments:
            if routing_layers is not None and seg.layer not in routing_layers:
                continue
            length = seg.length_dbu
            if length:
                wires.length_um[seg.layer] = wires.length_um.get(seg.layer, 0.0) + length / routing.units
            wires.vias += len(seg.vias)
    return out, routing.units


# ------------------------------------------------------------------------------------------------------ model
@dataclass
class LayerRC:
    r_per_um: float  # ohm per um of minimum-width wire
    c_per_um: float  # pF per um (area + two edges)


def layer_rc(pdk: Pdk) -> dict[str, LayerRC]:
    out = {}
    for layer in pdk.routing_layers():
        w = layer.width_um or 0.3
        r = (layer.res_per_sq or 0.0) / w
        c = (layer.cap_per_sq_dist or 0.0) * w + 2 * (layer.edge_cap or 0.0)
        out[layer.name] = LayerRC(r, c)
    return out


def default_rc(pdk: Pdk, layers: int) -> LayerRC:
    """Average R and C per um over the signal layers a router would use (metal2..), for unrouted estimates."""
    rcs = list(layer_rc(pdk).values())[1:max(2, layers)] or list(layer_rc(pdk).values())
    return LayerRC(float(np.mean([x.r_per_um for x in rcs])), float(np.mean([x.c_per_um for x in rcs])))


def oriented_pin_positions(netlist: Netlist) -> tuple[np.ndarray, np.ndarray]:
    """Pin positions with each cell's orientation applied (Netlist offsets are those of the unflipped cell)."""
    dx, dy = netlist.pin_dx.copy(), netlist.pin_dy.copy()
    if netlist.cell_orient:
        orient = np.asarray(netlist.cell_orient, dtype=object)[netlist.pin_cell]
        w, h = netlist.cell_w[netlist.pin_cell], netlist.cell_h[netlist.pin_cell]
        flip_y = np.isin(orient, ("FS", "S"))
        flip_x = np.isin(orient, ("FN", "S"))
        dy[flip_y] = h[flip_y] - dy[flip_y]
        dx[flip_x] = w[flip_x] - dx[flip_x]
    return netlist.x[netlist.pin_cell] + dx, netlist.y[netlist.pin_cell] + dy


@dataclass
class NetRC:
    name: str
    driver: str  # "inst:pin" or a port name
    sinks: list[str]
    sink_r: list[float]  # ohm, hub -> sink
    driver_r: float  # ohm, driver -> hub (a token value: the branches carry the wire's resistance)
    hub_c: float  # pF
    sink_c: list[float]  # pF at each sink node (wire share)
    length_um: float

    @property
    def total_c(self) -> float:
        return self.hub_c + sum(self.sink_c)


def estimate(netlist: Netlist, pdk: Pdk, *, wires: dict[str, NetWires] | None = None, layers: int = 4) -> list[NetRC]:
    """One NetRC per net with a driver and at least one sink; lengths from ``wires`` when given, else HPWL."""
    rcs = layer_rc(pdk)
    fallback = default_rc(pdk, layers)
    px, py = oriented_pin_positions(netlist)
    hpwl = netlist.net_hpwl()
    out: list[NetRC] = []
    for n, name in enumerate(netlist.net_names):
        pins = netlist.net_pins[netlist.net_start[n]:netlist.net_start[n + 1]]
        if len(pins) < 2:
            continue
        drivers = [p for p in pins if netlist.pin_dir[p] == PIN_OUTPUT]
        drv = drivers[0] if drivers else pins[0]
        sinks = [p for p in pins if p != drv]
        w = (wires or {}).get(name)
        if w is not None and w.total_um > 0:
            length = w.total_um
            r_um = sum(rcs.get(ly, fallback).r_per_um * le for ly, le in w.length_um.items()) / length
            c_um = sum(rcs.get(ly, fallback).c_per_um * le for ly, le in w.length_um.items()) / length
        else:
            length = float(hpwl[n])
            r_um, c_um = fallback.r_per_um, fallback.c_per_um
        dist = np.abs(px[sinks] - px[drv]) + np.abs(py[sinks] - py[drv])
        # A tree shares its trunk: no branch is longer than the whole net.
        branch = np.minimum(dist, length)
        total_c = c_um * length
        out.append(NetRC(
            name=name, driver=_term(netlist, drv), sinks=[_term(netlist, p) for p in sinks],
            sink_r=[float(r_um * b) for b in branch], driver_r=1e-3,
            hub_c=total_c / 2, sink_c=[total_c / 2 / len(sinks)] * len(sinks), length_um=length))
    return out


def _term(netlist: Netlist, p: int) -> str:
    c = netlist.pin_cell[p]
    if netlist.cell_is_io[c]:
        return netlist.cell_names[c]
    return f"{netlist.cell_names[c]}:{netlist.pin_names[p]}"


def _spef_term(term: str) -> str:
    if ":" in term:
        inst, pin = term.rsplit(":", 1)
        return f"{spef_name(inst)}:{spef_name(pin)}"
    return spef_name(term)


def write_spef(path: str | Path, design: str, nets: list[NetRC], netlist: Netlist, tool: str = "cda") -> Path:
    """Write ``nets`` as SPEF (engine.io.spef; capacitance in pF, resistance in ohm, time in ns): each net a star
    from the driver through the hub ``<net>:1`` to the sinks."""
    io_dir = {}
    for p in range(netlist.n_pins):
        c = netlist.pin_cell[p]
        if netlist.cell_is_io[c]:
            # The terminal's pin direction is the reverse of the port's.
            io_dir[netlist.cell_names[c]] = {PIN_OUTPUT: "I", PIN_INPUT: "O"}.get(int(netlist.pin_dir[p]), "B")
    pin_dir = {}
    for p in range(netlist.n_pins):
        c = netlist.pin_cell[p]
        if not netlist.cell_is_io[c]:
            pin_dir[f"{netlist.cell_names[c]}:{netlist.pin_names[p]}"] = {PIN_OUTPUT: "O", PIN_INPUT: "I"}.get(
                int(netlist.pin_dir[p]), "B")
    spef = Spef(design, ports=[(spef_name(p), io_dir[p]) for p in sorted(io_dir)])
    for net in nets:
        hub = f"{spef_name(net.name)}:1"
        conns = [SpefConn("I", _spef_term(term), pin_dir.get(term, "B")) if ":" in term
                 else SpefConn("P", _spef_term(term), io_dir.get(term, "B")) for term in [net.driver] + net.sinks]
        caps = [(hub, net.hub_c)] + [(_spef_term(term), c) for term, c in zip(net.sinks, net.sink_c)]
        res = [(_spef_term(net.driver), hub, net.driver_r)]
        res += [(hub, _spef_term(term), max(r, 1e-3)) for term, r in zip(net.sinks, net.sink_r)]
        spef.nets.append(SpefNet(spef_name(net.name), net.total_c, conns=conns, caps=caps, res=res))
    return write_spef_file(path, spef, program=tool)


def parasitics_summary(nets: list[NetRC]) -> dict[str, float]:
    if not nets:
        return {"total_c_pf": 0.0, "total_length_um": 0.0, "max_c_pf": 0.0}
    return {"total_c_pf": float(sum(n.total_c for n in nets)),
            "total_length_um": float(sum(n.length_um for n in nets)),
            "max_c_pf": float(max(n.total_c for n in nets))}
