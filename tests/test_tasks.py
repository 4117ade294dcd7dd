import numpy as np
import pytest
import torch

from sfli_core.tasks import TASKS, PDETask, build_task
from sfli_core.tasks import allen_cahn_reference as acr
from sfli_core.taylor import TaylorField

PDE_TASKS = ["poisson1d", "poisson2d", "helmholtz2d_a1-4_k1", "advection1d_c30", "allen_cahn_d1e-4"]


@pytest.mark.parametrize("name", [n for n in PDE_TASKS if n != "allen_cahn_d1e-4"])
def test_exact_solution_has_zero_residual_and_satisfies_the_loss(name):
    task = build_task(name)
    assert isinstance(task, PDETask)
    g = torch.Generator().manual_seed(0)
    batch = task.sample(512, g, torch.float64)
    residual = task.residual(task.solution, batch["x"].clone().requires_grad_(True))
    assert residual.abs().max() < 1e-8  # the source terms are O(1e2); float64 autograd is exact to round-off
    terms = task.loss_terms(task.solution, batch)
    assert set(terms) >= {"pde"}
    assert all(v.item() < 1e-18 for v in terms.values()), terms
    # a wrong field is not accepted: the loss is visibly positive
    wrong = task.loss_terms(lambda x: task.solution(x) + 0.1 * x[:, :1] ** 2, batch)
    assert sum(v.item() for v in wrong.values()) > 1e-4


@pytest.mark.parametrize("name", TASKS.names())
def test_rel_l2_of_the_solution_against_itself_is_zero(name):
    task = build_task(name)
    x, y = task.eval_data(torch.float64)
    assert task.rel_l2(task.solution(x), y) == 0.0
    assert task.rel_l2(0.5 * y, y) == pytest.approx(0.5)


def test_task_names_encode_coefficients():
    assert build_task("allen_cahn_d1e-4").name == "allen_cahn_d1e-4"
    assert build_task("helmholtz2d", {"a1": 2, "a2": 3, "k": 5}).name == "helmholtz2d_a2-3_k5"
    assert build_task("advection1d", {"speed": 10}).name == "advection1d_c10"
    with pytest.raises(ValueError, match="contradicts the preset"):
        build_task("advection1d_c30", {"speed": 10})
    with pytest.raises(ValueError, match="unknown task 'poisson3d'; valid: fit1d_multiscale"):
        build_task("poisson3d")


def test_allen_cahn_reference_agrees_with_itself_at_two_resolutions():
    x1, t1, u1 = acr.reference(1e-4, n_x=256, dt=1e-4)
    x2, t2, u2 = acr.reference(1e-4, n_x=512, dt=1e-4)
    assert np.allclose(x1, x2[::2]) and np.allclose(t1, t2)
    assert np.linalg.norm(u1 - u2[:, ::2]) / np.linalg.norm(u2) < 1e-4
    assert np.allclose(u2[0], x2**2 * np.cos(np.pi * x2), atol=1e-12)
    assert -1.0001 < u2.min() and u2.max() < 1.0001  # the two stable states bound the solution
    assert (acr.cache_dir() / next(p.name for p in acr.cache_dir().glob("allen_cahn_*.npz"))).exists()


def test_allen_cahn_reference_satisfies_the_pde():
    """Residual u_t − d u_xx + 5u³ − 5u of the reference with spectral u_xx and centred differences in t,
    relative to the size of the reaction term: small where the solution is resolved."""
    d = 1e-4
    x, t, u = acr.reference(d, n_x=512, dt=1e-4)
    k = 2 * np.pi * np.fft.fftfreq(len(x), d=2.0 / len(x))
    u_xx = np.real(np.fft.ifft(-(k**2) * np.fft.fft(u, axis=1), axis=1))
    u_t = (u[2:] - u[:-2]) / (t[2] - t[0])
    residual = u_t - d * u_xx[1:-1] + 5 * u[1:-1] ** 3 - 5 * u[1:-1]
    reaction = np.abs(5 * u - 5 * u**3).max()
    assert np.sqrt(np.mean(residual**2)) / reaction < 1e-3


def test_allen_cahn_task_residual_and_bilinear_reference():
    task = build_task("allen_cahn_d1e-4")
    x, y = task.eval_data(torch.float64)
    # between grid nodes the interpolated reference stays close to the neighbours
    mid = x[:5] + torch.tensor([[1e-3, 1e-3]], dtype=torch.float64)
    assert torch.allclose(task.solution(mid), y[:5], atol=5e-2)
    # the residual operator on u = x² + t: u_t = 1, u_xx = 2, by nested autograd and in Taylor mode (u_t and
    # d u_xx there in one stream)
    z = torch.rand(64, 2, dtype=torch.float64)
    u = z[:, :1] ** 2 + z[:, 1:2]
    r = task.residual(lambda p: p[:, :1] ** 2 + p[:, 1:2], z.clone().requires_grad_(True))
    assert torch.allclose(r, 1 - 2e-4 + 5 * u**3 - 5 * u)
    e0, e1 = torch.tensor([[1.0], [0.0]], dtype=torch.float64), torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    r = task.residual(TaylorField(lambda p: (p @ e0) * (p @ e0) + p @ e1), z)
    assert torch.allclose(r, 1 - 2e-4 + 5 * u**3 - 5 * u)
