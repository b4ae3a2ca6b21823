"""Synthesis with Yosys: read the Verilog, synthesise, map flops and logic onto the Liberty cells, write the
mapped netlist as Verilog and JSON. Bad input becomes a message with Yosys' own file, line and words.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.flow.base import Step, StepContext, StepResult
from engine.flow.limits import design_scale
from engine.io.yosys_json import load_yosys_json, netlist_from_yosys_json, top_module
from engine.pdk import read_liberty_cells
from engine.validate import MIB, size_text, yosys_name, yosys_path

log = logging.getLogger(__name__)

ABC_SCRIPTS = {
    # name -> abc arguments (LIB and PS are filled in)
    "default": "-liberty {lib}",
    "delay": "-liberty {lib} -D {ps}",
    "fast": "-fast -liberty {lib}",
    "area": "-liberty {lib} -script +strash;dch,-f;map,-a;topo;stime,-p",
}

LATCH_MAP = Path(__file__).resolve().parent / "techmap" / "latch_map.v"
TBUF_MAP = Path(__file__).resolve().parent / "techmap" / "tbuf_map.v"  # tri-state ports onto TBUFX1
# What is left after `opt_clean -purge` as module-level connections (a port fed by another port or by a constant,
# two output ports on one net, a bus assigned by concatenation) Yosys writes as `assign`, and OpenSTA rejects
# `assign {a, b} = ...`. `insbuf` turns each such bit into a real buffer, so the netlist is cells only. A constant
# output becomes a BUFX2 whose input is the rail (1'b0/1'b1): osu018 has no TIEHI/TIELO, and this is what qflow
# does for it (synthesize.sh swaps LOGIC0/LOGIC1 for its bufcell with A on gnd/vdd when tiehi/tielo are empty).
FEED_BUF = "BUFX2 A Y"  # osu018/035/050; feed_buffer() picks one for another library
# Internal cells and wires whose names need Verilog escaping (flattened `u1.x`, `gen[0].u`) get plain enumerated
# names; ports keep theirs (`rename -hide` skips ports). Yosys' patterns have no character ranges, so the set of
# plain characters is spelled out; the leading `?` eats the backslash of a public name.
_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
ODD_NAME = f"?*[!{_PLAIN}]*"
SV_SUFFIXES = (".sv", ".svh")  # read as SystemVerilog (read_verilog -sv)
MAX_FILE_BYTES = 20 * 1024 * 1024  # a single Verilog file larger than this is refused with a message


def feed_buffer(macros: dict) -> str:
    """"CELL IN OUT" of the buffer `insbuf` uses: BUFX2 when the library has it, else its narrowest BUF* cell with
    one signal input and one output (by LEF). A library with none gets a message, not an `assign` in the netlist."""
    def io(m) -> tuple[list[str], list[str]]:
        sig = m.signal_pins
        return ([p.name for p in sig if p.direction == "INPUT"], [p.name for p in sig if p.direction == "OUTPUT"])

    cands = []
    for name, m in macros.items():
        ins, outs = io(m)
        if name.upper().startswith("BUF") and len(ins) == 1 and len(outs) == 1:
            cands.append((name != "BUFX2", m.width_um, name, ins[0], outs[0]))
    if not cands:
        raise EngineError("the library has no buffer cell (BUF*, one input, one output) to drive feed-through and "
                          "constant outputs", hint="use a library with a buffer cell, or add one to its LEF/Liberty",
                          code="tech.no_buffer")
    _, _, name, a, y = min(cands)
    return " ".join(yosys_name(v, "buffer cell") for v in (name, a, y))


def synth_script(files: list[str], top: str, lib: str, *, flatten: bool, abc: str, clock_ns: float,
                 include_dirs: list[str], buf: str = FEED_BUF, macro_libs: Sequence[str] = (),
                 macro_stubs: str | None = None, blackbox: Sequence[str] = ()) -> str:
    if abc not in ABC_SCRIPTS:
        raise EngineError(f"unknown synthesis strategy '{abc}'; choose one of {', '.join(ABC_SCRIPTS)}",
                          code="input.out_of_range", knob="synth.abc_script")
    # Every user string is validated or quoted here, whoever called us: paths double-quoted (Yosys keeps ; and #
    # inside quotes), the top name a validated Verilog identifier (Yosys' script language has no escape syntax).
    incs = " ".join(f"-I {yosys_path(d)}" for d in include_dirs)
    reads = "\n".join(f"read_verilog {'-sv ' if f.lower().endswith(SV_SUFFIXES) else ''}{incs} {yosys_path(f)}"
                       for f in files)
    top_arg = f"-top {yosys_name(top, 'top module')}" if top else "-auto-top"
    qlib = yosys_path(lib)
    abc_args = ABC_SCRIPTS[abc].format(lib=qlib, ps=int(clock_ns * 1000))
    # Hard macros stay one instance each: their Liberty read as library cells (-lib: ports only, no logic),
    # a box with the LEF's pins when there is no Liberty, and `blackbox` for a module the design itself defines.
    macro_reads = "".join(f"read_liberty -lib {yosys_path(m)}\n" for m in macro_libs)
    if macro_stubs:
        macro_reads += f"read_verilog {yosys_path(macro_stubs)}\n"
    boxes = "".join(f"blackbox {yosys_name(b, 'black-box module')}\n" for b in blackbox)
    return f"""read_liberty -lib {qlib}
{macro_reads}{reads}
{boxes}tee -q -o modules.txt ls
hierarchy -check {top_arg}
proc
tribuf -merge -logic
synth {"-flatten" if flatten else ""} {top_arg if top else ""}
tee -q -o loops.txt check
techmap -map {yosys_path(LATCH_MAP)}
techmap -map {yosys_path(TBUF_MAP)}
dfflibmap -liberty {qlib}
opt -purge
abc {abc_args}
{"" if flatten else f"flatten{chr(10)}hierarchy {top_arg}{chr(10)}"}opt_clean -purge
setundef -zero
insbuf -buf {buf}
rename -hide c:{ODD_NAME} w:{ODD_NAME}
rename -enumerate
tee -q -o check.txt check -noinit
tee -q -o stat.txt stat -liberty {qlib}
write_verilog -noattr -noexpr -nohex -nodec netlist.v
write_json netlist.json
"""


_ERROR_RE = re.compile(r"^(?:(\S+?:\d+):\s*)?ERROR:\s*(.*)$", re.M)
_WARN_RE = re.compile(r"^Warning:\s*(.*)$", re.M)


def yosys_error(log_text: str, step_dir: Path, top: str) -> tuple[str, str, str]:
    """Turn Yosys' log into (message, hint, code) a person can act on: Yosys' own file, line and words, and the
    failure's code (engine.diagnosis)."""
    m = _ERROR_RE.search(log_text)
    if not m:
        tail = "\n".join(log_text.strip().splitlines()[-5:])
        return f"Yosys failed:\n{tail}", "read the Yosys log", "synth.failed"
    where, err = m.group(1), m.group(2).strip()
    missing = _MISSING_RE.search(err)
    if missing:
        mod, parent, inst = (missing.group(k).lstrip("\\") for k in (1, 2, 3))
        return missing_module_message(mod, parent, inst)
    if ("Module" in err and "not found" in err) or "No such module" in err:
        mods = _modules_found(step_dir)
        return (f"top module '{top}' not found; the design defines: {', '.join(mods) or 'no modules'}",
                "choose the top module from the list", "synth.top_not_found")
    if "logic loop" in err.lower() or "combinational loop" in err.lower():
        return f"combinational loop: {err}", "break the loop with a register", "synth.loop"
    if where:
        src = Path(where.rsplit(":", 1)[0]).name
        return (f"Verilog error in {src} line {where.rsplit(':', 1)[1]}: {err}",
                "fix the Verilog at the line Yosys names, then run again", "synth.syntax")
    return f"Yosys: {err}", "read the Yosys log", "synth.syntax"


