"""None bugs that mypy found when engine.io, engine.flow, engine.place and engine.jobs came off its ignore list: each
test failed (a TypeError, a wire with a None end, a worker started for a job nobody queued) before the fix."""
from __future__ import annotations

import sqlite3
import textwrap

import pytest

from engine.errors import EngineError, RunStoreError
from engine.io.def_io import read_def
from engine.netlist import IO_TYPE, PIN_INPUT, PIN_OUTPUT, NetlistBuilder
from engine.pdk import load_pdk


@pytest.fixture(scope="module")
def pdk():
    return load_pdk()


def _inverters(pdk, n: int = 40):
    """n osu018 inverters in a chain between an input and an output port."""
    b = NetlistBuilder("chain")
    inv = pdk.macros["INVX1"]
    a = b.add_cell("a", IO_TYPE, 0.0, 0.0, fixed=True, io=True)
    b.add_pin(a, "n0", 0.0, 0.0, "a", PIN_OUTPUT)
    for k in range(n):
        c = b.add_cell(f"i{k}", "INVX1", inv.width_um, inv.height_um)
        b.add_pin(c, f"n{k}", 0.0, 0.0, "A", PIN_INPUT)
        b.add_pin(c, f"n{k + 1}", 0.0, 0.0, "Y", PIN_OUTPUT)
    y = b.add_cell("y", IO_TYPE, 0.0, 0.0, fixed=True, io=True)
    b.add_pin(y, f"n{n}", 0.0, 0.0, "y", PIN_INPUT)
    return b.build()


# ---------------------------------------------------------------------------------------------- DEF reader
_DEF = textwrap.dedent("""\
    VERSION 5.6 ;
    DESIGN t ;
    UNITS DISTANCE MICRONS 1000 ;
    DIEAREA ( 0 0 ) ( 40000 40000 ) ;
    COMPONENTS 1 ;
    - u0 INVX1 + PLACED ( 8000 10000 ) N ;
    END COMPONENTS
    SPECIALNETS 1 ;
    - vdd ( * vdd ) + USE POWER
      + ROUTED metal1 600 ( {first} ) ( {second} ) ;
    END SPECIALNETS
    END DESIGN
    """)


def test_def_special_wire_reads_star_as_the_previous_coordinate(tmp_path, pdk):
    path = tmp_path / "ok.def"
    path.write_text(_DEF.format(first="1000 2000", second="* 9000"))
    (wire,) = read_def(path, pdk).special_nets[0].wires
    assert (wire.layer, wire.width_um, wire.x0, wire.y0, wire.x1, wire.y1) == ("metal1", 0.6, 1.0, 2.0, 1.0, 9.0)


def test_def_special_wire_with_star_in_its_first_point_is_an_error(tmp_path, pdk):
    """'*' repeats the previous point's coordinate; in the first point there is none. The reader used to keep the
    None and build a wire from (1, None) to (1, 9), which write_def then crashed on."""
    path = tmp_path / "bad.def"
    path.write_text(_DEF.format(first="1000 *", second="* 9000"))
    with pytest.raises(EngineError, match=r"bad\.def:\d+: .*'\*' in the first point"):
        read_def(path, pdk)


# ---------------------------------------------------------------------------------------------- floorplan
@pytest.mark.parametrize("layer, why", [("via", "has no routing tracks"), ("metal9", "is not a layer")])
def test_floorplan_pin_layer_without_tracks_is_the_users_error(pdk, layer, why):
    """A cut layer (no PITCH) as the pin layer used to be a TypeError (None + float), an unknown one a KeyError:
    the flow reported an engine bug. Now it is an input error that names the knob and the layers that work."""
    from engine.flow.floorplan import make_floorplan

    with pytest.raises(EngineError, match=why) as err:
        make_floorplan(_inverters(pdk), pdk, 0.6, 1.0, 10.0, pin_layer_h=layer)
    assert err.value.code == "input.invalid" and err.value.knob == "floorplan.pin_layer_h"
    assert "metal2" in (err.value.hint or "")
    layers = make_floorplan(_inverters(pdk), pdk, 0.6, 1.0, 10.0, pin_layer_h="metal4")
    assert set(layers) == {"a", "y"}


# ---------------------------------------------------------------------------------------------- placer
def test_place_with_no_net_under_the_degree_limit(pdk):
    """Every net above place.max_net_degree leaves the wirelength model no net: its HPWL stayed None and the global
    placer stopped on float(None). Now the density alone spreads the cells and the placement is legal."""
    from engine.flow.floorplan import make_floorplan
    from engine.place import PlaceConfig, place

    nl = _inverters(pdk)
    make_floorplan(nl, pdk, 0.6, 1.0, 10.0)
    res = place(nl, PlaceConfig(max_net_degree=1, max_iterations=200, detailed=False))
    assert res.legality is not None and res.legality.ok
    assert res.metrics["placement__hpwl"] > 0


# ---------------------------------------------------------------------------------------------- job queue
def test_submit_on_a_queue_that_turns_read_only_queues_nothing(tmp_path, monkeypatch):
    """The queue answers ``default`` when SQLite says read-only; submit used to go on, start a worker for a job that
    was never queued and return None (the CLI then failed on None.run_id)."""
    from engine.jobs import JobQueue
    from engine.runs import RunStore

    store = RunStore(tmp_path / "runs")
    queue = JobQueue(store)
    run = store.create({}, "demo")
    # From here on the queue file can only be opened read-only, as on a read-only mount.
    monkeypatch.setattr(queue, "_connect", lambda: _read_only_connection(queue.db_path))
    with pytest.raises(RunStoreError, match="read-only"):
        queue.submit(run.id, "flow")
    assert queue.read_only
    assert not (run.dir / "worker.log").exists()  # no worker was started
    assert not [e for e in run.events() if e["kind"] == "job"]  # nor said to be queued


def _read_only_connection(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db
