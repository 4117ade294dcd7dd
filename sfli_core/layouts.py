"""Where SFLI places the m neurons of a layer that reads x ∈ Ω = Π[a_k, b_k] (``init.params.layout``;
docs/science.md §3): the hyperplanes α_i·(x − x_c) = r_i of sigmoidal and ramp neurons, or the frequency
vectors of periodic ones. x_c is the box centre, R its half-diagonal, d its dimension.

  * ``random`` (the first reconstruction, kept so that old runs stay comparable): α_i a seeded unit Gaussian
    direction, r_i ~ U[−R, R], cell width h = 2R/m^{1/d};
  * ``axis``: the neurons split into d groups (sizes ⌊m/d⌋, the first m mod d one larger), group k built like
    the 1-D construction along axis k: α = ±e_k alternating, transitions at the midpoints of m_k equal cells of
    [a_k, b_k], h_k = (b_k − a_k)/m_k; deterministic;
  * ``quasi_uniform``: a scrambled Sobol sequence in d + 1 dimensions (seeded): the first d coordinates give the
    direction (the angle 2πu in 2-D; the normalised inverse-normal transform above), the last the offset
    r_i = ρ(α_i)(2u − 1), with ρ(α) = Σ_k |α_k|(b_k − a_k)/2 the box's half-width along α, so that every
    hyperplane crosses the box; h = 2R/m^{1/d}.
In 1-D the three coincide: transitions at the midpoints of m equal cells, α alternating +1, −1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .geometry import Box

Layout = Literal["random", "axis", "quasi_uniform"]
LAYOUTS: tuple[str, ...] = ("random", "axis", "quasi_uniform")


@dataclass
class Hyperplanes:
    alpha: torch.Tensor  # unit directions [m, d]
    r: torch.Tensor  # offsets [m]: neuron i's transition is α_i·(x − x_c) = r_i
    h: torch.Tensor  # [m] the cell width each neuron's transition is scaled to (γ_i = κ/h_i)


def cell_width(box: Box, m: int) -> float:
    """h = 2R/m^{1/d}: the spacing of m hyperplanes spread over the box (1-D: the cell width (b − a)/m)."""
    return 2 * box.half_diagonal() / m ** (1 / box.dim)


def axis_groups(m: int, d: int) -> list[int]:
    """Group sizes of the ``axis`` layout: m neurons over d axes, the first m mod d groups one larger."""
    return [m // d + (k < m % d) for k in range(d)]


def _midpoint_lattice(a: float, b: float, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D construction: signs alternating +1, −1 and the midpoints of m equal cells of [a, b]."""
    t = a + (torch.arange(m, dtype=torch.float64) + 0.5) * (b - a) / m
    sign = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0).to(torch.float64)
    return sign, t


def _sobol(box: Box, m: int, g: torch.Generator) -> torch.Tensor:
    """m points of a scrambled Sobol sequence in [0, 1)^{d+1}, its scrambling seeded from ``g``."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return torch.quasirandom.SobolEngine(box.dim + 1, scramble=True, seed=seed).draw(m, dtype=torch.float64)


def _sphere(u: torch.Tensor, d: int) -> torch.Tensor:
    """Unit directions [m, d] from quasi-random u [m, ≥d−1 or d] (angle in 2-D, inverse normal above)."""
    if d == 2:
        theta = 2 * math.pi * u[:, 0]
        return torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    z = torch.special.ndtri(u[:, :d].clamp(1e-12, 1 - 1e-12))
    return z / z.norm(dim=1, keepdim=True)


def hyperplanes(box: Box, m: int, layout: Layout, g: torch.Generator) -> Hyperplanes:
    """The m hyperplanes of a sigmoidal or ramp layer under ``layout`` (module docstring)."""
    if box.dim == 1:
        sign, t = _midpoint_lattice(box.lo[0], box.hi[0], m)
        h = torch.full((m,), (box.hi[0] - box.lo[0]) / m, dtype=torch.float64)
        return Hyperplanes(sign[:, None], sign * (t - box.center()[0]), h)
    if layout == "axis":
        alphas, offsets, widths = [], [], []
        for k, size in enumerate(axis_groups(m, box.dim)):
            sign, t = _midpoint_lattice(box.lo[k], box.hi[k], size)
            alpha = torch.zeros(size, box.dim, dtype=torch.float64)
            alpha[:, k] = sign
            alphas.append(alpha)
            offsets.append(sign * (t - box.center()[k]))
            widths.append(torch.full((size,), (box.hi[k] - box.lo[k]) / max(size, 1), dtype=torch.float64))
        return Hyperplanes(torch.cat(alphas), torch.cat(offsets), torch.cat(widths))
    h = torch.full((m,), cell_width(box, m), dtype=torch.float64)
    if layout == "quasi_uniform":
        u = _sobol(box, m, g)
        alpha = _sphere(u, box.dim)
        half_width = alpha.abs() @ (torch.tensor(box.hi, dtype=torch.float64) - torch.tensor(box.lo)) / 2
        return Hyperplanes(alpha, half_width * (2 * u[:, -1] - 1), h)
    alpha = torch.randn(m, box.dim, generator=g, dtype=torch.float64)
    alpha = alpha / alpha.norm(dim=1, keepdim=True)
    return Hyperplanes(alpha, box.half_diagonal() * (2 * torch.rand(m, generator=g, dtype=torch.float64) - 1), h)


def default_omega_max(box: Box, m: int, scale: float) -> float:
    """ω_max = κπ m^{1/d}/(2R) (in 1-D κπm/(b − a)): the highest frequency m evenly spread modes resolve."""
    return scale * math.pi * m ** (1 / box.dim) / (2 * box.half_diagonal())


def frequency_vectors(box: Box, m: int, layout: Layout, g: torch.Generator, scale: float,
                      omega_max: float | None, per_row: int = 1) -> tuple[torch.Tensor, float]:
    """Rows ω_i α_i [m, d] of a periodic layer and the (largest) ω_max used. Frequencies ω_i = ω_max (i+1)/m,
    evenly over (0, ω_max]; directions by layout: +1 in 1-D, a seeded Gaussian (``random``), Sobol
    (``quasi_uniform``), or per axis (``axis``: group k along e_k with its own ω_max,k = κπ·per_row·m_k/(b_k −
    a_k) unless ``omega_max`` is given). ``per_row``: features per row (2 for a [cos, sin] embedding), which
    sets the default ω_max from the number of features."""
    if layout == "axis" and box.dim > 1:
        rows, used = [], 0.0
        for k, size in enumerate(axis_groups(m, box.dim)):
            top = omega_max or scale * math.pi * per_row * size / (box.hi[k] - box.lo[k])
            w = torch.zeros(size, box.dim, dtype=torch.float64)
            w[:, k] = top * (torch.arange(size, dtype=torch.float64) + 1) / size
            rows.append(w)
            used = max(used, top)
        return torch.cat(rows), used
    omega_max = omega_max or default_omega_max(box, per_row * m, scale)
    omega = omega_max * (torch.arange(m, dtype=torch.float64) + 1) / m
    if box.dim == 1:
        return omega[:, None], omega_max
    if layout == "quasi_uniform":
        alpha = _sphere(_sobol(box, m, g), box.dim)
    else:
        alpha = torch.randn(m, box.dim, generator=g, dtype=torch.float64)
        alpha = alpha / alpha.norm(dim=1, keepdim=True)
    return omega[:, None] * alpha, omega_max
