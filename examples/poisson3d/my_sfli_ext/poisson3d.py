"""A 3-D Poisson problem with a manufactured solution, written against sfli's task protocol.

−Δu = f on Ω = [0, 1]³, u = u* on ∂Ω, with

    u*(x) = Π_k sin(π x_k) + c · Π_k sin(a π x_k),   f = 3π² Π_k sin(π x_k) + c · 3a²π² Π_k sin(a π x_k),

so that the residual of u* is zero. Reusing sfli's Dirichlet/Poisson base class gives the loss terms
{'pde': mean r², 'bc': w_bc · mean (u − u*)² on ∂Ω}, the sampling of interior and boundary points and the
evaluation grid; this class only states the geometry, the solution and the source.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from sfli_core.geometry import Box
from sfli_core.keys import fmt_num
from sfli_core.params import Params
from sfli_core.tasks.elliptic import PoissonTask


class Poisson3DParams(Params):
    a: float = Field(2.0, gt=0)  # frequency of the second mode
    c: float = 0.5  # its amplitude
    bc_weight: float = Field(10.0, gt=0)
    n_boundary: int = Field(512, gt=0)
    n_eval_per_dim: int = Field(21, gt=1)  # 21³ = 9261 evaluation points


class Poisson3D(PoissonTask):
    """−Δu = f on [0, 1]³, Dirichlet, u = Π sin(πx_k) + c Π sin(aπx_k) (a user's task)."""

    family = "poisson3d"
    Params = Poisson3DParams
    box = Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    default_n_train = 1024

    @property
    def name(self) -> str:
        return f"poisson3d_a{fmt_num(self.params.a)}_c{fmt_num(self.params.c)}"

    def _modes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Π sin(π x_k), Π sin(a π x_k)), each [N, 1]."""
        a = self.params.a * math.pi
        return (torch.sin(math.pi * x).prod(dim=1, keepdim=True), torch.sin(a * x).prod(dim=1, keepdim=True))

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self._modes(x)
        return low + self.params.c * high

    def source(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self._modes(x)
        return 3 * math.pi**2 * low + self.params.c * 3 * (self.params.a * math.pi) ** 2 * high
