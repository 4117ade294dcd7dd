"""Taylor mode (sfli_core.taylor, sfli_core.fields): the same derivatives, loss terms and parameter gradients as
nested reverse mode, to float64 round-off, for every built-in architecture and every shipped PDE task; a
fallback to nested reverse mode, with its reason recorded, where Taylor mode cannot serve a model."""

import math

import pytest
import torch
from torch import nn

from sfli_core.activations import ACTIVATIONS
from sfli_core.config import RunConfig, TrainConfig
from sfli_core.fields import plan_derivatives
from sfli_core.init import apply_init
from sfli_core.models import build_model
from sfli_core.tasks import build_task
from sfli_core.tasks.base import derivatives
from sfli_core.taylor import Jet, TaylorField, taylor_derivatives
from sfli_core.trainer import Trainer

PDE_TASKS = ["poisson1d", "poisson2d", "helmholtz2d_a1-4_k1", "allen_cahn_d1e-4", "advection1d_c30"]
ARCHITECTURES = {  # every built-in architecture, with and without its options that change the forward pass
    "mlp": ("mlp", {}, "tanh"),
    "mlp_residual": ("mlp", {"residual": True}, "x_tanh"),
    "modified_mlp": ("modified_mlp", {}, "tanh"),
    "pirate": ("pirate", {}, "tanh"),
    "pirate_dense_embedding": ("pirate", {"fourier_features": False}, "tanh"),
    "pirate_rwf": ("pirate", {"rwf": True}, "sin"),
}


def model_and_task(arch: str, params: dict, activation, task: str, width: int = 8, depth: int = 2):
    cfg = RunConfig.model_validate({"task": {"name": task}, "model": {
        "arch": arch, "width": width, "depth": depth, "activation": activation, "params": params}})
    t = build_task(cfg.task.name, cfg.task.params)
    model = build_model(cfg.model, t.in_dim, t.out_dim)
    apply_init(model, cfg.init, t.box, seed=0)
    model.double()
    with torch.no_grad():  # off the initialisation (PirateNet starts with α = 0: its blocks would not count)
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    return model, t


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / (b.abs().max() + 1e-300)).detach())


@pytest.mark.parametrize("task", PDE_TASKS)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_loss_terms_and_parameter_gradients_equal_nested_autograd(name, task):
    model, t = model_and_task(*ARCHITECTURES[name], task)
    batch = t.sample(32, torch.Generator().manual_seed(1), torch.float64)
    params = list(model.parameters())
    by_terms = {}
    for path, field in (("taylor", TaylorField(lambda x: model(x)[0])), ("autograd", lambda x: model(x)[0])):
        terms = t.loss_terms(field, batch)
        by_terms[path] = (terms, torch.autograd.grad(sum(terms.values()), params))
    (taylor, g_taylor), (reference, g_reference) = by_terms["taylor"], by_terms["autograd"]
    assert taylor.keys() == reference.keys()
    for key in reference:
        assert relative_gap(taylor[key], reference[key]) < 1e-12, key
    for a, b, (pname, _) in zip(g_taylor, g_reference, model.named_parameters()):
        assert relative_gap(a, b) < 1e-10, pname


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS.names()))
def test_every_activation_gives_exact_first_and_second_derivatives(activation):
    model, t = model_and_task("mlp", {}, activation, "poisson2d", width=6, depth=2)
    x = t.box.uniform(16, torch.Generator().manual_seed(2)).double()
    jet = taylor_derivatives(lambda j: model(j)[0], x, (0, 1))
    reference = derivatives(lambda y: model(y)[0], x.clone().requires_grad_(True), (0, 1))
    for a, b in zip(jet, reference):
        assert relative_gap(a, b) < 1e-12


