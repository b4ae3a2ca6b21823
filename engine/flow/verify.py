"""Verification: the design's testbench run with Icarus Verilog on the RTL, then again on the synthesized
gate-level netlist with the technology's Verilog cell models; the printed outputs must agree line for line.

What is compared: the lines a testbench prints that start with ``OUT `` (the convention of the example
designs: ``OUT <cycle> <values...>``); a testbench that prints no such line has all its output lines compared
(less Icarus' own VCD notices). Lines that start with ``ERROR`` or ``FAIL`` count as the testbench's own
self-check failures.

Quirks of osu018's ``osu018_stdcells.v`` under Icarus 11, handled here:
- its specparams are min:typ:max triples; ``-T typ`` picks the typical one (and silences a warning per arc);
- its ``specify`` path delays are ignored (Icarus only honours them with ``-gspecify``), so the gate-level run
  is zero-delay and functional: it checks logic and state, not timing (timing is the timing step's job);
- flip-flops are UDPs with no reset of their own and power up as ``x``; a design without a reset shows ``x``
  in the gate-level run where RTL may show a value, which is a real mismatch worth reporting;
- the netlist has no `timescale while the cells do; a one-line timescale file is compiled first;
- the library is given with ``-l`` so that only the cells the netlist uses are elaborated.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.config import VerifyConfig
from engine.errors import Cancelled, EngineError, ToolMissing
from engine.flow.artefacts import Input
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.limits import LimitsConfig, limit_stop, preexec
from engine.io.vcd import vcd_activity
from engine.runs import write_json
from engine.validate import MIB, size_text, verilog_string

log = logging.getLogger(__name__)

CancelFn = Callable[[], bool]

DATA_SUFFIXES = (".hex", ".mem", ".dat", ".txt", ".bin", ".vh", ".svh")
COMPARE_PREFIX = "OUT "
ERROR_PREFIXES = ("ERROR", "FAIL")
# Icarus' own notices, never part of a design's output.
_NOISE = (re.compile(r"^VCD (info|warning|Warning):"), re.compile(r"\$finish called at"),
          re.compile(r"^\*\* VVP Stop"), re.compile(r"^WARNING: .*: \$dumpfile"))
_MODULE_RE = re.compile(r"^\s*module\s+([A-Za-z_][\w$]*)", re.M)
_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_IVERILOG_ERR_RE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):\s*(?:error|syntax error)[:\s]*(?P<msg>.*)$",
                              re.M | re.I)


@dataclass
class SimResult:
    """One simulation: its logs, the lines it printed and what they say."""

    name: str  # "rtl" or "gate"
    ok: bool  # compiled and ran to the end (exit 0, not stopped)
    returncode: int
    compile_log: str  # path
    sim_log: str  # path (the simulation's stdout and stderr)
    lines: list[str] = field(default_factory=list)  # every line printed, less Icarus' notices
    vcd: str | None = None  # path of the VCD, when one was written
    errors: list[str] = field(default_factory=list)  # the testbench's own ERROR/FAIL lines
    passed: bool = False  # the testbench printed a line starting with PASS
    seconds: float = 0.0
    message: str = ""  # why it failed, for a person

    @property
    def compared(self) -> list[str]:
        return output_lines(self.lines)


@dataclass
class Comparison:
    tests: int  # lines compared (the RTL run's output lines)
    mismatches: int  # positions where the gate-level line differs or is missing/extra
    first: list[dict] = field(default_factory=list)  # [{"index", "rtl", "gate"}] for the first differences
    gate_lines: int = 0


@dataclass
class VerifyReport:
    status: str  # "pass", "mismatch", "rtl fails its testbench", "no testbench"
    rtl: SimResult | None
    gate: SimResult | None
    comparison: Comparison | None
    tb_top: str = ""
    dut_instance: str = ""  # instance name of the design's top inside the testbench ("dut"), if found

    def metrics(self) -> dict:
        c = self.comparison
        m = {
            "verify__status": self.status,
            "verify__tests__count": c.tests if c else 0,
            "verify__mismatch__count": c.mismatches if c else 0,
        }
        if self.rtl is not None:
            m["verify__rtl__errors"] = len(self.rtl.errors)
            m["verify__sim__rtl_s"] = round(self.rtl.seconds, 3)
        if self.gate is not None:
            m["verify__gate__errors"] = len(self.gate.errors)
            m["verify__sim__gate_s"] = round(self.gate.seconds, 3)
        return m

    def vcd_scope(self) -> str:
        """Hierarchical scope of the design inside the RTL VCD (``tb_counter.dut``), '' when unknown."""
        return f"{self.tb_top}.{self.dut_instance}" if self.tb_top and self.dut_instance else self.tb_top


class SimulationError(EngineError):
    """A testbench that does not compile, crashes or never finishes."""

    default_code = "verify.simulation"


# --------------------------------------------------------------------------------------------- helpers
def output_lines(lines: Sequence[str]) -> list[str]:
    """The lines to compare: the ``OUT `` lines if the testbench prints any, else every line."""
    tagged = [ln for ln in lines if ln.startswith(COMPARE_PREFIX)]
    return tagged if tagged else list(lines)


def _clean(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or any(p.search(line) for p in _NOISE):
            continue
        out.append(line)
    return out


def tb_top_module(tb_path: str | Path, design_modules: Sequence[str] = ()) -> str:
    """The testbench's root module: a module in the file that no other module in it instantiates."""
    text = _COMMENT_RE.sub("", Path(tb_path).read_text(errors="replace"))
    names = _MODULE_RE.findall(text)
    if not names:
        raise SimulationError(f"{Path(tb_path).name}: no module found in the testbench")
    roots = [n for n in names if n not in design_modules
             and not re.search(rf"^\s*{re.escape(n)}\s+(#\s*\(.*?\)\s*)?[A-Za-z_][\w$]*\s*\(", text, re.M)]
    return roots[0] if roots else names[0]


