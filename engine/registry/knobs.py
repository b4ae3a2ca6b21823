"""Every knob of the flow: its dotted path in FlowConfig, its type, its one valid range, its doc and its default.

Defaults and docs are read from the config dataclasses (engine/config.py, engine/place/config.py) at import, so
they are never written twice; this file adds only what a dataclass cannot say: the range a value must lie in and,
for the knobs the optimizer turns, the part of that range it explores and on which scale.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import math
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any, get_type_hints

from engine.errors import EngineError, nearest

# Only the sections whose fields a person or an optimizer tunes. The rest of FlowConfig (design files, top module,
# clock port, testbench, technology folder) says what is built, not how.
TOP_LEVEL_KNOBS = ("clock_ns",)


@dataclass(frozen=True)
class KnobSpec:
    """One tunable value of the flow."""

    path: str  # dotted path in FlowConfig: "floorplan.utilization", "place.target_density", "clock_ns"
    label: str  # short words for a form or a table: "Utilisation"
    type: type  # float, int, bool or str
    default: Any  # FlowConfig()'s value (read from the dataclass)
    doc: str  # the dataclass field's comment
    low: float | None = None  # smallest valid value (numbers); None = unbounded
    high: float | None = None  # largest valid value (numbers); None = unbounded
    choices: tuple | None = None  # the valid values of a str knob with a fixed set; None = any
    unit: str = ""  # unit of the value ("ns", "um", "s", ...)
    log_scale: bool = False  # the range spans factors: an optimizer samples it on a log scale
    search: tuple[float, float] | None = None  # the part of the range the optimizer explores; None = all of it
    relative: bool = False  # ``search`` is a multiple of the design's own value (the clock period differs)
    step: float = 0.0  # an optimizer quantises to this grid (relative knobs: a fraction of the design's value)

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def field(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def range_text(self) -> str:
        if self.choices:
            return " | ".join(map(str, self.choices))
        if self.type is bool:
            return "true | false"
        if self.low is None and self.high is None:
            return "any"
        lo = "" if self.low is None else _num(self.low)
        hi = "" if self.high is None else _num(self.high)
        return f"{lo}-{hi}"

    def validate(self, value: Any) -> Any:
        """``value`` coerced to the knob's type; an EngineError naming the valid range when it is not valid."""
        return validate_value(self, value)


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def validate_value(spec: KnobSpec, value: Any) -> Any:
    where = f"{spec.path} = {value!r}" if isinstance(value, str) else f"{spec.path} = {value}"
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise EngineError(f"{where} is not true/false")
    if spec.type is str:
        if value is None or not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise EngineError(f"{where} is not text")
        text = str(value)
        if spec.choices and text not in spec.choices:
            raise EngineError(f"{where} is not one of {', '.join(map(str, spec.choices))}")
        return text
    # numbers
    if isinstance(value, bool):
        raise EngineError(f"{where} is not a number (range {spec.range_text})")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EngineError(f"{where} is not a number (range {spec.range_text})") from None
    if not math.isfinite(v):
        raise EngineError(f"{where} is not a finite number (range {spec.range_text})")
    if (spec.low is not None and v < spec.low) or (spec.high is not None and v > spec.high):
        shown = f"{value:g}" if isinstance(value, (int, float)) else repr(value)
        raise EngineError(f"{spec.path} = {shown} is out of range {spec.range_text}")
    if spec.type is int:
        if not float(v).is_integer():
            raise EngineError(f"{where} is not a whole number (range {spec.range_text})")
        return int(v)
    return v


_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "on": True,
               "off": False}


