"""The technology loader against Debian's real osu018 files, and its errors on broken LEF."""
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.pdk import LefError, load_pdk, read_lef


def test_osu018_sites_layers_macros():
    pdk = load_pdk()
    assert pdk.dbu_per_micron == 1000
    assert pdk.site.width_um == pytest.approx(0.8) and pdk.site.height_um == pytest.approx(10.0)
    routing = pdk.routing_layers()
    assert [layer.name for layer in routing] == [f"metal{i}" for i in range(1, 7)]
    assert pdk.layer("metal2").pitch_um == pytest.approx(0.8) and pdk.layer("metal2").direction == "VERTICAL"
    assert pdk.layer("metal1").res_per_sq == pytest.approx(0.08)
    inv = pdk.macros["INVX1"]
    assert inv.height_um == pytest.approx(10.0) and inv.width_um > 0
    assert {"A", "Y", "vdd", "gnd"} <= set(inv.pins)
    assert [p.name for p in inv.signal_pins] == ["A", "Y"]
    x, y = inv.pins["A"].center
    assert 0 <= x <= inv.width_um and 0 <= y <= inv.height_um
    assert pdk.liberty_path.name == "osu018_stdcells.lib" and pdk.liberty_path.exists()
    # Every Liberty cell has a LEF macro: the mapped netlist can always be placed.
    import re

    lib_cells = set(re.findall(r"^\s*cell\s*\(\s*(\w+)\s*\)", pdk.liberty_path.read_text(), re.M))
    assert lib_cells and lib_cells <= set(pdk.macros)


def test_malformed_lef_names_file_and_line(tmp_path: Path):
    lef = tmp_path / "broken.lef"
    lef.write_text("VERSION 5.4 ;\nUNITS\n  DATABASE MICRONS 1000 ;\nEND UNITS\n"
                   "MACRO X\n  SIZE 1.0 BY oops ;\nEND X\n")
    with pytest.raises(LefError) as err:
        read_lef(lef)
    assert f"{lef}:6" in str(err.value) and "oops" in str(err.value)


def test_unclosed_macro_is_reported(tmp_path: Path):
    lef = tmp_path / "open.lef"
    lef.write_text("MACRO Y\n  CLASS CORE ;\n  SIZE 1 BY 2 ;\n")
    with pytest.raises(LefError, match=r"open.lef:\d+: MACRO Y is never closed"):
        read_lef(lef)


def test_missing_lef_and_folder(tmp_path: Path):
    with pytest.raises(LefError, match="not found"):
        read_lef(tmp_path / "none.lef")
    with pytest.raises(EngineError, match="technology folder"):
        load_pdk(tmp_path / "nothing-here")
