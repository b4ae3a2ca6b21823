"""One registry of metric names (OpenROAD-flow-scripts style ``scope__name__modifier``) with units, direction and
a plain-words meaning. Pages, the CLI summary, the RL reward and the benchmarks all read the same names.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    unit: str
    higher_is_better: bool | None  # None: neither (a size, a count that only describes)
    description: str


METRICS: dict[str, Metric] = {
    "design__instance__count": Metric("cells", None, "standard cells after synthesis"),
    "design__instance__area": Metric("um^2", False, "total area of the standard cells"),
    "design__instance__count__sequential": Metric("cells", None, "flip-flops and latches"),
    "design__net__count": Metric("nets", None, "signal nets in the mapped netlist"),
    "design__pin__count": Metric("pins", None, "cell pins on signal nets"),
    "design__io__count": Metric("ports", None, "IO port bits of the top module"),
    "synth__warning__count": Metric("warnings", False, "Yosys warnings (worth reading when not zero)"),
    "floorplan__die__area_um2": Metric("um^2", False, "die area: core plus the margin for IO pins"),
    "floorplan__core__area_um2": Metric("um^2", False, "core area where cells are placed"),
    "floorplan__utilization": Metric("fraction", None,
                                     "cell area / core area: 0.5-0.7 leaves room to route; above 0.85 is tight"),
    "floorplan__row__count": Metric("rows", None, "placement rows of the LEF site"),
    "placement__hpwl": Metric("um", False, "half-perimeter wirelength after detailed placement: the placer's "
                                           "estimate of total wire; lower is better"),
    "placement__hpwl__global": Metric("um", False, "HPWL at the end of global placement (cells may overlap)"),
    "placement__hpwl__legal": Metric("um", False, "HPWL after legalisation onto rows and sites"),
    "placement__overflow": Metric("fraction", False, "share of cell area above the target density at the end of "
                                                     "global placement: below 0.10 means cells are spread"),
    "placement__iterations": Metric("iterations", None, "global placement iterations"),
    "route__rudy__max": Metric("ratio", False, "peak RUDY congestion (wire demand / capacity); above 1 is "
                                               "likely to be hard to route"),
    "route__rudy__overflow": Metric("fraction", False, "share of bins whose RUDY demand exceeds capacity"),
    "route__wirelength": Metric("um", False, "routed wirelength from qrouter"),
    "route__via__count": Metric("vias", False, "vias placed by the router"),
    "route__net__unrouted": Metric("nets", False, "nets the router could not finish: must be 0 for a working chip"),
    "timing__setup__ws": Metric("ns", True, "worst setup slack (WNS): negative means the clock is too fast"),
    "timing__setup__tns": Metric("ns", True, "total negative slack over all endpoints"),
    "timing__fmax_mhz": Metric("MHz", True, "highest clock frequency the design reaches"),
    "power__total": Metric("W", False, "total power (internal + switching + leakage)"),
    "gds__instance__count": Metric("cells", None, "cell instances read back from the GDSII"),
    "route__rudy__mean": Metric("ratio", False, "average RUDY wire demand / capacity over the core"),
    "route__net__count": Metric("nets", None, "nets qrouter read from the placed DEF"),
    "timing__clock_period_ns": Metric("ns", None, "clock period the design is timed against"),
    "timing__wire__cap_pf": Metric("pF", False, "total wire capacitance in the SPEF (estimated from wire lengths)"),
    "power__internal__total": Metric("W", False, "power inside the cells while they switch (short-circuit and "
                                                 "internal nodes)"),
    "power__switching__total": Metric("W", False, "power charging the wires and input pins the cells drive"),
    "power__leakage__total": Metric("W", False, "power the cells draw while idle"),
    "gds__file_bytes": Metric("bytes", None, "size of the GDSII file"),
    "verify__mismatch__count": Metric("lines", False, "testbench outputs where gate-level and RTL differ: must be 0"),
    "verify__tests__count": Metric("lines", None, "testbench output lines compared between RTL and gate level"),
    "verify__rtl__errors": Metric("lines", False, "ERROR/FAIL lines the testbench printed on the RTL"),
    "verify__gate__errors": Metric("lines", False, "ERROR/FAIL lines the testbench printed on the gate-level netlist"),
    "verify__sim__rtl_s": Metric("s", False, "time of the RTL simulation"),
    "verify__sim__gate_s": Metric("s", False, "time of the gate-level simulation"),
}

# The number that tells each step's story in one figure (CLI summary, story lines).
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "synth": ("design__instance__count", "design__instance__area"),
    "floorplan": ("floorplan__utilization", "floorplan__die__area_um2"),
    "place": ("placement__hpwl", "placement__overflow"),
    "route": ("route__wirelength", "route__net__unrouted"),
    "timing": ("timing__setup__ws", "timing__fmax_mhz"),
    "gds": ("gds__instance__count", "gds__file_bytes"),
    "verify": ("verify__tests__count", "verify__mismatch__count"),
}


def describe(name: str) -> str:
    m = METRICS.get(name)
    return f"{m.description} ({m.unit})" if m else name.replace("__", " ")


def format_value(name: str, value) -> str:
    if isinstance(value, float):
        unit = METRICS[name].unit if name in METRICS else ""
        if unit == "fraction":
            return f"{value:.3f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)
