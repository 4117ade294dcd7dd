"""Bring your own task, architecture and initialisation: the example extension in examples/poisson3d (a module
outside the package) through the registries and the trainer; names from entry points; clear errors. The whole
study and a cluster that only gets the module shipped by Ray: tests/e2e/test_extension_study.py."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

from pipelines.cli import main
from sfli_core.config import ConfigError, RunConfig, validate
from sfli_core.geometry import Box
from sfli_core.init import INITS, apply_init
from sfli_core.models import MODELS, build_model
from sfli_core.registry import RegistryError
from sfli_core.tasks import TASKS, build_task
from sfli_core.trainer import Trainer
from tests.pipeline_helpers import ROOT

EXAMPLE = ROOT / "examples" / "poisson3d"
TASK, ARCH, LECUN = ("my_sfli_ext.poisson3d:Poisson3D", "my_sfli_ext.twobranch:TwoBranchMLP",
                     "my_sfli_ext.lecun:lecun_normal")


@pytest.fixture
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def test_user_task_manufactured_solution_has_zero_residual(example_on_path):
    task = build_task(TASK, {"a": 3.0, "c": 0.7})
    assert task.name == "poisson3d_a3_c7e-1" and task.in_dim == 3
    batch = task.sample(256, torch.Generator().manual_seed(0), torch.float64)
    residual = task.residual(task.solution, batch["x"].clone().requires_grad_(True))
    assert residual.abs().max() < 1e-9  # f is O(10²): autograd reproduces it to round-off
    terms = task.loss_terms(task.solution, batch)
    assert set(terms) == {"pde", "bc"} and all(v.item() < 1e-20 for v in terms.values())
    # at the centre: u = 1 + c·sin(3π/2)³ = 1 − 0.7
    assert task.solution(torch.full((1, 3), 0.5, dtype=torch.float64)).item() == pytest.approx(0.3)


def test_user_architecture_gets_sfli_on_both_branches(example_on_path):
    cfg = RunConfig(task={"name": TASK}, model={"arch": ARCH, "width": 20, "depth": 3,
                                                "params": {"branch_activation": "sin", "split": 0.6}})
    model = build_model(cfg.model, 3, 1)
    info = apply_init(model, RunConfig(init={"name": "sfli", "scale": 1.0}).init, Box((0.0,) * 3, (1.0,) * 3), 0)
    a, b = model.branch_a, model.branch_b
    assert (a.d_out, b.d_out) == (12, 8)
    # tanh branch: hyperplanes of slope γ = κ/h, h = 2R/m^{1/3}; sin branch: frequencies ω_max·(i+1)/m
    gamma = 12 ** (1 / 3) / math.sqrt(3)
    assert torch.allclose(a.weight.norm(dim=1), torch.full((12,), gamma))
    omega_max = math.pi * 8 ** (1 / 3) / math.sqrt(3)
    assert info["omega_max"] == pytest.approx(omega_max)
    assert torch.allclose(b.weight.norm(dim=1).double(), omega_max * torch.arange(1, 9, dtype=torch.float64) / 8,
                          atol=1e-6)
    y, features = model(torch.rand(5, 3))
    assert y.shape == (5, 1) and [f.shape for f in features] == [(5, 20)] * 3


def test_user_initialisation_draws_lecun_normal(example_on_path):
    cfg = RunConfig(task={"name": TASK}, model={"width": 400, "depth": 2},
                    init={"name": LECUN, "scale": 2.0, "params": {"bias_std": 0.5}})
    assert cfg.flat()["init.params.bias_std"] == 0.5 and INITS.get(LECUN).role == "baseline"
    model = build_model(cfg.model, 3, 1)
    apply_init(model, cfg.init, Box((0.0,) * 3, (1.0,) * 3), seed=0)
    hidden = model.hidden[1]  # fan_in 400: std 2/20 = 0.1, 160 000 draws
    assert hidden.weight.std().item() == pytest.approx(0.1, rel=0.01)
    assert hidden.bias.std().item() == pytest.approx(0.5, rel=0.15)


def test_sfli_raises_the_initial_rank_of_the_user_network(example_on_path):
    ranks = {}
    for init in ("xavier_normal", "sfli"):
        cfg = RunConfig(task={"name": TASK, "params": {"n_eval_per_dim": 9}}, init={"name": init},
                        model={"arch": ARCH, "width": 64, "depth": 2}, train={"steps": 0})
        ranks[init] = Trainer(cfg).run().summary()["initial/rank/eps1e-3/layer2"]
    assert ranks["sfli"] >= 2 * ranks["xavier_normal"], ranks


@pytest.mark.parametrize("data,expected", [
    ({"task": {"name": "nowhere.mod:Task"}}, "task 'nowhere.mod:Task': cannot import module 'nowhere.mod'"),
    ({"task": {"name": "my_sfli_ext.poisson3d:Nope"}}, "module 'my_sfli_ext.poisson3d' has no attribute 'Nope'"),
    ({"model": {"arch": "my_sfli_ext.lecun:lecun_normal"}}, "expected a torch.nn.Module subclass"),
    ({"init": {"name": "my_sfli_ext.lecun:LecunParams"}}, "initialisation 'my_sfli_ext.lecun:LecunParams'"),
    ({"init": {"name": LECUN, "params": {"bias": 1}}}, "init: params.bias: unknown key; valid keys: bias_std"),
    ({"model": {"arch": ARCH, "params": {"branch_activation": "sine"}}}, "unknown activation 'sine'; valid: tanh"),
    ({"task": {"name": TASK, "params": {"a": -1}}}, "params.a: Input should be greater than 0"),
])
def test_bad_user_names_fail_clearly(example_on_path, data, expected):
    with pytest.raises(ConfigError) as err:
        validate(RunConfig, data, "run.yaml")
    assert expected in str(err.value)


def test_entry_points_register_short_names(tmp_path, monkeypatch, capsys):
    """An installed distribution's entry points (a real .dist-info on sys.path, as pip writes it)."""
    dist = tmp_path / "my_sfli_ext-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sfli-ext\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [sfli.tasks]
        poisson3d = {TASK}
        [sfli.models]
        two_branch = {ARCH}
        [sfli.inits]
        lecun_normal = {LECUN}
        """))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    registries = (TASKS, MODELS, INITS)
    for registry in registries:
        registry.refresh()
    try:
        assert "poisson3d" in TASKS.names() and "two_branch" in MODELS and "lecun_normal" in INITS
        cfg = RunConfig(task={"name": "poisson3d"}, model={"arch": "two_branch"}, init={"name": "lecun_normal"})
        assert build_task(cfg.task.name).name == "poisson3d_a2_c5e-1"
        with pytest.raises(RegistryError, match=r"unknown task 'poisson4d'; valid: .*advection1d_c30, poisson3d"):
            TASKS.get("poisson4d")
        assert main(["list"]) == 0
        listing = capsys.readouterr().out
        assert "poisson3d" in listing and "two_branch" in listing and "bias_std=0.0" in listing
        assert max(len(line) for line in listing.splitlines()) <= 120
    finally:
        for registry in registries:
            registry.refresh()
