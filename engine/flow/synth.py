"""Synthesis with Yosys: read the Verilog, synthesise, map flops and logic onto the Liberty cells, write the
mapped netlist as Verilog and JSON. Bad input becomes a message with Yosys' own file, line and words.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from engine.errors import EngineError
from engine.flow.base import Step, StepContext, StepResult
from engine.io.yosys_json import load_yosys_json, netlist_from_yosys_json, top_module

log = logging.getLogger(__name__)

ABC_SCRIPTS = {
    # name -> abc arguments (LIB and PS are filled in)
    "default": "-liberty {lib}",
    "delay": "-liberty {lib} -D {ps}",
    "fast": "-fast -liberty {lib}",
    "area": "-liberty {lib} -script +strash;dch,-f;map,-a;topo;stime,-p",
}

LATCH_MAP = Path(__file__).resolve().parent / "techmap" / "latch_map.v"
MAX_FILE_BYTES = 20 * 1024 * 1024  # a single Verilog file larger than this is refused with a message


def _yosys_quote(path: str) -> str:
    if any(c in path for c in ' "\n;'):
        raise EngineError(f"file name {path!r} contains characters Yosys scripts cannot quote; rename it")
    return path


def synth_script(files: list[str], top: str, lib: str, *, flatten: bool, abc: str, clock_ns: float,
                 include_dirs: list[str]) -> str:
    if abc not in ABC_SCRIPTS:
        raise EngineError(f"unknown synthesis strategy '{abc}'; choose one of {', '.join(ABC_SCRIPTS)}")
    incs = " ".join(f"-I{_yosys_quote(d)}" for d in include_dirs)
    reads = "\n".join(f"read_verilog {incs} {_yosys_quote(f)}" for f in files)
    top_arg = f"-top {top}" if top else "-auto-top"
    abc_args = ABC_SCRIPTS[abc].format(lib=lib, ps=int(clock_ns * 1000))
    return f"""read_liberty -lib {lib}
{reads}
tee -q -o modules.txt ls
hierarchy -check {top_arg}
synth {"-flatten" if flatten else ""} {f"-top {top}" if top else ""}
tee -q -o loops.txt check
techmap -map {LATCH_MAP}
dfflibmap -liberty {lib}
opt -purge
abc {abc_args}
opt_clean -purge
setundef -zero
rename -enumerate
tee -q -o check.txt check -noinit
tee -q -o stat.txt stat -liberty {lib}
write_verilog -noattr -noexpr -nohex -nodec netlist.v
write_json netlist.json
"""


_ERROR_RE = re.compile(r"^(?:(\S+?:\d+):\s*)?ERROR:\s*(.*)$", re.M)
_WARN_RE = re.compile(r"^Warning:\s*(.*)$", re.M)


def yosys_error(log_text: str, step_dir: Path, top: str) -> tuple[str, str]:
    """Turn Yosys' log into (message, hint) a person can act on: Yosys' own file, line and words."""
    m = _ERROR_RE.search(log_text)
    if not m:
        tail = "\n".join(log_text.strip().splitlines()[-5:])
        return f"Yosys failed:\n{tail}", "read the Yosys log"
    where, err = m.group(1), m.group(2).strip()
    if ("Module" in err and "not found" in err) or "No such module" in err:
        mods = _modules_found(step_dir)
        return (f"top module '{top}' not found; the design defines: {', '.join(mods) or 'no modules'}",
                "choose the top module from the list")
    if "logic loop" in err.lower() or "combinational loop" in err.lower():
        return f"combinational loop: {err}", "break the loop with a register"
    if where:
        src = Path(where.rsplit(":", 1)[0]).name
        return f"Verilog error in {src} line {where.rsplit(':', 1)[1]}: {err}", \
            "fix the Verilog at the line Yosys names, then run again"
    return f"Yosys: {err}", "read the Yosys log"


def _modules_found(step_dir: Path) -> list[str]:
    txt = (step_dir / "modules.txt").read_text() if (step_dir / "modules.txt").exists() else ""
    mods = []
    for line in txt.splitlines():
        line = line.strip()
        if line and not line.endswith(":") and not line.startswith("--") and " " not in line:
            mods.append(line.lstrip("\\"))
    return mods


def _loops(check_text: str) -> list[str]:
    """Wires of each logic loop Yosys' check found: ['w1 -> w2', ...]."""
    loops, current = [], None
    for line in check_text.splitlines():
        if "found logic loop" in line:
            current = []
            loops.append(current)
        elif current is not None and line.strip().startswith("wire "):
            current.append(line.strip()[5:].lstrip("\\"))
        elif current is not None and not line.startswith("    "):
            current = None
    return [" -> ".join(w) or "(unnamed wires)" for w in loops]


