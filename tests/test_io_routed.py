"""engine.io's readers of what routing and timing leave on disk: the routed DEF's wiring (def_io.read_routing), SPEF
(io.spef) and qrouter's log (io.qrouter). Each on a real file of a real flow run and on a small file whose figures
are worked out by hand; a malformed file gives an EngineError naming the file and the line, never a traceback."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.designs import resolve
from engine.errors import EngineError
from engine.flow.flow import run_flow
from engine.flow.pdn import lef_vias
from engine.flow.route import qrouter_def, restore_special_nets
from engine.flow.spef import read_routed_wires
from engine.io.def_io import def_layout, read_def, read_routing
from engine.io.qrouter import missing_macros, parse_qrouter_log
from engine.io.spef import Spef, SpefConn, read_spef, spef_name, write_spef
from engine.pdk import load_pdk
from engine.runs import RunStore


@pytest.fixture(scope="module")
def pdk():
    return load_pdk()


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """The counter example through the real flow up to timing (qrouter's routed DEF, the timing step's SPEF)."""
    store = RunStore(tmp_path_factory.getbasetemp() / "flow_e2e_store")
    run = run_flow(resolve("counter", []).flow_config(), store, until="timing")
    assert run.status == "done", run.info().get("error")
    return run


def _error_line(excinfo, path: Path) -> int:
    """The line an EngineError names as 'path:line: ...'."""
    m = re.match(rf"{re.escape(str(path))}:(\d+): ", str(excinfo.value))
    assert m, str(excinfo.value)
    return int(m.group(1))


# ------------------------------------------------------------------------------------------------ routed DEF
ROUTED = """VERSION 5.6 ;
UNITS DISTANCE MICRONS 100 ;
DIEAREA ( 0 0 ) ( 10000 10000 ) ;
NETS 2 ;
- n1 ( PIN a ) ( _1_ A ) + USE SIGNAL
  + ROUTED metal1 ( 100 200 ) M2_M1
  NEW metal2 ( 100 200 ) ( * 700 ) M3_M2
  NEW metal3 TAPER ( 100 700 0 ) ( 400 * ) ( 400 * ) ( 400 900 ) ;
- n2 ( _1_ Y ) ( _2_ A ) ;
END NETS
SPECIALNETS 1 ;
- vdd ( * vdd ) + USE POWER
  + ROUTED metal1 60 + SHAPE RING ( 0 0 ) ( 1000 0 )
    NEW metal2 80 ( 500 0 ) ( 500 * ) M2_M1
    NEW metal2 80 ( 0 0 ) ( 0 300 ) VIRTUAL ( 900 300 ) ( 900 100 ) ;