# What the dataclasses cannot say: label, valid range, unit, and how an optimizer explores it. Every field of the
# tuned sections must appear here (a test checks both ways).
_EXTRA: dict[str, dict[str, Any]] = {
    # ---- top level
    "clock_ns": dict(label="Clock period", low=0.05, high=100_000.0, unit="ns", log_scale=True, search=(0.5, 2.0),
                     relative=True, step=0.05),
    # ---- synth
    "synth.flatten": dict(label="Flatten hierarchy"),
    "synth.abc_script": dict(label="ABC script", choices=("default", "delay", "fast", "area")),
    "synth.max_cells": dict(label="Cell limit", low=1, high=10_000_000, unit="cells"),
    "synth.timeout_s": dict(label="Yosys time limit", low=1.0, high=86_400.0, unit="s"),
    # ---- floorplan
    "floorplan.utilization": dict(label="Utilisation", low=0.1, high=0.95, search=(0.30, 0.85)),
    "floorplan.aspect_ratio": dict(label="Aspect ratio", low=0.25, high=4.0, log_scale=True, search=(0.5, 2.0)),
    "floorplan.core_margin_um": dict(label="Core margin", low=0.0, high=10_000.0, unit="um"),
    "floorplan.pin_layer_h": dict(label="Pin layer (top/bottom)"),
    "floorplan.pin_layer_v": dict(label="Pin layer (left/right)"),
    "floorplan.power_grid": dict(label="Power grid"),
    "floorplan.pdn_stripe_pitch_um": dict(label="Power stripe pitch", low=1.0, high=100_000.0, unit="um"),
    "floorplan.pdn_strap_tracks": dict(label="Power strap width", low=1, high=1000, unit="tracks"),
    "floorplan.pdn_stripe_layer": dict(label="Power stripe layer"),
    "floorplan.macro_halo_um": dict(label="Macro halo", low=0.0, high=10_000.0, unit="um"),
    # ---- place (engine.place.config.PlaceConfig)
    "place.target_density": dict(label="Target density", low=0.3, high=1.0, search=(0.60, 1.0)),
    "place.target_overflow": dict(label="Target overflow", low=0.01, high=0.5),
    "place.max_iterations": dict(label="Iteration budget", low=1, high=100_000, log_scale=True, search=(100, 1000)),
    "place.min_iterations": dict(label="Minimum iterations", low=0, high=100_000),
    "place.num_bins": dict(label="Density bins", low=0, high=4096),
    "place.gamma_base": dict(label="Wirelength smoothing", low=0.1, high=100.0, log_scale=True, search=(1.0, 16.0)),
    "place.density_weight_init": dict(label="Initial density weight", low=1e-3, high=1e4, log_scale=True),
    "place.density_weight_growth": dict(label="Density weight growth", low=1.0, high=2.0),
    "place.density_weight_ref_delta": dict(label="Density weight reference rise", low=1e-4, high=1.0),
    "place.max_net_degree": dict(label="Largest net modelled", low=2, high=10_000_000, unit="pins"),
    "place.init_noise": dict(label="Initial noise", low=0.0, high=0.5),
    "place.stretch_cells": dict(label="Stretch small cells"),
    "place.use_fillers": dict(label="Filler cells"),
    "place.precondition": dict(label="Preconditioner"),
    "place.max_backtracks": dict(label="Step backtracks", low=0, high=1000),
    "place.seed": dict(label="Seed", low=0, high=2**31 - 1),
    "place.device": dict(label="torch device"),
    "place.dtype": dict(label="Float type", choices=("float32", "float64")),
    "place.num_threads": dict(label="torch threads", low=0, high=4096),
    "place.frame_every": dict(label="Frame every", low=0, high=1_000_000, unit="iterations"),
    "place.frame_max_cells": dict(label="Cells per frame", low=0, high=100_000_000, unit="cells"),
    "place.frame_map_bins": dict(label="Frame map bins", low=1, high=4096),
    "place.legalize": dict(label="Legalise"),
    "place.detailed": dict(label="Detailed placement"),
    "place.detailed_passes": dict(label="Detailed passes", low=0, high=1000),
    "place.detailed_time_limit_s": dict(label="Detailed time limit", low=0.0, high=86_400.0, unit="s"),
    "place.row_search": dict(label="Rows searched", low=0, high=100_000, unit="rows"),
    "place.routability": dict(label="Routability mode"),
    "place.routability_max_rounds": dict(label="Inflation rounds", low=0, high=20, search=(1, 5)),
    "place.routability_trigger_overflow": dict(label="Inflation trigger overflow", low=0.05, high=1.0,
                                               search=(0.1, 0.3)),
    "place.routability_rudy_threshold": dict(label="Congested RUDY (x mean)", low=1.0, high=10.0,
                                             search=(1.1, 3.0)),
    "place.inflation_max": dict(label="Largest cell inflation", low=1.0, high=8.0, search=(1.2, 4.0)),
    "place.routability_auto_congestion": dict(label="Auto routability congestion", low=0.0, high=10.0,
                                              search=(0.0, 1.5)),
    "place.timing_driven": dict(label="Timing-driven mode"),
    "place.timing_weight_max": dict(label="Critical net weight", low=1.0, high=100.0, log_scale=True,
                                    search=(1.5, 10.0)),
    "place.timing_weights_file": dict(label="Timing weights file (paths.json)"),
    # ---- cts
    "cts.enabled": dict(label="Clock tree"),
    "cts.clock_buffers": dict(label="Clock buffer cells"),
    "cts.max_fanout": dict(label="Clock buffer fanout", low=2, high=1000, unit="sinks"),
    "cts.fanout_repair": dict(label="Fanout repair"),
    "cts.fanout_limit": dict(label="Fanout limit", low=2, high=100_000, unit="pins"),
    "cts.repair_buffers": dict(label="Repair buffer cells"),
    "cts.load_fraction": dict(label="Buffer load share", low=0.05, high=1.0),
    "cts.hold_repair": dict(label="Hold repair"),
    "cts.hold_margin_ns": dict(label="Hold margin", low=0.0, high=10.0, unit="ns"),
    "cts.hold_buffers": dict(label="Hold buffer cells"),
    "cts.hold_max_buffers": dict(label="Hold buffer cap", low=0, high=1_000_000, unit="cells"),
    # ---- route
    "route.enabled": dict(label="Detailed routing"),
    "route.layers": dict(label="Metal layers", low=1, high=9),  # qrouter routes at most 9 layers
    "route.timeout_s": dict(label="qrouter time limit", low=1.0, high=86_400.0, unit="s"),
    "route.rudy_bins": dict(label="RUDY bins", low=2, high=4096),
    "route.via_stack": dict(label="Stacked vias", low=1, high=9),
    # ---- timing
    "timing.default_input_delay_frac": dict(label="Input delay", low=0.0, high=1.0),
    "timing.default_output_delay_frac": dict(label="Output delay", low=0.0, high=1.0),
    "timing.default_activity": dict(label="Default activity", low=0.0, high=1.0),
    "timing.paths": dict(label="Paths reported", low=1, high=100_000),
    "timing.timeout_s": dict(label="OpenSTA time limit", low=1.0, high=86_400.0, unit="s"),
    "timing.use_routed_parasitics": dict(label="Routed parasitics"),
    "timing.vcd_max_mb": dict(label="Largest VCD read", low=0.0, high=1_000_000.0, unit="MB"),
    "timing.max_slew_ns": dict(label="Slew limit", low=0.0, high=1_000.0, unit="ns"),
    # ---- gds
    "gds.png_width": dict(label="Layout image width", low=64, high=20_000, unit="px"),
    # ---- limits (engine.flow.limits.LimitsConfig)
    "limits.memory_fraction": dict(label="Tool memory share", low=0.0, high=1.0),
    "limits.memory_mb": dict(label="Tool memory cap", low=0.0, high=1e9, unit="MiB"),
    "limits.cpu_factor": dict(label="Tool CPU-time factor", low=0.01, high=1000.0),
    "limits.wall_factor": dict(label="Tool wall-clock factor", low=0.01, high=1000.0),
    # ---- verify
    "verify.timeout_s": dict(label="Simulation time limit", low=1.0, high=86_400.0, unit="s"),
    "verify.language": dict(label="Verilog generation", choices=("2005", "2001", "2012")),
    "verify.gate_delays": dict(label="Gate delays"),
    "verify.max_log_mb": dict(label="Largest simulation log", low=0.1, high=1_000_000.0, unit="MB"),
    "verify.max_vcd_mb": dict(label="Largest VCD", low=0.1, high=1_000_000.0, unit="MB"),
    "verify.mismatches_kept": dict(label="Mismatches kept", low=0, high=1_000_000),
    "verify.dump_vcd": dict(label="RTL VCD"),
    "verify.gate_vcd": dict(label="Gate-level VCD"),
    "verify.activity_json": dict(label="Activity summary"),
}


