"""Initialisations, each one call on a built model: ``apply_init(model, cfg, box, seed)``.

Baselines act on every dense layer (bias included where stated):
  * ``xavier_normal``:  W ~ N(0, s²·2/(fan_in + fan_out)), b = 0;
  * ``xavier_uniform``: W ~ U(±s·√(6/(fan_in + fan_out))), b = 0;
  * ``kaiming_uniform``: PyTorch's nn.Linear default, W, b ~ U(±s/√fan_in);
  * ``small_gaussian``: every W and b ~ N(0, σ²), σ = s·m^(−exponent), m the width (condensation paper);
  * ``sfli``: structured first layer (science.md §3) on the layers that read x, Xavier normal elsewhere.
s is ``init.scale`` (the gain for Xavier/Kaiming, σ's prefactor for small_gaussian, κ for SFLI).
Structural parameters are not random: PirateNet's mixing scalars α start at 0, and a Fourier matrix B is
N(0, ``model.fourier_scale``²) unless SFLI builds it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .geometry import Box
from .models import Dense, FourierEmbedding, PirateNet

INITS = ("xavier_normal", "xavier_uniform", "kaiming_uniform", "small_gaussian", "sfli")

SIGMOIDAL = ("tanh", "gelu", "silu", "softplus", "sigmoid")
RAMP = ("relu", "leaky_relu")
PERIODIC = ("sin",)
SFLI_ACTIVATIONS = SIGMOIDAL + RAMP + PERIODIC


def stream(seed: int, *key: int) -> torch.Generator:
    """An independent generator for (seed, key…): every layer that SFLI builds has its own stream."""
    state = np.random.SeedSequence([seed, *key]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _baseline(name: str, d_in: int, d_out: int, scale: float, sigma: float, g: torch.Generator):
    shape = (d_out, d_in)
    if name == "xavier_normal" or name == "sfli":
        std = scale * math.sqrt(2.0 / (d_in + d_out))
        return std * torch.randn(shape, generator=g, dtype=torch.float64), torch.zeros(d_out, dtype=torch.float64)
    if name == "xavier_uniform":
        bound = scale * math.sqrt(6.0 / (d_in + d_out))
        return bound * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1), torch.zeros(
            d_out, dtype=torch.float64)
    if name == "kaiming_uniform":
        bound = scale / math.sqrt(d_in)
        w = bound * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1)
        return w, bound * (2 * torch.rand(d_out, generator=g, dtype=torch.float64) - 1)
    if name == "small_gaussian":
        return (sigma * torch.randn(shape, generator=g, dtype=torch.float64),
                sigma * torch.randn(d_out, generator=g, dtype=torch.float64))
    raise ValueError(f"unknown init.name '{name}'; valid: {', '.join(INITS)}")


def _directions_offsets(box: Box, m: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit directions α [m, d] and offsets r [m] of SFLI's hyperplanes α·(x − x_c) = r.

    1-D: α alternates +1, −1 and the transition points x_c + α_i r_i are the midpoints of m equal cells
    (so r_i = α_i (t_i − x_c)); d-D: α normalised Gaussian, r ~ U[−R, R], both seeded.
    """
    if box.dim == 1:
        a, b = box.lo[0], box.hi[0]
        t = a + (torch.arange(m, dtype=torch.float64) + 0.5) * (b - a) / m
        alpha = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0).to(torch.float64)[:, None]
        return alpha, alpha[:, 0] * (t - box.center()[0])
    alpha = torch.randn(m, box.dim, generator=g, dtype=torch.float64)
    alpha = alpha / alpha.norm(dim=1, keepdim=True)
    radius = box.half_diagonal()
    return alpha, radius * (2 * torch.rand(m, generator=g, dtype=torch.float64) - 1)


def cell_width(box: Box, m: int) -> float:
    """h = 2R / m^{1/d}: the spacing of m hyperplanes across the box (1-D: the cell width (b − a)/m)."""
    return 2 * box.half_diagonal() / m ** (1 / box.dim)


def default_omega_max(box: Box, m: int, scale: float) -> float:
    """ω_max = κ π m^{1/d} / (2R); in 1-D κ π m / (b − a)."""
    return scale * math.pi * m ** (1 / box.dim) / (2 * box.half_diagonal())


