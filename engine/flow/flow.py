"""Runs a list of steps over one run folder: reuse, progress, cancel, and failure bookkeeping.

A step whose reuse key (code version, the config it reads, its input files, its upstream steps' keys) matches an
earlier finished step is copied from that run instead of run again.
"""
from __future__ import annotations

import importlib
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.config import FlowConfig
from engine.diagnosis import suggested_knob
from engine.errors import Cancelled, EngineError, FlowError
from engine.flow.base import ProgressFn, Step, StepContext, order_steps, record_step, wrap_unexpected
from engine.flow.registry import STEP_IDS
from engine.pdk import load_pdk
from engine.runs import Run, RunStore, read_json, write_json

log = logging.getLogger(__name__)

# step id -> "module:Class"; imported lazily so `cda runs list` does not pay for torch or KLayout.
STEP_IMPL = {
    "synth": "engine.flow.synth:SynthStep",
    "floorplan": "engine.flow.floorplan:FloorplanStep",
    "place": "engine.flow.place:PlaceStep",
    "cts": "engine.flow.cts:CtsStep",
    "route": "engine.flow.route:RouteStep",
    "timing": "engine.flow.timing:TimingStep",
    "gds": "engine.flow.gds:GdsStep",
    "checks": "engine.flow.checks:ChecksStep",
    "verify": "engine.flow.verify:VerifyStep",
}


def load_step(step_id: str) -> Step:
    module, cls = STEP_IMPL[step_id].split(":")
    return getattr(importlib.import_module(module), cls)()


def select_steps(until: str | None = None, steps: Iterable[str] | None = None, skip: Iterable[str] = ()) -> list[str]:
    chosen = list(steps) if steps else list(STEP_IDS)
    for s in list(chosen) + list(skip):
        if s not in STEP_IDS:
            raise EngineError(f"unknown step '{s}'; steps are {', '.join(STEP_IDS)}")
    if until:
        if until not in STEP_IDS:
            raise EngineError(f"unknown step '{until}'; steps are {', '.join(STEP_IDS)}")
        last = STEP_IDS.index(until)
        chosen = [s for s in chosen if STEP_IDS.index(s) <= last]
    return [s for s in chosen if s not in set(skip)]


def design_name(config: FlowConfig) -> str:
    if config.top:
        return config.top
    if config.design_files:
        return Path(config.design_files[0]).stem
    return "design"


def run_flow(config: FlowConfig, store: RunStore | None = None, *, until: str | None = None,
             steps: Iterable[str] | None = None, skip: Iterable[str] = (), run: Run | None = None,
             progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
             reuse: bool = True, label: str = "") -> Run:
    """Run the flow (all steps, or up to ``until``) into a new run folder, or into ``run`` if given.

    Never raises for a failing step: the run is marked failed, with the step, the message and the log kept, and
    returned. Raises EngineError only for a configuration that cannot start (unknown step names, a top-module
    name or path that is not safe to hand to a tool: see engine.validate).
    """
    from engine.validate import label as check_label
    from engine.validate import validate_flow_config

    validate_flow_config(config)  # every entry point (CLI, cockpit job, optimizer, datagen) passes here
    check_label(label)
    store = store or RunStore()
    chosen = order_steps(select_steps(until, steps, skip), load_step)
    if run is None:
        run = store.create(config.to_dict(), design=design_name(config), label=label)
    run.update_info(steps=[s for s in STEP_IDS if s in chosen])  # the story's order; they run in `chosen`'s
    run.set_status("running")
    keys: dict[str, str] = {}
    current = None
    try:
        pdk = load_pdk(config.tech_dir, macros=config.macros)
        for step_id in chosen:
            current = step_id
            if run.cancel_requested() or (cancel and cancel()):
                raise Cancelled(step_id)
            step = load_step(step_id)
            # Keys of upstream steps that ran earlier in this run folder (possibly in an earlier invocation).
            for req in step.upstream():
                if req not in keys:
                    rec = read_json(run.step_dir(req, create=False) / "step.json", {}) or {}
                    if rec.get("key"):
                        keys[req] = rec["key"]
            key = step.key(config, keys, run)
            keys[step_id] = key
            step_dir = run.step_dir(step_id)
            run.event("step_start", step=step_id)
            t0 = time.monotonic()
            existing = read_json(step_dir / "step.json", {}) or {}
            if reuse and existing.get("key") == key and existing.get("status") in ("done", "skipped"):
                run.event("step_end", step=step_id, status="reused", seconds=0.0,
                          message=existing.get("message", ""), reused_from=run.id)
                continue
            cached = store.cached_step(key) if reuse else None
            if cached is not None and cached != step_dir:
                shutil.rmtree(step_dir)
                shutil.copytree(cached, step_dir)
                rec = read_json(step_dir / "step.json", {})
                rec["reused_from"] = cached.parent.name
                write_json(step_dir / "step.json", rec)
                run.event("step_end", step=step_id, status="reused", seconds=round(time.monotonic() - t0, 3),
                          message=rec.get("message", ""), reused_from=cached.parent.name)
                continue
            # A fresh run of the step: clear what an earlier attempt left.
            shutil.rmtree(step_dir)
            step_dir.mkdir(parents=True)
            ctx = StepContext(run=run, config=config, pdk=pdk, step_id=step_id, step_dir=step_dir,
                              on_progress=progress, cancel_flag=cancel)
            try:
                step.check_inputs(ctx)
                result = step.run(ctx)
                step.check_outputs(ctx, result)
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a FlowError with its story
                err = wrap_unexpected(step_id, exc)
                if not isinstance(exc, EngineError):
                    (step_dir / "error.log").write_text(traceback.format_exc())
                    err.log_path = err.log_path or str(step_dir / "error.log")
                raise err from exc
            seconds = time.monotonic() - t0
            result.metrics.setdefault(f"flow__{step_id}__runtime_s", round(seconds, 3))
            record_step(step_dir, step_id, key, result, seconds)
            if result.status == "done":
                store.remember_step(key, run.id, step_id)
            run.event("step_end", step=step_id, status=result.status, seconds=round(seconds, 3),
                      message=result.message)
        run.set_status("done")
    except Cancelled:
        if current:
            run.event("step_end", step=current, status="cancelled", message="cancelled by the user")
        run.set_status("cancelled")
    except FlowError as err:
        knob = suggested_knob(err.code, err.knob, err.step)
        run.event("step_end", step=err.step, status="failed", message=err.message)
        run.event("error", step=err.step, message=err.message, hint=err.hint, log=err.log_path, code=err.code,
                  knob=knob)
        run.set_status("failed", error=err.message, failed_step=err.step, hint=err.hint, log=err.log_path,
                       code=err.code, knob=knob)
    except EngineError as err:
        failed_at = current or "setup"
        knob = suggested_knob(err.code, err.knob, failed_at)
        run.event("step_end", step=failed_at, status="failed", message=err.message)
        run.event("error", step=failed_at, message=err.message, hint=err.hint, code=err.code, knob=knob)
        run.set_status("failed", error=err.message, failed_step=failed_at, hint=err.hint, code=err.code, knob=knob)
    except BaseException as exc:
        (run.dir / "error.log").write_text(traceback.format_exc())
        run.set_status("failed", error=f"internal error: {type(exc).__name__}: {exc}", failed_step=current,
                       code="flow.internal", knob=None)
        if not isinstance(exc, Exception):
            raise
    return run
