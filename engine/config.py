"""The flow's configuration: one typed dataclass per step, gathered in FlowConfig.

The same classes feed the CLI flags, the cockpit's forms and the saved ``run.json``; defaults work for every
example design. Each step hashes its own section (plus its inputs) to decide whether it can be reused.
Loading is strict (``FlowConfig.from_dict``): an unknown key is an error naming the nearest valid key, a value
outside its range in the registry (engine/registry/knobs.py) is an error naming the range, and keys of old
run.json files go through the migration map (RENAMED_KEYS, DROPPED_KEYS).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError, nearest
from engine.flow.limits import LimitsConfig
from engine.place.config import PlaceConfig

log = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    flatten: bool = True  # flatten the hierarchy before mapping (better optimisation across modules); False:
    # each module optimised and mapped on its own, flattened after mapping (placement needs one netlist module)
    abc_script: str = "default"  # "default" (area+delay), "fast" (quick, larger), "area" (smallest), "delay" (fastest)
    max_cells: int = 400_000  # refuse designs larger than this: the placer and router are sized for it
    timeout_s: float = 900.0  # Yosys is killed past this


@dataclass
class FloorplanConfig:
    utilization: float = 0.6  # cell area / core area: higher shrinks die and wires; too high leaves no room to route
    aspect_ratio: float = 1.0  # core height / core width: changes the shape the wires cross
    core_margin_um: float = 12.0  # space between core and die edge for IO pins and power rings
    pin_layer_h: str = "metal2"  # layer of pins on the top/bottom edges (vertical tracks)
    pin_layer_v: str = "metal3"  # layer of pins on the left/right edges (horizontal tracks)
    power_grid: bool = True  # vdd/gnd rings, stripes and followpin rails in the DEF (SPECIALNETS; engine.flow.pdn)
    pdn_stripe_pitch_um: float = 40.0  # distance between two stripes of one net (vdd and gnd alternate)
    pdn_strap_tracks: int = 2  # a stripe or ring side is as wide as this many routing tracks of its layer
    pdn_stripe_layer: str = ""  # vertical layer of the stripes; "" = the LEF's second vertical layer (metal4)
    macro_halo_um: float = 10.0  # free space kept around each macro block: no cells, rails or fill in it


@dataclass
class CtsConfig:
    enabled: bool = True  # build the clock tree and repair high fanout after placement; off = route the placement as is
    clock_buffers: str = "CLKBUF1,CLKBUF2,CLKBUF3"  # Liberty cells the clock tree may use (comma-separated)
    max_fanout: int = 16  # sinks one clock buffer drives: lower gives more levels and buffers, less load per buffer
    fanout_repair: bool = True  # buffer the signal nets (not the clock) whose fanout is above fanout_limit
    fanout_limit: int = 24  # a signal net driving more cell inputs than this gets a buffer tree
    repair_buffers: str = "BUFX2,BUFX4"  # Liberty cells fanout repair may use (comma-separated)
    load_fraction: float = 0.5  # a buffer is chosen to drive at most this share of its Liberty max_capacitance
    hold_repair: bool = True  # delay buffers on the flip-flop inputs whose hold slack (propagated clock) is short
    hold_margin_ns: float = 0.05  # hold slack every register input is repaired to: room for the routed wires' error
    hold_buffers: str = "BUFX2,BUFX4,CLKBUF1,CLKBUF2,CLKBUF3"  # cells hold repair may chain (the least area wins)
    hold_max_buffers: int = 1000  # hold repair stops at this many buffers (a race this wide is the SDC's, not a gap)


@dataclass
class RouteConfig:
    enabled: bool = True  # run qrouter (detailed routing); RUDY is always computed
    layers: int = 4  # metal layers qrouter may use (osu018 has 6)
    timeout_s: float = 600.0  # qrouter is stopped past this and the step fails with a hint (utilisation, layers)
    rudy_bins: int = 64  # bins per side of the RUDY congestion map
    via_stack: int = 2  # vias qrouter may stack on top of each other (1 = no stacking)


@dataclass
class TimingConfig:
    # IO delays as fractions of the clock period, for the budget outside the block (OpenROAD-flow-scripts'
    # default constraints use 0.2). With a propagated clock, 0 would race every input against the clock tree's
    # latency: a hold violation no real design has.
    default_input_delay_frac: float = 0.2  # input delay as a fraction of the clock period
    default_output_delay_frac: float = 0.2  # output delay as a fraction of the clock period
    default_activity: float = 0.1  # toggle rate used for power when there is no VCD
    paths: int = 5  # worst paths reported in paths.json
    timeout_s: float = 300.0  # OpenSTA is stopped past this
    use_routed_parasitics: bool = True  # SPEF from routed wires when 04-route exists, else from placed HPWL
    vcd_max_mb: float = 200.0  # a testbench VCD larger than this is not read for power (default activity instead)
    sdc: str = ""  # a constraints file (create_clock, set_input_delay, set_false_path, ...); empty = generated
    max_slew_ns: float = 0.0  # slew limit checked on every pin; 0 = the Liberty tables' largest input transition


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
    clock_ns: float = 10.0  # clock period target (ns): a tighter target makes ABC map for speed and moves WNS
    testbench: str | None = None  # testbench for the verify step and power activity
    tech_dir: str | None = None  # technology folder; None = Debian's osu018
    # Hard macros (a RAM, an analog block): each {"lef": file, "lib": file or ""}. The LEF (CLASS BLOCK, SIZE,
    # PINs, OBS) joins the technology; the Liberty (optional) gives synthesis the cell and OpenSTA its timing.
    macros: list[dict[str, str]] = field(default_factory=list)
    blackbox: list[str] = field(default_factory=list)  # module names kept as empty boxes (one instance, no logic)
    synth: SynthConfig = field(default_factory=SynthConfig)
    floorplan: FloorplanConfig = field(default_factory=FloorplanConfig)
    place: PlaceConfig = field(default_factory=PlaceConfig)  # the analytical placer (engine/place/config.py)
    cts: CtsConfig = field(default_factory=CtsConfig)  # clock tree and fanout repair (engine.flow.cts)
    route: RouteConfig = field(default_factory=RouteConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    gds: GdsConfig = field(default_factory=GdsConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # memory / CPU caps on every tool process

    def __setattr__(self, name: str, value: Any) -> None:
        # A section given as a dict (``cfg.place = {"frame_every": 5}``) is loaded strictly into its dataclass.
        cls = _SECTIONS.get(name)
        if cls is not None and isinstance(value, dict):
            value = load_section(cls, value, name)
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowConfig:
        """Strict loading: old keys are migrated (RENAMED_KEYS, DROPPED_KEYS), an unknown key is an EngineError
        naming the nearest valid key, a knob value out of its registry range is an EngineError naming the range."""
        if not isinstance(data, dict):
            raise EngineError(f"a flow config is a table of settings, not {type(data).__name__}")
        data = migrate(data)
        valid = _all_paths()
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _FIELD_NAMES:
                raise unknown_key_error(key, valid)
            sub = _SECTIONS.get(key)
            if sub is not None:
                if dataclasses.is_dataclass(value) and not isinstance(value, type):
                    value = dataclasses.asdict(value)
                if not isinstance(value, dict):
                    raise EngineError(f"config section {key} must be a table of settings, not {value!r}")
                kwargs[key] = load_section(sub, value, key)
            else:
                kwargs[key] = _top_value(key, value)
        return cls(**kwargs)

    def section(self, name: str) -> dict[str, Any]:
        value = getattr(self, name)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) \
            else dict(value)


_SECTIONS: dict[str, type] = {"synth": SynthConfig, "floorplan": FloorplanConfig, "place": PlaceConfig,
                              "cts": CtsConfig,
                              "route": RouteConfig, "timing": TimingConfig, "gds": GdsConfig, "verify": VerifyConfig,
                              "limits": LimitsConfig}
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(FlowConfig))

# Keys of old run.json files, by dotted path, and what they are now. A field renamed in a dataclass gets a line here
# so runs saved before the rename keep loading (and a line in DROPPED_KEYS when a field goes away). FlowConfig.place
# was a dict of overrides until it was typed; an old partial dict loads as PlaceConfig with the rest at defaults.
RENAMED_KEYS: dict[str, str] = {}
DROPPED_KEYS: frozenset[str] = frozenset()


def section_classes() -> dict[str, type]:
    """FlowConfig's sections and their dataclasses (the placer's included), in the order of the flow."""
    return dict(_SECTIONS)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a saved config with old keys moved to their new paths (RENAMED_KEYS) and dropped ones removed."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for old, new in RENAMED_KEYS.items():
        value = _pop_path(out, old)
        if value is not _MISSING and _get_path(out, new) is _MISSING:
            _set_path(out, new, value)
            log.info("config: %s is now %s", old, new)
    for old in DROPPED_KEYS:
        if _pop_path(out, old) is not _MISSING:
            log.info("config: %s is no longer a setting; ignored", old)
    return out


_MISSING = object()


def _get_path(data: dict, dotted: str) -> Any:
    section, _, key = dotted.rpartition(".")
    node = data.get(section, {}) if section else data
    return node.get(key, _MISSING) if isinstance(node, dict) else _MISSING


def _pop_path(data: dict, dotted: str) -> Any:
    section, _, key = dotted.rpartition(".")
    node = data.get(section) if section else data
    return node.pop(key, _MISSING) if isinstance(node, dict) else _MISSING


def _set_path(data: dict, dotted: str, value: Any) -> None:
    section, _, key = dotted.rpartition(".")
    (data.setdefault(section, {}) if section else data)[key] = value


def _all_paths() -> list[str]:
    out = list(_FIELD_NAMES)
    for name, cls in _SECTIONS.items():
        out += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return out


def unknown_key_error(key: str, valid: list[str]) -> EngineError:
    """"unknown key floorplan.utilisation; did you mean floorplan.utilization?" """
    close = nearest(key, valid)
    if close is None and "." in key:  # a key under the wrong section: compare the field names alone
        tail = key.rpartition(".")[2]
        close = next((v for v in valid if v.rpartition(".")[2] == tail), None)
    hint = f"; did you mean {close}?" if close else ""
    return EngineError(f"unknown key {key}{hint}", hint="`cda knobs list` prints every setting")


def load_section(cls: type, data: dict[str, Any], name: str):
    """A section dataclass from a dict: unknown keys are an error, knob values are validated by the registry."""
    from engine.registry import KNOBS

    if not isinstance(data, dict):
        raise EngineError(f"config section {name} must be a table of settings, not {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise unknown_key_error(f"{name}.{key}", [f"{name}.{n}" for n in names] + _all_paths())
        spec = KNOBS.get(f"{name}.{key}")
        kwargs[key] = spec.validate(value) if spec is not None else value
    return cls(**kwargs)


def _top_value(key: str, value: Any) -> Any:
    from engine.registry import KNOBS

    spec = KNOBS.get(key)
    if spec is not None:
        return spec.validate(value)
    if key == "macros":
        return macro_list(value)
    if key == "blackbox":
        if isinstance(value, str):  # `--set blackbox=ram_a,ram_b`
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise EngineError(f"blackbox must be a list of module names, not {value!r}")
        return list(value)
    if key == "design_files":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise EngineError(f"design_files must be a list of file paths, not {value!r}")
        return list(value)
    if value is not None and not isinstance(value, str):
        raise EngineError(f"{key} must be text, not {value!r}")
    return value if value is not None or key in ("clock_port", "testbench", "tech_dir") else ""


MACRO_KEYS = ("lef", "lib")


def macro_list(value: Any) -> list[dict[str, str]]:
    """``macros`` loaded strictly: a list of {"lef": path, "lib": path or ""}; a bare string is one LEF."""
    if isinstance(value, str):  # `--set macros=sram.lef` (no Liberty)
        value = [{"lef": v.strip()} for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise EngineError(f"macros must be a list of {{\"lef\": file, \"lib\": file}}, not {value!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"lef": item}
        if not isinstance(item, dict):
            raise EngineError(f"a macro is {{\"lef\": file, \"lib\": file}}, not {item!r}")
        for k in item:
            if k not in MACRO_KEYS:
                close = nearest(str(k), list(MACRO_KEYS))
                raise EngineError(f"unknown key macros.{k}" + (f"; did you mean macros.{close}?" if close else ""),
                                  hint="a macro is {\"lef\": file, \"lib\": file}")
        lef, lib = item.get("lef"), item.get("lib") or ""
        if not isinstance(lef, str) or not lef:
            raise EngineError(f"macro {item!r} has no LEF file (\"lef\")", hint="give --macro-lef FILE")
        if not isinstance(lib, str):
            raise EngineError(f"macro {item!r}: \"lib\" must be a file path")
        out.append({"lef": lef, "lib": lib})
    return out


def apply_settings(data: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """``["place.gamma_base=2", "clock_ns=5"]`` applied to a config dict (values are checked by from_dict)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    valid = _all_paths()
    for item in settings:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise EngineError(f"--set {item!r}: write section.key=value, e.g. --set floorplan.utilization=0.5")
        if key not in valid or key in _SECTIONS:
            raise unknown_key_error(key, [v for v in valid if v not in _SECTIONS])
        _set_path(out, key, value.strip())
    return out