def dut_instance(tb_path: str | Path, top: str) -> str:
    """Name of the instance of ``top`` inside the testbench ('' when it is not instantiated by name)."""
    if not top:
        return ""
    text = _COMMENT_RE.sub("", Path(tb_path).read_text(errors="replace"))
    m = re.search(rf"^\s*{re.escape(top)}\s+(?:#\s*\(.*?\)\s*)?([A-Za-z_][\w$]*)\s*\(", text, re.M | re.S)
    return m.group(1) if m else ""


def _run(argv: list[str], log_path: Path, cwd: Path, timeout_s: float, max_bytes: int,
         cancel: CancelFn | None, vcd: Path | None = None, max_vcd_bytes: int = 0,
         limits: LimitsConfig | None = None) -> tuple[int, str]:
    """Run a tool with its output in ``log_path``; returns (exit code, reason it was stopped or '').

    The tool runs under the memory and CPU-time caps of engine.flow.limits (CPU = the simulation's timeout).
    """
    limits = limits or LimitsConfig()
    with open(log_path, "w") as logf:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=preexec(limits, timeout_s))
        except FileNotFoundError:
            raise ToolMissing(f"'{argv[0]}' is not installed; install Debian's iverilog package") from None
        start = time.monotonic()
        while True:
            try:
                code = proc.wait(timeout=0.2)
                limit = limit_stop(argv[0], code, log_path.read_text(errors="replace")[-4000:], limits, timeout_s,
                                   "verify.timeout_s")
                return code, limit[1] if limit else ""
            except subprocess.TimeoutExpired:
                stop = ""
                if cancel is not None and cancel():
                    stop = "cancelled"
                elif time.monotonic() - start > timeout_s:
                    stop = f"did not finish within {timeout_s:.0f} s (does the testbench call $finish?)"
                elif log_path.stat().st_size > max_bytes:
                    stop = f"printed more than {size_text(max_bytes)} (a runaway $display loop?)"
                elif vcd is not None and vcd.is_file() and vcd.stat().st_size > max_vcd_bytes:
                    stop = (f"wrote a VCD over {size_text(max_vcd_bytes)}; shorten the testbench or raise "
                            "verify.max_vcd_mb")
                if stop:
                    proc.kill()
                    proc.wait()
                    if stop == "cancelled":
                        raise Cancelled("verify") from None
                    return -9, stop


def _compile_error(log_text: str) -> str:
    m = _IVERILOG_ERR_RE.search(log_text)
    if m:
        return f"{Path(m.group('file')).name}:{m.group('line')}: {m.group('msg').strip() or 'syntax error'}"
    lines = [ln for ln in log_text.strip().splitlines() if ln.strip()]
    return "; ".join(lines[-3:]) if lines else "iverilog failed without a message"


