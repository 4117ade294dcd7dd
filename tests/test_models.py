import pytest
import torch

from sfli_core.activations import ACTIVATIONS, numerical_multiplicity
from sfli_core.config import InitConfig, ModelConfig
from sfli_core.geometry import Box
from sfli_core.init import apply_init
from sfli_core.models import build_model


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_numerical_multiplicity_matches_the_table(name):
    assert numerical_multiplicity(ACTIVATIONS[name]) == ACTIVATIONS[name].multiplicity


def test_multiplicity_table_matches_the_paper():
    assert [ACTIVATIONS[a].multiplicity for a in ("tanh", "sigmoid", "softplus", "x_tanh", "x2_tanh", "relu")] == [
        1, 1, 1, 2, 3, None]


@pytest.mark.parametrize("cfg", [
    dict(arch="mlp", width=12, depth=3),
    dict(arch="mlp", width=12, depth=3, params={"residual": True}, activation=["x2_tanh", "x_tanh", "sigmoid"]),
    dict(arch="modified_mlp", width=12, depth=3),
    dict(arch="pirate", width=12, depth=2, params={"fourier_features": True, "rwf": True}),
    dict(arch="pirate", width=12, depth=2, params={"fourier_features": False}),
])
@pytest.mark.parametrize("d_in,d_out", [(1, 1), (3, 2)])
def test_every_model_returns_output_and_every_hidden_layer(cfg, d_in, d_out):
    model = build_model(ModelConfig(**cfg), d_in, d_out)
    apply_init(model, InitConfig(name="xavier_normal"), Box((0.0,) * d_in, (1.0,) * d_in), seed=0)
    y, features = model(torch.rand(7, d_in))
    assert y.shape == (7, d_out)
    assert len(features) == cfg["depth"] and all(f.shape == (7, cfg["width"]) for f in features)
    assert torch.isfinite(y).all()


def test_mlp_residual_connection_adds_the_previous_layer():
    model = build_model(ModelConfig(arch="mlp", width=5, depth=2, params={"residual": True}), 1, 1)
    apply_init(model, InitConfig(name="xavier_normal"), Box((0.0,), (1.0,)), seed=0)
    x = torch.rand(4, 1)
    _, (h1, h2) = model(x)
    assert torch.allclose(h2, torch.tanh(model.hidden[1](h1)) + h1)


@pytest.mark.parametrize("fourier", [True, False])
def test_pirate_with_zero_mixing_is_linear_in_its_embedding(fourier):
    torch.set_default_dtype(torch.float64)
    try:
        model = build_model(ModelConfig(arch="pirate", width=16, depth=3,
                                        params={"fourier_features": fourier, "rwf": True}), 2, 1)
        apply_init(model, InitConfig(name="sfli"), Box((-1.0, -1.0), (1.0, 1.0)), seed=0)
        assert torch.equal(model.alpha.detach(), torch.zeros(3))
        x = 2 * torch.rand(300, 2) - 1
        y, features = model(x)
        e = model.embed(x)
        assert all(torch.allclose(f, e) for f in features)  # every block passes its input through
        design = torch.cat([e, torch.ones(300, 1)], dim=1)
        coef = torch.linalg.lstsq(design, y).solution
        assert torch.allclose(design @ coef, y, atol=1e-10)
        # and the fit is the output layer itself
        assert torch.allclose(coef[:-1, 0], model.out.effective_weight()[0], atol=1e-8)
        # with non-zero mixing the blocks act: no longer linear in the embedding
        with torch.no_grad():
            model.alpha.fill_(0.5)
        y2, _ = model(x)
        assert (design @ torch.linalg.lstsq(design, y2).solution - y2).abs().max() > 1e-4
    finally:
        torch.set_default_dtype(torch.float32)
