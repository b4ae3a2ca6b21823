"""Wirelength ops: weighted-average (WA) smooth wirelength and exact HPWL.

Both are nn.Modules that hold the static netlist tensors (pin -> cell, pin offsets, pin -> net, net weights)
and take only the cell positions `pos` of shape (2, n) (lower-left corners; row 0 = x, row 1 = y).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def segment_extreme(values: torch.Tensor, index: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    """Per-net max or min of pin coordinates: values (P,), index (P,) net id -> (n,)."""
    fill = -torch.inf if reduce == "amax" else torch.inf
    out = torch.full((n,), fill, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, index, values, reduce=reduce, include_self=True)


class NetTensors:
    """Pins and nets of a netlist as torch tensors, filtered by net degree.

    Keeps only nets with 2 <= degree <= max_degree (1-pin nets have no length; huge nets such as the clock
    dominate the smooth objective and are left to buffering), renumbered 0..n_nets-1.
    """

    def __init__(self, pin_cell, pin_dx, pin_dy, net_start, net_pins, net_weight, *, max_degree: int,
                 device, dtype):
        pin_cell = np.asarray(pin_cell, dtype=np.int64)
        net_start = np.asarray(net_start, dtype=np.int64)
        net_pins = np.asarray(net_pins, dtype=np.int64)
        degree = np.diff(net_start)
        keep = (degree >= 2) & (degree <= max_degree)
        net_of_slot = np.repeat(np.arange(len(degree)), degree)  # (P_slots,) original net id of each CSR slot
        slot_keep = keep[net_of_slot]
        kept_ids = np.flatnonzero(keep)
        renum = np.full(len(degree), -1, dtype=np.int64)
        renum[kept_ids] = np.arange(len(kept_ids))
        pins = net_pins[slot_keep]                                # (P,) pin ids, grouped by net
        self.n_nets = int(len(kept_ids))
        self.n_pins = int(len(pins))
        t = dict(device=device)
        self.pin_net = torch.as_tensor(renum[net_of_slot[slot_keep]], **t)                # (P,)
        self.pin_cell = torch.as_tensor(pin_cell[pins], **t)                              # (P,)
        self.pin_dx = torch.as_tensor(np.asarray(pin_dx)[pins], dtype=dtype, device=device)
        self.pin_dy = torch.as_tensor(np.asarray(pin_dy)[pins], dtype=dtype, device=device)
        w = np.asarray(net_weight, dtype=np.float64)[kept_ids] if net_weight is not None else np.ones(self.n_nets)
        self.net_weight = torch.as_tensor(w, dtype=dtype, device=device)                  # (N,)
        self.kept_nets = kept_ids

    def pin_xy(self, pos: torch.Tensor):
        """Pin coordinates (P,), (P,) from cell positions (2, n)."""
        return pos[0, self.pin_cell] + self.pin_dx, pos[1, self.pin_cell] + self.pin_dy


class _WAFunction(torch.autograd.Function):
    """Value and analytic gradient of WA in one pass (x and y stacked), which is ~2x cheaper than autograd
    through the scatter ops. d WA+/d x_k = e_k / S * (1 + (x_k - WA+) / gamma), WA- symmetric."""

    @staticmethod
    def forward(ctx, pos, op):
        value, grad, hpwl = op.value_and_grad(pos.detach())
        ctx.save_for_backward(grad)
        op.last_hpwl = hpwl
        return value

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None


class WAWirelength(nn.Module):
    """Weighted-average wirelength (Hsu et al.), differentiable; -> scalar sum over nets of weight * WA_x + WA_y.

    WA+ = sum x e^{x/g} / sum e^{x/g} approximates the max, WA- the min; the per-net max/min are subtracted
    inside the exponentials for stability (the value does not depend on the shift). After each forward,
    `last_hpwl` holds the exact HPWL of the kept nets at the same positions (a by-product of the max/min).
    """

    def __init__(self, nets: NetTensors, gamma: float = 1.0):
        super().__init__()
        self.nets = nets
        self.gamma = float(gamma)
        # Before any forward, and for ever when no net is kept (all above max_degree): no wirelength at all.
        self.last_hpwl = torch.zeros((), dtype=nets.net_weight.dtype, device=nets.net_weight.device)
        n = nets.n_nets
        self._idx2 = torch.cat([nets.pin_net, nets.pin_net + n]) if n else nets.pin_net  # (2P,) net id per axis

    def value_and_grad(self, pos: torch.Tensor):
        nets = self.nets
        n = nets.n_nets
        p = torch.stack(nets.pin_xy(pos))                                # (2, P)
        flat = p.reshape(-1)                                             # (2P,)
        idx = self._idx2
        pmax = segment_extreme(flat, idx, 2 * n, "amax")               # (2N,)
        pmin = segment_extreme(flat, idx, 2 * n, "amin")
        inv_g = 1.0 / self.gamma
        e_pos = torch.exp((flat - pmax[idx]) * inv_g)                    # (2P,)
        e_neg = torch.exp((pmin[idx] - flat) * inv_g)
        zeros = torch.zeros(2 * n, dtype=p.dtype, device=p.device)
        s_pos = zeros.index_add(0, idx, e_pos)                           # (2N,)
        s_neg = zeros.index_add(0, idx, e_neg)
        wa_pos = zeros.index_add(0, idx, flat * e_pos) / s_pos
        wa_neg = zeros.index_add(0, idx, flat * e_neg) / s_neg
        w2 = torch.cat([nets.net_weight, nets.net_weight])              # (2N,)
        value = (w2 * (wa_pos - wa_neg)).sum()
        hpwl = (w2 * (pmax - pmin)).sum()
        g_pin = w2[idx] * (e_pos / s_pos[idx] * (1.0 + (flat - wa_pos[idx]) * inv_g)
                           - e_neg / s_neg[idx] * (1.0 - (flat - wa_neg[idx]) * inv_g))   # (2P,)
        g_pin = g_pin.view(2, -1)
        grad = torch.zeros_like(pos)
        grad[0].index_add_(0, nets.pin_cell, g_pin[0])
        grad[1].index_add_(0, nets.pin_cell, g_pin[1])
        return value, grad, hpwl

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        if self.nets.n_nets == 0:
            self.last_hpwl = pos.new_zeros(())
            return pos.sum() * 0.0
        return _WAFunction.apply(pos, self)


class HPWL(nn.Module):
    """Exact half-perimeter wirelength: sum over nets of weight * (bbox width + bbox height)."""

    def __init__(self, nets: NetTensors):
        super().__init__()
        self.nets = nets

    def per_net(self, pos: torch.Tensor) -> torch.Tensor:
        """(N,) weighted HPWL of each kept net."""
        nets = self.nets
        px, py = nets.pin_xy(pos)
        n = nets.n_nets
        w = segment_extreme(px, nets.pin_net, n, "amax") - segment_extreme(px, nets.pin_net, n, "amin")
        h = segment_extreme(py, nets.pin_net, n, "amax") - segment_extreme(py, nets.pin_net, n, "amin")
        return nets.net_weight * (w + h)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        if self.nets.n_nets == 0:
            return pos.sum() * 0.0
        return self.per_net(pos).sum()
