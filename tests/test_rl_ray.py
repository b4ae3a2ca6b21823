"""Ray runs flow evaluations in parallel on a local cluster started by the test."""
from __future__ import annotations

import pytest

from engine.config import FlowConfig
from engine.designs import resolve
from engine.rl.evaluate import EvalConfig, Evaluator
from engine.runs import RunStore

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():  # another module's Ray in this process: use it, leave it running
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _counter(clock_ns: float) -> FlowConfig:
    cfg = resolve("counter").flow_config()
    cfg.clock_ns = clock_ns
    return cfg


def test_two_evaluations_run_in_parallel_as_ray_tasks(local_ray, tmp_path):
    store = RunStore(tmp_path / "runs")
    # reuse=False: each evaluation runs Yosys and the floorplan itself, long enough to see the overlap.
    ev = Evaluator(_counter(10.0), store, EvalConfig(until="floorplan", parallel=2, reuse=False))
    ev.run([_counter(10.0), _counter(11.0)])  # warm-up: both Ray workers have imported the engine
    results = ev.run([_counter(12.0), _counter(13.0)])
    assert [r["status"] for r in results] == ["done", "done"]
    a, b = results
    assert a["pid"] != b["pid"]  # two worker processes
    assert max(a["started"], b["started"]) < min(a["ended"], b["ended"])  # their time windows overlap
    for r in results:
        assert store.get(r["run_id"]).status == "done"
        assert r["metrics"]["design__instance__count"] > 0
