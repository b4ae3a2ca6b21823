"""The clock-tree step: clustering, a real flow on counter and uart (cts -> route -> timing -> verify), the
netlist's clock followed through the buffers, legality, propagated-clock STA, and the pass-through cases."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from engine.config import FlowConfig
from engine.errors import EngineError
from engine.flow.cts import bisect_clusters, build_tree
from engine.flow.registry import STEP_IDS, step_folder


# ------------------------------------------------------------------------------------------------ clustering
@pytest.mark.parametrize("max_fanout", [2, 3, 7, 16])
def test_clusters_hold_every_sink_once_and_are_balanced(max_fanout):
    rng = np.random.default_rng(max_fanout)
    for n in list(range(1, 60)) + [257]:
        pts = rng.random((n, 2)) * [300.0, 80.0]
        groups = bisect_clusters(pts, max_fanout)
        flat = np.concatenate(groups)
        assert len(flat) == n and np.array_equal(np.sort(flat), np.arange(n))  # every sink exactly once
        sizes = [len(g) for g in groups]
        assert len(groups) == math.ceil(n / max_fanout)
        assert max(sizes) <= max_fanout and max(sizes) - min(sizes) <= 1, (n, sizes)


def test_clusters_are_compact():
    """Two far-apart blobs of 8 sinks with fanout 8: each buffer gets one blob, not a mix."""
    rng = np.random.default_rng(1)
    left, right = rng.random((8, 2)) * 5, rng.random((8, 2)) * 5 + [500, 0]
    groups = bisect_clusters(np.vstack([left, right]), 8)
    assert sorted(sorted(g.tolist()) for g in groups) == [list(range(8)), list(range(8, 16))]


def test_tree_is_balanced_with_one_root():
    pts = np.random.default_rng(2).random((300, 2)) * 200
    tree = build_tree(pts, 6)
    assert len(tree.levels[-1]) == 1  # one root, which the clock port drives
    assert len(tree.levels) == math.ceil(math.log(300, 6))  # 300 -> 50 -> 9 -> 2 -> 1
    for lower, upper in zip(tree.levels, tree.levels[1:]):
        assert sum(len(g) for g in upper) == len(lower)  # each buffer of a level has exactly one parent
    # each buffer sits at its group's bounding-box centre
    g0 = tree.levels[0][0]
    assert np.allclose(tree.centres[0][0], (pts[g0].min(0) + pts[g0].max(0)) / 2)
    # without a root (fanout repair), the top stops once the driver can drive it
    assert len(build_tree(pts, 24, root=False).levels[-1]) <= 24


# ------------------------------------------------------------------------------------------------ folders, config
def test_cts_folder_keeps_the_old_numbers():
    old = {"synth": "01-synth", "floorplan": "02-floorplan", "place": "03-place", "route": "04-route",
           "timing": "05-timing", "gds": "06-gds", "verify": "07-verify"}
    assert {s: step_folder(s) for s in old} == old  # saved runs keep opening
    assert STEP_IDS.index("place") < STEP_IDS.index("cts") < STEP_IDS.index("route")
    assert sorted(step_folder(s) for s in STEP_IDS) == [step_folder(s) for s in STEP_IDS]


def test_cts_config_is_strict_and_ranged():
    cfg = FlowConfig.from_dict({"cts": {"max_fanout": 8, "enabled": "false"}})
    assert cfg.cts.max_fanout == 8 and cfg.cts.enabled is False
    with pytest.raises(EngineError, match="cts.max_fanout"):
        FlowConfig.from_dict({"cts": {"max_fanot": 8}})
    with pytest.raises(EngineError, match="out of range"):
        FlowConfig.from_dict({"cts": {"max_fanout": 1}})


def test_liberty_buffers_come_from_the_library():
    from engine.pdk import liberty_cells, load_pdk

    lib = liberty_cells(load_pdk())
    bufs = {n for n, c in lib.items() if c.is_buffer}
    assert {"CLKBUF1", "CLKBUF2", "CLKBUF3", "BUFX2", "BUFX4"} <= bufs and "INVX1" not in bufs
    assert lib["BUFX4"].drive_kohm < lib["BUFX2"].drive_kohm  # the X4 drives harder
    assert lib["DFFPOSX1"].pins["CLK"].clock and lib["DFFPOSX1"].pins["CLK"].capacitance_pf > 0


# ------------------------------------------------------------------------------------------------ the real flow
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from engine.runs import RunStore

    return RunStore(tmp_path_factory.mktemp("cts-runs"))


@pytest.fixture(scope="module")
def flows(store):
    """counter and uart through every step (route, timing with propagated clocks, gds, verify)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    out = {}
    for name in ("counter", "uart"):
        run = run_flow(resolve(name).flow_config(), store)
        assert run.status == "done", run.info().get("error")
        out[name] = run
    return out