# Yosys' hierarchy -check: "Module `\\sram' referenced in module `\\top' in cell `\\u_ram' is not part of the design."
_MISSING_RE = re.compile(r"Module [`']([^']+)' referenced in module [`']([^']+)' in cell [`']([^']+)' is not part "
                         r"of the design")


def missing_module_message(module: str, parent: str, inst: str) -> tuple[str, str, str]:
    """(message, hint, code) for an instance of a module nothing defines: which file or flag would supply it."""
    return (f"module '{module}' (instance {inst} in {parent}) has no definition: it is not in the Verilog, not a "
            f"cell of the library and not a macro",
            f"if it is a hard macro (a RAM, an analog block), give its LEF and Liberty: --macro-lef {module}.lef "
            f"--macro-lib {module}.lib (the Liberty is optional); if the design defines it only as a model, "
            f"add --blackbox {module} with --macro-lef; otherwise add the Verilog file that defines it",
            "synth.missing_module")


_BUS_BIT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(\d+)\]$")


def macro_stub_verilog(macros: list) -> str:
    """Empty (blackbox) modules with the LEF pins of each macro that has no Liberty: ports in LEF order,
    directions from the LEF (power and ground pins left out: the grid connects them)."""
    out = []
    for m in macros:
        ports: list[str] = []
        buses: dict[str, tuple[str, list[int]]] = {}
        for p in m.signal_pins:  # LEF bus bits A[0], A[1] ... become one port A[hi:lo]
            d = {"INPUT": "input", "OUTPUT": "output"}.get(p.direction.split()[0].upper(), "inout")
            bit = _BUS_BIT.match(p.name)
            if bit:
                if bit.group(1) not in buses:
                    buses[bit.group(1)] = (d, [])
                    ports.append(bit.group(1))
                buses[bit.group(1)][1].append(int(bit.group(2)))
            else:
                ports.append(f"{d} {yosys_name(p.name, f'pin of macro {m.name}')}")
        for name, (d, bits) in buses.items():
            k = ports.index(name)
            ports[k] = f"{d} [{max(bits)}:{min(bits)}] {yosys_name(name, f'pin of macro {m.name}')}"
        ports = [f"  {p}" for p in ports]
        out.append(f"(* blackbox *)\nmodule {yosys_name(m.name, 'macro')} (\n" + ",\n".join(ports)
                   + "\n);\nendmodule\n")
    return "\n".join(out)


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
    loops: list[list[str]] = []
    current: list[str] | None = None
    for line in check_text.splitlines():
        if "found logic loop" in line:
            current = []
            loops.append(current)
        elif current is not None and line.strip().startswith("wire "):
            current.append(line.strip()[5:].lstrip("\\"))
        elif current is not None and not line.startswith("    "):
            current = None
    return [" -> ".join(w) or "(unnamed wires)" for w in loops]


