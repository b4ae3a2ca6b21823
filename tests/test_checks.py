"""Signoff checks (engine.flow.checks) on a real counter run through the whole flow: the clean layout passes every
error-level check, and each corrupted copy of its DEF is caught by the check for that defect and left alone by the
checks it does not concern."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.designs import resolve
from engine.flow.checks import ChecksInputError, run_checks
from engine.flow.flow import run_flow
from engine.pdk import load_pdk
from engine.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
COMP = re.compile(r"^- (\S+) (\S+) \+ (PLACED|FIXED) \( (-?\d+) (-?\d+) \) (\S+) ;$", re.M)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.getbasetemp() / "checks_store")


@pytest.fixture(scope="module")
def counter(store):
    run = run_flow(resolve("counter", []).flow_config(), store)
    assert run.status == "done", run.info().get("error")
    return run


@pytest.fixture(scope="module")
def pdk():
    return load_pdk()


def _files(run) -> tuple[Path, Path, Path]:
    return run.dir / "04-route" / "routed.def", run.dir / "06-gds" / "filled.def", run.dir / "03b-cts" / "netlist.v"


def _check(report, cid: str):
    return report.by_id(cid)


def _counts(report) -> dict[str, int | None]:
    return {c.id: c.count for c in report.checks}


def _components(text: str) -> dict[str, tuple[str, int, int, str]]:
    return {m.group(1): (m.group(2), int(m.group(4)), int(m.group(5)), m.group(6)) for m in COMP.finditer(text)}


def _move(text: str, name: str, x: int, y: int, orient: str) -> str:
    pat = re.compile(rf"^(- {re.escape(name)} \S+ \+ (?:PLACED|FIXED) )\( -?\d+ -?\d+ \) \S+ ;$", re.M)
    new, n = pat.subn(rf"\g<1>( {x} {y} ) {orient} ;", text)
    assert n == 1
    return new


def _nets_section(text: str) -> str:
    return text[text.index("\nNETS "):text.index("END NETS")]


def _net_terminals(text: str) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for m in re.finditer(r"^- (\S+)((?: \( \S+ \S+ \))+)", _nets_section(text), re.M):
        out[m.group(1)] = re.findall(r"\( (\S+) (\S+) \)", m.group(2))
    return out


def _checked(tmp_path: Path, text: str, netlist: Path, pdk, name: str = "bad.def"):
    path = tmp_path / name
    path.write_text(text)
    return run_checks(path, netlist, pdk, top="counter")


# ------------------------------------------------------------------------------------------------ the clean run
def test_the_flow_runs_the_checks_after_gds_and_the_counter_passes(counter):
    m = counter.metrics()["checks"]
    for key in ("checks__overlaps", "checks__row_violations", "checks__lvs_mismatches", "checks__unrouted_nets",
                "checks__open_nets", "checks__shorts", "checks__unconnected_inputs", "checks__outside_die",
                "checks__power_pins_unconnected"):
        assert m[key] == 0, (key, m[key])
    assert m["checks__status"] == "pass" and m["checks__failed__count"] == 0
    # every cell pin has an on-grid access point; the IO pins sit on the die edge, between the vertical tracks
    off = json.loads((counter.dir / "06b-checks" / "checks.json").read_text())["checks"]
    assert all(d.startswith("PIN ") for c in off if c["id"] == "pins_off_track" for d in c["details"])
    assert m["checks__antenna__status"] == "not available: the LEF has no antenna data"
    assert "checks__antenna_violations" not in m  # no invented number
    ends = [e["step"] for e in counter.events() if e.get("kind") == "step_end"]
    assert ends.index("gds") < ends.index("checks")
    report = json.loads((counter.dir / "06b-checks" / "checks.json").read_text())
    assert report["def"].endswith("filled.def") and report["netlist"].endswith("03b-cts/netlist.v")
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["lvs"]["status"] == "pass" and by_id["antenna"]["status"] == "n/a"
    # fillers are in the DEF the checks read (and were checked for overlaps), not in the netlist
    assert report["stats"]["components"] == counter.metrics()["gds"]["fill__cell__count"] + \
        counter.metrics()["gds"]["gds__instance__count"]
    assert "abstracts" in (counter.dir / "06b-checks" / "checks.txt").read_text()


def test_cda_runs_show_lists_the_checks(counter, store):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--runs-dir", str(store.root), "runs", "show",
                           counter.id], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[checks]" in proc.stdout
    assert re.search(r"checks__lvs_mismatches\s+0\b", proc.stdout)
    assert re.search(r"checks__overlaps\s+0\b", proc.stdout)


# ------------------------------------------------------------------------------------------------ corrupted DEFs
def test_a_cell_moved_onto_another_is_an_overlap(counter, pdk, tmp_path):
    _, filled, netlist = _files(counter)
    text = filled.read_text()
    comps = {n: c for n, c in _components(text).items() if not c[0].startswith("FILL")}
    by_cell: dict[str, list[str]] = {}
    for name, c in sorted(comps.items()):
        by_cell.setdefault(c[0], []).append(name)
    a, b = next(v[:2] for v in by_cell.values() if len(v) >= 2)  # two cells of one type: the same outline
    _, bx, by, bo = comps[b]
    report = _checked(tmp_path, _move(text, a, bx, by, bo), netlist, pdk)
    overlaps = _check(report, "overlaps").details
    assert len(overlaps) == 1 and set(overlaps[0].split(" (")[0].split(" and ")) == {a, b}
    counts = _counts(report)
    assert counts["row_violations"] == 0 and counts["outside_die"] == 0 and counts["lvs"] == 0
    # its wires no longer reach its pins: only nets of the moved cell can be open
    nets_of_a = {n for n, ts in _net_terminals(text).items() if any(t[0] == a for t in ts)}
    opened = {d["net"] for d in _check(report, "open_nets").details}
    assert opened and opened <= nets_of_a


def test_a_net_without_its_routing_is_unrouted(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    terms = _net_terminals(text)
    net = next(n for n, ts in sorted(terms.items()) if len(ts) >= 3 and not n.startswith("clk"))
    # the net's wiring in NETS (from '+ ROUTED' to its ';'), and the router's pin stubs under its name
    start = text.index(f"\n- {net} ", text.index("\nNETS "))
    end = text.index(";", start)
    body = text[start:end]
    cut = body[:body.index("+ ROUTED")] if "+ ROUTED" in body else body
    text = text[:start] + cut + text[end:]
    text = re.sub(rf"(\n- {re.escape(net)}\n)\+ ROUTED[^;]*;", r"\1;", text)
    report = _checked(tmp_path, text, netlist, pdk)
    assert _check(report, "unrouted_nets").details == [net]
    counts = _counts(report)
    assert counts["open_nets"] == 0 and counts["lvs"] == 0 and counts["overlaps"] == 0


def test_a_missing_via_at_a_pin_opens_the_net(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    nets = _nets_section(text)
    # a tap: a piece that is one point and the via down to a metal1 pin
    m = re.search(r"^  NEW metal1 \( (\d+) (\d+) \) M2_M1 \n", nets, re.M)
    assert m is not None
    owner = re.findall(r"^- (\S+)", nets[:m.start()], re.M)[-1]
    at = text.index("\nNETS ") + nets.index(m.group(0), m.start())
    report = _checked(tmp_path, text[:at] + text[at + len(m.group(0)):], netlist, pdk)
    opened = _check(report, "open_nets").details
    assert [d["net"] for d in opened] == [owner] and opened[0]["groups"] == 2
    counts = _counts(report)
    assert counts["unrouted_nets"] == 0 and counts["lvs"] == 0


def test_a_wire_copied_onto_another_net_is_a_short(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    nets = _nets_section(text)
    # a metal2 segment of one net, drawn again as part of another net
    seg = re.search(r"^  NEW (metal2 \( \d+ \d+ \) \( \* \d+ \)) ", nets, re.M)
    assert seg is not None
    victim = re.findall(r"^- (\S+)", nets[:seg.start()], re.M)[-1]
    other = next(n for n in sorted(_net_terminals(text)) if n != victim and not n.startswith("clk"))
    start = text.index(f"\n- {other} ", text.index("\nNETS "))
    end = text.index(";", start)
    report = _checked(tmp_path, text[:end] + f"\n  NEW {seg.group(1)} " + text[end:], netlist, pdk)
    shorts = _check(report, "shorts").details
    assert len(shorts) == 1 and shorts[0].startswith(" and ".join(sorted((victim, other))) + " on metal2")
    counts = _counts(report)
    assert counts["open_nets"] == 0 and counts["unrouted_nets"] == 0 and counts["lvs"] == 0


def test_a_rail_cut_off_from_the_grid_leaves_the_two_rows_beside_it_unpowered(counter, pdk, tmp_path):
    """Without the vias from one vdd rail up to the stripes and the ring, that rail and the cells' vdd pins along
    it (abutting, so one piece of metal1) touch nothing else of the grid. Removing the rail alone would not do it:
    the abutting pins of a filled row still reach the via stacks under the stripes."""
    _, filled, netlist = _files(counter)
    text = filled.read_text()
    start = text.index("\n- vdd ", text.index("SPECIALNETS"))
    end = text.index(";", start)
    block = text[start:end]
    y = int(re.search(r"^    NEW metal1 \d+ \( \d+ (\d+) \) \( \d+ \1 \)$", block, re.M).group(1))
    cut, n = re.subn(rf"^    NEW metal1 0 \( \d+ {y} \) M2_M1\n", "", block, flags=re.M)
    assert n >= 2  # the ring's two sides and the stripes
    report = _checked(tmp_path, text[:start] + cut + text[end:], netlist, pdk)
    row_h = round(pdk.site.height_um * 1000)
    beside = {c for c, (_, _, cy, _) in _components(text).items() if cy in (y, y - row_h)}  # above and below it
    power = _check(report, "power_pins")
    assert beside and {d.split(" ")[0] for d in power.details} == beside
    assert all(d.split(" ")[1] == "vdd" and "does not touch the vdd grid" in d for d in power.details)
    assert "1 grid piece(s) apart" in power.note
    counts = _counts(report)
    assert counts["shorts"] == 0 and counts["open_nets"] == 0 and counts["overlaps"] == 0


def test_a_renamed_pin_connection_is_a_netlist_mismatch(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    terms = _net_terminals(text)
    pins_of: dict[str, set[str]] = {}
    for ts in terms.values():
        for inst, pin in ts:
            pins_of.setdefault(inst, set()).add(pin)
    # a connection (inst A) moved to a pin of the same cell that is on another net (inst B): both inputs
    inst = next(i for i, ps in sorted(pins_of.items()) if {"A", "B"} <= ps and i != "PIN")
    net = next(n for n, ts in terms.items() if (inst, "A") in ts)
    start = text.index(f"\n- {net} ", text.index("\nNETS "))
    line_end = text.index("\n", start + 1)
    line = text[start:line_end].replace(f"( {inst} A )", f"( {inst} B )")
    report = _checked(tmp_path, text[:start] + line + text[line_end:], netlist, pdk)
    lvs = _check(report, "lvs")
    assert lvs.count == 1 and lvs.details[0]["kind"] == "net differs"
    assert f"{inst} A" in lvs.details[0]["only_in_netlist"]
    assert f"{inst} B" in lvs.details[0]["on_two_layout_nets"]
    assert _check(report, "unconnected_inputs").details == [f"{inst} A ({counter_cell(text, inst)})"]
    counts = _counts(report)
    assert counts["overlaps"] == 0 and counts["row_violations"] == 0 and counts["unrouted_nets"] == 0


def counter_cell(text: str, inst: str) -> str:
    return _components(text)[inst][0]


def _free_right(text: str, pdk) -> tuple[str, int, int, str]:
    """A placed cell with at least one free site to its right in its row (routed.def has no fillers)."""
    comps = _components(text)
    rows: dict[int, list[tuple[int, int, str]]] = {}
    for name, (cell, x, y, _) in comps.items():
        rows.setdefault(y, []).append((x, x + round(pdk.macros[cell].width_um * 1000), name))
    for _y, cells in sorted(rows.items()):
        cells.sort()
        for (_, x1, name), (nx0, _, _) in zip(cells, cells[1:]):
            if nx0 - x1 >= 800:
                cell, x, y, o = comps[name]
                return name, x, y, o
    raise AssertionError("no cell with a free site to its right")


def test_a_cell_off_the_site_grid_breaks_row_legality(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    name, x, y, orient = _free_right(text, pdk)
    report = _checked(tmp_path, _move(text, name, x + 400, y, orient), netlist, pdk)  # half a site
    rows = _check(report, "row_violations").details
    assert len(rows) == 1 and rows[0].startswith(f"{name} ") and "site grid" in rows[0]
    # half a site puts its pins between the vertical tracks: the only cell pins off track are its own
    cell_pins_off = [d for d in _check(report, "pins_off_track").details if not d.startswith("PIN ")]
    assert cell_pins_off and all(d.startswith(f"{name} ") for d in cell_pins_off)
    counts = _counts(report)
    assert counts["overlaps"] == 0 and counts["lvs"] == 0 and counts["outside_die"] == 0


def test_a_cell_in_the_wrong_orientation_breaks_row_legality(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    name, (cell, x, y, orient) = next((n, c) for n, c in sorted(_components(text).items()) if c[3] == "N")
    report = _checked(tmp_path, _move(text, name, x, y, "FS"), netlist, pdk)
    rows = _check(report, "row_violations").details
    assert len(rows) == 1 and rows[0].startswith(f"{name} ") and "orientation FS" in rows[0]
    assert _counts(report)["overlaps"] == 0 and _counts(report)["lvs"] == 0


def test_a_cell_outside_the_die_is_found(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    die = [int(v) for v in re.search(r"DIEAREA \( (\d+) (\d+) \) \( (\d+) (\d+) \)", text).groups()]
    name, (cell, x, y, orient) = next(iter(sorted(_components(text).items())))
    report = _checked(tmp_path, _move(text, name, die[2] + 5000, y, orient), netlist, pdk)
    assert [d.split(" ")[0] for d in _check(report, "outside_die").details] == [name]
    assert _counts(report)["overlaps"] == 0 and _counts(report)["lvs"] == 0


def test_a_cell_missing_from_the_layout_is_a_netlist_mismatch(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    text = routed.read_text()
    name = next(n for n in sorted(_components(text)) if n.startswith("_"))
    text, n = re.subn(rf"^- {re.escape(name)} \S+ \+ PLACED[^\n]*\n", "", text, flags=re.M)
    assert n == 1
    report = _checked(tmp_path, text, netlist, pdk)
    assert _check(report, "lvs").details == [{"kind": "instance missing from the layout", "instance": name,
                                              "cell": _components(routed.read_text())[name][0]}]
    assert _counts(report)["overlaps"] == 0 and _counts(report)["row_violations"] == 0


# ------------------------------------------------------------------------------------------------ antenna data
def test_the_antenna_estimate_runs_only_with_antenna_data(counter, pdk, tmp_path):
    """A copy of the LEF with gate areas on every input pin and a ratio on every metal: a ratio no metal can meet
    flags each routed net that drives an input, a ratio none reaches flags none."""
    _, filled, netlist = _files(counter)
    lef = pdk.lef_path.read_text()
    with_gates = re.sub(r"(\n    DIRECTION INPUT ;\n)", r"\1    ANTENNAGATEAREA 0.5 ;\n", lef)
    inputs = {(m, p.name) for m, mac in pdk.macros.items() for p in mac.pins.values() if p.direction == "INPUT"}
    found = {}
    for ratio in (1e-6, 1e9):
        text = re.sub(r"(\nLAYER (metal\d)\n  TYPE\t\tROUTING ;\n)", rf"\1  ANTENNAAREARATIO {ratio} ;\n",
                      with_gates)
        assert text.count("ANTENNAAREARATIO") == 6 and text.count("ANTENNAGATEAREA") > 30
        path = tmp_path / f"antenna_{ratio}.lef"
        path.write_text(text)
        report = run_checks(filled, netlist, load_pdk(lef=path, liberty=pdk.liberty_path), top="counter")
        found[ratio] = _check(report, "antenna")
    assert found[1e9].status == "pass" and found[1e9].count == 0
    ftext = filled.read_text()
    comps = _components(ftext)
    driving = {n for n, ts in _net_terminals(ftext).items()
               if any(i != "PIN" and (comps[i][0], p) in inputs for i, p in ts)}
    flagged = {d.split(" on ")[0] for d in found[1e-6].details}
    assert found[1e-6].status == "fail" and flagged == driving


def test_an_unreadable_def_is_an_error_naming_the_file(counter, pdk, tmp_path):
    routed, _, netlist = _files(counter)
    bad = tmp_path / "broken.def"
    bad.write_text(routed.read_text().replace("COMPONENTS", "COMPONENTS ;\n- x", 1))
    with pytest.raises(ChecksInputError, match="broken.def"):
        run_checks(bad, netlist, pdk, top="counter")


# ------------------------------------------------------------------------------------------------ the netlist reader
def test_the_netlist_reader_follows_assigns_buses_and_ansi_ports(tmp_path):
    from engine.flow.checks import read_verilog_netlist

    v = tmp_path / "t.v"
    v.write_text("module t(input [1:0] a, input b, output y, output z);\n  wire [1:0] w;\n  wire n;\n"
                 "  assign z = n;\n  AND2X1 g0 (.A(a[1]), .B(b), .Y(n));\n"
                 "  INVX1 g1 (.A(w[0]), .Y(y));\n  BUFX2 g2 (.A(1'b0), .Y(w[0]));\nendmodule\n")
    nl = read_verilog_netlist(v, "t")
    assert nl.ports == {"a[1]": "input", "a[0]": "input", "b": "input", "y": "output", "z": "output"}
    assert nl.instances == {"g0": "AND2X1", "g1": "INVX1", "g2": "BUFX2"}
    assert nl.conns[("g0", "Y")] == nl.port_nets["z"]  # the assign joins n to the port z
    assert nl.conns[("g0", "A")] == "a[1]" and nl.conns[("g1", "A")] == nl.conns[("g2", "Y")] == "w[0]"
    assert nl.conns[("g2", "A")] == "1'b0"


def test_the_gdsii_page_shows_the_checks_table_and_says_cells_are_abstracts(counter, store, monkeypatch):
    from page_helpers import app_page

    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    at = app_page(ROOT / "pages" / "07_gdsii.py", counter.id)
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "abstracts" in text and "no DRC or LVS on geometry" in text
    table = next(df.value for df in at.dataframe if "check" in df.value.columns)
    rows = dict(zip(table["check"], table["status"]))
    assert rows["Netlist vs layout"].endswith("pass") and rows["Overlapping cells"].endswith("pass")
    assert "not available" in rows["Antenna (estimate)"]


def test_without_routing_the_wire_checks_say_they_did_not_run(counter, pdk):
    placed, netlist = counter.dir / "03b-cts" / "cts.def", counter.dir / "03b-cts" / "netlist.v"
    report = run_checks(placed, netlist, pdk, top="counter", routed=False)
    for cid in ("unrouted_nets", "open_nets"):
        assert _check(report, cid).status == "n/a" and _check(report, cid).count is None
    m = report.metrics()
    assert "checks__unrouted_nets" not in m and "checks__open_nets" not in m and m["checks__routed"] is False
    assert m["checks__shorts"] == 0 and m["checks__power_pins_unconnected"] == 0  # pins and the power grid
    assert m["checks__lvs_mismatches"] == 0 and m["checks__overlaps"] == 0 and m["checks__row_violations"] == 0


def test_the_step_fails_with_its_code_when_its_def_is_unreadable(counter, tmp_path):
    import shutil

    store = RunStore(tmp_path / "store")
    shutil.copytree(counter.dir, store.root / counter.id)
    run = store.get(counter.id)
    filled = run.dir / "06-gds" / "filled.def"
    filled.write_text(filled.read_text().replace("+ PLACED (", "+ PLACED ( x", 1))
    run = run_flow(resolve("counter", []).flow_config(), store, steps=["checks"], run=run, reuse=False)
    info = run.info()
    assert run.status == "failed" and info["failed_step"] == "checks" and info["code"] == "checks.unreadable"
    assert "filled.def" in info["error"]


@pytest.mark.parametrize("slack,band", [(-0.001, 0.0), (-0.001, 3.0), (0.001, 2.5), (0.0005, 0.7)])
def test_sweep_pairs_finds_exactly_the_pairs_a_brute_force_finds(slack, band):
    import numpy as np

    from engine.flow.checks import sweep_pairs

    rng = np.random.default_rng(7)
    lo = rng.uniform(0, 50, size=(400, 2)).round(1)
    size = rng.choice([0.2, 1.0, 3.0, 40.0], size=(400, 2), p=[0.4, 0.4, 0.15, 0.05])
    boxes = np.concatenate([lo, lo + size], axis=1)
    boxes[::25, 0] = boxes[1::25, 2]  # some boxes that touch exactly
    i, j = sweep_pairs(boxes, slack, band)
    got = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}
    assert len(got) == len(i)  # each pair once
    want = {(a, b) for a in range(len(boxes)) for b in range(a + 1, len(boxes))
            if min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0]) > slack
            and min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1]) > slack}
    assert got == want and len(want) > 100


# ------------------------------------------------------------------ tie-offs: constant outputs driven by real cells
TIE_V = """module tie(input clk, input a, input [3:0] b, output reg q, output y, output z, output [1:0] w, output o1);
  always @(posedge clk) q <= a ^ b[0];
  assign y = a & b[1];
  assign z = 1'b0;
  assign w = 2'b10;
  assign o1 = 1'b1;
