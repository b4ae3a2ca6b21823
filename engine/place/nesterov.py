"""Nesterov's accelerated gradient with a Lipschitz step-size estimate and backtracking (ePlace, Lu et al. 2015).

The step is alpha_k = |v_k - v_{k-1}| / |g(v_k) - g(v_{k-1})|, an inverse local Lipschitz constant; a step is
retried with the new estimate while the estimate shrinks by more than 5% (backtracking).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

# evaluate(v) -> (objective, preconditioned gradient); project(v) -> v inside the feasible box (in place ok)
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Project = Callable[[torch.Tensor], torch.Tensor]


class NesterovOptimizer:
    """State of one Nesterov run over a parameter tensor (any shape)."""

    def __init__(self, v0: torch.Tensor, evaluate: Evaluate, project: Project, *, max_backtracks: int = 10,
                 initial_step: float | None = None):
        self.evaluate = evaluate
        self.project = project
        self.max_backtracks = max_backtracks
        self.u = project(v0.clone())              # major solution
        self.v = self.u.clone()                   # reference (look-ahead) solution
        self.a = 1.0
        self.obj, self.g = evaluate(self.v)
        self.evaluations = 1
        self.alpha = initial_step if initial_step is not None else self._initial_step()

    def _initial_step(self, trial: float = 0.1) -> float:
        """Probe a small step to get the first Lipschitz estimate (DREAMPlace does the same)."""
        gnorm = float(self.g.norm())
        if gnorm == 0.0:
            return 1.0
        v1 = self.project(self.v - trial * self.g)
        _, g1 = self.evaluate(v1)
        self.evaluations += 1
        return self._lipschitz_step(self.v, v1, self.g, g1, fallback=trial)

    @staticmethod
    def _lipschitz_step(v0, v1, g0, g1, fallback: float) -> float:
        dg = float((g1 - g0).norm())
        dv = float((v1 - v0).norm())
        if dg == 0.0 or not math.isfinite(dg) or dv == 0.0:
            return fallback
        return dv / dg

    def step(self) -> None:
        """One accelerated step; updates u, v, a, alpha, obj, g (re-evaluated at the new v)."""
        a_next = (1.0 + math.sqrt(4.0 * self.a * self.a + 1.0)) / 2.0
        coef = (self.a - 1.0) / a_next
        alpha = self.alpha
        for _ in range(max(1, self.max_backtracks)):
            u_next = self.project(self.v - alpha * self.g)
            v_next = self.project(u_next + coef * (u_next - self.u))
            obj_next, g_next = self.evaluate(v_next)
            self.evaluations += 1
            alpha_next = self._lipschitz_step(self.v, v_next, self.g, g_next, fallback=alpha)
            if alpha_next > 0.95 * alpha:
                break
            alpha = alpha_next
        self.u, self.v, self.a = u_next, v_next, a_next
        self.obj, self.g, self.alpha = obj_next, g_next, alpha_next

    def refresh(self) -> None:
        """Re-evaluate the gradient at v (after the objective's weights changed)."""
        self.obj, self.g = self.evaluate(self.v)
        self.evaluations += 1
