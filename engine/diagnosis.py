"""What a failure's code means and which knob to turn: one catalogue shared by `cda runs show`, the chat and the pages.

Every EngineError carries a ``code`` (engine.errors); the flow writes it to run.json with the knob to turn.
``lookup(code)`` gives its title, its likely cause, what to change and the registry knobs involved;
``suggest(code, config)`` the change to try as dotted FlowConfig paths -> new values (what a "Rerun with" button
applies); ``of_run(info)`` the code and knob of a failed run, read from run.json.

    from engine.diagnosis import lookup, suggest
    lookup("route.unrouted").knobs                                  # ("floorplan.utilization", "route.layers")
    suggest("route.unrouted", {"floorplan": {"utilization": 0.8}})  # {"floorplan.utilization": 0.6, "route.layers": 5}
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.registry import KNOBS, KnobSpec
from engine.registry import knob as registry_knob


@dataclass(frozen=True)
class Diagnosis:
    """One kind of failure (or missed goal), told as: what it is, why it happens, what to change."""

    code: str  # "route.unrouted": scope (step, tool, input, job) . what happened
    title: str  # a few words for a heading: "Routing left nets open"
    meaning: str  # the likely cause, for a person
    action: str  # what to change, in words
    knobs: tuple[str, ...] = ()  # registry knob paths to turn, the most useful first

    @property
    def knob(self) -> str | None:
        """The knob to suggest first, or None when the fix is in the design, not in a knob."""
        return self.knobs[0] if self.knobs else None

    def knob_specs(self) -> list[KnobSpec]:
        """The registry's specs of ``knobs`` (range, default, doc); an EngineError if one is not registered."""
        return [registry_knob(p) for p in self.knobs]


