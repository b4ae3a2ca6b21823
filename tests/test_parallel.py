"""engine.parallel.fan_out: results in the given order, serially without Ray and as Ray tasks, with progress,
cancel and per-item failures handled the same way on both paths."""
from __future__ import annotations

import functools
import os
import sys

import pytest

from engine.errors import EngineError
from engine.parallel import fan_out


def _square_after(x: int, fail_on: int | None = None) -> tuple[int, int]:
    if x == fail_on:
        raise ValueError(f"bad item {x}")
    return x * x, os.getpid()


def test_serial_keeps_order_reports_progress_and_runs_here():
    seen, fractions = [], []
    out = fan_out(_square_after, [3, 1, 2], 1, on_result=lambda i, r: seen.append(i),
                  progress=lambda f, m: fractions.append(f))
    assert [r[0] for r in out] == [9, 1, 4] and {r[1] for r in out} == {os.getpid()}
    assert seen == [0, 1, 2] and fractions == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_serial_failures_go_to_on_error_or_raise_an_engine_error():
    fn = functools.partial(_square_after, fail_on=2)
    out = fan_out(fn, [1, 2, 3], 1, on_error=lambda i, exc: ("failed", str(exc)))
    assert out[0][0] == 1 and out[1] == ("failed", "bad item 2") and out[2][0] == 9
    with pytest.raises(EngineError, match="item 1 of the fan-out failed: ValueError: bad item 2"):
        fan_out(fn, [1, 2, 3], 1)
    with pytest.raises(EngineError, match="max_workers"):
        fan_out(fn, [1], 0)


def test_serial_cancel_stops_between_calls():
    calls = []
    out = fan_out(lambda x: calls.append(x) or x, [1, 2, 3], 1, cancel=lambda: len(calls) >= 2)
    assert calls == [1, 2] and out == [1, 2, None]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    # Ray's workers cannot import this test module: its functions travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


def test_ray_runs_in_workers_in_order_with_failures_as_results(ray_local):
    fn = functools.partial(_square_after, fail_on=4)
    done = []
    out = fan_out(fn, [5, 4, 3, 2], 2, on_result=lambda i, r: done.append(i),
                  on_error=lambda i, exc: ("failed", type(exc).__name__, str(exc)))
    assert out[1] == ("failed", "ValueError", "bad item 4")
    assert [out[i][0] for i in (0, 2, 3)] == [25, 9, 4]
    assert os.getpid() not in {out[i][1] for i in (0, 2, 3)}  # the calls ran in Ray's worker processes
    assert sorted(done) == [0, 1, 2, 3]