END SPECIALNETS
END DESIGN
"""


def test_routed_wiring_read_by_hand(tmp_path):
    path = tmp_path / "r.def"
    path.write_text(ROUTED)
    routing = read_routing(path)
    assert routing.units == 100
    assert [(n.name, n.special, n.line) for n in routing.nets] == [("n1", False, 5), ("n2", False, 9),
                                                                    ("vdd", True, 12)]
    n1 = routing.nets[0]
    assert [s.layer for s in n1.segments] == ["metal1", "metal2", "metal3"]
    assert n1.segments[1].points_dbu == [(100, 200), (100, 700)]  # '*' repeats the previous x
    assert [s.length_dbu for s in n1.segments] == [0, 500, 300 + 200]
    assert [[v.via for v in s.vias] for s in n1.segments] == [["M2_M1"], ["M3_M2"], []]
    assert (n1.segments[1].vias[0].x_dbu, n1.segments[1].vias[0].y_dbu) == (100, 700)
    assert routing.nets[1].segments == []  # not routed
    vdd = routing.nets[2]
    assert [s.width_dbu for s in vdd.segments] == [60, 80, 80, 80]  # the VIRTUAL jump splits the third piece
    assert [s.length_dbu for s in vdd.segments] == [1000, 0, 300, 200]  # no wire across the jump

    wires, units = read_routed_wires(path)
    assert units == 100
    assert wires["n1"].length_um == {"metal2": pytest.approx(5.0), "metal3": pytest.approx(5.0)}
    assert wires["n1"].vias == 2
    assert wires["n2"].total_um == 0 and wires["n2"].vias == 0
    assert wires["vdd"].length_um == {"metal1": pytest.approx(10.0), "metal2": pytest.approx(5.0)}
    only = read_routed_wires(path, {"metal2"})[0]
    assert only["n1"].length_um == {"metal2": pytest.approx(5.0)} and only["n1"].vias == 1


def test_real_routed_def(timed, pdk):
    """qrouter's routed.def of the counter: every multi-pin net wired, every via a LEF via joining the layer it sits
    on, every point inside the die, and the power grid the same as read_def's own SPECIALNETS reader finds."""
    path = timed.dir / "04-route" / "routed.def"
    routing = read_routing(path)
    netlist = read_def(path, pdk)
    x0, y0, x1, y1 = netlist.die
    regular = {n.name: n for n in routing.nets if not n.special}
    counts = netlist.net_start[1:] - netlist.net_start[:-1]
    multi = [name for name, c in zip(netlist.net_names, counts) if c >= 2 and name in regular]
    assert len(multi) > 50
    assert all(regular[name].segments for name in multi)
    vias = {v.name: set(v.layers) for v in lef_vias(pdk)}
    n_vias = 0
    for net in routing.nets:
        for seg in net.segments:
            for x, y in seg.points_dbu:
                assert x0 - 1 <= x / routing.units <= x1 + 1 and y0 - 1 <= y / routing.units <= y1 + 1, net.name
            for v in seg.vias:
                n_vias += 1
                assert seg.layer in vias[v.via], (net.name, v.via, seg.layer)
    assert n_vias > 100
    # The grid: read_def's SpecialWire pieces (um) are read_routing's special segments (DEF units), one by one.
    grid = [s for s in netlist.special_nets if s.use in ("POWER", "GROUND")]
    assert len(grid) == 2
    for special in grid:
        mine = next(n for n in routing.nets if n.special and n.name == special.name)
        pieces = [(s.layer, a, b) for s in mine.segments for a, b in zip(s.points_dbu, s.points_dbu[1:]) if a != b]
        theirs = [(w.layer, (w.x0 * routing.units, w.y0 * routing.units), (w.x1 * routing.units, w.y1 * routing.units))
                  for w in special.wires]
        assert len(pieces) == len(theirs) and len(theirs) > 0
        for (la, pa0, pa1), (lb, pb0, pb1) in zip(pieces, theirs):
            assert la == lb and pa0 == pytest.approx(pb0) and pa1 == pytest.approx(pb1)
        assert sum(len(s.vias) for s in mine.segments) == len(special.vias)


@pytest.mark.parametrize("bad, line, words", [
    ("  NEW metal2 ( 100 2O0 ) ( * 700 ) M3_M2", 7, "expected a coordinate, found '2O0'"),
    ("  NEW metal2 ( * 200 ) ( * 700 ) M3_M2", 7, "'*' in the first point"),
    ("  NEW metal2 ( 100 200 ( * 700 ) M3_M2", 7, "'( x y )' or '( x y ext )'"),
])
def test_malformed_routed_def_names_file_and_line(tmp_path, bad, line, words):
    lines = ROUTED.splitlines()
    lines[6] = bad  # line 7, n1's metal2 piece
    path = tmp_path / "bad.def"
    path.write_text("\n".join(lines) + "\n")
    for read in (read_routing, read_routed_wires):
        with pytest.raises(EngineError) as err:
            read(path)
        assert _error_line(err, path) == line and words in str(err.value) and "net n1" in str(err.value)


def test_routed_def_with_an_unclosed_statement_or_section(tmp_path):
    path = tmp_path / "open.def"
    path.write_text(ROUTED.replace("( 400 900 ) ;", "( 400 900 )").split("END SPECIALNETS")[0])
    with pytest.raises(EngineError) as err:
        read_routing(path)
    assert _error_line(err, path) == 9 and "before this one's ';'" in str(err.value)  # where n2 starts
    path.write_text(ROUTED.split("END NETS")[0])
    with pytest.raises(EngineError) as err:
        read_routing(path)
    assert "never closed by 'END NETS'" in str(err.value)
    with pytest.raises(EngineError, match="not found"):
        read_routing(tmp_path / "none.def")



