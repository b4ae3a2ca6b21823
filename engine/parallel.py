"""One fan-out helper: many independent calls of one function, as Ray tasks or one after another.

    from engine.parallel import fan_out
    results = fan_out(evaluate, configs, max_workers=4)   # results[i] = evaluate(configs[i]), in the given order

``max_workers == 1`` (or a single item) runs in this process, in order, without Ray: the serial reference, and
what a machine without Ray (or a test) gets. Otherwise Ray runs the calls: ``ray.init()`` on this machine
(``num_cpus`` cores, default all) unless ``address`` names a cluster ("auto", "ray://host:10001"); a Ray the
caller already started is used as it is. At most ``max_workers`` calls are in flight, since a cluster may have more
CPUs than this job was given. ``fn`` must be importable by the workers (a module-level function, or a
functools.partial of one).

Long work takes ``progress(fraction, message)`` and ``cancel()`` like everything else in the engine: progress after
each finished call; cancel is checked between calls, stops submitting, and cancels the calls still in flight (their
results stay None). A call that raises goes to ``on_error(i, exc)``, whose return value becomes its result; without
``on_error`` the first failure is raised as an EngineError naming the item.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import EngineError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")
R = TypeVar("R")
ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def ensure_ray(address: str | None = None, num_cpus: int = 0, object_store_mb: int = 0,
               hint: str = "check the Ray address, or run with one worker (no Ray)") -> bool:
    """Start (or join) Ray once per process; True when this call started it. A running Ray is used as it is.
    ``object_store_mb`` (local Ray only; 0 = Ray's default) keeps it small on a small machine."""
    import ray

    if ray.is_initialized():
        return False
    # Workers import the engine from this checkout even when it is not installed as a package.
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PROJECT_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING, "configure_logging": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        if object_store_mb:
            kwargs["object_store_memory"] = int(object_store_mb) * 1024 * 1024
    log.info("starting Ray (%s)", address or f"local, {kwargs.get('num_cpus')} CPUs")
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray's own errors are not sentences a person can act on
        raise EngineError(f"Ray could not start ({type(exc).__name__}: {exc})", hint=hint) from None
    return True


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """The Ray task: ``fn(item)`` in a worker (ray.remote takes functions only, not partials)."""
    return fn(item)


def _failed(i: int, exc: BaseException, on_error: Callable[[int, BaseException], Any] | None) -> Any:
    if on_error is not None:
        return on_error(i, exc)
    if isinstance(exc, EngineError):
        raise exc
    raise EngineError(f"item {i} of the fan-out failed: {type(exc).__name__}: {exc}") from exc


def fan_out(fn: Callable[[T], R], items: Sequence[T], max_workers: int = 1, *,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None,
            on_result: Callable[[int, R], None] | None = None,
            on_error: Callable[[int, BaseException], Any] | None = None,
            address: str | None = None, num_cpus: int = 0, num_cpus_per_task: float = 1.0,
            retries: int = 0) -> list[R | None]:
    """``[fn(item) for item in items]``, ``max_workers`` at a time (Ray when above 1); results in the given order.

    ``on_result(i, result)`` is called as each call finishes (in finishing order), so a caller can record progress
    while the rest still run. ``retries``: how often Ray reruns a task whose worker died (not one that raised).
    """
    items = list(items)
    n = len(items)
    results: list[R | None] = [None] * n
    if max_workers < 1:
        raise EngineError(f"max_workers must be at least 1 (got {max_workers})")

    def finished(i: int, result: Any, done: int) -> None:
        results[i] = result
        if on_result is not None:
            on_result(i, result)
        if progress is not None:
            progress(done / max(n, 1), f"{done} of {n} done")

    if max_workers == 1 or n <= 1:
        for i, item in enumerate(items):
            if cancel is not None and cancel():
                break
            try:
                result = fn(item)
            except Exception as exc:  # noqa: BLE001 - on_error decides; without it, an EngineError is raised
                result = _failed(i, exc, on_error)
            finished(i, result, i + 1)
        return results

    import ray

    ensure_ray(address, num_cpus)
    remote = ray.remote(num_cpus=num_cpus_per_task, max_retries=retries)(_call)
    fn_ref = ray.put(fn)  # shipped once; a partial or a closure-free function both travel (cloudpickle)
    pending: dict[Any, int] = {}
    queue = list(enumerate(items))
    done_count = 0
    while queue or pending:
        if cancel is not None and cancel():
            for ref in pending:
                ray.cancel(ref, force=True)
            log.info("fan-out cancelled with %d call(s) in flight and %d not started", len(pending), len(queue))
            break
        while queue and len(pending) < max_workers:
            i, item = queue.pop(0)
            pending[remote.remote(fn_ref, item)] = i
        # A timeout so that cancel is noticed while long calls run.
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            i = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task raised or its worker died
                cause = getattr(exc, "cause", None)
                result = _failed(i, cause if isinstance(cause, BaseException) else exc, on_error)
            done_count += 1
            finished(i, result, done_count)
    return results