_INST = re.compile(r"(?ms)^\s*([A-Za-z_]\w*)\s+(\\\S+\s|[A-Za-z_][\w$]*)\s*\((.*?)\);")
_PIN = re.compile(r"\.(\w+)\(\s*([^()]*?)\s*\)")


def _instances(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    out = {}
    for m in _INST.finditer(path.read_text()):
        if m.group(1) not in ("module", "input", "output", "wire"):
            out[m.group(2).strip()] = (m.group(1), dict(_PIN.findall(m.group(3))))
    return out


@pytest.mark.parametrize("name", ["counter", "uart"])
def test_every_clock_sink_is_driven_through_the_tree(flows, name):
    run = flows[name]
    m = run.metrics()["cts"]
    assert m["cts__buffer__count"] > 0 and m["cts__level__count"] >= 1
    insts = _instances(run.step_dir("cts") / "netlist.v")
    driver = {}  # net -> (instance, cell) of its buffer
    for inst, (cell, pins) in insts.items():
        if cell.startswith("CLKBUF"):
            driver[pins["Y"]] = (inst, cell, pins["A"])
    clock_pins = [(inst, pins["CLK"]) for inst, (cell, pins) in insts.items() if cell.startswith("DFF")]
    assert len(clock_pins) == m["cts__sink__count"] > 0
    depths = set()
    for inst, net in clock_pins:
        depth = 0
        while net in driver:  # walk up the tree to the port
            net = driver[net][2]
            depth += 1
        assert net == "clk", f"{inst}'s clock comes from {net}, not through the tree from clk"
        depths.add(depth)
    assert depths == {m["cts__level__count"]}  # balanced: every sink under the same number of buffers
    clkbufs = sum(cell.startswith("CLKBUF") for cell, _ in insts.values())
    assert clkbufs == m["cts__buffer__count"]


@pytest.mark.parametrize("name", ["counter", "uart"])
def test_route_timing_gds_and_verify_read_the_buffered_design(flows, name):
    from engine.io.def_io import read_def
    from engine.pdk import load_pdk
    from engine.place.legalize import check_legality

    run = flows[name]
    m = run.metrics()
    cts_def = read_def(run.step_dir("cts") / "cts.def", load_pdk())
    rep = check_legality(cts_def)
    assert rep.ok, rep.summary()
    placed = read_def(run.step_dir("place") / "placed.def", load_pdk())
    added = m["cts"]["cts__buffer__count"] + m["cts"]["cts__repair__buffer__count"]
    assert cts_def.n_cells == placed.n_cells + added
    # the cells placed before cts stay where they were (within the reported displacement)
    index = cts_def.index()
    moved = max(abs(cts_def.x[index[n]] - placed.x[i]) + abs(cts_def.y[index[n]] - placed.y[i])
                for i, n in enumerate(placed.cell_names))
    assert moved <= m["cts"]["cts__displacement__max_um"] * 1.5 + 1e-6
    routed = (run.step_dir("route") / "routed.def").read_text()
    assert "cts_clk_b1_0" in routed and m["route"]["route__net__unrouted"] == 0
    t = m["timing"]
    assert t["timing__clock__propagated"] is True
    assert "timing__clock__skew_ns" in t and 0 <= t["timing__clock__skew_ns"] < 0.5
    assert "timing__hold__ws" in t and "timing__hold__reg_ws" in t
    assert t["timing__drv__fanout_violations"] == 0  # fanout repair left no net above the limit
    sta = (run.step_dir("timing") / "sta.tcl").read_text()
    assert "set_propagated_clock" in sta and "03b-cts/netlist.v" in sta
    assert "report_clock_skew" in sta
    assert m["gds"]["gds__instance__count"] == m["cts"]["cts__cell__count"]
    assert m["verify"]["verify__status"] == "pass"  # the buffers are transparent to the gate-level simulation
    assert m["verify"]["verify__mismatch__count"] == 0


def test_uart_fanout_repair_and_skew_estimate(flows):
    m = flows["uart"].metrics()
    c = m["cts"]
    if c["cts__fanout__max_before"] > FlowConfig().cts.fanout_limit:
        assert c["cts__repair__buffer__count"] > 0 and c["cts__repair__net__count"] > 0
    assert c["cts__fanout__max"] <= max(FlowConfig().cts.fanout_limit, FlowConfig().cts.max_fanout)
    assert c["cts__level__count"] >= 2  # 53 sinks at fanout 16
    # the estimate and OpenSTA agree on the order of magnitude of the skew (both well under 0.1 ns here)
    assert c["cts__skew_estimate_ns"] < 0.1 and m["timing"]["timing__clock__skew_ns"] < 0.1
    tree = (flows["uart"].step_dir("cts") / "tree.json").read_text()
    assert '"loads"' in tree


def test_no_clock_passes_through_and_off_means_off(store, tmp_path):
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    run = run_flow(resolve("gray_prio").flow_config(), store, until="cts")
    assert run.status == "done", run.info().get("error")
    msg = [e for e in run.events() if e.get("kind") == "step_end" and e.get("step") == "cts"][-1]["message"]
    assert "no clock" in msg and run.metrics()["cts"]["cts__buffer__count"] == 0
    cfg = resolve("counter").flow_config()
    cfg.cts.enabled = False
    run = run_flow(cfg, store, until="cts")
    assert run.status == "done" and run.metrics()["cts"]["cts__buffer__count"] == 0
    assert "CLKBUF" not in (run.step_dir("cts") / "netlist.v").read_text()


def test_a_cell_that_is_not_a_buffer_is_refused_with_the_library_buffers(store):
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    cfg = resolve("counter").flow_config()
    cfg.cts.clock_buffers = "INVX1"
    run = run_flow(cfg, store, until="cts")
    info = run.info()
    assert run.status == "failed" and info["failed_step"] == "cts"
    assert "INVX1" in info["error"] and "CLKBUF1" in info["error"] and info["knob"] == "cts.clock_buffers"


def test_the_timing_page_draws_the_clock_tree(flows, store, monkeypatch):
    from page_helpers import app_page

    monkeypatch.setenv("CDA_RUNS_DIR", str(store.root))
    at = app_page(Path(__file__).resolve().parent.parent / "pages" / "06_timing.py", flows["uart"].id)
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "Clock tree" in text and f"{flows['uart'].metrics()['cts']['cts__buffer__count']} buffers in" in text
    assert any(m.label == "Clock skew" for m in at.metric)


def test_cts_is_reused_unless_what_it_reads_changes(flows, store):
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    def cts_status(cfg):
        run = run_flow(cfg, store, until="cts")
        assert run.status == "done", run.info().get("error")
        return [e for e in run.events() if e.get("kind") == "step_end" and e.get("step") == "cts"][-1]["status"]

    cfg = resolve("counter").flow_config()
    cfg.timing.paths = 3  # timing's own knob: the tree (and so routing) is not rebuilt
    assert cts_status(cfg) == "reused"
    cfg.cts.max_fanout = 3  # 8 sinks at fanout 3: a different tree
    assert cts_status(cfg) == "done"