def field_docs(cls: type) -> dict[str, str]:
    """The doc of each field of a dataclass: the string literal under it (PlaceConfig's style) or the ``# ...``
    comment on its line, with comment-only lines right below it as its continuation (FlowConfig's style)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    field_at: dict[int, str] = {}  # line number -> field name
    for node, nxt in zip(body, [*body[1:], None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        field_at[node.end_lineno or node.lineno] = node.target.id
        if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    for line, name in field_at.items():
        if name in docs or line not in comments:
            continue
        parts = [comments[line]]
        nxt_line = line + 1
        while nxt_line in comments and nxt_line not in code_lines:  # a comment continued on its own lines
            parts.append(comments[nxt_line])
            nxt_line += 1
        docs[name] = " ".join(parts)
    return docs


def _build() -> dict[str, KnobSpec]:
    from engine.config import FlowConfig, section_classes

    flow = FlowConfig()
    out: dict[str, KnobSpec] = {}
    top_docs, top_types = field_docs(FlowConfig), get_type_hints(FlowConfig)
    for name in TOP_LEVEL_KNOBS:
        out[name] = _spec(name, top_types[name], getattr(flow, name), top_docs.get(name, ""))
    for section, cls in section_classes().items():
        docs, types = field_docs(cls), get_type_hints(cls)
        default = cls()
        for f in dataclasses.fields(cls):
            path = f"{section}.{f.name}"
            out[path] = _spec(path, types[f.name], getattr(default, f.name), docs.get(f.name, ""))
    missing = sorted(set(_EXTRA) - set(out))
    if missing:
        raise RuntimeError(f"engine.registry.knobs describes knobs the config does not have: {', '.join(missing)}")
    return out


def _spec(path: str, typ: Any, default: Any, doc: str) -> KnobSpec:
    extra = dict(_EXTRA.get(path, {}))
    if typ not in (bool, int, float, str):
        raise RuntimeError(f"knob {path}: type {typ} is not bool, int, float or str")
    if "label" not in extra:
        extra["label"] = path.rpartition(".")[2].replace("_", " ").capitalize()
    return KnobSpec(path=path, type=typ, default=default, doc=doc, **extra)


KNOBS: dict[str, KnobSpec] = _build()


def knob(path: str) -> KnobSpec:
    """The spec of a knob; an EngineError naming the nearest knob when the path is unknown."""
    spec = KNOBS.get(path)
    if spec is None:
        close = nearest(path, KNOBS)
        hint = f"; did you mean {close}?" if close else ""
        raise EngineError(f"unknown knob {path}{hint}", hint="`cda knobs list` prints every knob")
    return spec
