"""ε-rank of neuron functions (docs/science.md §1).

For a layer with n neurons φ_1 … φ_n evaluated on N points x_k of the evaluation set X (uniform probability
measure on Ω), Φ ∈ R^{N×n}, Φ_kj = φ_j(x_k), the Gram matrix is M = ΦᵀΦ / N and

    ε-rank = #{ eigenvalues of M > ε }   (absolute threshold, as in the ε-rank paper).

Eigenvalues are computed in float64: in float32, squaring the singular values squares the condition number
and gives wrong ranks for ε ≤ 1e-3 (docs/science.md §1). The constant function is not added to the set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_EPS = (1e-2, 1e-3, 1e-4)
HEADLINE_EPS = 1e-3


def gram_spectrum(phi: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of M = ΦᵀΦ/N, float64, descending, shape [n], for Φ of shape [N, n].

    ``eigvalsh(M)`` when N ≥ n; otherwise the squared singular values of Φ/√N padded with zeros (M then has
    at most N non-zero eigenvalues). Tiny negative round-off eigenvalues are clipped to 0.
    """
    phi = phi.detach().to(torch.float64)
    n_points, n = phi.shape
    if n_points >= n:
        lam = torch.linalg.eigvalsh(phi.T @ phi / n_points).flip(0)
    else:
        s = torch.linalg.svdvals(phi / n_points ** 0.5)
        lam = torch.cat([s * s, torch.zeros(n - s.numel(), dtype=torch.float64, device=phi.device)])
    return lam.clamp_min(0.0)


def eps_rank(spectrum: torch.Tensor, eps: float) -> int:
    """#{λ > ε} of a Gram spectrum."""
    return int((spectrum > eps).sum())


def relative_eps_rank(spectrum: torch.Tensor, eps: float) -> int:
    """#{λ > ε·λ_max}: the ε-rank of the spectrum scaled to a largest eigenvalue of 1 (0 for an empty or zero
    spectrum). Unlike the absolute ε-rank it does not move with the layer's overall scale (e.g. a tuned
    initial weight scale)."""
    top = float(spectrum.max()) if spectrum.numel() else 0.0
    return int((spectrum > eps * top).sum()) if top > 0 else 0


def eps_ranks(phi: torch.Tensor, eps: Sequence[float] = DEFAULT_EPS) -> dict[float, int]:
    """ε-rank of the columns of Φ [N, n] for several thresholds at once (one eigen-decomposition)."""
    lam = gram_spectrum(phi)
    return {e: eps_rank(lam, e) for e in eps}


@torch.no_grad()
def layer_spectra(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Gram spectrum of every hidden layer of ``model`` on the evaluation set x [N, d]; list of [width].
    Empty when a layer has non-finite values (a diverged network has no spectrum)."""
    _, features = model(x)
    if not all(torch.isfinite(f).all() for f in features):
        return []
    return [gram_spectrum(f) for f in features]