class SynthStep(Step):
    id = "synth"
    uses = ("design_files", "top", "synth", "tech_dir", "clock_ns")
    version = 2

    def run(self, ctx: StepContext) -> StepResult:
        cfg = ctx.config
        files = [str(Path(f).resolve()) for f in cfg.design_files]
        if not files:
            raise ctx.fail("no Verilog files given", hint="pick an example design or upload your Verilog")
        for f in files:
            p = Path(f)
            if not p.is_file():
                raise ctx.fail(f"Verilog file {f} not found")
            if p.stat().st_size > MAX_FILE_BYTES:
                raise ctx.fail(f"{p.name} is {p.stat().st_size / 1e6:.1f} MB; the limit is "
                               f"{MAX_FILE_BYTES / 1e6:.0f} MB per file")
            if p.stat().st_size == 0:
                raise ctx.fail(f"{p.name} is empty")
        if ctx.pdk.liberty_path is None:
            raise ctx.fail(f"no Liberty (.lib) file next to {ctx.pdk.lef_path}")
        lib = str(ctx.pdk.liberty_path)
        include_dirs = sorted({str(Path(f).parent) for f in files})
        script = synth_script(files, cfg.top, lib, flatten=cfg.synth.flatten, abc=cfg.synth.abc_script,
                              clock_ns=cfg.clock_ns, include_dirs=include_dirs)
        (ctx.step_dir / "synth.ys").write_text(script)
        ctx.progress(0.05, "Yosys: reading Verilog and synthesising")
        proc = ctx.tool(["yosys", "-q", "-l", "yosys.log", "-s", "synth.ys"], "yosys.stdout",
                        timeout=cfg.synth.timeout_s, ok_codes=(0, 1))
        log_text = (ctx.step_dir / "yosys.log").read_text(errors="replace") if (ctx.step_dir / "yosys.log").exists() \
            else proc.stdout
        loops_txt = ctx.step_dir / "loops.txt"
        loops = _loops(loops_txt.read_text()) if loops_txt.exists() else []
        if loops:
            raise ctx.fail("combinational loop in the design through wires " + "; ".join(loops[:3]),
                           hint="break the loop with a register, or fix the assignment that feeds back",
                           log_path=ctx.step_dir / "loops.txt")
        if proc.returncode != 0:
            message, hint = yosys_error(log_text, ctx.step_dir, cfg.top)
            raise ctx.fail(message, log_path=ctx.step_dir / "yosys.log", hint=hint)
        ctx.progress(0.8, "reading the mapped netlist")
        data = load_yosys_json(ctx.step_dir / "netlist.json")
        top, module = top_module(data, cfg.top or None)
        counts = Counter(c["type"] for c in module.get("cells", {}).values())
        n_cells = sum(counts.values())
        if n_cells == 0:
            raise ctx.fail(f"'{top}' has no logic after synthesis: every output is constant or unconnected, "
                           "so there is nothing to place", hint="check that outputs depend on inputs or registers")
        if n_cells > cfg.synth.max_cells:
            raise ctx.fail(f"{n_cells} cells after synthesis; the limit is {cfg.synth.max_cells}",
                           hint="raise synth.max_cells if the machine can take it")
        unknown = sorted(t for t in counts if t not in ctx.pdk.macros)
        if unknown:
            raise ctx.fail(f"Yosys left cells the library cannot implement: {', '.join(unknown)}",
                           hint="latches and special flip-flops may not exist in osu018; rewrite them as "
                                "plain flip-flops", log_path=ctx.step_dir / "yosys.log")
        netlist = netlist_from_yosys_json(ctx.step_dir / "netlist.json", ctx.pdk, top)
        area = float(sum(ctx.pdk.macros[t].width_um * ctx.pdk.macros[t].height_um * n for t, n in counts.items()))
        warnings = _WARN_RE.findall(log_text)
        (ctx.step_dir / "warnings.txt").write_text("\n".join(warnings))
        seq = sum(n for t, n in counts.items() if t.startswith(("DFF", "LATCH")))
        metrics = {
            "design__top": top,
            "design__instance__count": n_cells,
            "design__instance__area": round(area, 3),
            "design__instance__count__sequential": seq,
            "design__net__count": netlist.n_nets,
            "design__pin__count": int((~netlist.cell_is_io[netlist.pin_cell]).sum()),
            "design__io__count": int(netlist.cell_is_io.sum()),
            "synth__warning__count": len(warnings),
            "synth__cell_types": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        }
        return StepResult(metrics=metrics,
                          artefacts={"netlist_v": "netlist.v", "netlist_json": "netlist.json",
                                     "log": "yosys.log", "stat": "stat.txt"},
                          message=f"{n_cells} cells, {area:,.0f} um² of cell area, {len(warnings)} warnings")