def test_the_method_spellings_of_elementwise_functions_run_in_taylor_mode():
    """z.tanh(), F.tanh(z) and F.sigmoid(z) (which call the methods, bypassing torch-function dispatch), z.sin(),
    z.cos(), z.exp(): the same derivatives as nested autograd."""
    import torch.nn.functional as F

    w, v = (torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            for shape in ((3, 2), (1, 3)))

    def field(x):
        z = F.linear(x, w)
        return F.linear(F.tanh(z) + F.sigmoid(z) + z.tanh() * z.sin() * z.cos() + (0.1 * z).exp(), v)

    x = torch.rand(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jet = derivatives(TaylorField(field), x, second=(0, 1))
    reference = derivatives(field, x.clone().requires_grad_(True), second=(0, 1))
    for a, b in zip(jet, reference):
        assert relative_gap(a, b) < 1e-12


def test_known_jet_of_a_product_and_a_composition():
    """u = sin(x₀) · x₁² at (0.3, 2): ∇u = (cos 0.3 · 4, 4 sin 0.3), ∂²u = (−4 sin 0.3, 2 sin 0.3)."""
    x = torch.tensor([[0.3, 2.0]], dtype=torch.float64)
    s, c = math.sin(0.3), math.cos(0.3)
    field = TaylorField(lambda j: torch.sin(first_coordinate(j)) * second_coordinate(j) * second_coordinate(j))
    u, grad, second = field.derivatives(x, (0, 1))
    torch.testing.assert_close(u, torch.tensor([[4 * s]], dtype=torch.float64))
    torch.testing.assert_close(grad, torch.tensor([[4 * c, 4 * s]], dtype=torch.float64))
    torch.testing.assert_close(second, torch.tensor([[-4 * s, 2 * s]], dtype=torch.float64))


@pytest.mark.parametrize("path", ["taylor", "autograd"])
def test_known_derivatives_along_directions_and_their_sum(path):
    """u = sin(x₀) · x₁² at (0.3, 2), ∇²u = [[−4 sin 0.3, 4 cos 0.3], [4 cos 0.3, 2 sin 0.3]]: along v = (a, b),
    ∇u·v = 4a cos 0.3 + 4b sin 0.3 and vᵀ(∇²u)v = −4a² sin 0.3 + 8ab cos 0.3 + 2b² sin 0.3 (the mixed term
    only a direction off the axes sees); summed over the axes, Δu = −2 sin 0.3."""
    s, c = math.sin(0.3), math.cos(0.3)
    (a1, b1), (a2, b2) = directions = [(30.0, 1.0), (-0.5, 2.0)]

    def u(j):
        return torch.sin(first_coordinate(j)) * second_coordinate(j) * second_coordinate(j)

    field = TaylorField(u) if path == "taylor" else u

    def at(**kw):
        x = torch.tensor([[0.3, 2.0]], dtype=torch.float64)
        return derivatives(field, x if path == "taylor" else x.requires_grad_(True), **kw)

    along = at(second=(0, 1), directions=directions)
    torch.testing.assert_close(along.grad, torch.tensor([[4 * c * a1 + 4 * s * b1, 4 * c * a2 + 4 * s * b2]],
                                                        dtype=torch.float64))
    torch.testing.assert_close(along.second, torch.tensor(
        [[-4 * s * a * a + 8 * c * a * b + 2 * s * b * b for a, b in directions]], dtype=torch.float64))
    one = at(directions=directions[:1])
    assert one.grad.shape == (1, 1) and one.second is None
    torch.testing.assert_close(one.grad, along.grad[:, :1])
    laplacian = at(second=(0, 1), summed=True)
    torch.testing.assert_close(laplacian.second, torch.tensor([[-2 * s]], dtype=torch.float64))
    torch.testing.assert_close(laplacian.grad, torch.tensor([[4 * c, 4 * s]], dtype=torch.float64))
    # an operator in one stream: Δu + ∇u·(0.5, −3) = −2 sin 0.3 + 2 cos 0.3 − 12 sin 0.3
    operator = at(second=(0, 1), summed=True, drift=[0.5, -3.0])
    torch.testing.assert_close(operator.second, torch.tensor([[-14 * s + 2 * c]], dtype=torch.float64))
    # Allen–Cahn's shape, 0.04 ∂²u/∂x₀² − ∂u/∂x₁ (the direction √0.04 e₀ only): −0.16 sin 0.3 − 4 sin 0.3
    collapsed = at(second=(0,), directions=[[0.2, 0.0]], summed=True, drift=[0.0, -1.0])
    torch.testing.assert_close(collapsed.second, torch.tensor([[-4.16 * s]], dtype=torch.float64))
    torch.testing.assert_close(collapsed.grad, torch.tensor([[0.8 * c]], dtype=torch.float64))
    # a drift alone: ∇u·(1, 2) = 4 cos 0.3 + 8 sin 0.3
    first_order = at(directions=[[1.0, 0.0]], summed=True, drift=[1.0, 2.0])
    torch.testing.assert_close(first_order.second, torch.tensor([[4 * c + 8 * s]], dtype=torch.float64))
    with pytest.raises(ValueError, match="summed=True"):
        at(second=(0,), drift=[1.0, 2.0])


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS.names()))
def test_every_activation_gives_exact_derivatives_along_directions_and_their_sum(activation):
    model, t = model_and_task("mlp", {}, activation, "poisson2d", width=6, depth=2)
    x = t.box.uniform(16, torch.Generator().manual_seed(2)).double()
    for kw in ({"second": (0, 1), "directions": [[1.5, -0.5], [0.2, 1.0]]}, {"second": (1, 0), "summed": True},
               {"second": (0,), "directions": [[2.0, 3.0]], "summed": True},
               {"second": (0,), "directions": [[0.5, 0.0]], "summed": True, "drift": [0.3, -1.0]},
               {"directions": [[1.0, 1.0]], "summed": True, "drift": [2.0, -1.0]}):
        jet = derivatives(TaylorField(lambda j: model(j)[0]), x, **kw)
        reference = derivatives(lambda y: model(y)[0], x.clone().requires_grad_(True), **kw)
        for a, b in zip(jet, reference):
            assert relative_gap(a, b) < 1e-12, kw