_D = Diagnosis
_ENTRIES = [
    # --- the design's sources and the user's values (checked before or at synthesis) ---
    _D("input.invalid_name", "Not a valid Verilog name",
       "A top-module or clock-port name is not a Verilog identifier, so it cannot be handed to the tools safely.",
       "Use letters, digits, _ and $, starting with a letter or _ (Design → top module / clock port)."),
    _D("input.invalid_path", "Unusable file name",
       "A file or folder name holds a control character or a double quote, which the tool scripts cannot carry.",
       "Rename the file and upload it again."),
    _D("input.invalid_label", "Unusable run label", "The run's label is too long or holds a control character.",
       "Shorten the label or remove the line breaks from it."),
    _D("input.out_of_range", "A value is out of range", "A number given to the flow is outside the range it accepts.",
       "Give a value inside the range the message names.", ("clock_ns",)),
    _D("input.invalid", "Invalid input", "A value given to the flow cannot be used as it is.",
       "Correct the value the message names."),
    _D("input.upload", "The upload was refused",
       "A file, a zip or an `include` of the upload breaks a rule (size, type, or a path outside the design).",
       "Upload plain Verilog files (or a zip of them) that include only files next to them."),
    _D("input.no_design", "No design given", "The run was started without any Verilog file.",
       "Pick an example design or upload your Verilog on the Design page."),
    _D("input.file_not_found", "A design file is missing", "A Verilog file the run names is not on disk any more.",
       "Upload the file again, or pick the design again on the Design page."),
    _D("input.file_too_large", "A design file is too large", "A Verilog file is over the per-file size limit.",
       "Split the design into files under the limit, or remove generated tables from it."),
    _D("input.file_empty", "A design file is empty", "A Verilog file holds nothing.", "Upload the file with its text."),
    _D("input.not_verilog", "Not Verilog", "A file is binary data or holds no `module ... endmodule`.",
       "Upload the .v source of the design, not a compiled or archived file."),
    # --- synthesis ---
    _D("synth.syntax", "Yosys could not read the Verilog",
       "Yosys could not read the Verilog: the message gives the file and line.",
       "Fix the Verilog at that line and upload it again."),
    _D("synth.top_not_found", "Top module not found",
       "The top module name does not match a module in the sources.",
       "Design → top module: pick one of the modules the design defines."),
    _D("synth.missing_module", "A module has no definition",
       "The design instantiates a module that no Verilog file, library cell or macro defines (a RAM or IP block).",
       "Give the block's LEF and Liberty (--macro-lef FILE --macro-lib FILE), or mark it --blackbox, or add the "
       "Verilog that defines it."),
    _D("synth.empty_module", "The top module is empty", "The chosen top module has no ports and no logic.",
       "Give the module its ports and logic, or choose another top module."),
    _D("synth.loop", "Combinational loop", "A signal depends on itself without a flip-flop in between.",
       "Break the loop in the RTL (register one of the signals)."),
    _D("synth.multiple_drivers", "Signal driven from several places",
       "The RTL assigns the same signal from more than one place, so no netlist can match it.",
       "Drive each signal from one assign or one always block."),
    _D("synth.no_logic", "Nothing left after synthesis",
       "Every output is constant or unconnected, so synthesis removed all the logic and there is nothing to place.",
       "Make the outputs depend on the inputs or on registers."),
    _D("synth.too_many_cells", "Too many cells",
       "The synthesised design has more cells than the flow is allowed to place.",
       "Raise synth.max_cells if the machine can take it, or make the design smaller.", ("synth.max_cells",)),
    _D("synth.unmapped_cells", "Cells the library lacks",
       "Yosys left cells (latches, special flip-flops) that the technology's library cannot implement.",
       "Rewrite them as plain flip-flops in the RTL."),
    _D("synth.failed", "Synthesis failed", "Yosys stopped with an error; its log has its own words.",
       "Read the Yosys log, fix the design, and run again."),
    # --- floorplan and placement ---
    _D("floorplan.utilization", "The cells do not fit the core",
       "The cells do not fit in the core at this utilisation.", "Lower the utilisation.",
       ("floorplan.utilization",)),
    _D("floorplan.aspect_ratio", "Aspect ratio out of range",
       "The die's aspect ratio is outside what the flow accepts.", "Choose an aspect ratio nearer 1.",
       ("floorplan.aspect_ratio",)),
    _D("floorplan.no_cells", "No cells to place", "The netlist has no standard cells, so there is no core to build.",
       "Check that synthesis kept the design's logic."),
    _D("floorplan.pins", "The IO pins do not fit the die edge",
       "The design has more IO pins than the die's edge has track positions.",
       "Lower the utilisation (a bigger die) or change the aspect ratio.",
       ("floorplan.utilization", "floorplan.aspect_ratio")),
    _D("floorplan.power_grid", "The power grid cannot be built",
       "The library's LEF lacks what the power grid needs (rails on the cells, a vertical layer, vias between "
       "layers), or the rows do not alternate N / FS.",
       "Choose another floorplan.pdn_stripe_layer, or turn the grid off with floorplan.power_grid = false.",
       ("floorplan.power_grid", "floorplan.pdn_stripe_layer")),
    _D("place.bad_settings", "Bad placer settings", "A place.* setting is unknown or of the wrong type.",
       "Use the settings `cda knobs list` prints for place.*."),
    _D("place.diverged", "The placer diverged",
       "The placer's density weight grew faster than the wirelength could follow, or the core is too full to "
       "spread the cells.", "Lower the utilisation (a bigger core).",
       ("floorplan.utilization", "place.density_weight_init", "place.dtype")),
    _D("place.too_full", "The core is too full to place",
       "The movable cells need more area than the free core has, so they cannot be spread or legalised.",
       "Lower the utilisation.", ("floorplan.utilization", "place.target_density")),
    _D("place.overflow", "Cells still overlap",
       "The core is too full, or the placer ran out of iterations before it spread the cells.",
       "Lower the utilisation (or raise place.max_iterations).", ("floorplan.utilization", "place.max_iterations")),
    _D("place.failed", "Placement failed", "The placer could not place this netlist; the message says why.",
       "See the place.* settings and the message.", ()),
    # --- clock tree and fanout repair ---
    _D("cts.failed", "The clock tree could not be built",
       "A cts.* setting names a cell that is not a buffer of the library, or the library has no Liberty numbers.",
       "Set cts.clock_buffers / cts.repair_buffers to buffers of the library (the message lists them).",
       ("cts.clock_buffers", "cts.repair_buffers")),
    _D("cts.no_room", "No room for the buffers", "The rows have too few free sites for the clock and repair buffers.",
       "Lower the utilisation, or raise cts.max_fanout / cts.fanout_limit for fewer buffers.",
       ("floorplan.utilization", "cts.max_fanout", "cts.fanout_limit")),
    _D("cts.not_legal", "Placement not legal after cts",
       "Legalising the buffers left cells overlapping or off the rows.", "Lower the utilisation and run again.",
       ("floorplan.utilization",)),
    _D("cts.hold", "Hold repair could not finish",
       "A cts.hold_* setting names a cell that is not a buffer of the library, or the hold buffers found no room.",
       "Set cts.hold_buffers to buffers of the library, lower the utilisation, or turn cts.hold_repair off.",
       ("cts.hold_buffers", "cts.hold_repair", "floorplan.utilization")),
    _D("cts.hold_sta", "OpenSTA failed while checking hold",
       "The hold check after the clock tree could not read the placed design or the constraints (an SDC command "
       "it rejects, a port the netlist lacks).", "Check the SDC (the message names the line), or turn "
       "cts.hold_repair off to go on without hold repair.", ("cts.hold_repair",)),
    _D("cts.netlist", "Netlist and placement disagree",
       "The synthesised Verilog lacks a connection the placed DEF has, so the buffers cannot be wired in.",
       "Run the flow again from synthesis.", ()),
    # --- routing ---
    _D("route.unrouted", "Routing left nets open",
       "The router could not finish: usually too little room between cells (congested regions have more wires "
       "than tracks).", "Lower the utilisation or allow more metal layers.",
       ("floorplan.utilization", "route.layers")),
    _D("route.timeout", "The router ran out of time",
       "The tool needed more time than allowed for this design: it is too congested to route in that time.",
       "Raise the step's time limit (or lower utilisation so routing is easier).",
       ("route.timeout_s", "floorplan.utilization", "route.layers")),
    _D("route.layers", "Bad number of routing layers",
       "route.layers asks for fewer than 2 or more layers than the technology has.",
       "Choose route.layers between 2 and the technology's number of metals.", ("route.layers",)),
    _D("route.no_result", "The router stopped early", "qrouter stopped before writing its routed DEF.",
       "Read qrouter.log; lowering the utilisation often helps.", ("floorplan.utilization",)),
    _D("route.no_placement", "Nothing to route", "The run has no placed DEF for the router.",
       "Run the flow from the place step (or from the start)."),
    # --- timing, GDS, verification ---
    _D("timing.clock_port", "Clock port not found",
       "The clock port named in the configuration is not an input of the top module.",
       "Set the clock port to one of the inputs (or leave it empty to detect clk/clock)."),
    _D("timing.clock_period", "Bad clock period", "The clock period is not a positive number.",
       "Give a period like 10 ns.", ("clock_ns",)),
    _D("timing.sta_error", "OpenSTA failed", "OpenSTA stopped with an error on this netlist or its constraints.",
       "Read sta.log; the message gives OpenSTA's own words."),
    _D("timing.sdc", "Constraints file refused",
       "The SDC file is not plain timing constraints: a command that is not a constraint, a query that is not an "
       "object query, a variable it never sets, or a broken quote or bracket (the message names the line).",
       "Fix the line named, or leave timing.sdc empty to use the generated constraints.", ("timing.sdc",)),
    _D("timing.setup", "Timing is missed",
       "The logic between two flip-flops is slower than one clock period.",
       "Relax the clock period (or synthesise for delay).", ("clock_ns", "synth.abc_script")),
    _D("gds.klayout_missing", "KLayout is missing", "KLayout's Python module is not installed.",
       "Install it (pip install klayout, part of `make setup`)."),
    _D("gds.mismatch", "The GDSII does not match the netlist",
       "KLayout could not read the layout, or what it wrote disagrees with the netlist.",
       "Run place and route again; if it persists, report it with the run folder."),
    _D("checks.unreadable", "The signoff checks could not read their inputs",
       "The final DEF, the LEF or the gate-level netlist could not be read (a damaged or hand-edited file, or a "
       "cell the LEF lacks).", "Run the flow again from synthesis; the message names the file and the line."),
    _D("checks.floating_inputs", "Cell inputs left floating",
       "Some cell inputs are on no net in the final layout: the netlist ties them to a constant the layout does not "
       "carry, or the DEF lost their connection.", "Compare the netlist and the DEF at the pins checks.json lists; "
       "run the flow again from synthesis."),
    _D("checks.unrouted", "Nets not connected by metal",
       "The routed DEF has nets with no wires, or wires that do not join all of a net's pins: the router left them "
       "open or the DEF was damaged.", "Lower the utilisation or allow more metal layers, and route again.",
       ("floorplan.utilization", "route.layers")),
    _D("checks.shorts", "Nets shorted together",
       "Wires, vias or pins of two different nets overlap on one layer in the routed DEF: a router fault or a "
       "hand-edited DEF.", "Route again; if it persists, report it with the run folder (checks.json names the "
       "nets and where)."),
    _D("checks.placement", "Placement not legal",
       "Cells overlap, sit off their rows or site grid, in an orientation the row does not take, or outside the die.",
       "Run placement again; lower the utilisation if the core is nearly full.", ("floorplan.utilization",)),
    _D("checks.lvs", "Layout and netlist disagree",
       "The DEF's instances or nets differ from the gate-level netlist the timing and the simulation read: the chip "
       "built from this layout is not the circuit that was verified.",
       "Run the flow again from synthesis; checks.json lists each difference."),
    _D("verify.testbench_not_found", "Testbench not found", "The testbench file the run names is not on disk.",
       "Upload the testbench again, or run without the verify step."),
    _D("verify.simulation", "Simulation failed",
       "The testbench does not compile, crashes or never finishes (does it call $finish?).",
       "Fix the testbench or the RTL at the line named.", ("verify.timeout_s",)),
    # --- tools and limits ---
    _D("tool.missing", "A tool is not installed", "An external tool the step needs is not installed.",
       "Run `make setup` (it installs the Debian packages) and retry."),
    _D("tool.memory_limit", "A tool ran out of memory",
       "The tool asked for more memory than its limit: the design is too large (a huge generate loop or array?).",
       "Make the design smaller, or raise limits.memory_fraction / limits.memory_mb.",
       ("limits.memory_fraction", "limits.memory_mb")),
    _D("tool.cpu_limit", "A tool used up its CPU time",
       "The tool needed more CPU time than the step allows: the design is too large or loops.",
       "Raise the step's time limit if the design really needs it.", ()),
    _D("tool.timeout", "A tool did not finish in time", "The tool needed more time than allowed for this design.",
       "Raise the step's time limit (or simplify the design).", ()),
    _D("tool.failed", "A tool failed", "An external tool stopped with an error; its log has its own words.",
       "Read the step's log."),
    _D("tech.no_liberty", "No Liberty file", "The technology folder has no .lib file next to its LEF.",
       "Use a technology folder with a Liberty (.lib) file."),
    _D("tech.no_buffer", "No buffer cell",
       "The library has no buffer cell, which drives feed-through and constant outputs in the netlist.",
       "Use a library with a BUF* cell (one input, one output)."),
    _D("tech.no_cell_models", "No cell models",
       "The technology has no Verilog cell models, which gate-level simulation needs.",
       "Add the *stdcells.v models, or run the flow without the verify step."),
    # --- the flow, the jobs, the run store ---
    _D("flow.missing_input", "A step's input is missing",
       "The step needs an artefact of an earlier step that is not in this run.",
       "Run the flow from that earlier step (or from the start)."),
    _D("flow.internal", "Internal error", "The engine hit a bug, not a problem of the design.",
       "Rerun; if it happens again, report it with the run folder (error.log holds the traceback)."),
    _D("job.worker_died", "The worker stopped",
       "The machine ran out of memory or the worker was killed from outside.",
       "Rerun; if it happens again, lower the design size or the placer's iteration count.",
       ("place.max_iterations",)),
    _D("job.start_failed", "The worker could not start", "The job's worker process could not be started.",
       "Check the disk space and the runs folder, then rerun."),
    _D("runs.store", "The run store cannot be used", "The runs folder is read-only, not a folder, or full.",
       "Point the cockpit at a writable runs folder."),
    _D("llm.unavailable", "No model answered", "The language model is unreachable, missing or returned garbage.",
       "Check the model settings; the chat still answers from retrieval and engine runs."),
    _D("step.failed", "The step failed", "See the step's log for the tool's own words.",
       "Check the inputs of this step, then rerun."),
    _D("engine.error", "The run failed", "See the message and the log.", "Check the inputs, then rerun."),
]
CATALOGUE: dict[str, Diagnosis] = {d.code: d for d in _ENTRIES}