def test_layout_of_real_defs_counts_what_the_headers_say(timed):
    """def_layout on the placed DEF qrouter was given and on qrouter's output: each section holds as many entries
    as its header counts, each entry's first line starts with '- ', TRACKS are statements outside sections."""
    for name in ("route_in.def", "routed.def"):
        path = timed.dir / "04-route" / name
        text = path.read_text()
        lines = text.splitlines()
        layout = def_layout(text, path)
        assert {"COMPONENTS", "PINS", "NETS", "SPECIALNETS"} <= {s.name for s in layout.sections}
        for sec in layout.sections:
            assert len(sec.entries) == int(sec.header.words[1]), (name, sec.name)
            assert lines[sec.end].startswith(f"END {sec.name}")
            assert all(lines[e.first].lstrip().startswith("- ") for e in sec.entries)
        assert any(st.words[0] == "TRACKS" for st in layout.statements)


def test_layout_of_a_malformed_def_names_the_line():
    with pytest.raises(EngineError, match=r"r\.def:4: section NETS opened here is never closed"):
        def_layout(ROUTED.split("END NETS")[0], "r.def")
    with pytest.raises(EngineError, match=r"r\.def:10: section NETS \(line 4\) is closed by 'END SPECIALNETS'"):
        def_layout(ROUTED.replace("END NETS", "END SPECIALNETS", 1), "r.def")


def test_qrouter_def_puts_specialnets_after_nets_and_before_end_design(pdk):
    text = ROUTED.replace("UNITS DISTANCE MICRONS 100", "UNITS DISTANCE MICRONS 1000")
    out = qrouter_def(text, pdk, layers=2)
    assert out.index("END NETS") < out.index("SPECIALNETS 1 ;") < out.index("END SPECIALNETS") < out.index("END DESIGN")
    assert "- n2 ( _1_ Y ) ( _2_ A )\n  ;" in out  # each net's ';' on a line of its own
    before = text[:text.index("SPECIALNETS")]
    out = qrouter_def(before + "END DESIGN\n", pdk, extra_nets=["- vdd ( _1_ A ) ( _1_ vdd )"])
    assert "NETS 3 ;" in out and out.index("- vdd ( _1_ A ) ( _1_ vdd )\n  ;") < out.index("END NETS")



def test_a_malformed_router_output_names_its_file():
    with pytest.raises(EngineError, match=r"out\.def:4: section NETS opened here is never closed"):
        restore_special_nets(ROUTED.split("END NETS")[0], ROUTED, routed_path="out.def")


# ------------------------------------------------------------------------------------------------------ SPEF
def test_real_spef_reads_back_as_the_timing_step_wrote_it(timed, pdk):
    """The counter's design.spef: one *D_NET per wired net, each net's capacitances summing to its total, ports
    those of the design, every *I an instance of the placed DEF."""
    spef = read_spef(timed.dir / "05-timing" / "design.spef")
    text = (timed.dir / "05-timing" / "design.spef").read_text()
    assert len(spef.nets) == text.count("*D_NET") > 50
    assert spef.design == "counter" and spef.header["C_UNIT"] == "1 PF"
    for net in spef.nets:
        assert sum(c for _, c in net.caps) == pytest.approx(net.total_c_pf, rel=1e-4, abs=1e-9)
        assert len(net.res) == len(net.conns) == len(net.caps)  # a star: one branch per terminal, hub included
    nl = read_def(timed.dir / "03b-cts" / "cts.def" if (timed.dir / "03b-cts" / "cts.def").is_file()
                  else timed.dir / "03-place" / "placed.def", pdk)
    cells = {spef_name(c) for c, io in zip(nl.cell_names, nl.cell_is_io) if not io}
    ports = {name for name, _ in spef.ports}
    assert ports and ports <= {spef_name(c) for c, io in zip(nl.cell_names, nl.cell_is_io) if io}
    for net in spef.nets:
        for conn in net.conns:
            assert conn.name.rsplit(":", 1)[0] in cells if conn.kind == "I" else conn.name in ports, conn.name


