"""Elliptic PINN tasks with manufactured solutions and Dirichlet data: Poisson 1-D/2-D, Helmholtz 2-D."""

from __future__ import annotations

import math

import torch

from ..geometry import Box
from ..keys import fmt_num
from ..params import Params
from .base import Batch, Field, PDETask, boundary_points, derivatives, point_mean


class DirichletTask(PDETask):
    """Loss {'pde': mean r², 'bc': w_bc · mean (u − u*)² on ∂Ω}; subclasses give the residual and u*."""

    packable = True

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Batch:
        xb = boundary_points(self.box, self.params.n_boundary, generator)
        return {"x": self.box.uniform(n, generator).to(dtype), "xb": xb.to(dtype),
                "ub": self.solution(xb).to(dtype)}

    def loss_terms(self, u: Field, batch: Batch) -> dict[str, torch.Tensor]:
        return {"pde": self.pde_term(u, batch["x"]),
                "bc": self.params.bc_weight * point_mean((u(batch["xb"]) - batch["ub"]) ** 2)}

    def laplacian(self, u: Field, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u(x), Δu(x)), each [..., N, 1]."""
        d = derivatives(u, x, second=range(x.shape[-1]), summed=True)
        return d.value, d.second

    def eval_points(self) -> torch.Tensor:
        return self.box.grid(self.params.n_eval_per_dim)


class PoissonTask(DirichletTask):
    """−Δu = f with a manufactured solution: subclasses give u* and f."""

    def source(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def residual(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        _, lap = self.laplacian(u, x)
        return -lap - self.source(x)


class Poisson1DParams(Params):
    a: float = 16.0
    c: float = 0.1
    bc_weight: float = 10.0
    n_boundary: int = 2
    n_eval_per_dim: int = 1001


class Poisson1D(PoissonTask):
    """−u″ = f on [0, 1], u(0) = u(1) = 0, u = sin(2πx) + c sin(aπx)."""

    family = "poisson1d"
    Params = Poisson1DParams
    box = Box((0.0,), (1.0,))
    default_n_train = 256

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(2 * math.pi * x) + self.params.c * torch.sin(self.params.a * math.pi * x)

    def source(self, x: torch.Tensor) -> torch.Tensor:
        a, c = self.params.a, self.params.c
        return (2 * math.pi) ** 2 * torch.sin(2 * math.pi * x) + c * (a * math.pi) ** 2 * torch.sin(a * math.pi * x)


class Poisson2DParams(Params):
    a: float = 4.0
    c: float = 0.1
    bc_weight: float = 10.0
    n_boundary: int = 256
    n_eval_per_dim: int = 101


class Poisson2D(PoissonTask):
    """−Δu = f on [0, 1]², Dirichlet, u = sin(πx) sin(πy) + c sin(aπx) sin(aπy)."""

    family = "poisson2d"
    Params = Poisson2DParams
    box = Box((0.0, 0.0), (1.0, 1.0))
    default_n_train = 1024

    def _modes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.params.a * math.pi
        low = torch.sin(math.pi * x[..., :1]) * torch.sin(math.pi * x[..., 1:2])
        return low, torch.sin(a * x[..., :1]) * torch.sin(a * x[..., 1:2])

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self._modes(x)
        return low + self.params.c * high

    def source(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self._modes(x)
        return 2 * math.pi**2 * low + self.params.c * 2 * (self.params.a * math.pi) ** 2 * high


class HelmholtzParams(Params):
    a1: float = 1.0
    a2: float = 4.0
    k: float = 1.0
    bc_weight: float = 10.0
    n_boundary: int = 400
    n_eval_per_dim: int = 101


class Helmholtz2D(DirichletTask):
    """Δu + k²u = q on [−1, 1]², u = sin(a₁πx) sin(a₂πy), q = (k² − (a₁² + a₂²)π²) u, Dirichlet."""

    family = "helmholtz2d"
    Params = HelmholtzParams
    box = Box((-1.0, -1.0), (1.0, 1.0))
    default_n_train = 2048

    @property
    def name(self) -> str:
        p = self.params
        return f"helmholtz2d_a{fmt_num(p.a1)}-{fmt_num(p.a2)}_k{fmt_num(p.k)}"

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return torch.sin(p.a1 * math.pi * x[..., :1]) * torch.sin(p.a2 * math.pi * x[..., 1:2])

    def residual(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        q = (p.k**2 - (p.a1**2 + p.a2**2) * math.pi**2) * self.solution(x)
        value, lap = self.laplacian(u, x)
        return lap + p.k**2 * value - q
