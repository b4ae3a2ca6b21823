"""Resource limits for the external tools: an address-space cap and a CPU-time cap per tool process.

A design can ask a tool for more than the machine has (a generate loop of 10^6 iterations makes Yosys grow without
bound), and a wall-clock timeout alone lets it take the whole machine's memory first. Each tool therefore runs
with ``RLIMIT_AS`` (default: half of this machine's memory) and ``RLIMIT_CPU`` (the step's own ``timeout_s``, so
the knob in the message is the one to raise). The budget is CPU time, not wall time, so a step that fits on an
idle machine still fits on a busy one; a wall-clock stop at ``wall_factor`` x the budget remains as a safety net.
When the kernel enforces either, the step says which limit and which knob (and its code, engine.diagnosis),
instead of "exit -6".
"""
from __future__ import annotations

import os
import resource
import signal
from dataclasses import dataclass


@dataclass
class LimitsConfig:
    memory_fraction: float = 0.5  # each tool's address space is capped at this share of the machine's memory
    memory_mb: float = 0.0  # an explicit cap in MiB instead of memory_fraction (0 = use the fraction)
    cpu_factor: float = 1.0  # each tool's CPU-time cap = cpu_factor x the step's timeout_s (load-independent)
    wall_factor: float = 3.0  # the wall-clock safety stop = wall_factor x timeout_s (a tool stuck on I/O or asleep)
    scale_with_design: bool = True  # budgets grow with the design past a reference size (1 MiB of RTL, 20k nets)


def machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not Linux: no cap rather than a wrong one
        return 0


def memory_cap_bytes(cfg: LimitsConfig) -> int:
    if cfg.memory_mb and cfg.memory_mb > 0:
        return int(cfg.memory_mb * 1024 * 1024)
    total = machine_memory_bytes()
    return int(total * cfg.memory_fraction) if total and 0 < cfg.memory_fraction < 1 else 0


def design_scale(cfg: LimitsConfig, size: float, reference: float) -> float:
    """How much a step's time budget grows for a design of ``size`` (bytes of RTL, nets): 1 up to ``reference``,
    then in proportion, so a 100k-net CPU core gets 5x the budget of a 20k-net one without a knob turned."""
    return max(1.0, float(size) / reference) if cfg.scale_with_design and reference > 0 else 1.0


def preexec(cfg: LimitsConfig, timeout_s: float | None):
    """A ``preexec_fn`` that applies the caps in the child before it execs the tool."""
    mem = memory_cap_bytes(cfg)
    cpu = int(max(1.0, timeout_s * cfg.cpu_factor)) if timeout_s else 0

    def apply() -> None:  # runs in the forked child: keep it to system calls
        if mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))

    return apply


_OOM_WORDS = ("bad_alloc", "out of memory", "cannot allocate memory", "memory exhausted", "alloc failed")


def limit_stop(tool: str, returncode: int, log_text: str, cfg: LimitsConfig, timeout_s: float | None,
               timeout_knob: str) -> tuple[str, str, str] | None:
    """Which limit stopped the tool: (code, message naming the knob, knob) with code ``tool.cpu_limit`` or
    ``tool.memory_limit`` (engine.diagnosis); None when the exit was not a limit (a clean exit never is, whatever
    its log says)."""
    if returncode == 0:
        return None
    tail = log_text[-4000:].lower()
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or (returncode == -signal.SIGKILL and "cpu time" in tail):
        cpu = int(max(1.0, (timeout_s or 0) * cfg.cpu_factor))
        return ("tool.cpu_limit",
                f"{tool} used up its CPU-time limit of {cpu} s; the design is too large or loops (a generate "
                f"loop or a recursion that does not end?). Raise {timeout_knob} if the design really needs it",
                timeout_knob)
    mem = memory_cap_bytes(cfg)
    if mem and (any(w in tail for w in _OOM_WORDS) or returncode in (-signal.SIGABRT, -signal.SIGSEGV)
                and any(w in tail for w in _OOM_WORDS + ("terminate called",))):
        return ("tool.memory_limit",
                f"{tool} ran out of its memory limit of {mem / 2**20:,.0f} MiB "
                f"(limits.memory_fraction = {cfg.memory_fraction:g} of this machine's memory); the design asks "
                "for more than the machine can give (a huge generate loop or array?). Make the design smaller, "
                "or raise limits.memory_fraction / limits.memory_mb", "limits.memory_fraction")
    return None