SPEF = """*SPEF "IEEE 1481-1998"
*DESIGN "top"
*DIVIDER /
*DELIMITER :
*BUS_DELIMITER [ ]
*T_UNIT 1 NS
*C_UNIT 1 FF
*R_UNIT 1 KOHM
// a comment
*NAME_MAP
*1 u1/n\\[0\\]
*2 u2

*PORTS
a I
y O *C 1.0 2.0

*D_NET *1 3.5 /* the total,
   in fF */
*CONN
*P a I
*I *2:A I *L 0.002
*CAP
1 *1:1 1.5
2 *2:A 1.0
3 *2:A other:1 1.0
*RES
1 a *1:1 0.25
2 *1:1 *2:A 0.5
*END
"""


def test_spef_read_by_hand(tmp_path):
    path = tmp_path / "t.spef"
    path.write_text(SPEF)
    spef = read_spef(path)
    assert spef.design == "top" and spef.ports == [("a", "I"), ("y", "O")]
    (net,) = spef.nets
    assert net.name == "u1/n\\[0\\]" and net.total_c_pf == pytest.approx(3.5e-3)  # fF -> pF
    assert net.conns == [SpefConn("P", "a", "I"), SpefConn("I", "u2:A", "I")]
    assert net.caps == [("u1/n\\[0\\]:1", pytest.approx(1.5e-3)), ("u2:A", pytest.approx(1e-3))]
    assert net.couplings == [("u2:A", "other:1", pytest.approx(1e-3))]
    assert net.res == [("a", "u1/n\\[0\\]:1", pytest.approx(250.0)), ("u1/n\\[0\\]:1", "u2:A", pytest.approx(500.0))]
    # Written back (pF, ohm) and read again: the same figures.
    again = read_spef(write_spef(tmp_path / "w.spef", Spef("top", spef.ports, spef.nets)))
    assert again.nets[0].caps == [(n, pytest.approx(c)) for n, c in net.caps]
    assert again.nets[0].res == [(a, b, pytest.approx(r)) for a, b, r in net.res]
    assert again.net(net.name).total_c_pf == pytest.approx(net.total_c_pf)


@pytest.mark.parametrize("edit, line, words", [
    (lambda s: s.replace("2 *2:A 1.0", "2 *2:A 1.O"), 25, "expected a capacitance, found '1.O'"),
    (lambda s: s.replace("*END\n", "") + "*D_NET n2 1.0\n*END\n", 30, "not closed by *END before the next"),
    (lambda s: s.replace("*END\n", ""), 18, "never closed by *END"),
    (lambda s: s.replace("*RES\n1 a *1:1 0.25", "*RES\n1 a 0.25"), 28, "must read 'id node node value'"),
    (lambda s: s.replace(" in fF */", ""), 18, "'/*' is never closed"),
])
def test_malformed_spef_names_file_and_line(tmp_path, edit, line, words):
    path = tmp_path / "bad.spef"
    path.write_text(edit(SPEF))
    with pytest.raises(EngineError) as err:
        read_spef(path)
    assert _error_line(err, path) == line and words in str(err.value)


def test_a_file_that_is_not_spef(tmp_path):
    path = tmp_path / "x.spef"
    path.write_text(ROUTED)
    with pytest.raises(EngineError, match=r"x.spef:1: not a SPEF file"):
        read_spef(path)


# ---------------------------------------------------------------------------------------------- qrouter's log
def test_real_qrouter_log(timed):
    log = (timed.dir / "04-route" / "qrouter.log").read_text()
    report = parse_qrouter_log(log)
    m = timed.metrics()["route"]
    assert report.finished and report.failed == [] and missing_macros(log) == []
    assert report.nets is not None and report.nets >= m["route__net__count"] > 50


def test_cut_or_odd_qrouter_logs_are_not_errors():
    cut = parse_qrouter_log("There are 12 nets in this design.\nRouting net a\n")
    assert cut.nets == 12 and not cut.finished and cut.failed == []
    assert parse_qrouter_log("").nets is None
    text = 'Could not find a macro definition for "SRAM"\nCould not find a macro definition for "SRAM"\n'
    assert missing_macros(text) == ["SRAM"]
