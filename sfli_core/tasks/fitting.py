"""Function-fitting tasks (docs/science.md §5)."""

from __future__ import annotations

import math

import torch

from ..geometry import Box
from ..keys import fmt_num
from ..params import Params
from .base import FitTask


class Fit1DParams(Params):
    frequencies: tuple[float, ...] = (1.0, 4.0, 16.0)
    amplitudes: tuple[float, ...] = (1.0, 0.5, 0.25)
    n_eval: int = 2001


class Fit1DMultiscale(FitTask):
    """f(x) = Σ_k A_k sin(k_k π x) on [−1, 1]."""

    packable = True
    family = "fit1d_multiscale"
    Params = Fit1DParams
    box = Box((-1.0,), (1.0,))

    def __init__(self, params: Fit1DParams):
        if len(params.frequencies) != len(params.amplitudes):
            raise ValueError("task.params: frequencies and amplitudes must have the same length")
        super().__init__(params)

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        return sum(a * torch.sin(k * math.pi * x) for k, a in zip(self.params.frequencies, self.params.amplitudes))

    def eval_points(self) -> torch.Tensor:
        return self.box.grid(self.params.n_eval)


class Fit2DParams(Params):
    low: float = 1.0
    high: float = 8.0
    n_eval_per_dim: int = 101


class Fit2DMultiscale(FitTask):
    """f(x, y) = sin(low·π x) · sin(high·π y) on [−1, 1]²: a product of a low- and a high-frequency sine."""

    packable = True
    family = "fit2d_multiscale"
    Params = Fit2DParams
    box = Box((-1.0, -1.0), (1.0, 1.0))
    default_n_train = 4096

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return torch.sin(p.low * math.pi * x[..., :1]) * torch.sin(p.high * math.pi * x[..., 1:2])

    def eval_points(self) -> torch.Tensor:
        return self.box.grid(self.params.n_eval_per_dim)


class SineSumParams(Params):
    dim: int = 5
    lo: float = -4.0
    hi: float = 2.0
    amplitude: float = 3.5
    omega: float = 5.0
    phase: float = 1.0
    n_eval: int = 4096


class SineSum(FitTask):
    """f(x) = Σ_k A sin(ω x_k + φ) on [lo, hi]^d: the condensation paper's synthetic targets (its Fig. 3 uses
    d = 5, [−4, 2], A = 3.5, ω = 5, φ = 1 with 80 training points; Fig. 4 d = 3, A = 4, ω = 12)."""

    packable = True
    family = "sine_sum"
    Params = SineSumParams
    default_n_train = 80

    def __init__(self, params: SineSumParams):
        super().__init__(params)
        self.box = Box((params.lo,) * params.dim, (params.hi,) * params.dim)

    @property
    def name(self) -> str:
        p = self.params
        return f"sine_sum_d{p.dim}_w{fmt_num(p.omega)}"

    def solution(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return (p.amplitude * torch.sin(p.omega * x + p.phase)).sum(dim=-1, keepdim=True)

    def eval_points(self) -> torch.Tensor:
        return self.box.evaluation_set(self.params.n_eval, seed=12345)