# --------------------------------------------------------------------------------------------- simulate
def simulate(files: Sequence[str | Path], tb: str | Path, top: str, out_dir: str | Path, *, name: str = "rtl",
             cell_models: str | Path | None = None, vcd: str | Path | None = None, vcd_scope: str | None = None,
             config: VerifyConfig | None = None, cancel: CancelFn | None = None) -> SimResult:
    """Compile ``tb`` with ``files`` (and the cell library, for a netlist) in Icarus and run it.

    ``top`` is the design's top module (used to find the testbench's root). Logs go to
    ``out_dir/<name>.compile.log`` and ``out_dir/<name>.log``. ``vcd`` asks for a waveform: passed to the
    testbench as ``+vcd=<path>`` when it calls $dumpfile itself, otherwise dumped by a small added module.
    ``vcd_scope`` (dotted, e.g. ``tb_counter.dut``) dumps only the nets of that one scope, not the cells'
    insides, with the added module: what a gate-level run needs for per-net activity.
    Never raises for a failing simulation (``ok`` is False with ``message``); raises ToolMissing and Cancelled.
    """
    cfg = config or VerifyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tb = Path(tb).resolve()
    srcs = [Path(f).resolve() for f in files]
    compile_log, sim_log = out / f"{name}.compile.log", out / f"{name}.log"
    result = SimResult(name=name, ok=False, returncode=-1, compile_log=str(compile_log), sim_log=str(sim_log))
    for p in [tb, *srcs] + ([Path(cell_models)] if cell_models else []):
        if not p.is_file():
            result.message = f"{p} not found"
            return result
    t0 = time.monotonic()
    tb_top = tb_top_module(tb, [top] if top else [])
    timescale = out / "cda_timescale.v"
    timescale.write_text("`timescale 1ns/1ps\n")
    argv = ["iverilog", f"-g{cfg.language}", "-T", "typ", "-s", tb_top]
    if cfg.gate_delays and cell_models:
        argv.append("-gspecify")
    extra: list[Path] = []
    plusargs: list[str] = []
    if vcd is not None:
        vcd = Path(vcd).resolve()
        if vcd_scope is None and "$dumpfile" in tb.read_text(errors="replace"):
            plusargs.append(f"+vcd={vcd}")
        else:
            what = f"1, {vcd_scope}" if vcd_scope else f"0, {tb_top}"
            dump = out / f"{name}_cda_dump.v"
            dump.write_text(f"module cda_dump;\n  initial begin\n    $dumpfile({verilog_string(vcd)});\n"
                            f"    $dumpvars({what});\n  end\nendmodule\n")
            extra.append(dump)
            argv += ["-s", "cda_dump"]
    vvp = out / f"{name}.vvp"
    for folder in dict.fromkeys([tb.parent, *(p.parent for p in srcs)]):
        argv += ["-I", str(folder)]  # `include files next to the testbench or the design
    _copy_data_files(tb.parent, out)
    argv += ["-o", str(vvp), str(timescale), str(tb), *map(str, srcs), *map(str, extra)]
    if cell_models:
        argv += ["-l", str(Path(cell_models).resolve())]
    max_bytes = int(cfg.max_log_mb * MIB)
    (out / f"{name}.cmd").write_text(" ".join(argv) + "\n" + " ".join(["vvp", "-n", str(vvp), *plusargs]) + "\n")
    code, stop = _run(argv, compile_log, out, cfg.timeout_s, max_bytes, cancel)
    if code != 0:
        result.returncode = code
        text = compile_log.read_text(errors="replace")
        result.message = f"iverilog could not compile the {name} simulation: " + (stop or _compile_error(text))
        result.seconds = time.monotonic() - t0
        return result
    remaining = max(cfg.timeout_s - (time.monotonic() - t0), 1.0)
    code, stop = _run(["vvp", "-n", str(vvp), *plusargs], sim_log, out, remaining, max_bytes, cancel,
                      vcd=Path(vcd) if vcd is not None else None, max_vcd_bytes=int(cfg.max_vcd_mb * MIB))
    result.seconds = time.monotonic() - t0
    result.returncode = code
    result.lines = _clean(sim_log.read_text(errors="replace"))
    result.errors = [ln for ln in result.lines if ln.startswith(ERROR_PREFIXES)]
    result.passed = any(ln.startswith("PASS") for ln in result.lines)
    if vcd is not None and Path(vcd).is_file():
        result.vcd = str(vcd)
    if stop:
        result.message = f"the {name} simulation {stop}"
    elif code != 0:
        result.message = f"the {name} simulation exited with code {code}; see {sim_log.name}"
    else:
        result.ok = True
    vvp.unlink(missing_ok=True)
    return result