_LATCH_RE = re.compile(r"^Latch inferred for signal `\\?([^']+)'", re.M)
_UNDRIVEN_RE = re.compile(r"^Warning: Wire (\S+)( \[\d+\])? is used but has no driver", re.M)
_MULTI_RE = re.compile(r"^Warning: multiple conflicting drivers for (\S+?):?\s*$", re.M)


def _plain(name: str) -> str:
    return name.replace("\\", "")


def multiple_drivers(log_text: str) -> list[str]:
    return sorted({_plain(m) for m in _MULTI_RE.findall(log_text)})


def differs_from_rtl(log_text: str, counts: Counter) -> list[str]:
    """Yosys findings that mean the netlist is not what the RTL says, in words: latches, undriven signals,
    tri-states. Shown in the CLI summary and on the Synthesis page (not only in yosys.log)."""
    out: list[str] = []
    latches = sorted({_plain(m) for m in _LATCH_RE.findall(log_text)})
    if latches:
        out.append(f"latch inferred for {', '.join(latches[:6])}{' ...' if len(latches) > 6 else ''} "
                   "(an always @* block that does not assign in every branch?): mapped onto LATCH cells")
    undriven = sorted({_plain(w) + (b or "") for w, b in _UNDRIVEN_RE.findall(log_text)})
    if undriven:
        out.append(f"undriven: {', '.join(undriven[:6])}{' ...' if len(undriven) > 6 else ''} has no driver "
                   "and is tied to 0 in the netlist")
    tbufs = sum(n for t, n in counts.items() if t.startswith("TBUF"))
    if tbufs:
        out.append(f"tri-state: {tbufs} tri-state driver(s) mapped onto TBUF cells with their enables "
                   "(internal tri-state buses become multiplexers)")
    return out


