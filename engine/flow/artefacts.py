"""The artefacts steps hand each other, as named types, and the declaration a step makes of what it reads.

A step's ``inputs`` are `Input(step, artefact, required)` records; its ``outputs`` the artefact names it must leave
when it finishes. The base class (engine.flow.base) checks the required inputs before the step runs, hashes the
input files into the reuse key, and checks the outputs after; `run_flow` orders the chosen steps so that every
input's producer runs first (that is how verify comes before timing when both are chosen: timing reads the RTL
VCD of the verify step for switching activity).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtefactType:
    name: str  # key in step.json's "artefacts"
    kind: str  # what the file is: netlist, def, spef, vcd, gds, json, log, ...
    description: str


# (producing step, artefact name) -> its type. One table, read by the tests, `cda runs show` and the pages.
ARTEFACTS: dict[tuple[str, str], ArtefactType] = {
    ("synth", "netlist_v"): ArtefactType("netlist_v", "netlist", "mapped gate-level Verilog (osu018 cells)"),
    ("synth", "netlist_json"): ArtefactType("netlist_json", "netlist", "the same netlist as Yosys JSON"),
    ("synth", "log"): ArtefactType("log", "log", "Yosys log"),
    ("synth", "stat"): ArtefactType("stat", "report", "Yosys `stat` with Liberty areas"),
    ("floorplan", "def"): ArtefactType("def", "def", "floorplan DEF: die, rows, tracks, IO pins, unplaced cells"),
    ("floorplan", "pins"): ArtefactType("pins", "json", "IO pin positions"),
    ("place", "def"): ArtefactType("def", "def", "placed DEF (legal, after detailed placement)"),
    ("place", "placed_def"): ArtefactType("placed_def", "def", "the placed DEF (older name)"),
    ("place", "frames"): ArtefactType("frames", "frames", "placement frames: positions, density and RUDY maps"),
    ("place", "history"): ArtefactType("history", "json", "HPWL / overflow per iteration"),
    ("cts", "def"): ArtefactType("def", "def", "placed DEF with the clock tree and repair buffers, legal"),
    ("cts", "netlist_v"): ArtefactType("netlist_v", "netlist", "gate-level Verilog with the buffers as instances"),
    ("cts", "tree"): ArtefactType("tree", "json", "the clock tree: buffers, levels, positions and the sinks each "
                                                  "drives"),
    ("route", "congestion"): ArtefactType("congestion", "npz", "RUDY congestion map of the placement"),
    ("route", "def"): ArtefactType("def", "def", "routed DEF from qrouter"),
    ("route", "log"): ArtefactType("log", "log", "qrouter log"),
    ("route", "cfg"): ArtefactType("cfg", "script", "qrouter script"),
    ("timing", "log"): ArtefactType("log", "log", "OpenSTA log"),
    ("timing", "paths"): ArtefactType("paths", "json", "worst paths"),
    ("timing", "report"): ArtefactType("report", "report", "OpenSTA path report"),
    ("timing", "script"): ArtefactType("script", "script", "OpenSTA script"),
    ("timing", "spef"): ArtefactType("spef", "spef", "parasitics estimated from the wires"),
    ("gds", "gds"): ArtefactType("gds", "gds", "GDSII layout"),
    ("gds", "png"): ArtefactType("png", "image", "rendered layout"),
    ("gds", "layers"): ArtefactType("layers", "json", "GDS layer map"),
    ("gds", "filled_def"): ArtefactType("filled_def", "def", "the routed DEF with filler cells in every row gap"),
    ("checks", "report"): ArtefactType("report", "json", "signoff checks: counts, status and findings per check"),
    ("checks", "text"): ArtefactType("text", "report", "signoff checks as a plain-text report"),
    ("verify", "report"): ArtefactType("report", "json", "verification report"),
    ("verify", "mismatches"): ArtefactType("mismatches", "json", "RTL vs gate-level differences"),
    ("verify", "rtl_log"): ArtefactType("rtl_log", "log", "RTL simulation log"),
    ("verify", "gate_log"): ArtefactType("gate_log", "log", "gate-level simulation log"),
    ("verify", "vcd"): ArtefactType("vcd", "vcd", "RTL simulation VCD (switching activity for power)"),
    ("verify", "gate_vcd"): ArtefactType("gate_vcd", "vcd", "gate-level simulation VCD"),
    ("verify", "activity"): ArtefactType("activity", "json", "toggles and duty per net"),
}


@dataclass(frozen=True)
class Input:
    step: str  # the producing step
    artefact: str  # its artefact name (a key of ARTEFACTS)
    required: bool = True  # False: used when present (the step says what it does without it)

    @property
    def type(self) -> ArtefactType:
        return ARTEFACTS[(self.step, self.artefact)]


def describe(step: str, name: str) -> str:
    t = ARTEFACTS.get((step, name))
    return t.description if t else name