def _copy_data_files(src: Path, dst: Path) -> None:
    """Memory images next to the testbench ($readmemh("prog.hex")) are read relative to the run folder."""
    if src.resolve() == dst.resolve():
        return
    for p in src.iterdir():
        if p.suffix.lower() in DATA_SUFFIXES and p.is_file() and p.stat().st_size < 16e6 \
                and not (dst / p.name).exists():
            shutil.copyfile(p, dst / p.name)


def compare_outputs(rtl_lines: Sequence[str], gate_lines: Sequence[str], keep: int = 50) -> Comparison:
    """Line-by-line comparison of two runs' output lines (a missing or extra line counts as a mismatch)."""
    n = max(len(rtl_lines), len(gate_lines))
    first: list[dict] = []
    mismatches = 0
    for i in range(n):
        r = rtl_lines[i] if i < len(rtl_lines) else None
        g = gate_lines[i] if i < len(gate_lines) else None
        if r != g:
            mismatches += 1
            if len(first) < keep:
                first.append({"index": i, "rtl": r, "gate": g})
    return Comparison(tests=len(rtl_lines), mismatches=mismatches, first=first, gate_lines=len(gate_lines))


def verify_design(files: Sequence[str | Path], tb: str | Path | None, top: str, netlist_v: str | Path,
                  cell_models: str | Path, out_dir: str | Path, *, config: VerifyConfig | None = None,
                  cancel: CancelFn | None = None, progress: Callable[[float, str], None] | None = None) -> VerifyReport:
    """RTL simulation, gate-level simulation, comparison; writes ``mismatches.json`` and ``verify.json``.

    Raises SimulationError when a simulation cannot compile or run (the message names the file and line).
    """
    cfg = config or VerifyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tb is None:
        report = VerifyReport(status="no testbench", rtl=None, gate=None, comparison=None)
        write_json(out / "verify.json", _report_dict(report))
        return report
    tb_top = tb_top_module(tb, [top] if top else [])
    report = VerifyReport(status="", rtl=None, gate=None, comparison=None, tb_top=tb_top,
                          dut_instance=dut_instance(tb, top))
    if progress:
        progress(0.05, "Icarus: RTL simulation")
    rtl = simulate(files, tb, top, out, name="rtl", vcd=(out / "rtl.vcd") if cfg.dump_vcd else None,
                   config=cfg, cancel=cancel)
    report.rtl = rtl
    if not rtl.ok:
        raise SimulationError(rtl.message, log_path=rtl.compile_log if not rtl.lines else rtl.sim_log,
                              hint="fix the testbench or the RTL at the line named; a testbench must end "
                                   "with $finish")
    if progress:
        progress(0.5, "Icarus: gate-level simulation of the synthesized netlist")
    # The gate-level VCD holds the netlist's nets only (depth 1 under the design's instance).
    gate_vcd = cfg.gate_vcd and bool(report.dut_instance)
    gate = simulate([netlist_v], tb, top, out, name="gate", cell_models=cell_models,
                    vcd=(out / "gate.vcd") if gate_vcd else None, vcd_scope=report.vcd_scope(),
                    config=cfg, cancel=cancel)
    report.gate = gate
    if not gate.ok and not gate.lines:
        raise SimulationError(gate.message, log_path=gate.compile_log,
                              hint="the testbench must use only the top module's ports (the netlist is "
                                   "flattened: no hierarchical references, no parameter overrides)")
    comparison = compare_outputs(rtl.compared, gate.compared, keep=cfg.mismatches_kept)
    report.comparison = comparison
    if comparison.mismatches:
        report.status = "mismatch"
    elif rtl.errors:
        report.status = "rtl fails its testbench"
    else:
        report.status = "pass"
    write_json(out / "mismatches.json", {"tests": comparison.tests, "mismatches": comparison.mismatches,
                                          "gate_lines": comparison.gate_lines, "first": comparison.first})
    if gate.vcd and cfg.activity_json:
        scope = f"{tb_top}.{report.dut_instance}" if report.dut_instance else tb_top
        acts = vcd_activity(gate.vcd, scope)
        write_json(out / "activity.json", {"vcd": Path(gate.vcd).name, "scope": scope,
                                            "nets": {k: asdict(v) for k, v in sorted(acts.items())}})
    write_json(out / "verify.json", _report_dict(report))
    if progress:
        progress(1.0, f"{comparison.tests} output lines compared, {comparison.mismatches} mismatches")
    return report


