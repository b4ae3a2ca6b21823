"""The placer's numerical ops against their slow references (engine/place/reference.py), with gradients checked
numerically."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.place import reference as ref
from engine.place.density import BinGrid, CellRaster, ElectrostaticDensity, stretched_sizes
from engine.place.electrostatics import PoissonSolver, dct2, dct3, idxst
from engine.place.generate import generate_netlist
from engine.place.metrics import rudy_map
from engine.place.wirelength import HPWL, NetTensors, WAWirelength

f64 = torch.float64


@pytest.fixture(scope="module")
def small():
    nl = generate_netlist(60, seed=3, n_io=6)
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = nl.core
    mov = ~nl.cell_fixed
    nl.x[mov] = rng.uniform(x0, x1 - nl.cell_w[mov])
    nl.y[mov] = rng.uniform(y0, y1 - nl.cell_h[mov])
    return nl


def _nets(nl, max_degree=1 << 30):
    return NetTensors(nl.pin_cell, nl.pin_dx, nl.pin_dy, nl.net_start, nl.net_pins, nl.net_weight,
                      max_degree=max_degree, device="cpu", dtype=f64)


def _pos(nl):
    return torch.tensor(np.stack([nl.x, nl.y]), dtype=f64)


def test_hpwl_matches_reference_and_netlist(small):
    nl = small
    lists = ref.nets_as_lists(nl.pin_cell, nl.pin_dx, nl.pin_dy, nl.net_start, nl.net_pins)
    want = ref.hpwl_ref(lists, nl.x, nl.y, nl.net_weight)
    got = float(HPWL(_nets(nl))(_pos(nl)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(nl.hpwl(), want, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 5.0, 80.0])
def test_wa_value_matches_reference(small, gamma):
    nl = small
    lists = ref.nets_as_lists(nl.pin_cell, nl.pin_dx, nl.pin_dy, nl.net_start, nl.net_pins)
    want = ref.wa_ref(lists, nl.x, nl.y, gamma, nl.net_weight)
    got = float(WAWirelength(_nets(nl), gamma)(_pos(nl)))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_wa_approaches_hpwl_from_below_as_gamma_shrinks(small):
    nl = small
    nets, pos = _nets(nl), _pos(nl)
    hp = float(HPWL(nets)(pos))
    vals = [float(WAWirelength(nets, g)(pos)) for g in (50.0, 5.0, 0.05)]
    assert vals[0] < vals[1] < vals[2] <= hp + 1e-9
    assert vals[2] == pytest.approx(hp, rel=1e-3)


def test_wa_gradient_is_numerically_right(small):
    nl = small
    wa = WAWirelength(_nets(nl), 3.0)
    pos = _pos(nl)[:, :40].clone().requires_grad_(True)   # the first 40 cells; others stay put
    full = _pos(nl)

    def f(p):
        q = torch.cat([p, full[:, 40:]], dim=1)
        return wa(q)

    assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-6)


def test_max_degree_filter_drops_big_nets(small):
    nl = small
    deg = np.diff(nl.net_start)
    nets = _nets(nl, max_degree=3)
    assert nets.n_nets == int(((deg >= 2) & (deg <= 3)).sum())


@pytest.mark.parametrize("n", [8, 7, 16, 33])
def test_dct_transforms_match_matrices(n):
    torch.manual_seed(n)
    x = torch.randn(5, n, dtype=f64)
    k = torch.arange(n, dtype=f64)
    ang = math.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n)           # (k, i)
    torch.testing.assert_close(dct2(x), x @ torch.cos(ang).T)
    torch.testing.assert_close(dct3(x), x @ torch.cos(ang))
    torch.testing.assert_close(idxst(x), x @ torch.sin(ang))


def test_poisson_matches_cosine_series():
    rng = np.random.default_rng(1)
    rho = rng.uniform(0, 1.5, (8, 6))
    solver = PoissonSolver(8, 6, 2.0, 3.5, dtype=f64)
    phi, ex, ey = (t.numpy() for t in solver(torch.tensor(rho)))
    phi_r, ex_r, ey_r = ref.poisson_ref(rho, 2.0, 3.5)
    np.testing.assert_allclose(phi, phi_r, atol=1e-9)
    np.testing.assert_allclose(ex, ex_r, atol=1e-9)
    np.testing.assert_allclose(ey, ey_r, atol=1e-9)
    energy, ex2, _ = solver.energy_and_field(torch.tensor(rho))
    assert float(energy) == pytest.approx(0.5 * float((rho * phi).sum()), rel=1e-10)
    np.testing.assert_allclose(ex2.numpy(), ex_r, atol=1e-9)


def test_poisson_field_points_from_dense_to_empty():
    rho = np.zeros((16, 16))
    rho[4:6, 7:9] = 4.0                                                     # a clump left of centre
    _, ex, _ = PoissonSolver(16, 16, 1.0, 1.0, dtype=f64)(torch.tensor(rho))
    assert ex[10, 8] > 0 and ex[1, 8] < 0                                   # pushes away on both sides


def test_density_map_matches_reference_with_stretching():
    rng = np.random.default_rng(2)
    grid = BinGrid(0.0, 0.0, 40.0, 30.0, 8, 6)
    n = 30
    x, y = rng.uniform(-3, 38, n), rng.uniform(-3, 28, n)
    w, h = rng.choice([0.8, 2.4, 4.0, 12.0], n), np.full(n, 10.0)
    t = lambda a: torch.tensor(a, dtype=f64)  # noqa: E731
    sw, sh, weight = stretched_sizes(t(w), t(h), grid, True)
    # stretched rectangles keep the cell centre and the charge
    np.testing.assert_allclose((sw * sh * weight).numpy(), w * h)
    sx, sy = x + (w - sw.numpy()) / 2, y + (h - sh.numpy()) / 2
    got = CellRaster(grid, sw, sh, weight).density(t(sx), t(sy)).numpy()
    want = ref.density_ref(sx, sy, sw.numpy(), sh.numpy(), weight.numpy(), 0.0, 0.0, grid.bin_w, grid.bin_h, 8, 6)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_density_gradient_agrees_with_numerical_energy_gradient():
    """The ePlace gradient (charge x field) vs finite differences of the energy: same direction, close size."""
    rng = np.random.default_rng(4)
    grid = BinGrid(0.0, 0.0, 64.0, 64.0, 32, 32)
    n = 40
    w, h = torch.full((n,), 6.0, dtype=f64), torch.full((n,), 6.0, dtype=f64)
    pos = torch.tensor(np.stack([rng.uniform(20, 38, n), rng.uniform(20, 38, n)]), dtype=f64)
    op = ElectrostaticDensity(grid, w, h, torch.arange(n), n, torch.zeros(32, 32, dtype=f64), 1.0, stretch=False)
    p = pos.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(op(p), p)
    num = torch.zeros_like(pos)
    eps = 1e-3
    for d in range(2):
        for i in range(n):
            a, b = pos.clone(), pos.clone()
            a[d, i] += eps
            b[d, i] -= eps
            num[d, i] = (op.energy_and_grad(a)[0] - op.energy_and_grad(b)[0]) / (2 * eps)
    cos = float((g * num).sum() / (g.norm() * num.norm()))
    assert cos > 0.98
    assert float(g.norm() / num.norm()) == pytest.approx(1.0, rel=0.15)


def test_rudy_matches_reference_and_conserves_wirelength(small):
    nl = small
    lists = ref.nets_as_lists(nl.pin_cell, nl.pin_dx, nl.pin_dy, nl.net_start, nl.net_pins)
    x0, y0, x1, y1 = nl.core
    b = 8
    got = rudy_map(nl, nl.core, bins=b)
    want = ref.rudy_ref(lists, nl.x, nl.y, x0, y0, (x1 - x0) / b, (y1 - y0) / b, b)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got.sum() * (x1 - x0) * (y1 - y0) / b / b == pytest.approx(nl.hpwl(), rel=1e-9)
