"""engine.io.lexer, the one tokenizer of the LEF and DEF readers: its rules, and the same tokens (so the same parse)
as the two tokenizers it replaced on Debian's real osu018 LEF and on DEFs the flow writes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError
from engine.io.def_io import read_def, write_def
from engine.io.lexer import TokenReader, tokenize, tokenize_spef
from engine.netlist import IO_TYPE, PIN_INPUT, PIN_OUTPUT, NetlistBuilder
from engine.pdk import LefError, load_pdk, read_lef

TECHS = Path("/usr/share/qflow/tech")
LEFS = [TECHS / f"osu{n}" / f"osu{n}_stdcells.lef" for n in ("018", "035", "050")]
LEFS.append(Path(__file__).parent / "data" / "macros" / "sram_stub.lef")


def _old_lef_tokens(text: str) -> list[tuple[int, str]]:
    """engine.pdk's tokenizer before engine.io.lexer: '#' anywhere cuts the line, ';' split off, then whitespace."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if "#" in line:
            line = line[:line.find("#")]
        out += [(lineno, t) for t in line.replace(";", " ; ").split()]
    return out


def _old_def_tokens(text: str) -> list[tuple[int, str]]:
    """engine.io.def_io's tokenizer before engine.io.lexer: lines starting with '#' skipped, ( ) ; split off."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("#"):
            out += [(lineno, t) for t in re.findall(r"\(|\)|;|[^\s();]+", line)]
    return out


@pytest.fixture(scope="module")
def pdk():
    return load_pdk()


@pytest.fixture(scope="module")
def written_def(pdk, tmp_path_factory) -> Path:
    """A floorplanned inverter chain with its power grid (SPECIALNETS), IO pins and tracks, as the flow writes it."""
    from engine.flow.floorplan import make_floorplan
    from engine.flow.pdn import build_grid

    b = NetlistBuilder("chain")
    inv = pdk.macros["INVX1"]
    a = b.add_cell("in[0]", IO_TYPE, 0.0, 0.0, fixed=True, io=True)
    b.add_pin(a, "n0", 0.0, 0.0, "in[0]", PIN_OUTPUT)
    for k in range(60):
        c = b.add_cell(f"u{k}", "INVX1", inv.width_um, inv.height_um)
        b.add_pin(c, f"n{k}", *inv.pins["A"].center, "A", PIN_INPUT)
        b.add_pin(c, f"n{k + 1}", *inv.pins["Y"].center, "Y", PIN_OUTPUT)
    y = b.add_cell("out", IO_TYPE, 0.0, 0.0, fixed=True, io=True)
    b.add_pin(y, "n60", 0.0, 0.0, "out", PIN_INPUT)
    nl = b.build()
    layers = make_floorplan(nl, pdk, 0.6, 1.0, 10.0)
    nl.special_nets = build_grid(nl, pdk, stripe_pitch_um=20.0).nets
    nl.net_weight[3] = 4.0
    return write_def(nl, tmp_path_factory.mktemp("def") / "chain.def", pdk, pin_layers=layers)


# ---------------------------------------------------------------------------------------------- the same tokens
@pytest.mark.parametrize("lef", LEFS, ids=lambda p: p.name)
def test_lef_tokens_are_those_of_the_old_lef_tokenizer(lef):
    if not lef.is_file():
        pytest.skip(f"{lef} is not installed")
    text = lef.read_text(errors="replace")
    new = tokenize(text, lef)
    assert len(new) > (10_000 if "osu" in lef.name else 100)
    assert new == _old_lef_tokens(text)


def _old_lef_vias(text: str) -> list[tuple]:
    """engine.flow.pdn's regex reading of the LEF's VIA blocks and MANUFACTURINGGRID before engine.io.lexer."""
    text = re.sub(r"#[^\n]*", "", text)
    vias = []
    for m in re.finditer(r"^\s*VIA\s+(\S+)([^\n;]*)\n(.*?)^\s*END\s+\1\b", text, re.M | re.S):
        layers = tuple(re.findall(r"\bLAYER\s+(\S+)\s*;", m.group(3)))
        rects = []
        for part in re.split(r"\bLAYER\s+", m.group(3))[1:]:
            layer = part.split()[0].rstrip(";")
            for r in re.findall(r"\bRECT\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)", part):
                rects.append((layer, *map(float, r)))
        vias.append((m.group(1), "DEFAULT" in m.group(2).split(), layers, tuple(rects)))
    g = re.search(r"MANUFACTURINGGRID\s+([\d.eE+-]+)\s*;", text)
    return [tuple(vias), float(g.group(1)) if g else None]


@pytest.mark.parametrize("lef", LEFS, ids=lambda p: p.name)
def test_lef_vias_are_those_the_power_grid_read_by_regex(lef):
    if not lef.is_file():
        pytest.skip(f"{lef} is not installed")
    out = read_lef(lef)
    vias = tuple((v.name, v.default, v.layers, v.rects) for v in out["vias"])
    assert [vias, out["manufacturing_grid"]] == _old_lef_vias(lef.read_text(errors="replace"))
    if "osu018" in lef.name:
        assert [v[0] for v in vias] == ["M2_M1", "M3_M2", "M4_M3", "M5_M4", "M6_M5"] and all(v[1] for v in vias)
        assert vias[0][2] == ("metal1", "via", "metal2") and out["manufacturing_grid"] == 0.05


def test_def_tokens_are_those_of_the_old_def_tokenizer(written_def):
    text = written_def.read_text()
    assert "SPECIALNETS" in text and "TRACKS" in text and "PINS" in text
    new = tokenize(text, written_def)
    assert len(new) > 2000 and new == _old_def_tokens(text)


def test_written_def_reads_back_as_written(written_def, pdk):
    nl = read_def(written_def, pdk)
    text = written_def.read_text()
    assert nl.name == "chain" and nl.n_cells == 62 and nl.n_nets == 61
    assert {"in[0]", "out", "u0", "u59"} <= set(nl.cell_names)
    assert nl.net_weight[nl.net_names.index("n3")] == 4.0
    assert len(nl.rows) == len(re.findall(r"^ROW ", text, re.M))
    assert {s.name for s in nl.special_nets} == {"vdd", "gnd"}
    wires = sum(len(s.wires) for s in nl.special_nets)
    assert wires > 0 and wires + sum(len(s.vias) for s in nl.special_nets) == text.count(" NEW ") + len(nl.special_nets)
    # the same DEF again from what was read: the reader lost nothing the writer writes
    again = write_def(nl, written_def.with_name("again.def"), pdk,
                      pin_layers={n: "metal2" for n in nl.cell_names})
    assert _strip_pin_layers(again.read_text()) == _strip_pin_layers(text)


def _strip_pin_layers(text: str) -> str:
    return re.sub(r"\+ LAYER \S+ \( [-\d]+ [-\d]+ \) \( [-\d]+ [-\d]+ \)", "+ LAYER", text)


# ---------------------------------------------------------------------------------------------- the rules
def test_lexical_rules():
    text = ('VERSION 5.8 ;  # a comment ; with "quotes"\n'
            '# a whole comment line\n'
            'PROPERTY note "a; b # c" ;\n'
            '- n#1 ( u1 A )(u2 Y) ;\n'
            'DIEAREA (0 0) (100 200) ;#tight\n')
    assert tokenize(text) == [
        (1, "VERSION"), (1, "5.8"), (1, ";"),
        (3, "PROPERTY"), (3, "note"), (3, '"a; b # c"'), (3, ";"),
        (4, "-"), (4, "n#1"), (4, "("), (4, "u1"), (4, "A"), (4, ")"), (4, "("), (4, "u2"), (4, "Y"), (4, ")"),
        (4, ";"),
        (5, "DIEAREA"), (5, "("), (5, "0"), (5, "0"), (5, ")"), (5, "("), (5, "100"), (5, "200"), (5, ")"),
        (5, ";")]


def test_unclosed_string_names_its_line():
    with pytest.raises(LefError, match=r"x\.lef:2: string \"oops ; is not closed on its line"):
        tokenize('VERSION 5.8 ;\nBUSBITCHARS "oops ;\nEND LIBRARY\n', "x.lef", LefError)


def test_reader_errors_name_the_line():
    r = TokenReader("x.def", "UNITS DISTANCE MICRONS 1000 ;\nDIEAREA ( 0 0 )\n( 10 ten ) ;\n")
    assert r.statement() == ["UNITS", "DISTANCE", "MICRONS", "1000"]
    st = r.statement()
    with pytest.raises(EngineError, match=r"x\.def:3: expected a number, found 'ten'"):
        [r.number(v) for v in st[1:] if v not in "()"]
    r = TokenReader("y.def", "COMPONENTS 1 ;\n- u1 INVX1\n")
    r.statement()
    with pytest.raises(EngineError, match=r"y\.def:2: statement not closed by ';'"):
        r.statement()


def test_spef_lexical_rules():
    """SPEF's own rules: '//' and '/* */' comments only where a token starts ('/' divides hierarchy in names), a
    backslash keeps the next character in the name, '(' and ';' are plain characters, a string is one token."""
    text = ('*SPEF "IEEE 1481-1998" // the standard\n'
            '*D_NET u_rx/count\\[3\\] 0.5 /* opens\n'
            'still a comment */ *CONN a\\ b x(1);y\n'
            '*DIVIDER /\n')
    assert tokenize_spef(text) == [
        (1, "*SPEF"), (1, '"IEEE 1481-1998"'), (2, "*D_NET"), (2, "u_rx/count\\[3\\]"), (2, "0.5"),
        (3, "*CONN"), (3, "a\\ b"), (3, "x(1);y"), (4, "*DIVIDER"), (4, "/")]
    with pytest.raises(EngineError, match=r"t\.spef:2: comment '/\*' is never closed"):
        tokenize_spef("*SPEF\n/* no end\n*END\n", "t.spef")
    with pytest.raises(EngineError, match=r"t\.spef:1: string \"oops is not closed"):
        tokenize_spef('*DESIGN "oops\n', "t.spef")


# ---------------------------------------------------------------------------------------------- what the rules buy
def test_lef_string_with_a_semicolon_and_a_hash(tmp_path):
    """A quoted property holding ';' and '#' (as LEF 5.7+ rule properties do) is one token: the old tokenizer cut
    the statement at its ';' and dropped the rest of the line at its '#'."""
    lef = tmp_path / "prop.lef"
    lef.write_text('VERSION 5.8 ;\nUNITS\n  DATABASE MICRONS 2000 ;\nEND UNITS\n'
                   'LAYER metal1\n  TYPE ROUTING ;\n'
                   '  PROPERTY LEF58_RULE "SPACING 0.1 ; # not a comment" ; PITCH 0.4 ;\n'
                   '  WIDTH 0.2 ;\nEND metal1\n'
                   'SITE core\n  SIZE 0.4 BY 4.0 ;\nEND core\nEND LIBRARY\n')
    out = read_lef(lef)
    assert out["dbu"] == 2000 and out["sites"]["core"].height_um == 4.0
    (m1,) = out["layers"]
    assert (m1.name, m1.type, m1.pitch_um, m1.width_um) == ("metal1", "ROUTING", 0.4, 0.2)


def test_def_with_tight_parentheses_and_end_of_line_comments(tmp_path, pdk):
    spaced = ("VERSION 5.6 ;\nDESIGN t ;\nUNITS DISTANCE MICRONS 1000 ;\nDIEAREA ( 0 0 ) ( 40000 40000 ) ;\n"
              "ROW ROW_0 core 0 0 N DO 50 BY 1 STEP 800 0 ;\n"
              "COMPONENTS 2 ;\n- u0 INVX1 + PLACED ( 8000 0 ) N ;\n- u1 INVX1 + PLACED ( 16000 0 ) N ;\n"
              "END COMPONENTS\nNETS 1 ;\n- n1 ( u0 Y ) ( u1 A ) ;\nEND NETS\nEND DESIGN\n")
    tight = (spaced.replace("( ", "(").replace(" )", ")").replace(" ;\n", " ; # written by hand\n")
             .replace("COMPONENTS 2", "# two inverters\nCOMPONENTS 2"))
    assert "(8000 0)" in tight and "# written by hand" in tight
    (tmp_path / "spaced.def").write_text(spaced)
    (tmp_path / "tight.def").write_text(tight)
    a, b = read_def(tmp_path / "spaced.def", pdk), read_def(tmp_path / "tight.def", pdk)
    assert a.cell_names == b.cell_names == ["u0", "u1"]
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x.tolist() == [8.0, 16.0] and a.net_names == b.net_names == ["n1"]
    np.testing.assert_array_equal(a.pin_dx, b.pin_dx)