def feed_cells(module: dict, buf_type: str) -> list[str]:
    """The buffers `insbuf` added (a port bit driven from a constant or from another port bit), by name: cells
    that carry no logic of the design's own."""
    port_bits = {b for port in module.get("ports", {}).values() for b in port["bits"] if isinstance(b, int)}
    out = []
    for name, cell in module.get("cells", {}).items():
        if cell["type"] != buf_type:
            continue
        dirs = cell.get("port_directions", {})
        ins = [b for pin, bits in cell["connections"].items() if dirs.get(pin) == "input" for b in bits]
        outs = [b for pin, bits in cell["connections"].items() if dirs.get(pin) == "output" for b in bits]
        if outs and all(b in port_bits for b in outs) and all(not isinstance(b, int) or b in port_bits for b in ins):
            out.append(name)
    return out


_BODY_RE = re.compile(r"\bmodule\s+([A-Za-z_][\w$]*)\s*(?:#\s*\(.*?\)\s*)?(?:\((.*?)\))?\s*;(.*?)\bendmodule\b",
                      re.S)


@dataclass
class SourceScan:
    modules: list[str]  # modules defined in the sources, in order
    roots: list[str]  # modules no other module instantiates (top candidates), test benches last
    empty: list[str]  # modules with no ports and no body


def scan_sources(files: list[str]) -> SourceScan:
    """A rough look at the sources before Yosys: binary files, files with no module, empty modules and the top
    candidates, so each gets a message in words (not "'AND2X1' has no logic") and a wrong --top lists these."""
    from engine.uploads import COMMENT_RE, UploadError, check_text, verilog_modules

    for f in files:
        try:
            check_text(Path(f).name, Path(f).read_bytes())
        except UploadError as exc:
            raise EngineError(exc.message.rstrip("."), hint="upload the Verilog source, not a compiled or "
                              "archived file", code="input.not_verilog") from None
    modules = verilog_modules([Path(f) for f in files])
    names = list(modules)
    if not names:
        which = ", ".join(Path(f).name for f in files)
        raise EngineError(f"{which}: no Verilog module found (the file holds only comments, or is not Verilog)",
                          hint="a design needs at least one `module name(...); ... endmodule`",
                          code="input.not_verilog")
    empty = []
    for f in files:
        text = COMMENT_RE.sub("", Path(f).read_text(errors="replace"))
        for m in _BODY_RE.finditer(text):
            if not (m.group(2) or "").strip() and not m.group(3).strip():
                empty.append(m.group(1))
    used = {c for kids in modules.values() for c in kids}
    roots = [n for n in names if n not in used]
    roots.sort(key=lambda n: n.lower().startswith(("tb", "test")))
    return SourceScan(modules=names, roots=roots, empty=empty)