@pytest.mark.parametrize("task", ["advection1d_c30", "allen_cahn_d1e-4", "helmholtz2d_a1-4_k1"])
def test_packed_taylor_terms_equal_each_members_nested_autograd_terms(task):
    """A pack's Taylor mode (vmap over members) asks for the same directions and sums as a run alone."""
    from sfli_core.fields import DerivativePlan, LossTerms

    (first, t), second = model_and_task("pirate", {}, "tanh", task), model_and_task("pirate", {}, "tanh", task)[0]
    with torch.no_grad():  # two members with different weights
        for p in second.parameters():
            p.mul_(0.5)
    models = [first, second]
    batches = [t.sample(24, torch.Generator().manual_seed(seed), torch.float64) for seed in (3, 4)]
    stacked = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
    params = {name: torch.stack([dict(m.named_parameters())[name] for m in models])
              for name, _ in models[0].named_parameters()}
    packed = LossTerms(t, models[0], DerivativePlan("taylor", False), packed=True)(stacked, params)
    for i, (model, batch) in enumerate(zip(models, batches)):
        reference = t.loss_terms(lambda x, m=model: m(x)[0], batch)
        for key, value in reference.items():
            assert relative_gap(packed[key][i], value) < 1e-12, (key, i)


def first_coordinate(j):
    return torch.nn.functional.linear(j, torch.tensor([[1.0, 0.0]], dtype=torch.float64))


def second_coordinate(j):
    return torch.nn.functional.linear(j, torch.tensor([[0.0, 1.0]], dtype=torch.float64))