def _frequencies(box: Box, m: int, omega_max: float, g: torch.Generator) -> torch.Tensor:
    """Rows ω_i α_i [m, d], ω_i = ω_max (i+1)/m evenly over (0, ω_max]; α = +1 in 1-D, unit Gaussian in d-D."""
    omega = omega_max * (torch.arange(m, dtype=torch.float64) + 1) / m
    if box.dim == 1:
        return omega[:, None]
    alpha = torch.randn(m, box.dim, generator=g, dtype=torch.float64)
    return omega[:, None] * alpha / alpha.norm(dim=1, keepdim=True)


def sfli_layer(activation: str, box: Box, m: int, scale: float, omega_max: float | None,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """SFLI weights W [m, d] and biases b [m] for m neurons of ``activation`` reading x ∈ Ω.

    Sigmoidal / ramp-smooth: σ(γ(α·(x − x_c) − r)), γ = κ/h (doubled for sigmoid, since
    tanh z = 2 sigmoid(2z) − 1). ReLU-like: the same hyperplanes with ‖w‖ = κ. sin: sin(ω_i α_i·(x − x_c) + φ_i)
    with φ alternating 0, π/2. Returns the resolved knobs for the run record.
    """
    if activation not in SFLI_ACTIVATIONS:
        raise ValueError(f"init 'sfli' cannot serve activation '{activation}'; it supports: "
                         f"{', '.join(SFLI_ACTIVATIONS)}")
    xc = box.center()
    if activation in PERIODIC:
        omega_max = default_omega_max(box, m, scale) if omega_max is None else omega_max
        w = _frequencies(box, m, omega_max, g)
        phase = torch.where(torch.arange(m) % 2 == 0, 0.0, math.pi / 2).to(torch.float64)
        return w, phase - w @ xc, {"omega_max": omega_max}
    alpha, r = _directions_offsets(box, m, g)
    if activation in RAMP:
        gamma = scale
    else:
        gamma = scale / cell_width(box, m) * (2.0 if activation == "sigmoid" else 1.0)
    return gamma * alpha, -gamma * (alpha @ xc + r), {"gamma": gamma}


def apply_init(model: torch.nn.Module, cfg, box: Box, seed: int) -> dict[str, float]:
    """Initialise every parameter of ``model`` from ``cfg`` (an :class:`InitConfig`) and ``seed``.

    Returns the resolved knobs (e.g. SFLI's γ or ω_max, small_gaussian's σ) for the run record.
    """
    if cfg.name not in INITS:
        raise ValueError(f"unknown init.name '{cfg.name}'; valid: {', '.join(INITS)}")
    base = stream(seed, 0)
    width = max(layer.d_out for layer in model.modules() if isinstance(layer, Dense))
    sigma = cfg.scale * width ** (-cfg.exponent)
    info: dict[str, float] = {"sigma": sigma} if cfg.name == "small_gaussian" else {}
    for layer in model.modules():
        if isinstance(layer, Dense):
            w, b = _baseline(cfg.name, layer.d_in, layer.d_out, cfg.scale if cfg.name != "sfli" else 1.0, sigma, base)
            layer.assign(w, b, base)
        elif isinstance(layer, FourierEmbedding):
            with torch.no_grad():
                layer.B.copy_(layer.scale * torch.randn(layer.B.shape, generator=base, dtype=torch.float64))
    if isinstance(model, PirateNet):
        with torch.no_grad():
            model.alpha.zero_()
    if cfg.name == "sfli":
        info.update(_apply_sfli(model, cfg, box, seed))
    return info


def _apply_sfli(model: torch.nn.Module, cfg, box: Box, seed: int) -> dict[str, float]:
    info: dict[str, float] = {}
    if isinstance(model, PirateNet) and model.fourier_features:
        B = model.embedding.B
        omega_max = default_omega_max(box, 2 * B.shape[0], cfg.scale) if cfg.omega_max is None else cfg.omega_max
        with torch.no_grad():
            B.copy_(_frequencies(box, B.shape[0], omega_max, stream(seed, 1)))
        return {"omega_max": omega_max}
    for k, (layer, activation) in enumerate(model.input_layers(), start=1):
        g = stream(seed, k)
        w, b, knobs = sfli_layer(activation, box, layer.d_out, cfg.scale, cfg.omega_max, g)
        layer.assign(w, b, g)
        info.update(knobs)
    return info
