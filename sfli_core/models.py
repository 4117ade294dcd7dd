"""Architectures: MLP, modified MLP and PirateNet, and the protocol a user's own architecture follows.

The model protocol (every registered architecture, built-in or a user's):

  * constructor ``Arch(d_in, d_out, width, depth, activation, params)``; ``params`` is an instance of the
    class's ``Params`` (a :class:`sfli_core.params.Params` model; optional, none by default);
  * ``forward(x)`` with x [N, d_in] returns ``(output [N, d_out], features)``, ``features`` the list of
    every hidden layer's output [N, n_l], so that the ε-rank of every layer comes from the same forward pass
    as the prediction;
  * ``input_layers()`` lists the :class:`Dense` layers that read the raw input x, each with the name of the
    activation applied to it: that is where SFLI acts, and whose input weights condensation looks at;
  * optionally ``condensation_layers()`` (default: the input layers) for networks whose deeper layers are
    analysed too, and ``per_layer_activation = True`` when ``activation`` may be a list (one per layer).

Trainable tensors are created empty, in :class:`Dense` layers (or with a ``reset_structure(generator)``
method for anything else): a model is only usable after an initialisation from :mod:`sfli_core.init` has
filled every tensor, which keeps the whole parameter state a function of the run's seed, never of the global
RNG. Architectures are named in ``model.arch`` (:data:`MODELS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .activations import get_activation
from .params import NoParams, Params, params_of
from .registry import Registry


class Dense(nn.Module):
    """Affine map x ↦ W x + b, W ∈ R^{out×in}, optionally with random weight factorisation (RWF).

    With RWF the stored parameters are a per-row log-scale s ∈ R^{out} and a direction matrix V, and
    W = diag(exp(s)) V (PirateNet paper). ``assign`` always takes the *effective* W, so every
    initialisation is written once and works with and without RWF.
    """

    def __init__(self, d_in: int, d_out: int, rwf: bool = False, rwf_mean: float = 1.0, rwf_std: float = 0.1):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.empty(d_out))
        self.rwf_mean, self.rwf_std = rwf_mean, rwf_std
        self.log_scale = nn.Parameter(torch.empty(d_out)) if rwf else None

    def effective_weight(self) -> torch.Tensor:
        if self.log_scale is None:
            return self.weight
        return torch.exp(self.log_scale)[:, None] * self.weight

    @torch.no_grad()
    def assign(self, weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
        """Set the effective weight [out, in] and bias [out]; with RWF draw s ~ N(mean, std) and store W/exp(s)."""
        weight = weight.to(self.weight)
        if self.log_scale is not None:
            s = self.rwf_mean + self.rwf_std * torch.randn(self.d_out, generator=generator, dtype=torch.float64)
            self.log_scale.copy_(s)
            weight = weight / torch.exp(self.log_scale)[:, None]
        self.weight.copy_(weight)
        self.bias.copy_(bias.to(self.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


def layer_activations(activation: str | list[str], depth: int) -> list[str]:
    """One activation name per hidden layer: a single name is repeated, a list must have ``depth`` names."""
    names = [activation] * depth if isinstance(activation, str) else list(activation)
    if len(names) != depth:
        raise ValueError(f"model.activation: {len(names)} activations given for depth {depth}")
    return names


def single_activation(activation: str | list[str], arch: str) -> str:
    if not isinstance(activation, str):
        raise ValueError(f"model.activation: the architecture '{arch}' takes one activation name")
    return activation


class MLPParams(Params):
    residual: bool = False


class MLP(nn.Module):
    """y_l = σ_l(W_l y_{l−1} + b_l) (+ y_{l−1} for l ≥ 2 when ``residual``), output y = β·y_L + c.

    The residual form h ← σ(Wh + b) + h is the condensation paper's deep network; the first layer has no
    skip because its input dimension differs from the width.
    """

    Params = MLPParams
    per_layer_activation = True

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str | list[str],
                 params: MLPParams):
        super().__init__()
        self.activation_names = layer_activations(activation, depth)
        self.acts = [get_activation(a) for a in self.activation_names]
        self.hidden = nn.ModuleList(Dense(d_in if i == 0 else width, width) for i in range(depth))
        self.out = Dense(width, d_out)
        self.residual = params.residual

    def input_layers(self) -> list[tuple[Dense, str]]:
        return [(self.hidden[0], self.activation_names[0])]

    def condensation_layers(self) -> list[tuple[Dense, str]]:
        return list(zip(self.hidden, self.activation_names))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        h = x
        for i, (layer, act) in enumerate(zip(self.hidden, self.acts)):
            z = act(layer(h))
            h = z + h if (self.residual and i > 0) else z
            features.append(h)
        return self.out(h), features


class ModifiedMLP(nn.Module):
    """Modified MLP (Wang, Teng, Perdikaris 2021): gates U = σ(W_u x + b_u), V = σ(W_v x + b_v),
    H_1 = σ(W_1 x + b_1), Z_k = σ(W_k H_k + b_k), H_{k+1} = (1 − Z_k) ⊙ U + Z_k ⊙ V; output β·H_L + c.

    ``depth`` counts the hidden layers H_1 … H_L; every one is returned as a feature.
    """

    Params = NoParams

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str,
                 params: NoParams):
        super().__init__()
        self.activation_name = single_activation(activation, "modified_mlp")
        self.act = get_activation(activation)
        self.gate_u = Dense(d_in, width)
        self.gate_v = Dense(d_in, width)
        self.hidden = nn.ModuleList(Dense(d_in if i == 0 else width, width) for i in range(depth))
        self.out = Dense(width, d_out)

    def input_layers(self) -> list[tuple[Dense, str]]:
        return [(self.gate_u, self.activation_name), (self.gate_v, self.activation_name),
                (self.hidden[0], self.activation_name)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        u, v = self.act(self.gate_u(x)), self.act(self.gate_v(x))
        h = self.act(self.hidden[0](x))
        features = [h]
        for layer in self.hidden[1:]:
            z = self.act(layer(h))
            h = (1 - z) * u + z * v
            features.append(h)
        return self.out(h), features


class FourierEmbedding(nn.Module):
    """Φ(x) = [cos(B x), sin(B x)], B ∈ R^{width/2 × d} trainable, B ~ N(0, scale²) unless SFLI builds it."""

    def __init__(self, d_in: int, width: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        if width % 2:
            raise ValueError(f"model.width must be even for a Fourier embedding, got {width}")
        self.B = nn.Parameter(torch.empty(width // 2, d_in))

    @torch.no_grad()
    def reset_structure(self, generator: torch.Generator) -> None:
        self.B.copy_(self.scale * torch.randn(self.B.shape, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.linear(x, self.B)  # x Bᵀ (F.linear rather than @: Dynamo swaps the operands of a jet's @)
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)


class PirateParams(Params):
    fourier_features: bool = True
    fourier_scale: float = Field(1.0, gt=0)
    rwf: bool = False
    rwf_mean: float = 1.0
    rwf_std: float = Field(0.1, ge=0)


class PirateNet(nn.Module):
    """PirateNet (Wang, Li, Chen, Perdikaris 2024) with L residual-gated blocks.

    Embedding Φ(x): random Fourier features when ``fourier_features``, else a dense layer σ(W_e x + b_e)
    [our choice: the block stream needs an input of dimension ``width``; this dense embedding is the
    "first block" of docs/science.md §3 that reads x]. Gates U = σ(W_u e + b_u), V = σ(W_v e + b_v) read the
    Fourier embedding e = Φ(x) when there is one, else x itself. Each block l:

        f = σ(W₁ x_l + b₁),  z₁ = f ⊙ U + (1 − f) ⊙ V,
        g = σ(W₂ z₁ + b₂),   z₂ = g ⊙ U + (1 − g) ⊙ V,
        h = σ(W₃ z₂ + b₃),   x_{l+1} = α_l h + (1 − α_l) x_l,

    with α_l initialised at 0, so that the initial network is a linear function of Φ(x). Output β·x_L + c.
    Features: the block outputs x_1 … x_L.
    """

    Params = PirateParams

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str,
                 params: PirateParams):
        super().__init__()
        self.activation_name = single_activation(activation, "pirate")
        self.act = get_activation(activation)

        def dense(i: int, o: int) -> Dense:
            return Dense(i, o, rwf=params.rwf, rwf_mean=params.rwf_mean, rwf_std=params.rwf_std)

        fourier = params.fourier_features
        self.embedding = FourierEmbedding(d_in, width, params.fourier_scale) if fourier else dense(d_in, width)
        gate_in = width if fourier else d_in
        self.gate_u, self.gate_v = dense(gate_in, width), dense(gate_in, width)
        self.blocks = nn.ModuleList(
            nn.ModuleList([dense(width, width), dense(width, width), dense(width, width)]) for _ in range(depth)
        )
        self.alpha = nn.Parameter(torch.empty(depth))
        self.out = dense(width, d_out)

    @property
    def fourier_features(self) -> bool:
        return isinstance(self.embedding, FourierEmbedding)

    @torch.no_grad()
    def reset_structure(self, generator: torch.Generator) -> None:
        self.alpha.zero_()  # structural, not random: every block starts as the identity

    def input_layers(self) -> list[tuple[Dense, str]]:
        if self.fourier_features:
            return []  # the SFLI acts on the Fourier matrix B instead (see sfli_core.init)
        return [(self.embedding, self.activation_name), (self.gate_u, self.activation_name),
                (self.gate_v, self.activation_name)]

    def condensation_layers(self) -> list[tuple[Dense, str]]:
        """With a Fourier embedding no dense layer reads x: the gates, which read Φ(x), are analysed."""
        if self.fourier_features:
            return [(self.gate_u, self.activation_name), (self.gate_v, self.activation_name)]
        return self.input_layers()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x) if self.fourier_features else self.act(self.embedding(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        e = self.embed(x)
        gate_in = e if self.fourier_features else x
        u, v = self.act(self.gate_u(gate_in)), self.act(self.gate_v(gate_in))
        h = e
        features = []
        for alpha, (l1, l2, l3) in zip(self.alpha, self.blocks):
            f = self.act(l1(h))
            z1 = f * u + (1 - f) * v
            g = self.act(l2(z1))
            z2 = g * u + (1 - g) * v
            h = alpha * self.act(l3(z2)) + (1 - alpha) * h
            features.append(h)
        return self.out(h), features


def _adapt(obj: object) -> type[nn.Module]:
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise TypeError(f"expected a torch.nn.Module subclass, got {obj!r}")
    if not callable(getattr(obj, "input_layers", None)):
        raise TypeError(f"{obj.__name__} has no input_layers() method (which layers read the raw input x)")
    params_of(obj)
    return obj


MODELS: Registry[type[nn.Module]] = Registry("architecture", "sfli.models", _adapt)
MODELS.register("mlp", MLP)
MODELS.register("modified_mlp", ModifiedMLP)
MODELS.register("pirate", PirateNet)


def build_model(cfg, d_in: int, d_out: int) -> nn.Module:
    """Build the (uninitialised) model described by a :class:`sfli_core.config.ModelConfig`."""
    arch = MODELS.get(cfg.arch)
    return arch(d_in, d_out, cfg.width, cfg.depth, cfg.activation, params_of(arch).model_validate(cfg.params))


def condensation_layers(model: nn.Module) -> list[tuple[Dense, str]]:
    """The layers whose input weights condensation analyses: ``model.condensation_layers()`` where the
    architecture defines it, else the layers that read x."""
    own = getattr(model, "condensation_layers", None)
    return own() if callable(own) else model.input_layers()