class SynthStep(Step):
    id = "synth"
    uses = ("design_files", "top", "synth", "tech_dir", "clock_ns", "macros", "blackbox")
    outputs = ("netlist_v", "netlist_json", "log")
    # 7: hard macros (Liberty -lib, LEF stubs, blackbox) and the missing-module message;
    # 6: assign-free netlist (feed-throughs and constant outputs buffered, odd internal names enumerated);
    # 5: source scan, top-module choice reported; 4: design warnings; 3: tri-state ports mapped onto TBUFX1,
    # .sv read as SystemVerilog, quoted paths
    version = 7

    @staticmethod
    def _macros(ctx: StepContext, scan: SourceScan) -> tuple[list[str], str | None, list[str]]:
        """What Yosys reads for the hard macros: their Liberty files, a stub file for the LEF-only ones, and the
        modules to keep as boxes (--blackbox, and macros the design also defines as a model)."""
        defined = set(scan.modules)
        lib_cells: set[str] = set()
        libs = []
        for lib in ctx.pdk.macro_libs:
            cells = set(read_liberty_cells(str(lib)))
            if not cells & ctx.pdk.block_names:
                raise ctx.fail(f"macro Liberty {lib.name} defines none of the macros of the LEF(s) "
                               f"({', '.join(sorted(ctx.pdk.block_names))})", code="synth.missing_module",
                               hint="give each --macro-lib after the --macro-lef of the same block")
            lib_cells |= cells
            if not cells & defined:  # a model in the sources wins: `blackbox` below keeps it an instance
                libs.append(str(lib))
        stub_macros = [ctx.pdk.macros[n] for n in sorted(ctx.pdk.block_names) if n not in lib_cells | defined]
        stubs = None
        if stub_macros:
            (ctx.step_dir / "macro_stubs.v").write_text(macro_stub_verilog(stub_macros))
            stubs = str(ctx.step_dir / "macro_stubs.v")
        boxes = list(dict.fromkeys([*ctx.config.blackbox, *sorted(ctx.pdk.block_names & defined)]))
        missing = [b for b in boxes if b not in defined and b not in lib_cells and b not in ctx.pdk.block_names]
        if missing:
            raise ctx.fail(f"--blackbox {missing[0]}: the design does not define module '{missing[0]}', so there are "
                           "no ports to keep", code="synth.missing_module",
                           hint=f"give its LEF (--macro-lef {missing[0]}.lef) instead, whose pins become the ports")
        boxes = [b for b in boxes if b in defined]
        return libs, stubs, boxes

    def run(self, ctx: StepContext) -> StepResult:
        cfg = ctx.config
        files = [str(Path(f).resolve()) for f in cfg.design_files]
        if not files:
            raise ctx.fail("no Verilog files given", hint="pick an example design or upload your Verilog",
                           code="input.no_design")
        for f in files:
            p = Path(f)
            if not p.is_file():
                raise ctx.fail(f"Verilog file {f} not found", code="input.file_not_found")
            if p.stat().st_size > MAX_FILE_BYTES:
                raise ctx.fail(f"{p.name} is {size_text(p.stat().st_size)}; the limit is "
                               f"{size_text(MAX_FILE_BYTES)} per file", code="input.file_too_large")
            if p.stat().st_size == 0:
                raise ctx.fail(f"{p.name} is empty", code="input.file_empty")
        try:
            scan = scan_sources(files)
        except EngineError as exc:
            raise ctx.fail(exc.message, hint=exc.hint, code=exc.code, knob=exc.knob) from None
        from engine.uploads import UploadError, check_includes

        by_folder: dict[str, list[Path]] = {}
        for f in files:
            by_folder.setdefault(str(Path(f).parent), []).append(Path(f))
        for folder, srcs in by_folder.items():
            try:  # `include stays inside the design's own folders, from the CLI as from the page
                check_includes(Path(folder), srcs)
            except UploadError as exc:
                raise ctx.fail(str(exc), hint="keep included files next to the design's sources",
                               code=exc.code) from None
        if cfg.top and cfg.top.lstrip("\\") not in scan.modules and scan.modules:
            raise ctx.fail(f"top module '{cfg.top}' not found; the design defines: {', '.join(scan.modules)}",
                           hint="choose the top module from the list (--top)", code="synth.top_not_found")
        chosen = cfg.top or (scan.roots[0] if scan.roots else "")
        if chosen in scan.empty:
            raise ctx.fail(f"module '{chosen}' is empty: it has no ports and no logic",
                           hint="give the module its ports and logic, or choose another top with --top",
                           code="synth.empty_module")
        if ctx.pdk.liberty_path is None:
            raise ctx.fail(f"no Liberty (.lib) file next to {ctx.pdk.lef_path}", code="tech.no_liberty")
        lib = str(ctx.pdk.liberty_path)
        try:
            buf = feed_buffer(ctx.pdk.macros)
        except EngineError as exc:
            raise ctx.fail(exc.message, hint=exc.hint, code=exc.code) from None
        include_dirs = sorted({str(Path(f).parent) for f in files})
        macro_libs, stubs, boxes = self._macros(ctx, scan)
        script = synth_script(files, cfg.top, lib, flatten=cfg.synth.flatten, abc=cfg.synth.abc_script,
                              clock_ns=cfg.clock_ns, include_dirs=include_dirs, buf=buf, macro_libs=macro_libs,
                              macro_stubs=stubs, blackbox=boxes)
        (ctx.step_dir / "synth.ys").write_text(script)
        ctx.progress(0.05, "Yosys: reading Verilog and synthesising")
        proc = ctx.tool(["yosys", "-q", "-l", "yosys.log", "-s", "synth.ys"], "yosys.stdout",
                        timeout=cfg.synth.timeout_s * design_scale(cfg.limits, sum(Path(f).stat().st_size
                                                                                    for f in files), MIB),
                        ok_codes=(0, 1))
        log_text = (ctx.step_dir / "yosys.log").read_text(errors="replace") if (ctx.step_dir / "yosys.log").exists() \
            else proc.stdout
        loops_txt = ctx.step_dir / "loops.txt"
        loops = _loops(loops_txt.read_text()) if loops_txt.exists() else []
        if loops:
            raise ctx.fail("combinational loop in the design through wires " + "; ".join(loops[:3]),
                           hint="break the loop with a register, or fix the assignment that feeds back",
                           log_path=ctx.step_dir / "loops.txt", code="synth.loop")
        conflicts = multiple_drivers(log_text)
        if conflicts:
            raise ctx.fail(f"multiple conflicting drivers for {', '.join(conflicts[:5])}: the RTL assigns the same "
                           "signal from more than one place, so no netlist can match it",
                           hint="drive each signal from one assign or one always block",
                           log_path=ctx.step_dir / "yosys.log", code="synth.multiple_drivers")
        if proc.returncode != 0:
            message, hint, code = yosys_error(log_text, ctx.step_dir, cfg.top)
            raise ctx.fail(message, log_path=ctx.step_dir / "yosys.log", hint=hint, code=code)
        ctx.progress(0.8, "reading the mapped netlist")
        data = load_yosys_json(ctx.step_dir / "netlist.json")
        top, module = top_module(data, cfg.top or None)
        counts = Counter(c["type"] for c in module.get("cells", {}).values())
        n_cells = sum(counts.values())
        if n_cells - len(feed_cells(module, buf.split()[0])) == 0:
            raise ctx.fail(f"'{top}' has no logic after synthesis: every output is constant or unconnected, "
                           "so there is nothing to place", hint="check that outputs depend on inputs or registers",
                           code="synth.no_logic")
        if n_cells > cfg.synth.max_cells:
            raise ctx.fail(f"{n_cells} cells after synthesis; the limit is {cfg.synth.max_cells}",
                           hint="raise synth.max_cells if the machine can take it", code="synth.too_many_cells")
        unknown = sorted(t for t in counts if t not in ctx.pdk.macros)
        boxed = [t for t in unknown if t in cfg.blackbox]
        if boxed:
            raise ctx.fail(f"black box '{boxed[0]}' has no layout: the floorplan needs its size and pins",
                           hint=f"give its LEF with --macro-lef {boxed[0]}.lef (and its timing with --macro-lib)",
                           code="synth.missing_module")
        if unknown:
            raise ctx.fail(f"Yosys left cells the library cannot implement: {', '.join(unknown)}",
                           hint="latches and special flip-flops may not exist in osu018; rewrite them as "
                                "plain flip-flops", log_path=ctx.step_dir / "yosys.log", code="synth.unmapped_cells")
        netlist = netlist_from_yosys_json(ctx.step_dir / "netlist.json", ctx.pdk, top)
        area = float(sum(ctx.pdk.macros[t].width_um * ctx.pdk.macros[t].height_um * n for t, n in counts.items()))
        warnings = _WARN_RE.findall(log_text)
        (ctx.step_dir / "warnings.txt").write_text("\n".join(warnings))
        design_warnings = differs_from_rtl(log_text, counts)
        others = [r for r in scan.roots if r != top and not r.lower().startswith(("tb", "test"))]
        if not cfg.top and others:
            design_warnings.insert(0, f"{len(others) + 1} top-level modules ({', '.join([top, *others][:6])}): "
                                      f"synthesised '{top}'; pass --top to choose another")
        seq = sum(n for t, n in counts.items() if t.startswith(("DFF", "LATCH")))
        blocks = sum(n for t, n in counts.items() if t in ctx.pdk.block_names)
        metrics = {
            "design__top": top,
            "design__instance__count": n_cells,
            "design__instance__area": round(area, 3),
            "design__instance__count__sequential": seq,
            "design__instance__count__macro": blocks,
            "design__net__count": netlist.n_nets,
            "design__pin__count": int((~netlist.cell_is_io[netlist.pin_cell]).sum()),
            "design__io__count": int(netlist.cell_is_io.sum()),
            "synth__warning__count": len(warnings),
            "synth__cell_types": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
            "synth__design_warnings": design_warnings,
        }
        return StepResult(metrics=metrics,
                          artefacts={"netlist_v": "netlist.v", "netlist_json": "netlist.json",
                                     "log": "yosys.log", "stat": "stat.txt"},
                          message=f"{n_cells} cells, {area:,.0f} um² of cell area, {len(warnings)} warnings")
