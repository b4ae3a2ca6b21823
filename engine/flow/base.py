"""The step contract. A step declares its id, the steps it needs and the config it reads, and implements only
``run(ctx) -> StepResult``; this module owns the folder, metrics.json, timing, the reuse key and error wrapping.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.config import FlowConfig
from engine.errors import Cancelled, EngineError, FlowError, ToolMissing
from engine.flow.artefacts import Input, describe
from engine.flow.limits import LimitsConfig, limit_stop, preexec
from engine.pdk import Pdk
from engine.runs import Run, read_json, write_json

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float, str], None]  # (step_id, fraction, message)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_tool(proc: subprocess.Popen) -> None:
    """Kill a tool and everything it started: a wrapper script's own children outlive a kill of the wrapper alone
    (a trial timeout or a cancel must stop the work, not only its launcher). The tool stays in this process's
    group, so a worker that kills its own group still takes it along."""
    below = _descendants(proc.pid)
    proc.kill()
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # gone already
            pass
    proc.wait()


@dataclass
class StepResult:
    metrics: dict[str, Any]
    artefacts: dict[str, str] = field(default_factory=dict)  # name -> file name inside the step folder
    status: str = "done"  # "done", or "skipped" when the step had nothing to do (no testbench, routing off)
    message: str = ""  # one line for the story ("routed 412 nets, 0 open")


@dataclass
class StepContext:
    run: Run
    config: FlowConfig
    pdk: Pdk
    step_id: str
    step_dir: Path
    on_progress: ProgressFn | None = None
    cancel_flag: Callable[[], bool] | None = None

    def artefact(self, step_id: str, name: str) -> Path:
        """Path of an artefact an earlier step produced; a clear error when it is missing."""
        rec = read_json(self.run.step_dir(step_id, create=False) / "step.json", {}) or {}
        fname = rec.get("artefacts", {}).get(name)
        if not fname:
            raise FlowError(self.step_id, f"step '{self.step_id}' needs '{name}' from step '{step_id}', which has "
                            f"not produced it; run '{step_id}' first", code="flow.missing_input")
        path = self.run.step_dir(step_id, create=False) / fname
        if not path.exists():
            raise FlowError(self.step_id, f"{path} is missing from the run folder", code="flow.missing_input")
        return path

    def has_artefact(self, step_id: str, name: str) -> bool:
        rec = read_json(self.run.step_dir(step_id, create=False) / "step.json", {}) or {}
        fname = rec.get("artefacts", {}).get(name)
        return bool(fname) and (self.run.step_dir(step_id, create=False) / fname).exists()

    def metrics(self, step_id: str) -> dict:
        return self.run.step_metrics(step_id)

    def progress(self, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self.run.event("progress", step=self.step_id, fraction=round(fraction, 4), message=message)
        if self.on_progress:
            self.on_progress(self.step_id, fraction, message)

    def cancelled(self) -> bool:
        return self.run.cancel_requested() or bool(self.cancel_flag and self.cancel_flag())

    def check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled(self.step_id)

    def fail(self, message: str, *, hint: str | None = None, log_path: Path | None = None, code: str | None = None,
             knob: str | None = None) -> FlowError:
        """The step's failure; ``code`` is a key of engine.diagnosis.CATALOGUE, ``knob`` the registry knob to turn
        when it is not the catalogue's first."""
        return FlowError(self.step_id, message, hint=hint, log_path=str(log_path) if log_path else None,
                         code=code, knob=knob)

    def tool(self, argv: Sequence[str], log_name: str, *, timeout: float | None = None, cwd: Path | None = None,
             ok_codes: Sequence[int] = (0,), stdin: str | None = None,
             timeout_knob: str | None = None) -> subprocess.CompletedProcess:
        """Run an external tool with its output kept in ``log_name``; polls cancel while it runs.

        The tool runs under the memory and CPU-time caps of ``config.limits`` (engine.flow.limits); when one of
        them stops it, the step fails with a message naming the limit and ``timeout_knob`` (the knob to raise).
        """
        exe = shutil.which(argv[0])
        if exe is None:
            raise ToolMissing(f"'{argv[0]}' is not installed; run `make setup` (Debian package) and retry")
        limits = getattr(self.config, "limits", None) or LimitsConfig()
        knob = timeout_knob or f"{self.step_id}.timeout_s"
        log_path = self.step_dir / log_name
        start = time.monotonic()
        with open(log_path, "w") as logf:
            proc = subprocess.Popen(list(argv), cwd=cwd or self.step_dir, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, text=True,
                                    preexec_fn=preexec(limits, timeout))
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin)
                proc.stdin.close()
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if self.cancelled():
                        kill_tool(proc)
                        raise Cancelled(self.step_id) from None
                    if timeout is not None and time.monotonic() - start > timeout * limits.wall_factor:
                        kill_tool(proc)
                        raise self.fail(f"{argv[0]} did not finish within {timeout * limits.wall_factor:.0f} s "
                                        f"of wall-clock time", log_path=log_path,
                                        hint=f"raise {knob} or simplify the design", code="tool.timeout",
                                        knob=knob) from None
        result = subprocess.CompletedProcess(list(argv), proc.returncode, log_path.read_text(errors="replace"), "")
        # The tool's stdout and stderr are both in this log: an abort's "std::bad_alloc" lands here too.
        stop = limit_stop(argv[0], proc.returncode, result.stdout, limits, timeout, knob)
        if stop:
            code, why, limit_knob = stop
            raise self.fail(why, log_path=log_path, hint=f"raise {knob} or limits.memory_fraction, or make the "
                                                          "design smaller", code=code, knob=limit_knob)
        if proc.returncode not in ok_codes:
            raise self.fail(f"{argv[0]} failed (exit {proc.returncode}); see {log_path.name}", log_path=log_path,
                            code="tool.failed")
        return result


