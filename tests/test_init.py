import math

import pytest
import torch

from sfli_core.config import InitConfig, ModelConfig, RunConfig
from sfli_core.geometry import Box
from sfli_core.init import apply_init, sfli_layer, stream
from sfli_core.layouts import cell_width
from sfli_core.models import build_model
from sfli_core.trainer import Trainer


def test_sfli_1d_tanh_transitions_at_cell_midpoints_with_gamma():
    box, m, kappa = Box((-1.0,), (1.0,)), 10, 1.5
    w, b, info = sfli_layer("tanh", box, m, kappa, None, stream(0, 1))
    h = 2.0 / m
    assert math.isclose(info["gamma"], kappa / h)
    assert torch.allclose(w.abs().flatten(), torch.full((m,), kappa / h, dtype=torch.float64))
    assert torch.equal(torch.sign(w.flatten()), torch.tensor([1.0, -1.0] * (m // 2), dtype=torch.float64))
    transitions = (-b / w.flatten()).sort().values  # where γα(x − t) = 0
    midpoints = -1 + (torch.arange(m, dtype=torch.float64) + 0.5) * h
    assert torch.allclose(transitions, midpoints, atol=1e-12)


def test_sfli_sigmoid_doubles_gamma_and_relu_has_norm_kappa():
    box = Box((0.0, 0.0), (1.0, 2.0))
    w_tanh, _, t = sfli_layer("tanh", box, 64, 1.0, None, stream(3, 1))
    w_sig, _, s = sfli_layer("sigmoid", box, 64, 1.0, None, stream(3, 1))
    assert math.isclose(s["gamma"], 2 * t["gamma"])
    assert math.isclose(t["gamma"], 1.0 / cell_width(box, 64))
    assert torch.allclose(w_sig, 2 * w_tanh)
    w_relu, b_relu, _ = sfli_layer("relu", box, 64, 0.7, None, stream(3, 1))
    assert torch.allclose(w_relu.norm(dim=1), torch.full((64,), 0.7, dtype=torch.float64))
    # every hyperplane α·(x − x_c) = r has |r| ≤ R
    offsets = -(b_relu / 0.7) - (w_relu / 0.7) @ box.center()
    assert offsets.abs().max() <= box.half_diagonal() + 1e-12


def test_sfli_sin_1d_is_a_truncated_fourier_basis():
    box, m = Box((-1.0,), (1.0,)), 8
    w, b, info = sfli_layer("sin", box, m, 1.0, None, stream(0, 1))
    assert math.isclose(info["omega_max"], math.pi * m / 2)
    assert torch.allclose(w.flatten(), math.pi * torch.arange(1, m + 1, dtype=torch.float64) / 2)
    assert torch.allclose(b.remainder(2 * math.pi), torch.tensor([0, math.pi / 2] * 4, dtype=torch.float64))


def test_sfli_rejects_activation_it_cannot_serve():
    with pytest.raises(ValueError, match="cannot serve activation 'x2_tanh'.*supports: tanh"):
        sfli_layer("x2_tanh", Box((0.0,), (1.0,)), 4, 1.0, None, stream(0, 1))


def _initial_last_layer_rank(task: str, init: str) -> int:
    cfg = RunConfig(task={"name": task}, model={"width": 100, "depth": 3, "activation": "tanh"},
                    init={"name": init}, train={"steps": 0})
    result = Trainer(cfg).run()
    return result.summary()["initial/rank/eps1e-3/layer3"]


@pytest.mark.parametrize("task", ["fit1d_multiscale", "fit2d_multiscale"])
def test_sfli_raises_initial_eps_rank_tenfold_over_xavier(task):
    xavier = _initial_last_layer_rank(task, "xavier_normal")
    sfli = _initial_last_layer_rank(task, "sfli")
    assert xavier >= 1
    assert sfli >= 10 * xavier, (sfli, xavier)


@pytest.mark.parametrize("arch,extra", [("modified_mlp", {}), ("pirate", {"fourier_features": False}),
                                        ("pirate", {"fourier_features": True}), ("pirate", {"rwf": True})])
def test_sfli_on_every_architecture_raises_initial_rank(arch, extra):
    ranks = {}
    for init in ("xavier_normal", "sfli"):
        cfg = RunConfig(task={"name": "fit1d_multiscale"}, init={"name": init}, train={"steps": 0},
                        model={"arch": arch, "width": 64, "depth": 2, "params": extra})
        ranks[init] = Trainer(cfg).run().summary()["initial/rank/eps1e-3/layer2"]
    assert ranks["sfli"] >= 3 * ranks["xavier_normal"], ranks


def test_initialisation_is_a_function_of_the_seed():
    box = Box((-1.0,), (1.0,))
    cfg = ModelConfig(arch="pirate", width=16, depth=2, params={"rwf": True})
    a, b, c = (build_model(cfg, 1, 1) for _ in range(3))
    torch.manual_seed(123)  # the global RNG must not matter
    apply_init(a, InitConfig(name="sfli"), box, seed=7)
    torch.manual_seed(999)
    apply_init(b, InitConfig(name="sfli"), box, seed=7)
    apply_init(c, InitConfig(name="sfli"), box, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_small_gaussian_has_the_stated_sigma():
    model = build_model(ModelConfig(width=400, depth=1), 1, 1)
    cfg = InitConfig(name="small_gaussian", scale=2.0, params={"exponent": 1.5})
    info = apply_init(model, cfg, Box((0.0,), (1.0,)), 0)
    sigma = 2.0 * 400 ** -1.5
    assert math.isclose(info["sigma"], sigma)
    w = model.hidden[0].weight.detach()
    assert abs(w.std().item() / sigma - 1) < 0.15
