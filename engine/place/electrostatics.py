"""Spectral Poisson solver on the bin grid (ePlace): potential and field from a density map by DCT via torch.fft.

With Neumann boundaries the density expands in cosines, rho = sum a_uv cos(w_u x) cos(w_v y); then
phi = sum a_uv / (w_u^2 + w_v^2) cos cos and the field E = -grad phi has
E_x = sum a_uv w_u / (w_u^2 + w_v^2) sin(w_u x) cos(w_v y) (E_y symmetric). The (0, 0) term is dropped.
The 1-D transforms use Makhoul's N-point FFT algorithm.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _twiddle(n: int, sign: float, device, dtype) -> torch.Tensor:
    k = torch.arange(n, device=device, dtype=dtype)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n))        # (n,) complex


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-II along the last dim: X_k = sum_n x_n cos(pi k (2n+1) / 2N)."""
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)                  # even, then odd reversed
    return (torch.fft.fft(v, dim=-1) * _twiddle(n, -1.0, x.device, x.dtype)).real


def dct3(c: torch.Tensor) -> torch.Tensor:
    """Unnormalised DCT-III along the last dim: x_n = sum_k c_k cos(pi k (2n+1) / 2N) (the inverse sum)."""
    n = c.shape[-1]
    v = (torch.fft.ifft(c * _twiddle(n, 1.0, c.device, c.dtype), dim=-1) * n).real
    out = torch.empty_like(c)
    half = (n + 1) // 2
    out[..., ::2] = v[..., :half]
    out[..., 1::2] = v[..., half:].flip(-1)
    return out


def idxst(c: torch.Tensor) -> torch.Tensor:
    """Sine sum along the last dim: x_n = sum_k c_k sin(pi k (2n+1) / 2N).

    sin(pi k (n+1/2)/N) = (-1)^n cos(pi (N-k) (n+1/2)/N), so it is a DCT-III of the reversed coefficients.
    """
    n = c.shape[-1]
    rev = torch.zeros_like(c)
    rev[..., 1:] = c[..., 1:].flip(-1)                                          # rev_k = c_{N-k}
    sign = torch.ones(n, device=c.device, dtype=c.dtype)
    sign[1::2] = -1.0
    return dct3(rev) * sign


class PoissonSolver(nn.Module):
    """Potential and field of a (M, N) density map on bins of size (bin_w, bin_h) (microns)."""

    def __init__(self, m: int, n: int, bin_w: float, bin_h: float, device=None, dtype=torch.float32):
        super().__init__()
        self.m, self.n = m, n
        wu = math.pi * torch.arange(m, device=device, dtype=dtype) / (m * bin_w)    # (M,) rad per micron
        wv = math.pi * torch.arange(n, device=device, dtype=dtype) / (n * bin_h)    # (N,)
        w2 = wu[:, None] ** 2 + wv[None, :] ** 2                                    # (M, N)
        w2[0, 0] = 1.0
        inv = 1.0 / w2
        inv[0, 0] = 0.0
        self.inv_w2 = inv
        self.wu_inv = wu[:, None] * inv
        self.wv_inv = wv[None, :] * inv
        scale = torch.full((m, n), 4.0 / (m * n), device=device, dtype=dtype)
        scale[0, :] *= 0.5
        scale[:, 0] *= 0.5
        self.scale = scale
        # Parseval for the cosine basis: sum_ij cos_u cos_u' = M/2 (u = u' > 0) or M (u = u' = 0)
        norm = torch.full((m, n), m * n / 4.0, device=device, dtype=dtype)
        norm[0, :] *= 2.0
        norm[:, 0] *= 2.0
        self.parseval = norm

    def coefficients(self, rho: torch.Tensor) -> torch.Tensor:
        """(M, N) cosine coefficients a_uv with rho = sum a_uv cos cos exactly."""
        return dct2(dct2(rho).transpose(0, 1)).transpose(0, 1) * self.scale

    def forward(self, rho: torch.Tensor):
        """rho (M, N) -> (phi, e_x, e_y), each (M, N), sampled at bin centres."""
        a = self.coefficients(rho)
        phi = dct3(dct3(a * self.inv_w2).transpose(0, 1)).transpose(0, 1)
        # x is dim 0: sine along dim 0, cosine along dim 1
        e_x = idxst(dct3(a * self.wu_inv).transpose(0, 1)).transpose(0, 1)
        e_y = dct3(idxst(a * self.wv_inv).transpose(0, 1)).transpose(0, 1)
        return phi, e_x, e_y

    def energy_and_field(self, rho: torch.Tensor):
        """rho (M, N) -> (0.5 * sum rho * phi, e_x, e_y) without building phi (the energy comes from the
        coefficients by Parseval), which saves one 2-D transform per call in the placement loop."""
        a = self.coefficients(rho)
        energy = 0.5 * (a * a * self.inv_w2 * self.parseval).sum()
        e_x = idxst(dct3(a * self.wu_inv).transpose(0, 1)).transpose(0, 1)
        e_y = dct3(idxst(a * self.wv_inv).transpose(0, 1)).transpose(0, 1)
        return energy, e_x, e_y
