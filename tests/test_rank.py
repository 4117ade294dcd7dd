import numpy as np
import pytest
import torch

from sfli_core.rank import eps_rank, eps_ranks, gram_spectrum


def legendre_features(n: int, n_points: int = 20001) -> torch.Tensor:
    """Φ [N, n] of L²-normalised Legendre polynomials P_0 … P_{n−1} on a fine grid of [−1, 1].

    With μ the uniform probability measure, ∫ P_j² dμ = 1/(2j+1), so φ_j = √(2j+1) P_j are orthonormal.
    """
    x = np.linspace(-1, 1, n_points)
    cols = [np.sqrt(2 * j + 1) * np.polynomial.legendre.Legendre.basis(j)(x) for j in range(n)]
    return torch.tensor(np.stack(cols, axis=1))


@pytest.mark.parametrize("n", [1, 5, 12])
def test_orthonormal_legendre_has_full_eps_rank(n):
    phi = legendre_features(n)
    lam = gram_spectrum(phi)
    # M = I up to the grid's end-point quadrature error, O(φ_j(±1)²/N) = O((2j+1)/N) ≈ 4e-3 for n = 12
    assert torch.allclose(lam, torch.ones(n, dtype=torch.float64), atol=4 * (2 * n - 1) / 20001)
    for eps in (0.9, 0.5, 1e-1, 1e-3, 1e-6):
        assert eps_rank(lam, eps) == n


def test_duplicated_and_sign_flipped_neurons_add_nothing():
    phi = legendre_features(6)
    augmented = torch.cat([phi, phi[:, :3], -phi[:, 2:5], 2.0 * phi[:, :1]], dim=1)
    for eps in (1e-2, 1e-3, 1e-4):
        assert eps_ranks(augmented, [eps])[eps] == 6


def test_rank_r_matrix_gives_at_most_r():
    g = torch.Generator().manual_seed(0)
    left = torch.randn(500, 4, generator=g, dtype=torch.float64)
    phi = left @ torch.randn(4, 30, generator=g, dtype=torch.float64)
    ranks = eps_ranks(phi, [1e-2, 1e-6, 1e-10])
    assert all(r <= 4 for r in ranks.values())
    assert ranks[1e-6] == 4


def test_fewer_points_than_neurons_uses_singular_values():
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(20, 50, generator=g, dtype=torch.float64)
    lam = gram_spectrum(phi)
    assert lam.shape == (50,)
    dense = torch.linalg.eigvalsh(phi.T @ phi / 20).flip(0).clamp_min(0)
    assert torch.allclose(lam, dense, atol=1e-10)
    assert eps_rank(lam, 1e-3) == 20


def test_float32_features_are_ranked_in_float64():
    """The spectrum is taken in float64 whatever the feature dtype (float32 Gram eigenvalues are wrong
    below ~1e-4 relative, see docs/science.md §1)."""
    phi = legendre_features(8).to(torch.float32)
    lam = gram_spectrum(phi)
    assert lam.dtype == torch.float64
    assert eps_rank(lam, 1e-4) == 8


def test_layer_spectra_of_a_model_and_of_a_diverged_one():
    from sfli_core.config import InitConfig, ModelConfig
    from sfli_core.geometry import Box
    from sfli_core.init import apply_init
    from sfli_core.models import build_model
    from sfli_core.rank import layer_spectra

    model = build_model(ModelConfig(width=8, depth=3), 1, 1)
    apply_init(model, InitConfig(name="sfli"), Box((-1.0,), (1.0,)), seed=0)
    x = torch.linspace(-1, 1, 200)[:, None]
    spectra = layer_spectra(model, x)
    assert [s.shape for s in spectra] == [(8,)] * 3
    _, features = model(x)
    assert torch.allclose(spectra[0], gram_spectrum(features[0]))
    with torch.no_grad():
        model.hidden[1].weight.fill_(float("nan"))
    assert layer_spectra(model, x) == []


def test_the_relative_eps_rank_counts_eigenvalues_above_eps_times_the_largest_and_ignores_scale():
    from sfli_core.rank import eps_rank, relative_eps_rank

    lam = torch.tensor([10.0, 1.0, 0.01, 0.001], dtype=torch.float64)
    assert eps_rank(lam, 1e-3) == 3 and relative_eps_rank(lam, 1e-3) == 2  # above 0.01: 10 and 1
    assert relative_eps_rank(100 * lam, 1e-3) == 2 and eps_rank(100 * lam, 1e-3) == 4  # the absolute rank moves
    assert relative_eps_rank(torch.zeros(3), 1e-3) == 0 and relative_eps_rank(torch.zeros(0), 1e-3) == 0
