"""One registry of the facts pages, the CLI, the optimizer, datagen, the specialists and the benchmark share.

``METRICS`` / ``metric(name)``: every metric key the flow steps, the placer and the benchmark emit, with its label,
unit, display scale, direction, noise threshold, judge thresholds and meaning.
``KNOBS`` / ``knob(path)``: every knob of the flow's config (dotted path into FlowConfig) with its type, its one
valid range, its doc and its default, the last two read from the config dataclasses themselves.

    from engine.registry import METRICS, KNOBS, metric, knob
    metric("placement__hpwl").better(1000.0, 1100.0)   # True: lower is better and 10 % is beyond noise
    knob("floorplan.utilization").validate(2)          # EngineError: ... out of range 0.3-0.85
"""
from __future__ import annotations

from engine.registry.knobs import KNOBS, KnobSpec, knob, validate_value
from engine.registry.metrics import KEY_METRICS, METRICS, MetricSpec, describe, format_value, metric

__all__ = ["KEY_METRICS", "KNOBS", "METRICS", "KnobSpec", "MetricSpec", "describe", "format_value", "knob", "metric",
           "validate_value"]
