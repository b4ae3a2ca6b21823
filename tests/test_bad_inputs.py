"""The bad-input corpus (tests/bad_inputs/corpus.py) through the real `cda` CLI and the real tools.

Every case must end with its expected exit code and a message holding its words; none may print a traceback;
an injection case must leave its canary file uncreated (the command it smuggled never ran).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bad_inputs.corpus import CASES, Case, materialise


def run_case(case: Case, tmp_path: Path, capsys) -> tuple[int, str, Path]:
    from engine.cli import main

    root = tmp_path / "design"
    root.mkdir()
    canary = tmp_path / "canary"
    argv = ["--runs-dir", str(tmp_path / "runs"), *materialise(case, root, canary)]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own refusal (exit 2) is a message, not a traceback
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out + out.err, canary


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys):
    rc, text, canary = run_case(case, tmp_path, capsys)
    assert "Traceback" not in text, text
    if case.rc == "nonzero":
        assert rc != 0, text
    else:
        assert rc == case.rc, text
    low = text.lower()
    for words in case.expect:
        assert words.lower() in low, f"expected {words!r} in:\n{text}"
    assert not canary.exists(), "an injected command ran"


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.kind == "injection" for c in CASES) >= 10


HOSTILE = ["plain", "a b", "semi;colon", "br}ace{", "[exec touch x]", "$env(HOME)", 'qu"ote', "back\\slash",
           "\\esc[3]", "tail\\", "#hash", "ünïcode"]


def test_tcl_word_round_trips_in_opensta(tmp_path):
    """tcl_word's output, evaluated by OpenSTA's own Tcl interpreter, is exactly the original text, both as a
    plain word and nested inside braces (as in `catch {...}`: every brace is escaped, so nesting stays balanced)."""
    from engine.validate import tcl_word

    script = tmp_path / "q.tcl"
    script.write_text("".join(f"puts {tcl_word(h)}\ncatch {{puts {tcl_word(h)}}}\n" for h in HOSTILE),
                      encoding="utf-8")
    proc = subprocess.run(["sta", "-no_init", "-exit", str(script)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    got = proc.stdout.splitlines()[-2 * len(HOSTILE):]
    assert got == [h for h in HOSTILE for _ in (0, 1)], proc.stdout + proc.stderr
    assert not (tmp_path / "x").exists()


def test_tcl_word_refuses_control_characters():
    from engine.errors import EngineError
    from engine.validate import tcl_word

    with pytest.raises(EngineError, match="control character"):
        tcl_word("a\nexec rm -rf /")


def test_sta_script_quotes_hostile_port_names():
    """Port names come from the user's Verilog (escaped identifiers): each is one quoted Tcl word."""
    from engine.flow.sdc import generated_sdc
    from engine.flow.timing import sta_script

    evil = "\\d};exit;{"
    sdc = generated_sdc(clock=evil, period=10, in_delay=0, out_delay=0).text
    text = sta_script(liberty=Path("/l.lib"), netlist_v=Path("/n v.v"), top="top", sdc=Path("/c d.sdc"), spef=None,
                      paths=1, activity={evil: (0.1, 0.5)}, default_activity=0.1)
    for t in (sdc, text):
        assert "{" + evil + "}" not in t and "exit;" not in t.replace("\\;exit\\;", "")
    assert '"/n v.v"' in text and '"/c d.sdc"' in text


def test_generated_sta_script_survives_hostile_port(tmp_path):
    """The real OpenSTA parses a script whose clock and activity port names are hostile, without running them."""
    from engine.flow.sdc import generated_sdc
    from engine.flow.timing import sta_script

    evil = "\\d};exec;touch;" + str(tmp_path / "pwned") + ";{"
    sdc = tmp_path / "c.sdc"
    sdc.write_text(generated_sdc(clock=evil, period=10, in_delay=0, out_delay=0).text)
    text = sta_script(liberty=Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib"),
                      netlist_v=tmp_path / "missing.v", top="top", sdc=sdc, spef=None, paths=1,
                      activity={evil: (0.1, 0.5)}, default_activity=0.1)
    script = tmp_path / "s.tcl"
    # each line of the script and of the constraints on its own, so OpenSTA parses all of them
    body = text.replace(f"read_sdc {sdc}\n", sdc.read_text())
    assert "read_sdc" not in body and "create_clock" in body
    script.write_text("catch {" + body.replace("\n", "}\ncatch {") + "}\nputs CDA_DONE\n")
    proc = subprocess.run(["sta", "-no_init", "-exit", str(script)], capture_output=True, text=True, timeout=60)
    assert "CDA_DONE" in proc.stdout
    assert not (tmp_path / "pwned").exists()


def test_closed_pipe_is_not_a_traceback(monkeypatch, tmp_path):
    """`cda knobs list | head -1`: the reader leaves early (writes raise BrokenPipeError); cda exits quietly."""
    import io
    import sys

    from engine import cli

    class ClosedPipe(io.TextIOWrapper):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    sink = open(tmp_path / "out", "wb")
    monkeypatch.setattr(sys, "stdout", ClosedPipe(sink))
    assert cli.main(["knobs", "list"]) == 0


def test_a_bug_is_one_line_without_traceback(monkeypatch, capsys):
    from engine import cli

    def boom(args):
        raise ZeroDivisionError("division by zero")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=boom)
    assert cli.main([]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "ZeroDivisionError" in err and "Traceback" not in err
