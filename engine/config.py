"""The flow's configuration: one typed dataclass per step, gathered in FlowConfig.

The same classes feed the CLI flags, the cockpit's forms and the saved ``run.json``; defaults work for every
example design. Each step hashes its own section (plus its inputs) to decide whether it can be reused.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SynthConfig:
    flatten: bool = True  # flatten the hierarchy before mapping (better optimisation, one netlist module)
    abc_script: str = "default"  # "default" (area+delay), "fast" (quick, larger), "area" (smallest), "delay" (fastest)
    max_cells: int = 400_000  # refuse designs larger than this: the placer and router are sized for it
    timeout_s: float = 900.0  # Yosys is killed past this


@dataclass
class FloorplanConfig:
    utilization: float = 0.6  # cell area / core area; lower leaves room for routing
    aspect_ratio: float = 1.0  # core height / core width
    core_margin_um: float = 12.0  # space between core and die edge for IO pins and power rings
    pin_layer_h: str = "metal2"  # layer of pins on the top/bottom edges (vertical tracks)
    pin_layer_v: str = "metal3"  # layer of pins on the left/right edges (horizontal tracks)


@dataclass
class RouteConfig:
    enabled: bool = True  # run qrouter (detailed routing); RUDY is always computed
    layers: int = 4  # metal layers qrouter may use (osu018 has 6)
    timeout_s: float = 600.0  # qrouter is stopped past this and the step fails with a hint (utilisation, layers)
    rudy_bins: int = 64  # bins per side of the RUDY congestion map
    via_stack: int = 2  # vias qrouter may stack on top of each other (1 = no stacking)


@dataclass
class TimingConfig:
    default_input_delay_frac: float = 0.0  # input delay as a fraction of the clock period
    default_output_delay_frac: float = 0.0  # output delay as a fraction of the clock period
    default_activity: float = 0.1  # toggle rate used for power when there is no VCD
    paths: int = 5  # worst paths reported in paths.json
    timeout_s: float = 300.0  # OpenSTA is stopped past this
    use_routed_parasitics: bool = True  # SPEF from routed wires when 04-route exists, else from placed HPWL
    vcd_max_mb: float = 200.0  # a testbench VCD larger than this is not read for power (default activity instead)


@dataclass
class GdsConfig:
    png_width: int = 1400  # width of the rendered layout image (px)


@dataclass
class VerifyConfig:
    """The verify step's knobs (defaults work for every example design)."""

    timeout_s: float = 120.0  # each simulation (compile + run) is stopped past this: a testbench without $finish
    language: str = "2005"  # iverilog -g generation: "2005", "2001" or "2012" (SystemVerilog subset)
    gate_delays: bool = False  # honour the cell models' specify delays (-gspecify); off = zero-delay functional
    max_log_mb: float = 200.0  # a simulation printing more than this is stopped (a runaway $display loop)
    max_vcd_mb: float = 1000.0  # a simulation whose VCD grows past this is stopped (disk space)
    mismatches_kept: int = 50  # how many differing lines mismatches.json lists
    dump_vcd: bool = True  # save the RTL run's VCD (ports and RTL signals under tb.dut)
    gate_vcd: bool = True  # save the gate-level run's VCD too: every net of the netlist, for power activity
    activity_json: bool = True  # summarise the gate-level VCD as toggles and duty per net (activity.json)


@dataclass
class FlowConfig:
    design_files: list[str] = field(default_factory=list)  # Verilog files (absolute paths)
    top: str = ""  # top module; empty = the only top Yosys finds
    clock_port: str | None = None  # clock input; None = guess "clk"/"clock" if present, else unclocked
    clock_ns: float = 10.0  # clock period target (ns)
    testbench: str | None = None  # testbench for the verify step and power activity
    tech_dir: str | None = None  # technology folder; None = Debian's osu018
    synth: SynthConfig = field(default_factory=SynthConfig)
    floorplan: FloorplanConfig = field(default_factory=FloorplanConfig)
    place: dict[str, Any] = field(default_factory=dict)  # overrides for engine.place.config.PlaceConfig
    route: RouteConfig = field(default_factory=RouteConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    gds: GdsConfig = field(default_factory=GdsConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FlowConfig":
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            sub = _SECTIONS.get(f.name)
            if sub is not None and isinstance(value, dict):
                known = {g.name for g in dataclasses.fields(sub)}
                value = sub(**{k: v for k, v in value.items() if k in known})
            kwargs[f.name] = value
        return cls(**kwargs)

    def section(self, name: str) -> dict[str, Any]:
        value = getattr(self, name)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)


_SECTIONS = {"synth": SynthConfig, "floorplan": FloorplanConfig, "route": RouteConfig, "timing": TimingConfig,
             "gds": GdsConfig, "verify": VerifyConfig}