class Cumulative(nn.Module):
    """A user's architecture with an operation Taylor mode has no rule for (a cumulative sum over features)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 4)

    def input_layers(self):
        return []

    def forward(self, x):
        h = torch.cumsum(torch.tanh(self.layer(x)), dim=-1)
        return h[..., -1:], [h]


def test_an_unsupported_operation_falls_back_to_nested_autograd_and_says_why():
    t = build_task("poisson2d", {})
    plan = plan_derivatives(TrainConfig(), Cumulative().double(), t, torch.float64, torch.device("cpu"))
    assert (plan.path, plan.compiled) == ("autograd", False)
    assert "cumsum" in plan.note and "Cumulative" in plan.note
    assert plan.metadata()["derivatives"] == "autograd" and "cumsum" in plan.metadata()["derivatives.note"]
    with pytest.raises(TypeError, match="cumsum"):
        Cumulative()(Jet.seed(torch.zeros(3, 2), (0,)))


def test_whether_a_run_would_compile_follows_from_its_configuration():
    from sfli_core.fields import would_compile

    def cfg(task="poisson2d", **train):
        return RunConfig.model_validate({"task": {"name": task}, "train": {"steps": 1000} | train})

    assert would_compile(cfg()) and would_compile(cfg(steps=10, compile="on"))
    assert not would_compile(cfg(steps=999))  # auto: a short run would not earn its compilation back
    assert not would_compile(cfg(derivatives="autograd")) and not would_compile(cfg(compile="off"))
    assert not would_compile(cfg(task="fit1d_multiscale"))  # no derivatives in a fitting loss


def test_the_plan_of_a_run_is_recorded_with_it():
    base = {"task": {"name": "poisson1d"}, "model": {"arch": "mlp", "width": 8, "depth": 1},
            "train": {"steps": 2, "log_every": 1, "n_train": 16, "device": "cpu"}}
    taylor = Trainer(RunConfig.model_validate(base)).run()
    assert taylor.metadata["derivatives"] == "taylor" and taylor.metadata["compiled"] == "false"  # 2 < 1000 steps
    reference = Trainer(RunConfig.model_validate(base | {"train": base["train"] | {"derivatives": "autograd"}})).run()
    assert reference.metadata["derivatives"] == "autograd"
    fit = Trainer(RunConfig.model_validate(base | {"task": {"name": "fit1d_multiscale"}})).run()
    assert fit.metadata["derivatives"] == "none"
    for a, b in zip(taylor.history, reference.history):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)


# a summed Laplacian; a direction; a drift in the summed stream (Allen–Cahn)
@pytest.mark.parametrize("task", ["poisson1d", "advection1d_c30", "allen_cahn_d1e-4"])
def test_a_compiled_run_matches_the_uncompiled_one_and_its_compilation_serves_the_next_run(monkeypatch, task):
    """The compiled Taylor-mode loss (what long runs use) follows the eager trajectory, in one graph; a second
    run of the same architecture in the process (Ray reuses a trial's process) compiles nothing again. These are
    properties of the graph Dynamo traces and AOT autograd differentiates, which the ``aot_eager`` backend builds
    exactly as inductor does, in a second instead of half a minute of C++ compilation on an empty cache;
    inductor's kernels are checked against nested autograd by benchmarks/pinn_derivatives.py on every
    architecture."""
    from torch._dynamo.utils import counters

    from sfli_core import fields

    monkeypatch.setattr(fields, "COMPILE_BACKEND", "aot_eager")
    counters.clear()

    base = {"task": {"name": task}, "model": {"arch": "mlp", "width": 8, "depth": 2},
            "train": {"steps": 30, "log_every": 10, "n_train": 32, "device": "cpu", "dtype": "float64"}}
    runs = {}
    for compile_ in ("on", "off"):
        cfg = RunConfig.model_validate(base | {"train": base["train"] | {"compile": compile_}})
        runs[compile_] = Trainer(cfg).run()
    assert runs["on"].metadata["compiled"] == "true", runs["on"].metadata.get("derivatives.note")
    assert not counters["graph_break"], dict(counters["graph_break"])  # the whole loss is one graph
    # compiled before the timed steps (were it counted, train_s would exceed it), and recorded on its own
    assert runs["on"].history[-1]["time/train_s"] < float(runs["on"].metadata["compile_s"])
    assert "compile_s" not in runs["off"].metadata
    for a, b in zip(runs["on"].history, runs["off"].history, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-10)
        assert a["eval/rel_l2"] == pytest.approx(b["eval/rel_l2"], rel=1e-10)
    compiled_frames = counters["frames"]["ok"]
    other = RunConfig.model_validate(base | {"seed": 7, "train": base["train"] | {"compile": "on"}})
    assert Trainer(other).run().metadata["compiled"] == "true"
    assert counters["frames"]["ok"] == compiled_frames


def test_each_shape_compiles_its_own_static_graph_whatever_was_compiled_before(monkeypatch):
    """A process that compiles a second shape (another task's batch, another n_train) gets a graph of fixed
    sizes, as the first: with symbolic sizes its cache key would depend on the order of compilation, and a
    trial actor compiling in another order would miss inductor's on-disk cache."""
    from sfli_core import fields

    graphs = []

    def recorder(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(fields, "COMPILE_BACKEND", recorder)
    for n_train in (16, 24, 40):
        Trainer(RunConfig.model_validate({
            "task": {"name": "poisson1d"}, "model": {"arch": "mlp", "width": 8, "depth": 1},
            "train": {"steps": 2, "n_train": n_train, "device": "cpu", "compile": "on"}})).run()
    assert len(graphs) == 3
    for gm in graphs:
        inputs = [n.meta["example_value"] for n in gm.graph.nodes if n.op == "placeholder"]
        assert not any(isinstance(v, torch.SymInt) for v in inputs)
        assert all(isinstance(d, int) for v in inputs if isinstance(v, torch.Tensor) for d in v.shape)


def test_a_pack_runs_taylor_mode_uncompiled_and_records_it():
    from sfli_core.pack import Pack

    cfgs = [RunConfig.model_validate({"task": {"name": "poisson1d"}, "model": {"arch": "mlp", "width": 8, "depth": 1},
                                      "train": {"steps": 2, "n_train": 16, "device": "cpu", "compile": "on"},
                                      "seed": seed}) for seed in (0, 1)]
    results = Pack(cfgs).run()
    for result in results:
        assert result.metadata["derivatives"] == "taylor" and result.metadata["compiled"] == "false"
        assert result.metadata["derivatives.note"] == "packed runs are not compiled"
