"""The project's corpus of bad and hostile inputs: each case is a design (files written at test time), a `cda`
command line, and what must happen. `tests/test_bad_inputs.py` runs every case through the real CLI and the real
tools and checks: the exit code, the words of the message, no traceback, no hang (pytest-timeout), and, for
injection cases, that the canary file the attack would create does not exist.

Grow it: add a Case. ``{dir}`` in argv is the case's folder, ``{canary}`` the file an injection would create.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

INV = "module inv(input a, output y);\n  assign y = ~a;\nendmodule\n"
COUNTER = """module cnt(input clk, input rst, output reg [3:0] q);
  always @(posedge clk) if (rst) q <= 0; else q <= q + 1;
endmodule
"""


@dataclass
class Case:
    id: str
    argv: list[str]  # after `cda --runs-dir RUNS`
    expect: list[str]  # substrings (case-insensitive) the output must hold
    files: dict[str, str | bytes] = field(default_factory=dict)  # name -> content, written into {dir}
    rc: int | str = "nonzero"  # expected exit code, or "nonzero"
    kind: str = "message"  # message | injection | works (a hostile-looking input that must simply work)
    slow: bool = False


def _design(extra: str = "") -> dict[str, str]:
    return {"d.v": INV + extra}


CASES: list[Case] = [
    # --- injection: names that would run commands if pasted into a Yosys or Tcl script --------------------
    Case("top_semicolon_exec", ["flow", "run", "{dir}/d.v", "--top", "inv; exec -- touch {canary}"],
         ["top module", "not a verilog identifier"], _design(), kind="injection"),
    Case("top_tcl_brackets", ["flow", "run", "{dir}/d.v", "--top", "inv[exec touch {canary}]"],
         ["top module", "not a verilog identifier"], _design(), kind="injection"),
    Case("top_brace_breakout", ["flow", "run", "{dir}/d.v", "--top", "inv}; exec touch {canary}; {"],
         ["top module", "not a verilog identifier"], _design(), kind="injection"),
    Case("top_newline", ["flow", "run", "{dir}/d.v", "--top", "inv\nshell touch {canary}"],
         ["top module", "not a verilog identifier"], _design(), kind="injection"),
    Case("top_escaped_with_semicolon", ["flow", "run", "{dir}/d.v", "--top", "\\inv;shell"],
         ["escaped identifier", "cannot carry"], _design(), kind="injection"),
    Case("top_too_long", ["flow", "run", "{dir}/d.v", "--top", "a" * 300],
         ["300 characters"], _design()),
    Case("top_unicode", ["flow", "run", "{dir}/d.v", "--top", "cöunter"],
         ["not a verilog identifier"], _design()),
    Case("clock_port_injection", ["flow", "run", "{dir}/d.v", "--clock-port", "clk]; exec touch {canary}; #"],
         ["clock port", "not a verilog identifier"], _design(), kind="injection"),
    Case("clock_port_dollar", ["flow", "run", "{dir}/d.v", "--clock-port", "$env(HOME)"],
         ["clock port", "not a verilog identifier"], _design(), kind="injection"),
    Case("design_json_top_injection", ["flow", "run", "{dir}"],
         ["design.json", "top module", "not a verilog identifier"],
         {"d.v": INV, "design.json": '{"top": "inv; exec -- touch {canary}"}'}, kind="injection"),
    Case("design_json_clock_injection", ["flow", "run", "{dir}"],
         ["design.json", "clock port"],
         {"d.v": INV, "design.json": '{"clock_port": "clk}]; exec touch {canary};#"}'}, kind="injection"),
    Case("design_json_clock_ns_text", ["flow", "run", "{dir}"], ["design.json", "clock_ns", "must be"],
         {"d.v": INV, "design.json": '{"clock_ns": "10; rm -rf /"}'}),
    Case("design_json_unknown_key", ["flow", "run", "{dir}"], ["unknown key 'topp'", "did you mean 'top'"],
         {"d.v": INV, "design.json": '{"topp": "inv"}'}),
    Case("design_json_not_object", ["flow", "run", "{dir}"], ["design.json", "json object"],
         {"d.v": INV, "design.json": "[1, 2]"}),
    Case("design_json_invalid", ["flow", "run", "{dir}"], ["design.json", "not valid json"],
         {"d.v": INV, "design.json": '{"top": "inv",'}),
    Case("label_control_char", ["flow", "run", "{dir}/d.v", "--label", "a\x1b[31mred"],
         ["label", "control character"], _design()),
    Case("path_with_semicolon_hash", ["flow", "run", "{dir}/we;ird #dir/d.v", "--until", "synth"],
         ["status: done"], {"we;ird #dir/d.v": INV}, rc=0, kind="works"),
    Case("path_with_spaces_unicode", ["flow", "run", "{dir}/my designs/ünïcode/d.v", "--until", "timing"],
         ["status: done"], {"my designs/ünïcode/d.v": COUNTER.replace("cnt", "spaced")}, rc=0, kind="works"),
    Case("path_with_quote", ["flow", "run", '{dir}/say"hi"/d.v'], ["double quote"],
         {'say"hi"/d.v': INV}, kind="injection"),
    # --- messages that say what is wrong --------------------------------------------------------------------
    Case("empty_module", ["flow", "run", "{dir}/e.v"], ["module 'e' is empty"], {"e.v": "module e();\nendmodule\n"}),
    Case("comments_only", ["flow", "run", "{dir}/c.v"], ["no verilog module found"],
         {"c.v": "// nothing here\n/* still nothing */\n"}),
    Case("binary_file", ["flow", "run", "{dir}/b.v"], ["binary data"], {"b.v": b"\x7fELF\x02\x01\x00\x00" * 64}),
    Case("latin1_garbage", ["flow", "run", "{dir}/g.v"], ["not a text file"], {"g.v": bytes(range(128, 256)) * 8}),
    Case("zero_bytes", ["flow", "run", "{dir}/z.v"], ["is empty"], {"z.v": ""}),
    Case("syntax_error", ["flow", "run", "{dir}/s.v"], ["verilog error in s.v line 2"],
         {"s.v": "module s(input a, output y);\n  assign y = a +;\nendmodule\n"}),
    Case("wrong_top_lists_modules", ["flow", "run", "{dir}/d.v", "--top", "nosuch"],
         ["top module 'nosuch' not found", "defines: inv"], _design()),
    Case("wrong_top_not_library_cells", ["flow", "run", "{dir}/d.v", "--top", "AND2X1"],
         ["not found", "defines: inv"], _design()),
    Case("two_tops_says_which", ["flow", "run", "{dir}/two.v", "--until", "synth"],
         ["2 top-level modules", "pass --top"],
         {"two.v": INV + "module and2(input a, input b, output y);\n  assign y = a & b;\nendmodule\n"}, rc=0),
    Case("systemverilog_file", ["flow", "run", "{dir}/s.sv", "--until", "synth"], ["status: done"],
         {"s.sv": "module s(input logic clk, input logic [3:0] a, output logic [3:0] y);\n"
                  "  always_ff @(posedge clk) y <= a + 4'd1;\nendmodule\n"}, rc=0, kind="works"),
    Case("include_absolute", ["flow", "run", "{dir}/i.v"], ["points outside the design folder"],
         {"i.v": '`include "/etc/passwd"\n' + INV}),
    Case("include_parent", ["flow", "run", "{dir}/sub/i.v"], ["points outside the design folder"],
         {"sub/i.v": '`include "../secret.vh"\n' + INV, "secret.vh": "// secret\n"}),
    Case("include_missing", ["flow", "run", "{dir}/i.v"], ["was not uploaded"],
         {"i.v": '`include "nothere.vh"\n' + INV}),
    Case("combinational_loop", ["flow", "run", "{dir}/l.v"], ["combinational loop"],
         {"l.v": "module l(input a, output y);\n  wire w1, w2;\n  assign w1 = a & w2;\n  assign w2 = ~w1;\n"
                 "  assign y = w2;\nendmodule\n"}),
    Case("multiple_drivers", ["flow", "run", "{dir}/m.v"], ["multiple conflicting drivers"],
         {"m.v": "module m(input a, input b, output y, output z);\n  assign y = a;\n  assign y = b;\n"
                 "  assign z = a & b;\nendmodule\n"}),
    Case("latch_warned", ["flow", "run", "{dir}/lat.v", "--until", "synth"], ["latch inferred for"],
         {"lat.v": "module lat(input en, input d, output reg q);\n  always @* if (en) q = d;\nendmodule\n"}, rc=0),
    Case("undriven_output_warned", ["flow", "run", "{dir}/u.v", "--until", "synth"], ["undriven", "tied to 0"],
         {"u.v": "module u(input a, input b, output y, output n);\n  assign y = a ^ b;\nendmodule\n"}, rc=0),
    Case("tristate_mapped", ["flow", "run", "{dir}/t.v", "--until", "timing"], ["tri-state", "tbuf", "status: done"],
         {"t.v": "module t(input clk, input oe, input d, inout pad, output q);\n  reg r;\n"
                 "  always @(posedge clk) r <= pad;\n  assign pad = oe ? d : 1'bz;\n  assign q = r;\nendmodule\n"},
         rc=0),
    Case("nonexistent_file", ["flow", "run", "{dir}/nothere.v"], ["not found: ", "nothere.v"], {}),
    Case("folder_without_verilog", ["flow", "run", "{dir}/empty"], ["no verilog"], {"empty/readme.txt": "hi"}),
    Case("unknown_step", ["flow", "run", "{dir}/d.v", "--until", "polish"], ["unknown step 'polish'"], _design()),
    Case("bad_tech_folder", ["flow", "run", "{dir}/d.v", "--tech", "{dir}/notech"], ["notech"], _design()),
    Case("clock_zero", ["flow", "run", "{dir}/d.v", "--clock", "0ns"], ["must be positive"], _design(), rc=2),
    Case("clock_garbage", ["flow", "run", "{dir}/d.v", "--clock", "fast"], ["is not a clock"], _design(), rc=2),
    Case("utilization_zero", ["flow", "run", "{dir}/d.v", "--utilization", "0"], ["utilization", "range"],
         _design()),
    Case("density_two", ["flow", "run", "{dir}/d.v", "--density", "2"], ["target_density", "range"], _design()),
    Case("huge_file", ["flow", "run", "{dir}/h.v"], ["the limit is 20.0 mib per file"],
         {"h.v": "// " + "x" * (21 * 1024 * 1024) + "\n" + INV}),
    Case("runs_show_unknown", ["runs", "show", "nosuchrun"], ["nosuchrun"], {}),
    Case("runs_show_traversal", ["runs", "show", "../../etc"], ["../../etc"], {}),
    Case("generate_loop_memory_limit",
         ["flow", "run", "{dir}/big.v", "--until", "synth", "--set", "limits.memory_mb=1500"],
         ["memory limit of 1,500 mib", "limits.memory_fraction"],
         {"big.v": "module big(input [7:0] a, output [7:0] y);\n  genvar i;\n  wire [999999:0] w;\n"
                   "  generate for (i = 0; i < 1000000; i = i + 1) begin : g\n"
                   "    assign w[i] = a[i % 8] ^ (i > 0 ? w[i-1] : 1'b0);\n  end endgenerate\n"
                   "  assign y = w[7:0];\nendmodule\n"}, slow=True),
]


def materialise(case: Case, root: Path, canary: Path) -> list[str]:
    """Write the case's files under ``root`` and return its argv with {dir} and {canary} filled in."""
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{canary}", str(canary)), encoding="utf-8")
    return [a.replace("{dir}", str(root)).replace("{canary}", str(canary)) for a in case.argv]
