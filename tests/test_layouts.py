"""SFLI layouts (init.params.layout): where the first layer's hyperplanes or frequencies go, with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from sfli_core.config import RunConfig
from sfli_core.geometry import Box
from sfli_core.init import sfli_layer, stream
from sfli_core.layouts import LAYOUTS, axis_groups, hyperplanes
from sfli_core.trainer import Trainer

BOX2 = Box((0.0, 0.0), (1.0, 2.0))  # anisotropic on purpose


@pytest.mark.parametrize("activation", ["tanh", "relu", "sin"])
def test_all_layouts_coincide_in_1d(activation):
    box = Box((-1.0,), (2.0,))
    built = [sfli_layer(activation, box, 12, 1.3, None, stream(0, 1), layout) for layout in LAYOUTS]
    for w, b, info in built[1:]:
        assert torch.equal(w, built[0][0]) and torch.equal(b, built[0][1]) and info == built[0][2]


def test_axis_places_each_group_on_its_axis_cell_midpoints():
    kappa, m = 1.5, 11
    w, b, info = sfli_layer("tanh", BOX2, m, kappa, None, stream(0, 1), "axis")
    sizes = axis_groups(m, 2)
    assert sizes == [6, 5]
    start = 0
    for k, size in enumerate(sizes):
        group_w, group_b = w[start:start + size], b[start:start + size]
        assert torch.all(group_w[:, 1 - k] == 0)  # each group reads its own coordinate only
        h = (BOX2.hi[k] - BOX2.lo[k]) / size
        assert torch.allclose(group_w[:, k].abs(), torch.full((size,), kappa / h, dtype=torch.float64))
        transitions = (-group_b / group_w[:, k]).sort().values
        midpoints = BOX2.lo[k] + (torch.arange(size, dtype=torch.float64) + 0.5) * h
        assert torch.allclose(transitions, midpoints, atol=1e-12)
        assert torch.equal(torch.sign(group_w[:, k]), torch.tensor([1.0, -1.0] * 3, dtype=torch.float64)[:size])
        start += size
    assert info["gamma"] == pytest.approx((6 * kappa / (1 / 6) + 5 * kappa / (2 / 5)) / 11)


def test_axis_frequencies_follow_each_axis():
    w, _, info = sfli_layer("sin", BOX2, 8, 1.0, None, stream(0, 1), "axis")
    assert torch.all(w[:4, 1] == 0) and torch.all(w[4:, 0] == 0)
    assert torch.allclose(w[:4, 0], math.pi * 4 / 1.0 * torch.arange(1, 5, dtype=torch.float64) / 4)
    assert torch.allclose(w[4:, 1], math.pi * 4 / 2.0 * torch.arange(1, 5, dtype=torch.float64) / 4)
    assert info["omega_max"] == pytest.approx(4 * math.pi)


def max_angular_gap(alpha: torch.Tensor) -> float:
    angles = torch.atan2(alpha[:, 1], alpha[:, 0]).sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    return float(gaps.max())


def test_quasi_uniform_is_seeded_and_covers_directions_better_than_random():
    a = hyperplanes(BOX2, 64, "quasi_uniform", stream(5, 1))
    b = hyperplanes(BOX2, 64, "quasi_uniform", stream(5, 1))
    c = hyperplanes(BOX2, 64, "quasi_uniform", stream(6, 1))
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.r, b.r) and not torch.equal(a.alpha, c.alpha)
    assert torch.allclose(a.alpha.norm(dim=1), torch.ones(64, dtype=torch.float64))
    # every hyperplane crosses the box: r lies between the extremes of α·(corner − x_c)
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 2.0]], dtype=torch.float64) - BOX2.center()
    along = a.alpha @ corners.T
    assert torch.all(along.min(dim=1).values <= a.r) and torch.all(a.r <= along.max(dim=1).values)
    quasi = [max_angular_gap(hyperplanes(BOX2, 64, "quasi_uniform", stream(s, 1)).alpha) for s in range(20)]
    rand = [max_angular_gap(hyperplanes(BOX2, 64, "random", stream(s, 1)).alpha) for s in range(20)]
    assert max(quasi) < 3 * 2 * math.pi / 64  # never a hole of more than 3 evenly spaced directions
    assert sum(quasi) / 20 < 0.5 * sum(rand) / 20


def test_random_layout_is_the_original_construction():
    """The default layout reproduces the construction recorded runs were made with (bit for bit)."""
    g = stream(3, 1)
    alpha = torch.randn(16, 2, generator=g, dtype=torch.float64)
    alpha = alpha / alpha.norm(dim=1, keepdim=True)
    r = BOX2.half_diagonal() * (2 * torch.rand(16, generator=g, dtype=torch.float64) - 1)
    planes = hyperplanes(BOX2, 16, "random", stream(3, 1))
    assert torch.equal(planes.alpha, alpha) and torch.equal(planes.r, r)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arch,params", [("mlp", {}), ("modified_mlp", {}), ("pirate", {"fourier_features": True}),
                                         ("pirate", {"fourier_features": False})])
def test_every_architecture_takes_every_layout(arch, params, layout):
    cfg = RunConfig(task={"name": "poisson2d", "params": {"n_eval_per_dim": 21}}, train={"steps": 0},
                    model={"arch": arch, "width": 32, "depth": 2, "params": params},
                    init={"name": "sfli", "params": {"layout": layout}})
    assert cfg.flat()["init.params.layout"] == layout
    result = Trainer(cfg).run()
    assert result.status == "finished" and result.summary()["initial/rank/eps1e-3/layer2"] >= 4
