"""Every metric the flow, the placer and the benchmark write, described once.

Names follow OpenROAD-flow-scripts (``scope__name__modifier``). Each entry says what a person reads (label, unit
after the display scale, meaning), which way is better and by how much a change must move before "better" or
"worse" is claimed (noise), and the thresholds a judge uses to call a value good / fair / poor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError, nearest

# The steps of the flow, in order (engine.flow.registry holds the same tuple; it is small and import-free, but the
# registry must not import the flow package, so the test suite checks the two agree).
STEPS = ("synth", "floorplan", "place", "cts", "route", "timing", "gds", "checks", "verify")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it is, how it is shown, which way is better."""

    name: str  # the key in metrics.json, e.g. "placement__hpwl"
    label: str  # short words for a table heading: "HPWL"
    unit: str  # unit of the stored value: "um", "W", "ns", "fraction", "cells", "" (text, flags)
    higher_is_better: bool | None  # None: neither (a size that only describes, a text, a flag)
    meaning: str  # plain words for a person who has never seen the name
    scale: float = 1.0  # shown value = stored value x scale (W -> mW is 1e3, a fraction as % is 100)
    display_unit: str | None = None  # unit of the shown value; None = ``unit``
    noise: float = 0.0  # relative change below which better/worse is not claimed (0 = any change counts)
    noise_abs: float = 0.0  # absolute change below which better/worse is not claimed (for values near 0: slack)
    judge: dict[str, float] = field(default_factory=dict)  # thresholds: good_max/fair_max or good_min/fair_min
    kind: str = "number"  # "number", "count", "text", "flag", "list" or "map" (what the value is)

    @property
    def description(self) -> str:  # the old engine.metrics name of ``meaning``
        return self.meaning

    @property
    def shown_unit(self) -> str:
        return self.unit if self.display_unit is None else self.display_unit

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "count")

    def better(self, a: Any, b: Any) -> bool | None:
        """True when ``a`` is better than ``b``, False when worse, None when the metric has no direction, a value
        is not a number, or the difference is within noise."""
        if self.higher_is_better is None or not (_is_number(a) and _is_number(b)):
            return None
        a, b = float(a), float(b)
        diff = a - b
        if abs(diff) <= max(self.noise * max(abs(a), abs(b)), self.noise_abs):
            return None
        return (diff > 0) == self.higher_is_better

    def verdict(self, value: Any) -> str | None:
        """"good" / "fair" / "poor" from the judge thresholds; None when there are none (or not a number)."""
        if not _is_number(value):
            return None
        v = float(value)
        j = self.judge
        if "good_max" in j:
            return "good" if v <= j["good_max"] else "fair" if "fair_max" in j and v <= j["fair_max"] else "poor"
        if "good_min" in j:
            return "good" if v >= j["good_min"] else "fair" if "fair_min" in j and v >= j["fair_min"] else "poor"
        return None

    def fmt(self, value: Any) -> str:
        """The value for a page or a sentence, in its display unit: "2,797 um", "59.7 %", "0.467 mW"."""
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if not _is_number(value):
            return str(value)
        unit = self.shown_unit
        if unit == "%":
            return f"{float(value) * self.scale:.1f} %"
        v = value * self.scale if self.scale != 1.0 else value
        if isinstance(v, int):
            text = f"{v:,}"
        else:
            a = abs(v)
            if a >= 1000 or (a >= 100 and float(v).is_integer()):
                text = f"{v:,.0f}"
            elif a >= 100:
                text = f"{v:,.1f}"
            elif a == 0:
                text = "0"
            else:
                text = f"{v:.4g}"
        if unit in ("fraction", "ratio"):
            unit = ""
        return f"{text} {unit}".strip()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


# Shared keyword sets of MetricSpec (typed Any: each holds fields of different types).
_UM2: dict[str, Any] = dict(unit="um^2", display_unit="µm²")
_UM: dict[str, Any] = dict(unit="um", display_unit="µm")
_RUNTIME: dict[str, Any] = dict(unit="s", higher_is_better=False, noise=0.2, noise_abs=0.05)  # shared machine
_POWER: dict[str, Any] = dict(unit="W", higher_is_better=False, scale=1e3, display_unit="mW", noise=0.01)


def _count(name: str, label: str, unit: str, meaning: str, hib: bool | None = None, **kw) -> MetricSpec:
    return MetricSpec(name, label, unit, hib, meaning, kind="count", **kw)


