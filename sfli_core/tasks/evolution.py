"""Time-dependent PINN tasks on x × t, periodic in x: Allen–Cahn and linear advection.

Inputs are (x, t) in that order. Loss {'pde': mean r², 'ic': w_ic · mean (u(x,0) − u₀)²,
'bc': w_bc · mean (u(a,t) − u(b,t))²} (periodicity of u; for Allen–Cahn also of u_x, a second-order PDE).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import PositiveFloat

from ..geometry import Box
from ..keys import fmt_num
from ..params import Params
from . import allen_cahn_reference
from .base import Batch, Field, PDETask, derivatives, differentiable, point_mean


class PeriodicEvolutionTask(PDETask):
    packable = True
    match_derivative: bool = False

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        """u₀(x) for x [N, 1] → [N, 1]."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Batch:
        (a, t0), (b, t1) = self.box.lo, self.box.hi
        p = self.params
        x0 = a + (b - a) * torch.rand(p.n_initial, 1, generator=generator, dtype=torch.float64)
        tb = t0 + (t1 - t0) * torch.rand(p.n_boundary, 1, generator=generator, dtype=torch.float64)
        return {"x": self.box.uniform(n, generator).to(dtype),
                "x0": torch.cat([x0, torch.full_like(x0, t0)], 1).to(dtype),
                "u0": self.initial(x0).to(dtype),
                "xa": torch.cat([torch.full_like(tb, a), tb], 1).to(dtype),
                "xb": torch.cat([torch.full_like(tb, b), tb], 1).to(dtype)}

    def loss_terms(self, u: Field, batch: Batch) -> dict[str, torch.Tensor]:
        p = self.params
        # both ends of the period (and, without derivatives, the initial line) in one pass of the network
        x0, ends = batch["x0"], torch.cat([batch["xa"], batch["xb"]], -2)
        if self.match_derivative:
            d = derivatives(u, differentiable(u, ends), directions=[[1.0, 0.0]])
            at_ends, at_start = torch.cat([d.value, d.grad], -1), u(x0)
        else:
            at_start, at_ends = u(torch.cat([x0, ends], -2)).split([x0.shape[-2], ends.shape[-2]], -2)
        at_a, at_b = at_ends.chunk(2, -2)
        return {"pde": self.pde_term(u, batch["x"]),
                "ic": p.ic_weight * point_mean((at_start - batch["u0"]) ** 2),
                "bc": p.bc_weight * point_mean(((at_a - at_b) ** 2).sum(-1, keepdim=True))}


class AllenCahnParams(Params):
    diffusion: PositiveFloat = 1e-4
    ic_weight: float = 100.0
    bc_weight: float = 1.0
    n_initial: int = 256
    n_boundary: int = 128
    reference_modes: int = 512
    reference_dt: float = 1e-4
    eval_x_stride: int = 2
    eval_t_stride: int = 2


class AllenCahn(PeriodicEvolutionTask):
    """u_t − d u_xx + 5u³ − 5u = 0, x ∈ [−1, 1] periodic, t ∈ [0, 1], u(x, 0) = x² cos(πx).

    The reference is the project's ETDRK4 Fourier-spectral solution (cached); off its grid it is
    interpolated bilinearly. The evaluation grid is a sub-grid of the reference nodes (exact there).
    """

    family = "allen_cahn"
    Params = AllenCahnParams
    box = Box((-1.0, 0.0), (1.0, 1.0))
    default_n_train = 2048
    match_derivative = True

    @property
    def name(self) -> str:
        return f"allen_cahn_d{fmt_num(self.params.diffusion)}"

    def reference(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x [n_x], t [n_t], u [n_t, n_x]) with x = 1 appended by periodicity."""
        p = self.params
        x, t, u = allen_cahn_reference.reference(p.diffusion, n_x=p.reference_modes, dt=p.reference_dt)
        return np.append(x, 1.0), t, np.concatenate([u, u[..., :1]], axis=1)

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return x**2 * torch.cos(math.pi * x)

    def residual(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        # d u_xx − u_t in one Taylor-mode stream: the second derivative along √d e_x, summed with the drift −e_t
        # (three streams, u, √d u_x and this, instead of four with u_t on its own)
        d = derivatives(u, x, second=(0,), directions=[[math.sqrt(self.params.diffusion), 0.0]], summed=True,
                        drift=[0.0, -1.0])
        return 5 * d.value**3 - 5 * d.value - d.second

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        xs, ts, us = (torch.from_numpy(a) for a in self.reference())
        xq, tq = x[:, 0].to(torch.float64).contiguous(), x[:, 1].to(torch.float64).contiguous()
        i = torch.clamp(torch.searchsorted(xs, xq, right=True) - 1, 0, len(xs) - 2)
        j = torch.clamp(torch.searchsorted(ts, tq, right=True) - 1, 0, len(ts) - 2)
        wx = (xq - xs[i]) / (xs[i + 1] - xs[i])
        wt = (tq - ts[j]) / (ts[j + 1] - ts[j])
        value = ((1 - wt) * ((1 - wx) * us[j, i] + wx * us[j, i + 1])
                 + wt * ((1 - wx) * us[j + 1, i] + wx * us[j + 1, i + 1]))
        return value[:, None]

    def eval_points(self) -> torch.Tensor:
        x, t, _ = self.reference()
        xs = torch.from_numpy(x[:-1:self.params.eval_x_stride])
        ts = torch.from_numpy(t[:: self.params.eval_t_stride])
        xx, tt = torch.meshgrid(xs, ts, indexing="ij")
        return torch.stack([xx.reshape(-1), tt.reshape(-1)], dim=-1)


class AdvectionParams(Params):
    speed: float = 30.0
    ic_weight: float = 10.0
    bc_weight: float = 1.0
    n_initial: int = 256
    n_boundary: int = 128
    n_eval_per_dim: int = 101


class Advection1D(PeriodicEvolutionTask):
    """u_t + c u_x = 0 on [0, 2π] × [0, 1], u(x, 0) = sin x, periodic; exact u = sin(x − c t)."""

    family = "advection1d"
    Params = AdvectionParams
    box = Box((0.0, 0.0), (2 * math.pi, 1.0))
    default_n_train = 2048

    @property
    def name(self) -> str:
        return f"advection1d_c{fmt_num(self.params.speed)}"

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x[..., :1] - self.params.speed * x[..., 1:2])

    def residual(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        # u_t + c u_x is u's derivative along (c, 1): one Taylor-mode stream instead of two
        return derivatives(u, x, directions=[[self.params.speed, 1.0]]).grad

    def eval_points(self) -> torch.Tensor:
        return self.box.grid(self.params.n_eval_per_dim)