# The step whose time limit a timeout code refers to (tool.cpu_limit / tool.timeout name the step's own knob).
_TIMEOUT_CODES = ("tool.cpu_limit", "tool.timeout", "route.timeout")
_LOWER_UTIL_CODES = ("place.diverged", "place.too_full", "place.overflow", "floorplan.utilization",
                     "floorplan.pins", "route.unrouted", "checks.unrouted")


def lookup(code: str | None) -> Diagnosis:
    """The catalogue's entry for ``code``; the generic one when the code is unknown or missing."""
    return CATALOGUE.get(code or "", CATALOGUE["step.failed"])


def step_timeout_knob(step: str | None) -> str | None:
    """``<step>.timeout_s`` when the registry has it (synth, route, timing, verify), else None."""
    path = f"{step}.timeout_s"
    return path if step and path in KNOBS else None


def suggested_knob(code: str | None, knob: str | None = None, step: str | None = None) -> str | None:
    """The knob to turn for a failure: the one the raise site named, else the step's time limit for a timeout,
    else the catalogue's first."""
    if knob:
        return knob
    if code in _TIMEOUT_CODES:
        return step_timeout_knob(step) or lookup(code).knob
    return lookup(code).knob


def _get(config: dict, dotted: str) -> Any:
    node: Any = config
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _value(config: dict, path: str) -> Any:
    v = _get(config, path)
    return registry_knob(path).default if v is None else v


