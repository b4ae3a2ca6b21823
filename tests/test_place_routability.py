"""Routability mode (RUDY-driven cell inflation) and timing-driven net weights of the placer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.netlist import NetlistBuilder, Row
from engine.place import PlaceConfig, place
from engine.place.density import BinGrid
from engine.place.generate import generate_netlist
from engine.place.global_place import GlobalPlacer
from engine.place.legalize import check_legality
from engine.place.metrics import rudy_map
from engine.place.routability import inflation_step
from engine.place.timing_weights import proxy_criticality, slack_criticality, weights_from_criticality

torch.set_num_threads(1)


def _top10(m: np.ndarray) -> float:
    flat = np.sort(m.ravel())[::-1]
    return float(flat[: max(1, len(flat) // 10)].mean())


@pytest.fixture(scope="module")
def congested():
    # dense core, many long nets: RUDY hot spots in the middle
    return generate_netlist(1500, utilization=0.9, seed=3, tail=1.2)


def _gp_cfg(**kw) -> PlaceConfig:
    return PlaceConfig(target_density=1.0, legalize=False, detailed=False, frame_every=0, **kw)


def test_inflation_lowers_the_rudy_peak_against_routability_off(congested):
    off = place(congested, _gp_cfg())
    on = place(congested, _gp_cfg(routability=True))
    assert on.metrics["placement__routability__rounds"] >= 1
    assert on.metrics["placement__routability__inflated_area_um2"] > 0
    r_off = rudy_map(off.netlist, congested.core, 32)
    r_on = rudy_map(on.netlist, congested.core, 32)
    assert _top10(r_on) < 0.97 * _top10(r_off)
    assert r_on.max() < r_off.max()
    assert "placement__routability__rounds" not in off.metrics


def test_inflation_is_capped_bounded_by_whitespace_and_legal_with_real_sizes(congested):
    cfg = PlaceConfig(target_density=1.0, routability=True, inflation_max=1.3, detailed=False, frame_every=0)
    gp = GlobalPlacer(congested, cfg)
    gp.run()
    r = gp.inflate_ratio
    assert float(r.max()) <= 1.3 + 1e-6 and float(r.min()) >= 1.0 - 1e-9
    assert float(r.max()) > 1.0
    mov = gp.movable_idx
    added = float((gp.w_t[mov] * gp.h_t[mov] * (r - 1)).sum())
    assert added <= gp.whitespace * (1 + 1e-6)
    res = place(congested, cfg)
    assert res.metrics["placement__legal"] is True
    # legal with the real sizes: the netlist the legaliser saw still has the original widths
    np.testing.assert_array_equal(res.netlist.cell_w, congested.cell_w)
    assert check_legality(res.netlist).ok


def test_inflation_step_grows_only_hot_cells_within_the_whitespace():
    grid = BinGrid(0, 0, 10, 10, 2, 2)
    rudy = torch.tensor([[8.0, 1.0], [1.0, 1.0]], dtype=torch.float64)   # bin (0, 0) is 8 / 2.75 x the mean
    cx = torch.tensor([2.0, 7.0, 2.0], dtype=torch.float64)
    cy = torch.tensor([2.0, 7.0, 7.0], dtype=torch.float64)
    area = torch.ones(3, dtype=torch.float64)
    ratio = torch.ones(3, dtype=torch.float64)
    new = inflation_step(rudy, cx, cy, area, ratio, grid, threshold=1.5, inflation_max=3.0, whitespace=100.0)
    assert float(new[0]) == pytest.approx(3.0)            # (2.91 / 1.5)^2 = 3.76, capped at 3
    assert new[1:].tolist() == [1.0, 1.0]
    tight = inflation_step(rudy, cx, cy, area, ratio, grid, threshold=1.5, inflation_max=3.0, whitespace=0.5)
    assert float((area * (tight - 1)).sum()) == pytest.approx(0.5)


def _chain_netlist():
    """in0 -> a1 -> a2 -> a3 -> a4 -> a5 -> out0 (5 levels) and in1 -> b1 -> out1 (1 level)."""
    b = NetlistBuilder("chains")
    for name, x in (("in0", 0.0), ("in1", 0.0), ("out0", 50.0), ("out1", 50.0)):
        b.add_cell(name, "IO", 0.0, 0.0, fixed=True, io=True, x=x, y=5.0)
    chain = ["in0", "a1", "a2", "a3", "a4", "a5", "out0"]
    short = ["in1", "b1", "out1"]
    for name in chain[1:-1] + short[1:-1]:
        b.add_cell(name, "NAND2X1", 2.4, 10.0, x=25.0, y=0.0)
    nets = {}
    for seq in (chain, short):
        for u, v in zip(seq, seq[1:]):
            net = f"n_{u}"
            b.add_pin(b.cell_idx[u], net, 1.0, 5.0, "Y", 1)
            b.add_pin(b.cell_idx[v], net, 0.2, 5.0, "A", 0)
            nets[net] = seq is chain
    nl = b.build()
    nl.rows = [Row(0.0, 0.0, 50.0, 0.4, 10.0), Row(10.0, 0.0, 50.0, 0.4, 10.0)]
    nl.core = (0.0, 0.0, 50.0, 20.0)
    return nl, nets


def test_timing_proxy_weights_are_at_least_one_and_highest_on_the_longest_chain():
    nl, on_chain = _chain_netlist()
    crit = proxy_criticality(nl)
    w = weights_from_criticality(crit, 4.0)
    assert (w >= 1.0).all() and w.max() == pytest.approx(4.0)
    chain_w = [w[nl.net_names.index(n)] for n, c in on_chain.items() if c]
    short_w = [w[nl.net_names.index(n)] for n, c in on_chain.items() if not c]
    assert min(chain_w) > max(short_w)
    assert max(short_w) == 1.0


def test_slack_file_weights_the_nets_of_the_worst_path(tmp_path):
    nl, on_chain = _chain_netlist()
    pins = [{"pin": "in0", "instance": None, "pin_name": "in0"}]
    for c in ("a1", "a2", "a3"):
        pins += [{"pin": f"{c}/A", "instance": c, "pin_name": "A"}, {"pin": f"{c}/Y", "instance": c, "pin_name": "Y"}]
    paths = {"paths": [{"slack_ns": -1.0, "pins": pins},
                       {"slack_ns": 2.0, "pins": [{"pin": "in1", "instance": None, "pin_name": "in1"},
                                                  {"pin": "b1/A", "instance": "b1", "pin_name": "A"}]}]}
    f = tmp_path / "paths.json"
    f.write_text(__import__("json").dumps(paths))
    crit = slack_criticality(nl, f)
    assert crit[nl.net_names.index("n_in0")] == 1.0 and crit[nl.net_names.index("n_a2")] == 1.0
    assert crit[nl.net_names.index("n_in1")] == 0.0          # the best reported path
    assert crit[nl.net_names.index("n_a5")] == 0.0           # on no reported path
    res = place(nl, PlaceConfig(timing_driven=True, timing_weights_file=str(f), frame_every=0, detailed=False))
    assert res.metrics["placement__timing__weighted_nets"] == 3
    assert res.metrics["placement__timing__source"] == "slack file"


def test_timing_driven_placement_reports_weighted_nets_and_stays_legal():
    nl = generate_netlist(600, utilization=0.6, seed=2)
    res = place(nl, PlaceConfig(timing_driven=True, detailed=False, frame_every=0))
    assert res.metrics["placement__timing__source"] == "proxy"
    assert 0 < res.metrics["placement__timing__weighted_nets"] < nl.n_nets
    assert res.metrics["placement__legal"] is True


def test_knobs_are_in_the_registry_and_the_config():
    from engine.registry.knobs import KNOBS
    from engine.registry.metrics import METRICS

    for name in ("routability", "routability_max_rounds", "routability_rudy_threshold", "inflation_max",
                 "routability_auto_congestion", "timing_driven", "timing_weight_max", "timing_weights_file"):
        assert name in PlaceConfig.__dataclass_fields__
        spec = KNOBS[f"place.{name}"]
        assert spec.doc and spec.default == getattr(PlaceConfig(), name)
    assert KNOBS["place.inflation_max"].low == 1.0
    with pytest.raises(Exception, match="out of range"):
        KNOBS["place.inflation_max"].validate(0.5)
    for key in ("placement__routability__rounds", "placement__routability__rudy_top10__after",
                "placement__timing__weighted_nets", "placement__routability__auto"):
        assert key in METRICS


def test_flow_place_step_re_places_with_routability_when_congestion_is_high(tmp_path):
    from engine.config import FlowConfig
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.io.def_io import read_def
    from engine.pdk import load_pdk
    from engine.runs import RunStore

    store = RunStore(tmp_path / "runs")
    d = resolve("counter")
    results = {}
    # a crowded core (90% utilisation) against a threshold that a spread placement passes and this one does not
    for label, threshold in (("congested", 0.05), ("relaxed", 9.0)):
        cfg = FlowConfig(design_files=d.files, top=d.top, clock_port=d.clock_port, clock_ns=d.clock_ns)
        cfg.floorplan.utilization = 0.9
        cfg.place = {"frame_every": 0, "routability_auto_congestion": threshold, "target_density": 1.0}
        run = run_flow(cfg, store, until="place")
        assert run.status == "done", run.info().get("error")
        results[label] = (run, run.step_metrics("place"))
    run, m = results["congested"]
    assert m["placement__routability__auto"] == "re-placed with routability"
    assert m["placement__routability__auto_congestion_top10"] > 0.05
    assert m["placement__routability__rounds"] >= 1
    assert "placement__routability__auto_congestion_top10_after" in m
    placed = read_def(run.step_dir("place", create=False) / "placed.def", load_pdk())
    assert check_legality(placed).ok
    _, m2 = results["relaxed"]
    assert m2["placement__routability__auto"] == "not needed"
    assert "placement__routability__rounds" not in m2
    assert m2["placement__routability__auto_congestion_top10"] == pytest.approx(
        m["placement__routability__auto_congestion_top10"], rel=1e-6)