def _text(name: str, label: str, meaning: str, kind: str = "text") -> MetricSpec:
    return MetricSpec(name, label, "", None, meaning, kind=kind)


_SPECS: list[MetricSpec] = [
    # ---- synthesis (01-synth) ---------------------------------------------------------------------------------
    _text("design__top", "Top module", "the module synthesised as the chip"),
    _count("design__instance__count", "Cells", "cells", "standard cells in the netlist after synthesis (fewer "
           "for the same function is better)", False),
    MetricSpec("design__instance__area", "Cell area", higher_is_better=False, noise=0.001,
               meaning="total area of the standard cells", **_UM2),
    _count("design__instance__count__sequential", "Flip-flops", "cells", "cells that store state (flip-flops "
           "and latches)"),
    _count("design__instance__count__macro", "Macro instances", "cells", "hard macros (CLASS BLOCK from a macro "
           "LEF: a RAM, an IP block) in the netlist, each one instance placed as a fixed block"),
    _count("design__net__count", "Nets", "nets", "signal nets in the mapped netlist (each is one electrical node)"),
    _count("design__pin__count", "Cell pins", "pins", "cell pins on signal nets; each connects to one net"),
    _count("design__io__count", "I/O ports", "ports", "IO port bits of the top module, placed on the die edge"),
    _count("synth__warning__count", "Yosys warnings", "warnings", "warnings in the synthesis log (worth reading "
           "when not zero)", False),
    _text("synth__cell_types", "Cell types", "how many cells of each library cell the netlist uses", "map"),
    _text("synth__design_warnings", "Design warnings", "sentences about the design Yosys' log revealed (logic "
          "optimised away, latches inferred, several top modules)", "list"),
    # ---- floorplan (02-floorplan) ------------------------------------------------------------------------------
    MetricSpec("floorplan__die__width_um", "Die width", higher_is_better=None, meaning="width of the chip outline",
               **_UM),
    MetricSpec("floorplan__die__height_um", "Die height", higher_is_better=None,
               meaning="height of the chip outline", **_UM),
    MetricSpec("floorplan__die__area_um2", "Die area", higher_is_better=False, noise=0.001,
               meaning="die area: core plus the margin for IO pins", **_UM2),
    MetricSpec("floorplan__core__width_um", "Core width", higher_is_better=None,
               meaning="width of the placement area", **_UM),
    MetricSpec("floorplan__core__height_um", "Core height", higher_is_better=None,
               meaning="height of the placement area", **_UM),
    MetricSpec("floorplan__core__area_um2", "Core area", higher_is_better=False, noise=0.001,
               meaning="area of the rows where cells are placed", **_UM2),
    MetricSpec("floorplan__utilization", "Utilisation", "fraction", None,
               "cell area / core area: 0.5-0.7 leaves room to route; above 0.85 is tight", scale=100.0,
               display_unit="%", judge={"good_max": 0.70, "fair_max": 0.85}),
    _count("floorplan__macro__count", "Macros placed", "blocks", "hard macros fixed in the core by the floorplan "
           "(with their halo, rows cut around them)"),
    MetricSpec("floorplan__macro__area_um2", "Macro area", higher_is_better=None,
               meaning="area of the hard macros in the core", **_UM2),
    _count("floorplan__row__count", "Rows", "rows", "placement rows of the LEF site the cells sit in"),
    _count("floorplan__site__count", "Sites", "sites", "cell slots (one site wide) in all rows"),
    _count("floorplan__io__count", "I/O pins", "pins", "IO pins placed on the die edge"),
    _count("floorplan__pdn__stripe__count", "Power stripes", "stripes", "vertical vdd and gnd stripes of the "
           "power grid across the core (they alternate)"),
    _count("floorplan__pdn__rail__count", "Power rails", "rails", "followpin rails of the power grid: one on each "
           "row boundary, shared by the rows above and below"),
    _count("floorplan__pdn__ring__count", "Power rings", "rings", "vdd and gnd rings around the core (0 when the "
           "core margin is too narrow for them)"),
    MetricSpec("floorplan__pdn__wirelength_um", "Power grid wire", higher_is_better=None,
               meaning="length of all power-grid wiring: rings, stripes and rails", **_UM),
    _count("floorplan__pdn__tie__count", "Tied pins", "pins", "cell inputs tied to a constant (1'b0 / 1'b1, "
           "the tie buffers' inputs), connected to gnd / vdd through the grid"),
    _count("floorplan__pdn__via__count", "Power grid vias", "vias", "vias joining the power grid's layers (rail "
           "to stripe stacks, stripe to ring)"),
    # ---- placement (03-place; the benchmark's global-only placement writes some of the same keys) -------------
    MetricSpec("placement__hpwl", "HPWL", higher_is_better=False, noise=0.01,
               judge={"good_max_rows_per_net": 3.0, "fair_max_rows_per_net": 8.0},
               meaning="half-perimeter wirelength: for each net half the perimeter of the box around its pins, "
                       "summed; the placer's estimate of the wire the router will need. In a flow run it is "
                       "measured after detailed placement; in a benchmark measurement (global placement only) "
                       "it equals placement__hpwl__global", **_UM),
    MetricSpec("placement__hpwl__global", "HPWL (global)", higher_is_better=False, noise=0.01,
               meaning="HPWL at the end of global placement (cells may still overlap)", **_UM),
    MetricSpec("placement__hpwl__legal", "HPWL (legal)", higher_is_better=False, noise=0.01,
               meaning="HPWL after legalisation onto rows and sites, before detailed placement", **_UM),
    MetricSpec("placement__overflow", "Overflow", "fraction", False,
               "share of cell area above the target density at the end of global placement (0 = evenly spread, "
               "1 = everything on one spot); the placer stops near 0.10", noise=0.02, noise_abs=0.002,
               judge={"good_max": 0.10, "fair_max": 0.25}),
    _count("placement__iterations", "Iterations", "iterations", "Nesterov steps of global placement"),
    _count("placement__cells__movable", "Movable cells", "cells", "cells the placer moves (IO pins are fixed)"),
    _count("placement__bins", "Density bins", "bins", "bins per side of the placer's density grid"),
    _count("placement__detailed__moves", "Detailed moves", "moves", "swaps and shifts that shortened wires after "
           "legalisation"),
    MetricSpec("placement__displacement__mean", "Legalisation move", higher_is_better=False, noise=0.02,
               meaning="average distance a cell moved to snap onto a row site", **_UM),
    MetricSpec("placement__displacement__max", "Largest move", higher_is_better=False, noise=0.02,
               meaning="farthest a cell moved during legalisation", **_UM),
    _count("placement__macros__movable", "Movable macros", "macros", "cells taller than a row that the placer "
           "places and legalises before the standard cells (mixed-size designs only)"),
    MetricSpec("placement__macros__displacement__max", "Largest macro move", higher_is_better=False, noise=0.02,
               meaning="farthest a movable macro moved from global placement onto the row/site grid", **_UM),
    _text("placement__legal", "Legal", "every cell sits on a row site without overlap", "flag"),
    _count("placement__frames__count", "Frames", "frames", "snapshots saved for the replay"),
    MetricSpec("placement__frames__seconds", "Frame writing time", meaning="seconds spent saving replay frames",
               **_RUNTIME),
    MetricSpec("placement__runtime__global_s", "Global placement time", meaning="seconds of global placement",
               **_RUNTIME),
    MetricSpec("placement__runtime__legalize_s", "Legalisation time", meaning="seconds of legalisation",
               **_RUNTIME),
    MetricSpec("placement__runtime__detailed_s", "Detailed placement time",
               meaning="seconds of detailed placement", **_RUNTIME),
    MetricSpec("placement__runtime_s", "Placer time", meaning="seconds the placer took in all (global, legal, "
               "detailed)", **_RUNTIME),
    MetricSpec("placement__rudy__max", "Peak RUDY (placement)", "um/um^2", False,
               "peak RUDY routing demand after placement (um of wire per um^2, on the benchmark's bin grid "
               "over the core); the benchmark's congestion figure", noise=0.02),
    MetricSpec("placement__rudy__mean", "Mean RUDY (placement)", "um/um^2", False,
               "average RUDY routing demand after global placement (um of wire per um^2)", noise=0.02),
    MetricSpec("placement__rudy__top10", "Top-10% RUDY (placement)", "um/um^2", False,
               "mean RUDY routing demand of the hottest 10 % of bins after placement", noise=0.02),
    _text("placement__rudy__hot_bin", "Hottest bin", "the bin (column from the west, row from the south) with "
          "the peak RUDY demand", "list"),
    _text("placement__rudy__hot_region", "Hot region", "where the peak RUDY demand lies on a 3 x 3 split of the "
          "core (north-east, centre, ...)"),
    _text("placement__rudy__hot_xy_um", "Hot spot", "centre of the hottest RUDY bin (um)", "list"),
    _count("placement__routability__rounds", "Inflation rounds", "rounds", "routability rounds global placement "
           "ran (cells in RUDY hot spots inflated in the density term, place.routability)"),
    MetricSpec("placement__routability__inflated_area_um2", "Inflated area", higher_is_better=None,
               meaning="cell area the routability mode added in the density term (real sizes are legalised)",
               **_UM2),
    MetricSpec("placement__routability__rudy_top10__before", "Top-10% RUDY before inflation", "um/um^2", False,
               "mean RUDY of the hottest 10 % of placer bins at the first inflation round", noise=0.02),
    MetricSpec("placement__routability__rudy_max__before", "Peak RUDY before inflation", "um/um^2", False,
               "peak RUDY of the placer bins at the first inflation round", noise=0.02),
    MetricSpec("placement__routability__rudy_top10__after", "Top-10% RUDY after inflation", "um/um^2", False,
               "mean RUDY of the hottest 10 % of placer bins at the end of global placement", noise=0.02),
    MetricSpec("placement__routability__rudy_max__after", "Peak RUDY after inflation", "um/um^2", False,
               "peak RUDY of the placer bins at the end of global placement", noise=0.02),
    MetricSpec("placement__routability__auto_congestion_top10", "Congestion (first placement)", "ratio", False,
               "top-10 % RUDY demand / routing capacity of the first placement, which the auto routability mode "
               "compares with place.routability_auto_congestion", noise=0.02),
    MetricSpec("placement__routability__auto_congestion_top10_after", "Congestion (re-placed)", "ratio", False,
               "top-10 % RUDY demand / routing capacity after the auto routability re-placement", noise=0.02),
    MetricSpec("placement__routability__auto_hpwl_first", "HPWL (first placement)", higher_is_better=False,
               noise=0.01, meaning="HPWL of the placement the auto routability mode replaced", **_UM),
    _text("placement__routability__auto", "Auto routability", "whether the first placement's congestion made the "
          "place step re-place with routability on"),
    _count("placement__timing__weighted_nets", "Timing-weighted nets", "nets", "nets whose weight the timing-driven "
           "mode raised above 1 (criticality from slack or the static proxy)"),
    _text("placement__timing__source", "Timing weights from", "where the timing-driven net weights came from: "
          "'slack file' (place.timing_weights_file) or 'proxy' (logic levels and placed wire length)"),
    MetricSpec("placement__target_overflow", "Target overflow", "fraction", None,
               "the overflow global placement aimed to stop at (place.target_overflow)"),
    _text("placement__converged", "Converged", "global placement reached its target overflow before its "
          "iteration budget", "flag"),
    MetricSpec("placement__density__max", "Peak density", "ratio", False,
               "highest cell density of any bin after placement (cell area / bin area)", noise=0.02),
    _count("design__macro__count", "Macros", "cells", "fixed blocks (not IO pins) in the core of a benchmark "
           "problem"),
    MetricSpec("design__core__area_um2", "Core area (benchmark)", higher_is_better=None,
               meaning="core area of a benchmark placement problem", **_UM2),
    # ---- routing (04-route) ------------------------------------------------------------------------------------
    MetricSpec("route__rudy__max", "Peak congestion", "ratio", False,
               "highest wire demand / track capacity of any region, estimated by RUDY from the placement (above "
               "1 = more wires than tracks)", noise=0.02, judge={"good_max": 0.8, "fair_max": 1.0}),
    MetricSpec("route__rudy__mean", "Mean congestion", "ratio", False,
               "average RUDY wire demand / track capacity over the core", noise=0.02),
    MetricSpec("route__rudy__overflow", "Over-capacity area", "fraction", False,
               "share of RUDY bins whose wire demand exceeds their tracks", scale=100.0, display_unit="%",
               noise_abs=0.001),
    _count("route__layers", "Metal layers", "layers", "routing layers the router may use"),
    MetricSpec("route__wirelength", "Routed wirelength", higher_is_better=False, noise=0.01,
               meaning="total length of metal wires after routing (qrouter)", **_UM),
    _text("route__wirelength__per_layer", "Wirelength per layer", "routed wire length on each metal layer (um)",
          "map"),
    _count("route__via__count", "Vias", "vias", "connections between metal layers placed by the router; each "
           "adds resistance", False, noise=0.01),
    _count("route__net__count", "Nets routed", "nets", "nets qrouter read from the placed DEF"),
    _count("route__net__unrouted", "Unrouted nets", "nets", "nets the router could not finish: must be 0 for a "
           "working chip", False, judge={"good_max": 0}),
    _text("route__failures", "Routing failures", "the nets qrouter reported as failed", "list"),
    # ---- clock tree and fanout repair (03b-cts) -----------------------------------------------------------------
    _text("cts__clock__net", "Clock net", "the net the clock tree was built for (the clock port's)"),
    _count("cts__sink__count", "Clock sinks", "pins", "cell pins on the clock net: the flip-flops' clock inputs"),
    _count("cts__buffer__count", "Clock buffers", "cells", "buffers of the clock tree (from the library's CLKBUF "
           "cells)"),
    _count("cts__level__count", "Clock tree levels", "levels", "buffers between the clock port and every sink "
           "(the tree is balanced: the same count on every path)"),
    MetricSpec("cts__skew_estimate_ns", "Skew estimate", "ns", False,
               "latest minus earliest clock arrival at the sinks, estimated from the buffers' Liberty drive and "
               "the placed wire lengths (OpenSTA's figure is timing__clock__skew_ns)", noise_abs=0.005),
    MetricSpec("cts__latency_estimate_ns", "Clock latency estimate", "ns", False,
               "estimated delay from the clock port to the latest sink through the tree", noise_abs=0.005),
    _count("cts__repair__net__count", "Nets buffered", "nets", "signal nets above cts.fanout_limit that got a "
           "buffer tree"),
    _count("cts__repair__buffer__count", "Repair buffers", "cells", "buffers fanout repair inserted"),
    _count("cts__fanout__max_before", "Largest fanout before", "pins", "the most cell inputs one net drove "
           "before the clock tree and fanout repair"),
    _count("cts__fanout__max", "Largest fanout after", "pins", "the most cell inputs one net drives after the "
           "clock tree and fanout repair", False),
    MetricSpec("cts__buffer__area_um2", "Buffer area", higher_is_better=False,
               meaning="area of every buffer cts inserted", unit="um^2", display_unit="µm²"),
    MetricSpec("cts__displacement__max_um", "Cells moved by cts", higher_is_better=False,
               meaning="largest move of a cell placed before cts while the buffers were legalised (0: the buffers "
                       "went into free sites)", **_UM),
    MetricSpec("cts__hpwl", "HPWL after cts", higher_is_better=False, noise=0.01,
               meaning="half-perimeter wirelength of the placement with the buffers in", **_UM),
    _count("cts__cell__count", "Cells after cts", "cells", "cell instances of the netlist with the buffers"),
    _count("cts__hold__buffer__count", "Hold buffers", "cells", "delay buffers hold repair put on flip-flop "
           "inputs whose hold slack was below cts.hold_margin_ns", False),
    MetricSpec("cts__hold__ws_before", "Hold WNS before repair", "ns", True,
               "worst hold slack of the clock-tree placement before hold repair (OpenSTA, propagated clock, "
               "wires estimated from the placed pins)", noise_abs=0.01),
    MetricSpec("cts__hold__ws_after", "Hold WNS after repair", "ns", True,
               "worst hold slack after hold repair, same estimate (the routed figure is timing__hold__ws)",
               noise_abs=0.01, judge={"good_min": 0.0}),
    MetricSpec("cts__hold__setup_ws_before", "Setup WNS before hold repair", "ns", True,
               "worst setup slack of the clock-tree placement before hold repair, same estimate", noise_abs=0.01),
    MetricSpec("cts__hold__setup_ws_after", "Setup WNS after hold repair", "ns", True,
               "worst setup slack after hold repair (a round that would turn it negative is not kept)",
               noise_abs=0.01),
    _count("cts__hold__endpoint__count", "Hold-short inputs", "pins", "register inputs whose hold slack was below "
           "cts.hold_margin_ns before hold repair", False),
    _count("cts__hold__endpoint__left", "Hold-short inputs left", "pins", "register inputs still below "
           "cts.hold_margin_ns after hold repair", False, judge={"good_max": 0}),
    _count("cts__hold__round__count", "Hold repair rounds", "rounds", "insert-and-retime rounds hold repair kept"),
    _text("cts__legal", "Legal after cts", "every cell on a row and a site and none overlapping after the buffers "
          "went in", "flag"),
    # ---- timing and power (05-timing) --------------------------------------------------------------------------
    MetricSpec("timing__clock_period_ns", "Clock period", "ns", None,
               "the target time between two clock edges the design is timed against"),
    _text("timing__clock__port", "Clock port", "the input port timed as the clock"),
    _text("timing__clock__found_by", "Clock found by", "how the clock port was chosen (config, guess, none)"),
    MetricSpec("timing__setup__ws", "WNS", "ns", True,
               "worst setup slack: how early (positive) or late (negative) the slowest signal arrives at a "
               "flip-flop, relative to the clock; negative means the clock is too fast", noise_abs=0.01,
               judge={"good_min": 0.0}),
    MetricSpec("timing__setup__tns", "TNS", "ns", True,
               "total negative slack: the lateness of all failing endpoints added (0 = none late)",
               noise_abs=0.01, judge={"good_min": 0.0}),
    MetricSpec("timing__fmax_mhz", "Fmax", "MHz", True, "highest clock frequency at which every path meets timing",
               noise=0.01),
    MetricSpec("timing__ecp_ns", "Effective clock period", "ns", False,
               "clock period minus worst slack: the period the layout could run at (the optimizer's timing "
               "figure, after OpenROAD's AutoTuner)", noise=0.01),
    _text("timing__clock__propagated", "Propagated clock", "the clock's arrival at each flip-flop is computed "
          "through the clock tree (set_propagated_clock), not assumed ideal", "flag"),
    MetricSpec("timing__clock__skew_ns", "Clock skew", "ns", False,
               "OpenSTA's clock skew: the largest difference in clock arrival between a launching and a capturing "
               "flip-flop (report_clock_skew)", noise_abs=0.005),
    MetricSpec("timing__hold__ws", "Hold WNS", "ns", True,
               "worst hold slack: how long after the clock edge the fastest signal changes at a flip-flop, beyond "
               "what the flip-flop needs; negative means a hold violation (the clock arrives too late)",
               noise_abs=0.01, judge={"good_min": 0.0}),
    MetricSpec("timing__hold__reg_ws", "Hold WNS flop to flop", "ns", True,
               "worst hold slack of the paths from one flip-flop to another (without the input ports, whose "
               "hold depends on the input delays the SDC gives)", noise_abs=0.01, judge={"good_min": 0.0}),
    MetricSpec("timing__hold__tns", "Hold TNS", "ns", True,
               "total negative hold slack (0 = no hold violation)", noise_abs=0.01, judge={"good_min": 0.0}),
    MetricSpec("timing__slew_limit_ns", "Slew limit", "ns", None,
               "the largest transition allowed on a pin (timing.max_slew_ns, else the Liberty tables' range)"),
    MetricSpec("timing__slew__max_ns", "Worst slew", "ns", False,
               "the slowest transition on any pin", noise=0.01),
    _count("timing__drv__slew_violations", "Slew violations", "pins", "pins whose transition is slower than the "
           "slew limit (report_check_types -max_transition)", False, judge={"good_max": 0}),
    _count("timing__drv__cap_violations", "Capacitance violations", "nets", "nets whose load (pins and wire) is "
           "above their driver's Liberty max_capacitance", False, judge={"good_max": 0}),
    _count("timing__drv__fanout_violations", "Fanout violations", "nets", "signal nets driving more cell inputs "
           "than cts.fanout_limit", False, judge={"good_max": 0}),
    _count("timing__path__count", "Paths reported", "paths", "worst paths kept in paths.json"),
    _text("timing__constrained", "Constrained", "a clock was found, so setup slack is meaningful", "flag"),
    _text("timing__parasitics", "Parasitics", "where the wire RC came from: routed wires or placed HPWL"),
    _text("timing__sdc", "Constraints", "the SDC timing read: the user's file (timing.sdc) or 'generated' (saved "
          "in the run as constraints.sdc)"),
    _count("timing__spef__warning_count", "SPEF warnings", "warnings", "OpenSTA warnings while reading the "
           "parasitics", False),
    _count("timing__loop__count", "Combinational loops", "loops", "loops without a flip-flop OpenSTA had to break",
           False, judge={"good_max": 0}),
    MetricSpec("timing__wire__cap_pf", "Wire capacitance", "pF", False,
               "total wire capacitance in the SPEF (estimated from wire lengths)", noise=0.01),
    MetricSpec("timing__wire__length_um", "Wire length (timing)", higher_is_better=None,
               meaning="wire length the delay model used", **_UM),
    _text("power__activity_source", "Activity source", "where the toggle rates for power came from (a VCD or the "
          "default activity)"),
    MetricSpec("power__total", "Power", meaning="estimated total power (internal + switching + leakage)", **_POWER),
    MetricSpec("power__internal__total", "Internal power",
               meaning="power inside the cells while they switch (short-circuit and internal nodes)", **_POWER),
    MetricSpec("power__switching__total", "Switching power",
               meaning="power charging the wires and input pins the cells drive", **_POWER),
    MetricSpec("power__leakage__total", "Leakage power", meaning="power the cells draw while idle", **_POWER),
    # ---- GDSII (06-gds) ----------------------------------------------------------------------------------------
    _text("gds__top_cell", "Top cell", "name of the GDSII top cell"),
    _count("gds__instance__count", "Cells in GDS", "cells", "cell instances read back from the GDSII top cell"),
    _text("gds__bbox_um", "GDS bounding box", "extent of the layout (x0, y0, x1, y1 in um)", "list"),
    _count("gds__file_bytes", "GDS size", "bytes", "size of the GDSII file", scale=1e-3, display_unit="kB"),
    _count("gds__layer__count", "GDS layers", "layers", "layers written into the GDSII (metals, vias, outlines, "
           "pins)"),
    _text("gds__routed", "Routed", "the GDSII holds the routed wires (not only the placement)", "flag"),
    _text("gds__renderer", "Renderer", "what drew layout.png (KLayout or the fallback)"),
    _text("gds__cells_are_abstracts", "Cell abstracts", "cells are LEF abstracts (outlines and pins), not full "
          "layouts", "flag"),
    _count("fill__cell__count", "Filler cells", "cells", "filler cells placed in the gaps of the rows before "
           "GDSII (so wells and power rails run unbroken)"),
    MetricSpec("fill__filled_fraction", "Rows filled", "fraction", True,
               "fraction of the row length covered by cells and fillers after fill: 1 means no gap is left",
               scale=100.0, display_unit="%", judge={"good_min": 1.0, "fair_min": 0.99}),
    # ---- signoff checks (06b-checks) ----------------------------------------------------------------------------
    _count("checks__unconnected_inputs", "Floating inputs", "pins", "signal inputs of placed cells that no net "
           "connects in the final DEF: they would float", False, judge={"good_max": 0}),
    _count("checks__unconnected_outputs", "Open outputs", "pins", "cell outputs on no net: expected where "
           "synthesis left an output unused (a half adder's carry)"),
    _count("checks__power_pins_unconnected", "Unconnected power pins", "pins", "power and ground pins of placed "
           "cells that no SPECIALNETS entry names, or that do not touch their net's grid", False,
           judge={"good_max": 0}),
    _count("checks__unrouted_nets", "Unrouted nets (check)", "nets", "nets with two or more terminals that have no "
           "routing at all in the routed DEF", False, judge={"good_max": 0}),
    _count("checks__open_nets", "Open nets (check)", "nets", "routed nets whose wires, vias and pin shapes, joined "
           "where they touch on a layer, do not connect all of the net's terminals", False, judge={"good_max": 0}),
    _count("checks__shorts", "Shorts", "net pairs", "pairs of nets whose wires, vias, pins or power grid overlap "
           "on one layer in the routed DEF", False, judge={"good_max": 0}),
    _count("checks__pins_off_track", "Pins off track", "pins", "connected pins with no crossing of routing tracks "
           "inside their shapes: the router reaches them with an off-grid stub", False),
    _count("checks__overlaps", "Overlapping cells", "pairs", "pairs of placed cells (fillers included) whose "
           "outlines overlap, found by a sweep line over the DEF", False, judge={"good_max": 0}),
    _count("checks__row_violations", "Row violations", "cells", "cells off a row, off the site grid, or in an "
           "orientation their row does not allow (N rows: N; FS rows: FS; mirrored when the cell allows it)", False,
           judge={"good_max": 0}),
    _count("checks__outside_die", "Outside the die", "cells", "cells and IO pins not inside the DIEAREA", False,
           judge={"good_max": 0}),
    _count("checks__lvs_mismatches", "Netlist vs layout mismatches", "mismatches", "differences between the "
           "gate-level netlist and the DEF: missing or extra instances and ports, and groups of nets whose terminal "
           "sets differ (connectivity only, not geometry)", False, judge={"good_max": 0}),
    _count("checks__antenna_violations", "Antenna violations (estimate)", "nets", "net and layer pairs whose metal "
           "area over gate area exceeds the LEF's ANTENNAAREARATIO (only when the LEF has antenna data)", False,
           judge={"good_max": 0}),
    _text("checks__antenna__status", "Antenna check", "whether the antenna estimate ran, and why not when the LEF "
          "has no antenna data"),
    _count("checks__failed__count", "Checks failed", "checks", "signoff checks with an error-level finding", False,
           judge={"good_max": 0}),
    _text("checks__status", "Signoff checks", "pass when no check found an error, else the checks that failed"),
    _text("checks__routed", "Checked routed DEF", "the checks read a routed DEF (routing on), so the unrouted and "
          "open-net checks ran", "flag"),
    # ---- verification (07-verify) ------------------------------------------------------------------------------
    _text("verify__status", "Gate-level check", "the routed netlist simulated against the RTL with the design's "
          "testbench: pass means they agree"),
    _count("verify__tests__count", "Outputs compared", "lines", "testbench output lines compared between RTL and "
           "gate level"),
    _count("verify__mismatch__count", "Mismatches", "lines", "testbench outputs where gate level and RTL differ: "
           "must be 0", False, judge={"good_max": 0}),
    _count("verify__rtl__errors", "RTL errors", "lines", "ERROR/FAIL lines the testbench printed on the RTL",
           False, judge={"good_max": 0}),
    _count("verify__gate__errors", "Gate-level errors", "lines", "ERROR/FAIL lines the testbench printed on the "
           "gate-level netlist", False, judge={"good_max": 0}),
    MetricSpec("verify__sim__rtl_s", "RTL simulation time", meaning="seconds of the RTL simulation", **_RUNTIME),
    MetricSpec("verify__sim__gate_s", "Gate simulation time", meaning="seconds of the gate-level simulation",
               **_RUNTIME),
    _text("verify__vcd_scope", "VCD scope", "the instance path of the design inside the testbench's VCD"),
]
# Every step's wall-clock time, added by the flow runner.
_SPECS += [MetricSpec(f"flow__{s}__runtime_s", f"{s.capitalize()} runtime",
                      meaning=f"wall-clock seconds the {s} step took", **_RUNTIME) for s in STEPS]