def lower_utilization(config: dict) -> dict[str, Any]:
    """A quarter less utilisation (a bigger core), not below 0.2."""
    util = float(_value(config, "floorplan.utilization"))
    return {"floorplan.utilization": round(max(0.2, util * 0.75), 2)}


MAX_ROUTE_LAYERS = 6  # osu018, the embedded technology, has six metals; a bigger request fails route.layers


def suggest(code: str | None, config: dict, *, knob: str | None = None, step: str | None = None) -> dict[str, Any]:
    """The change to try for a failure with ``code`` on a run with ``config`` (a FlowConfig dict), as dotted
    paths -> new values; {} when the fix is in the design rather than a knob."""
    config = config or {}
    if code == "synth.top_not_found":
        from engine.uploads import guess_top

        files = [Path(f) for f in config.get("design_files", []) if Path(f).exists()]
        top, _ = guess_top(files) if files else (None, [])
        return {"top": top} if top and top != config.get("top") else {}
    if code in _TIMEOUT_CODES:
        path = suggested_knob(code, knob, step)
        if path and path.endswith("timeout_s"):
            spec = registry_knob(path)
            new = float(_value(config, path)) * 2
            return {path: min(new, spec.high) if spec.high is not None else new}
        return {}
    if code in _LOWER_UTIL_CODES:
        patch = lower_utilization(config)
        if code in ("route.unrouted", "checks.unrouted"):
            layers = int(_value(config, "route.layers"))
            if layers < MAX_ROUTE_LAYERS:
                patch["route.layers"] = layers + 1
        return patch
    return {}