endmodule
"""


@pytest.fixture(scope="module")
def tied(store, tmp_path_factory):
    """A design with constant outputs: synthesis drives each from a buffer whose input is tied to vdd or gnd."""
    src = tmp_path_factory.mktemp("tie") / "tie.v"
    src.write_text(TIE_V)
    cfg = resolve(src, []).flow_config()
    cfg.top = "tie"
    run = run_flow(cfg, store)
    assert run.status == "done", run.info().get("error")
    return run


def _special_line(text: str, net: str) -> tuple[int, int]:
    start = text.index(f"\n- {net} ", text.index("\nSPECIALNETS")) + 1
    return start, text.index("\n", start)


def _ties(text: str, net: str) -> list[tuple[str, str]]:
    a, b = _special_line(text, net)
    return [t for t in re.findall(r"\( (\S+) (\S+) \)", text[a:b]) if t[0] != "*"]


def test_constant_outputs_tied_to_the_supplies_pass_every_check(tied, pdk):
    _, filled, netlist = _files(tied)
    text = filled.read_text()
    assert len(_ties(text, "gnd")) == 2 and len(_ties(text, "vdd")) == 2  # z, w[0] low; w[1], o1 high
    report = run_checks(filled, netlist, pdk, top="tie")
    assert not report.failed, [(c.id, c.details[:3]) for c in report.failed]
    assert "4 tied signal pin(s)" in _check(report, "power_pins").note


def test_a_tie_moved_to_the_other_supply_is_caught(tied, pdk, tmp_path):
    _, filled, netlist = _files(tied)
    text = filled.read_text()
    inst, pin = _ties(text, "gnd")[0]
    a, b = _special_line(text, "gnd")
    text = text[:a] + text[a:b].replace(f" ( {inst} {pin} )", "") + text[b:]
    a, b = _special_line(text, "vdd")
    text = text[:a] + text[a:b].replace("( * vdd )", f"( * vdd ) ( {inst} {pin} )") + text[b:]
    path = tmp_path / "swapped.def"
    path.write_text(text)
    report = run_checks(path, netlist, pdk, top="tie")
    lvs = _check(report, "lvs")
    assert lvs.details == [{"kind": "constant tied to the wrong supply", "terminal": f"{inst} {pin}",
                            "netlist": "1'b0", "layout": "vdd"}]
    power = _check(report, "power_pins")  # its tie wire reaches the gnd grid, not the vdd one
    assert any(d.startswith(f"{inst} {pin} (tied to vdd)") for d in power.details), power.details


def test_a_tie_left_off_its_supply_net_floats(tied, pdk, tmp_path):
    _, filled, netlist = _files(tied)
    text = filled.read_text()
    inst, pin = _ties(text, "vdd")[0]
    a, b = _special_line(text, "vdd")
    path = tmp_path / "untied.def"
    path.write_text(text[:a] + text[a:b].replace(f" ( {inst} {pin} )", "") + text[b:])
    report = run_checks(path, netlist, pdk, top="tie")
    assert [d.split(" (")[0] for d in _check(report, "unconnected_inputs").details] == [f"{inst} {pin}"]
    lvs = _check(report, "lvs")
    assert any(d["kind"] == "pins tied to a constant in the netlist, on no net in the layout"
               and d["only_in_netlist"] == [f"{inst} {pin}"] for d in lvs.details), lvs.details