def _report_dict(report: VerifyReport) -> dict:
    def sim(s: SimResult | None) -> dict | None:
        if s is None:
            return None
        d = asdict(s)
        d.pop("lines")
        d["line_count"] = len(s.lines)
        d["errors"] = s.errors[:20]
        return d

    return {"status": report.status, "tb_top": report.tb_top, "dut_instance": report.dut_instance,
            "vcd_scope": report.vcd_scope(), "metrics": report.metrics(), "rtl": sim(report.rtl),
            "gate": sim(report.gate)}


# --------------------------------------------------------------------------------------------- the step
class VerifyStep(Step):
    id = "verify"
    inputs = (Input("synth", "netlist_v"), Input("cts", "netlist_v", required=False))
    outputs = ("report",)
    uses = ("design_files", "testbench", "top", "tech_dir", "verify")
    version = 1

    def run(self, ctx: StepContext) -> StepResult:
        cfg = ctx.config
        vcfg = _verify_config(cfg)
        if not cfg.testbench:
            report = verify_design(cfg.design_files, None, cfg.top, "", "", ctx.step_dir, config=vcfg)
            return StepResult(metrics=report.metrics(), artefacts={"report": "verify.json"}, status="skipped",
                              message="no testbench: nothing to simulate (add a tb_<name>.v to verify)")
        if not Path(cfg.testbench).is_file():
            raise ctx.fail(f"testbench {cfg.testbench} not found", code="verify.testbench_not_found")
        models = ctx.pdk.verilog_models_path
        if models is None or not Path(models).is_file():
            raise ctx.fail(f"the technology has no Verilog cell models (*stdcells.v) next to {ctx.pdk.lef_path}",
                           hint="gate-level simulation needs them; run the flow without the verify step",
                           code="tech.no_cell_models")
        from engine.flow.cts import netlist_v_path

        netlist_v = netlist_v_path(ctx)  # with the clock tree's buffers when cts ran: they must be transparent
        top = cfg.top or str(ctx.metrics("synth").get("design__top", ""))
        try:
            report = verify_design(cfg.design_files, cfg.testbench, top, netlist_v, models, ctx.step_dir,
                                   config=vcfg, cancel=ctx.cancelled, progress=ctx.progress)
        except SimulationError as exc:
            raise ctx.fail(exc.message, hint=exc.hint, log_path=Path(exc.log_path) if exc.log_path else None,
                           code=exc.code, knob=exc.knob) from None
        artefacts = {"report": "verify.json", "mismatches": "mismatches.json", "rtl_log": "rtl.log",
                     "gate_log": "gate.log"}
        if report.rtl and report.rtl.vcd:
            artefacts["vcd"] = Path(report.rtl.vcd).name
        if report.gate and report.gate.vcd:
            artefacts["gate_vcd"] = Path(report.gate.vcd).name
        if (ctx.step_dir / "activity.json").is_file():
            artefacts["activity"] = "activity.json"
        c = report.comparison
        assert c is not None and report.rtl is not None  # both set once a testbench ran
        if report.status == "mismatch":
            hint = ""
            if any(_has_unknown(d["gate"]) and not _has_unknown(d["rtl"]) for d in c.first):
                hint = " (the gate-level run shows x: a flip-flop without a reset?)"
            message = f"{c.mismatches} of {c.tests} output lines differ between RTL and gates{hint}"
        elif report.status == "pass":
            message = f"RTL and gate-level agree on {c.tests} output lines"
        else:
            message = f"gate-level matches RTL, but the testbench reports {len(report.rtl.errors)} failures"
        metrics = report.metrics()
        metrics["verify__vcd_scope"] = report.vcd_scope()
        return StepResult(metrics=metrics, artefacts=artefacts, message=message)


def _has_unknown(line: str | None) -> bool:
    """A printed value with x or z digits (a hex/binary token such as ``xx`` or ``1x0z``)."""
    if not line:
        return False
    return any(re.fullmatch(r"[0-9a-fA-F]*[xXzZ][0-9a-fA-FxXzZ]*", tok) and
               not re.fullmatch(r"[xX]\d+", tok) for tok in line.split()[1:])


def _verify_config(cfg) -> VerifyConfig:
    """The flow config's ``verify`` section (a VerifyConfig since FlowConfig has one), else the defaults."""
    section = getattr(cfg, "verify", None)
    return section if isinstance(section, VerifyConfig) else VerifyConfig()