METRICS: dict[str, MetricSpec] = {}
for _spec in _SPECS:
    if _spec.name in METRICS:
        raise RuntimeError(f"metric {_spec.name} registered twice")
    METRICS[_spec.name] = _spec

# The numbers that tell each step's story in one figure (CLI summary, story lines).
KEY_METRICS: dict[str, tuple[str, ...]] = {
    "synth": ("design__instance__count", "design__instance__area"),
    "floorplan": ("floorplan__utilization", "floorplan__die__area_um2"),
    "place": ("placement__hpwl", "placement__overflow"),
    "cts": ("cts__buffer__count", "cts__skew_estimate_ns"),
    "route": ("route__wirelength", "route__net__unrouted"),
    "timing": ("timing__setup__ws", "timing__fmax_mhz"),
    "gds": ("gds__instance__count", "gds__file_bytes"),
    "checks": ("checks__failed__count", "checks__lvs_mismatches"),
    "verify": ("verify__tests__count", "verify__mismatch__count"),
}


def metric(name: str) -> MetricSpec:
    """The spec of a metric; an EngineError naming the nearest registered name when it is unknown."""
    spec = METRICS.get(name)
    if spec is None:
        close = nearest(name, METRICS)
        hint = f"; did you mean {close}?" if close else ""
        raise EngineError(f"unknown metric {name}{hint}", hint="`cda metrics list` prints every metric")
    return spec


def describe(name: str) -> str:
    """Meaning and unit in one line (the CLI, prompts)."""
    m = METRICS.get(name)
    if m is None:
        return name.replace("__", " ")
    return f"{m.meaning} ({m.unit})" if m.unit else m.meaning


def format_value(name: str, value: Any) -> str:
    """A compact value for the terminal (no unit): fractions with 3 decimals, large numbers with separators."""
    if isinstance(value, float):
        m = METRICS.get(name)
        if m is not None and m.unit == "fraction":
            return f"{value:.3f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)
