"""Axis-aligned boxes Ω = Π[a_k, b_k] and the point sets drawn on them (uniform grids, seeded samples)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Box:
    """Ω = Π_k [lo_k, hi_k] in the coordinates the network sees."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.lo)

    def center(self) -> torch.Tensor:
        return torch.tensor([(a + b) / 2 for a, b in zip(self.lo, self.hi)], dtype=torch.float64)

    def half_diagonal(self) -> float:
        """R = ½‖b − a‖₂."""
        return 0.5 * math.sqrt(sum((b - a) ** 2 for a, b in zip(self.lo, self.hi)))

    def uniform(self, n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
        """n points ~ U(Ω), shape [n, d]."""
        lo = torch.tensor(self.lo, dtype=dtype)
        hi = torch.tensor(self.hi, dtype=dtype)
        return lo + (hi - lo) * torch.rand(n, self.dim, generator=generator, dtype=dtype)

    def grid(self, per_dim: int | tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
        """Tensor-product grid including the end points, shape [Π n_k, d] (first coordinate slowest)."""
        counts = (per_dim,) * self.dim if isinstance(per_dim, int) else per_dim
        axes = [torch.linspace(a, b, n, dtype=dtype) for a, b, n in zip(self.lo, self.hi, counts)]
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=-1)

    def evaluation_set(self, n_min: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
        """The fixed set X on which the Gram matrix is discretised (docs/science.md §1): a uniform grid with at
        least ``n_min`` points in 1-D and 2-D, a seeded scrambled Sobol sample of ``n_min`` points above."""
        if self.dim <= 2:
            return self.grid(math.ceil(n_min ** (1 / self.dim)), dtype=dtype)
        sobol = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed)
        u = sobol.draw(n_min, dtype=dtype)
        lo = torch.tensor(self.lo, dtype=dtype)
        hi = torch.tensor(self.hi, dtype=dtype)
        return lo + (hi - lo) * u
