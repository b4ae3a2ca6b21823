"""Uploads: size caps, safe zip extraction, includes kept inside the design folder."""

import io
import stat
import zipfile

import pytest

from engine.uploads import (
    UploadConfig,
    UploadError,
    check_includes,
    extract_zip,
    guess_clock,
    guess_top,
    safe_name,
    save_files,
)

COUNTER = b"""module counter(input clk, input rst, output reg [3:0] q);
  always @(posedge clk) q <= rst ? 4'd0 : q + 1;
endmodule
"""
TOP = b"""`include "defs.vh"
module top(input wire clock, input a, output y);
  counter u0(.clk(clock), .rst(a), .q());
  assign y = a;
endmodule
"""


def _zip(members: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_save_plain_files_and_guess_top_and_clock(tmp_path):
    paths = save_files([("counter.v", COUNTER), ("../../top.v", TOP), ("defs.vh", b"`define W 4\n")], tmp_path)
    assert sorted(p.name for p in paths) == ["counter.v", "defs.vh", "top.v"]
    assert all(p.parent == tmp_path for p in paths)
    top, names = guess_top([p for p in paths if p.suffix == ".v"])
    assert top == "top" and set(names) == {"counter", "top"}
    assert guess_clock(paths, "top") == "clock"
    assert guess_clock(paths, "counter") == "clk"
    assert [p.name for p in check_includes(tmp_path)] == ["defs.vh"]


def test_size_and_type_limits(tmp_path):
    cfg = UploadConfig(max_file_bytes=100)
    with pytest.raises(UploadError, match="limit per file"):
        save_files([("big.v", b"x" * 101)], tmp_path, cfg)
    with pytest.raises(UploadError, match="only Verilog"):
        save_files([("evil.sh", b"rm -rf /")], tmp_path)
    with pytest.raises(UploadError, match="binary"):
        save_files([("bin.v", b"\x00\x01\x02")], tmp_path)
    with pytest.raises(UploadError, match="not a text file"):
        save_files([("garbage.v", bytes(range(128, 256)) * 8)], tmp_path)
    # latin-1 source with an accented comment is text
    assert save_files([("latin.v", "// r\xe9sum\xe9\nmodule a; endmodule\n".encode("latin-1"))], tmp_path / "l")
    with pytest.raises(UploadError, match="No file"):
        save_files([], tmp_path)
    assert safe_name("a b/../c d.v") == "c_d.v"


def test_zip_extracts_inside_and_skips_clutter(tmp_path):
    data = _zip({"rtl/counter.v": COUNTER, "rtl/top.v": TOP, "rtl/defs.vh": b"", "__MACOSX/x.v": b"junk",
                 "README.md": b"hi"})
    paths = save_files([("design.zip", data)], tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == ["rtl/counter.v", "rtl/defs.vh", "rtl/top.v"]
    check_includes(tmp_path)


@pytest.mark.parametrize("name", ["../escape.v", "/abs.v", "a/../../escape.v"])
def test_zip_path_escape_refused(tmp_path, name):
    with pytest.raises(UploadError, match="outside"):
        extract_zip(_zip({name: COUNTER}), tmp_path / "d")
    assert not (tmp_path / "escape.v").exists()


def test_zip_link_bomb_and_caps(tmp_path):
    with pytest.raises(UploadError, match="link"):
        extract_zip(_zip({"a.v": COUNTER}, link="b.v"), tmp_path)
    with pytest.raises(UploadError, match="zip bomb"):
        extract_zip(_zip({"bomb.v": b"\n" * 3_000_000}), tmp_path)
    with pytest.raises(UploadError, match="limit is 2"):
        extract_zip(_zip({f"m{i}.v": COUNTER for i in range(3)}), tmp_path, UploadConfig(max_files=2))
    with pytest.raises(UploadError, match="damaged"):
        extract_zip(b"PK not really", tmp_path)
    with pytest.raises(UploadError, match="no Verilog"):
        extract_zip(_zip({"notes.md": b"x"}), tmp_path)


def test_include_must_stay_inside(tmp_path):
    (tmp_path / "secret.vh").write_text("`define S 1\n")
    d = tmp_path / "design"
    d.mkdir()
    (d / "a.v").write_text('`include "../secret.vh"\nmodule a; endmodule\n')
    with pytest.raises(UploadError, match="outside the design folder"):
        check_includes(d)
    (d / "a.v").write_text('`include "/etc/passwd"\nmodule a; endmodule\n')
    with pytest.raises(UploadError, match="outside the design folder"):
        check_includes(d)
    (d / "a.v").write_text('`include "missing.vh"\nmodule a; endmodule\n')
    with pytest.raises(UploadError, match="not uploaded"):
        check_includes(d)
    (d / "a.v").write_text('// `include "../secret.vh"\nmodule a; endmodule\n')
    assert check_includes(d) == []
