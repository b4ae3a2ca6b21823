"""The metric registry moved to ``engine.registry`` (metrics and knobs in one place); this name keeps old imports
working. ``METRICS[name]`` is an ``engine.registry.MetricSpec`` (``.unit``, ``.higher_is_better``, ``.description``).
"""
from __future__ import annotations

from engine.registry.metrics import KEY_METRICS, METRICS, MetricSpec, describe, format_value, metric

Metric = MetricSpec  # the old class name

__all__ = ["KEY_METRICS", "METRICS", "Metric", "MetricSpec", "describe", "format_value", "metric"]