def describe(code: str | None, knob: str | None = None, step: str | None = None) -> str:
    """One line for a terminal or a chat answer: title, cause, and the knob to turn with its range."""
    d = lookup(code)
    text = f"{d.title} [{d.code}]: {d.meaning} {d.action}"
    path = suggested_knob(d.code, knob, step)
    if path:
        spec = registry_knob(path)
        text += f" Knob: {spec.path} ({spec.label}, {spec.range_text}{' ' + spec.unit if spec.unit else ''})."
    return text


def of_run(info: dict) -> tuple[str, str | None]:
    """(code, knob) of a failed run from its run.json; runs recorded before codes existed go through
    `legacy_code`."""
    code = info.get("code")
    if not code:
        code = legacy_code(info.get("failed_step"), info.get("error") or "")
    return code, suggested_knob(code, info.get("knob"), info.get("failed_step"))


def legacy_code(step: str | None, message: str) -> str:
    """FALLBACK for runs recorded before failures carried a code (run.json without "code"): the code guessed from
    the words of the message. The only place that reads a failure's message; new runs never come here."""
    low = message.lower()
    if "worker process stopped" in low or "stopped without finishing" in low:
        return "job.worker_died"
    if "top module" in low and "not found" in low:
        return "synth.top_not_found"
    if step == "synth" and ("syntax" in low or "yosys:" in low or "parse" in low or "error" in low):
        return "synth.syntax"
    if "loop" in low:
        return "synth.loop"
    if "did not finish within" in low or "timeout" in low:
        return "route.timeout" if step == "route" else "tool.timeout"
    if step == "place" and any(w in low for w in ("diverge", "nan", "overflow")):
        return "place.diverged"
    if step in ("floorplan", "place") and any(w in low for w in ("fit", "too small", "utilization", "utilisation")):
        return "floorplan.utilization"
    if step == "route":
        return "route.unrouted"
    return "step.failed"