class Step:
    """Base of every flow step. Subclasses declare their inputs, outputs and the config they read, and implement
    ``run``; this class checks the inputs, keys reuse on them, and checks the outputs (OpenLane 2's Step, small).
    """

    id: ClassVar[str]
    inputs: ClassVar[tuple[Input, ...]] = ()  # artefacts of earlier steps this step reads
    outputs: ClassVar[tuple[str, ...]] = ()  # artefact names a finished ("done") run of the step must leave
    uses: ClassVar[tuple[str, ...]] = ()  # FlowConfig fields this step reads (its reuse key covers them)
    version: ClassVar[int] = 1  # bump when the step's code changes its outputs, to invalidate reuse

    @classmethod
    def upstream(cls) -> tuple[str, ...]:
        """The steps whose artefacts this one reads, in declaration order."""
        return tuple(dict.fromkeys(i.step for i in cls.inputs))

    def run(self, ctx: StepContext) -> StepResult:  # pragma: no cover - interface
        raise NotImplementedError

    # ------------------------------------------------------------------ contract
    def check_inputs(self, ctx: StepContext) -> None:
        """Every required input exists in this run folder, else one message naming it and its producer."""
        for inp in self.inputs:
            if inp.required and not ctx.has_artefact(inp.step, inp.artefact):
                raise FlowError(self.id, f"step '{self.id}' needs the {describe(inp.step, inp.artefact)} from "
                                f"step '{inp.step}', which is not in this run; run '{inp.step}' first",
                                hint=f"run the flow from '{inp.step}' (or from the start)", code="flow.missing_input")

    def check_outputs(self, ctx: StepContext, result: StepResult) -> None:
        if result.status != "done":
            return
        missing = [o for o in self.outputs
                   if o not in result.artefacts or not (ctx.step_dir / result.artefacts[o]).exists()]
        if missing:
            raise FlowError(self.id, f"internal error: step '{self.id}' finished without its declared output(s) "
                            f"{', '.join(missing)}", code="flow.internal")

    # ------------------------------------------------------------------ reuse
    def key(self, config: FlowConfig, upstream_keys: dict[str, str], run: Run | None = None) -> str:
        """A hash of everything the outputs depend on: code version, config read, design files, upstream keys,
        and which declared inputs are present in ``run`` (an optional input changes the result when present)."""
        cfg = config.to_dict()
        payload: dict[str, Any] = {"step": self.id, "version": self.version,
                                   "config": {name: cfg.get(name) for name in self.uses},
                                   "upstream": {s: upstream_keys.get(s) for s in self.upstream()}}
        files = []
        for name in self.uses:  # a file named anywhere in what the step reads (a user SDC in timing, say)
            for p in _strings(cfg.get(name)):
                pth = Path(p)
                if pth.is_file():
                    files.append((str(pth), _sha(pth)))
        payload["files"] = files
        if run is not None:
            # Which inputs are present (an optional one changes the result when it is); their content is
            # covered by the producers' keys above (files such as VCDs carry dates, so are not hashed).
            payload["inputs"] = [(i.step, i.artefact, _present(run, i)) for i in self.inputs]
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


def _present(run: Run, inp: Input) -> bool:
    rec = read_json(run.step_dir(inp.step, create=False) / "step.json", {}) or {}
    fname = rec.get("artefacts", {}).get(inp.artefact)
    return bool(fname) and (run.step_dir(inp.step, create=False) / fname).exists()


def _strings(value: Any) -> Iterator[str]:
    """Every string in a config value (a field, a list of them, or a section's nested dict)."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def order_steps(chosen: Sequence[str], load: Callable[[str], Step]) -> list[str]:
    """The chosen steps in an order where each input's producer runs first; ties keep the story's order.

    This is what makes the verify-before-timing dependency explicit: timing declares verify's VCD as an optional
    input, so when both are chosen verify runs first and timing's power uses its activity."""
    chosen = list(chosen)
    deps = {s: {u for u in load(s).upstream() if u in chosen and u != s} for s in chosen}
    out: list[str] = []
    while len(out) < len(chosen):
        ready = [s for s in chosen if s not in out and deps[s] <= set(out)]
        if not ready:
            raise EngineError(f"the steps' inputs form a cycle: {', '.join(s for s in chosen if s not in out)}")
        out.append(ready[0])
    return out


def record_step(step_dir: Path, step_id: str, key: str, result: StepResult, seconds: float,
                reused_from: str | None = None) -> None:
    write_json(step_dir / "metrics.json", result.metrics)
    write_json(step_dir / "step.json", {"step": step_id, "key": key, "status": result.status,
                                        "artefacts": result.artefacts, "seconds": round(seconds, 3),
                                        "message": result.message, "reused_from": reused_from})


def wrap_unexpected(step_id: str, exc: BaseException) -> FlowError:
    if isinstance(exc, FlowError):
        return exc
    if isinstance(exc, EngineError):
        return FlowError(step_id, exc.message, hint=exc.hint, log_path=exc.log_path, code=exc.code, knob=exc.knob)
    return FlowError(step_id, f"internal error in step '{step_id}': {type(exc).__name__}: {exc}",
                     code="flow.internal")
