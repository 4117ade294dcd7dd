"""Initialisations, each one call on a built model: ``apply_init(model, cfg, box, seed)`` (docs/science.md §3).

Baselines act on every dense layer (bias included where stated):
  * ``xavier_normal``:  W ~ N(0, s²·2/(fan_in + fan_out)), b = 0;
  * ``xavier_uniform``: W ~ U(±s·√(6/(fan_in + fan_out))), b = 0;
  * ``kaiming_uniform``: PyTorch's nn.Linear default, W, b ~ U(±s/√fan_in);
  * ``small_gaussian``: every W and b ~ N(0, σ²), σ = s·m^(−exponent), m the width (condensation paper);
  * ``sfli``: structured first layer on the layers that read x, Xavier normal elsewhere (the treatment).
s is ``init.scale`` (the gain for Xavier/Kaiming, σ's prefactor for small_gaussian, κ for SFLI); knobs of one
initialisation only live in ``init.params`` (``exponent``, ``omega_max``). Structural tensors are not random
draws of the scheme: each module's ``reset_structure(generator)`` sets them (PirateNet's mixing scalars α
start at 0; a Fourier matrix B is N(0, ``fourier_scale``²) unless SFLI builds it).

A user's initialisation is a function ``apply(model, box, seed, scale, params) -> dict`` of recorded resolved
knobs (or an :class:`Initialisation` giving its ``Params`` and ``role``), named by import path or registered
under ``sfli.inits``; :func:`fill_dense` and :func:`stream` are the building blocks the built-ins use.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from .activations import ACTIVATIONS
from .geometry import Box
from .layouts import Layout, frequency_vectors, hyperplanes
from .models import Dense, PirateNet
from .params import NoParams, Params, params_of
from .record import InitRole
from .registry import Registry

Draw = Callable[[int, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Initialisation:
    """A registered initialisation. ``role`` (:class:`~sfli_core.record.InitRole`): ``treatment`` for what a
    study tests (SFLI, or a user's idea), ``baseline`` for what it is compared against; the speed-up tables and
    the claims pair every treatment arm with every baseline arm."""

    apply: Callable[[torch.nn.Module, Box, int, float, Params], dict[str, float]]
    Params: type[Params] = NoParams
    role: InitRole = InitRole.BASELINE

    @property
    def summary(self) -> str:
        return (self.apply.__doc__ or "").strip().split("\n")[0]


def _adapt(obj: object) -> Initialisation:
    if isinstance(obj, Initialisation):
        return obj
    if callable(obj) and not isinstance(obj, type):
        try:
            inspect.signature(obj).bind(None, None, 0, 1.0, None)
        except TypeError:
            raise TypeError("an initialisation is called as apply(model, box, seed, scale, params); "
                            f"{getattr(obj, '__name__', obj)} does not take these arguments") from None
        role = getattr(obj, "role", InitRole.BASELINE)
        if role not in tuple(InitRole):
            raise TypeError(f"role must be one of {', '.join(map(repr, map(str, InitRole)))}, got {role!r}")
        return Initialisation(obj, params_of(obj), InitRole(role))
    raise TypeError("expected a function apply(model, box, seed, scale, params) or an "
                    f"sfli_core.init.Initialisation, got {type(obj).__name__}")


INITS: Registry[Initialisation] = Registry("initialisation", "sfli.inits", _adapt)


def stream(seed: int, *key: int) -> torch.Generator:
    """An independent generator for (seed, key…): every layer that SFLI builds has its own stream."""
    state = np.random.SeedSequence([seed, *key]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def fill_dense(model: torch.nn.Module, draw: Draw, generator: torch.Generator) -> None:
    """Every :class:`Dense` layer gets (W [out, in], b [out]) = ``draw(fan_in, fan_out, generator)``, and every
    module with structural tensors its ``reset_structure(generator)``, in module order from one stream."""
    for module in model.modules():
        if isinstance(module, Dense):
            module.assign(*draw(module.d_in, module.d_out, generator), generator)
        elif callable(getattr(module, "reset_structure", None)):
            module.reset_structure(generator)


def xavier_normal(scale: float) -> Draw:
    def draw(d_in: int, d_out: int, g: torch.Generator):
        std = scale * math.sqrt(2.0 / (d_in + d_out))
        return std * torch.randn(d_out, d_in, generator=g, dtype=torch.float64), torch.zeros(d_out, dtype=torch.float64)
    return draw


def xavier_uniform(scale: float) -> Draw:
    def draw(d_in: int, d_out: int, g: torch.Generator):
        bound = scale * math.sqrt(6.0 / (d_in + d_out))
        w = bound * (2 * torch.rand(d_out, d_in, generator=g, dtype=torch.float64) - 1)
        return w, torch.zeros(d_out, dtype=torch.float64)
    return draw


def kaiming_uniform(scale: float) -> Draw:
    def draw(d_in: int, d_out: int, g: torch.Generator):
        bound = scale / math.sqrt(d_in)
        w = bound * (2 * torch.rand(d_out, d_in, generator=g, dtype=torch.float64) - 1)
        return w, bound * (2 * torch.rand(d_out, generator=g, dtype=torch.float64) - 1)
    return draw


def gaussian(sigma: float) -> Draw:
    def draw(d_in: int, d_out: int, g: torch.Generator):
        return (sigma * torch.randn(d_out, d_in, generator=g, dtype=torch.float64),
                sigma * torch.randn(d_out, generator=g, dtype=torch.float64))
    return draw


def _dense_scheme(make: Callable[[float], Draw], doc: str) -> Initialisation:
    def apply(model, box, seed, scale, params):
        fill_dense(model, make(scale), stream(seed, 0))
        return {}

    apply.__doc__ = doc
    return Initialisation(apply)


INITS.register("xavier_normal", _dense_scheme(xavier_normal, "W ~ N(0, s²·2/(fan_in + fan_out)), b = 0"))
INITS.register("xavier_uniform", _dense_scheme(xavier_uniform, "W ~ U(±s·√(6/(fan_in + fan_out))), b = 0"))
INITS.register("kaiming_uniform", _dense_scheme(kaiming_uniform, "W, b ~ U(±s/√fan_in) (PyTorch's default)"))


class SmallGaussianParams(Params):
    exponent: float = 1.5


def small_gaussian(model, box: Box, seed: int, scale: float, params: SmallGaussianParams) -> dict[str, float]:
    """Every W and b ~ N(0, σ²), σ = s·m^(−exponent), m the widest layer (condensation paper)."""
    width = max(layer.d_out for layer in model.modules() if isinstance(layer, Dense))
    sigma = scale * width ** (-params.exponent)
    fill_dense(model, gaussian(sigma), stream(seed, 0))
    return {"sigma": sigma}


INITS.register("small_gaussian", Initialisation(small_gaussian, SmallGaussianParams))


def apply_init(model: torch.nn.Module, cfg, box: Box, seed: int) -> dict[str, float]:
    """Initialise every parameter of ``model`` from ``cfg`` (an :class:`InitConfig`) and ``seed``.

    Returns the resolved knobs (e.g. SFLI's γ or ω_max, small_gaussian's σ) for the run record.
    """
    scheme = INITS.get(cfg.name)
    return dict(scheme.apply(model, box, seed, cfg.scale, scheme.Params.model_validate(cfg.params)))


def sfli_layer(activation: str, box: Box, m: int, scale: float, omega_max: float | None, g: torch.Generator,
               layout: Layout = "random") -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """SFLI weights W [m, d] and biases b [m] for m neurons of ``activation`` reading x ∈ Ω, placed by ``layout``
    (:mod:`sfli_core.layouts`).

    Sigmoidal: σ(γ_i(α_i·(x − x_c) − r_i)), γ_i = κ/h_i times the activation's SFLI gain (2 for sigmoid,
    since tanh z = 2 sigmoid(2z) − 1). Ramp: the same hyperplanes with ‖w_i‖ = κ. Periodic:
    sin(ω_i α_i·(x − x_c) + φ_i) with φ alternating 0, π/2. Returns the resolved knobs for the run record
    (γ averaged over the neurons; ω_max, the largest under ``axis``).
    """
    act = ACTIVATIONS.get(activation)
    shape = act.sfli_shape
    if shape is None:
        served = [name for name, a in ACTIVATIONS.items() if a.sfli_shape is not None]
        raise ValueError(f"init 'sfli' cannot serve activation '{activation}'; it supports: {', '.join(served)}")
    xc = box.center()
    if shape == "periodic":
        w, used = frequency_vectors(box, m, layout, g, scale, omega_max)
        phase = torch.where(torch.arange(m) % 2 == 0, 0.0, math.pi / 2).to(torch.float64)
        return w, phase - w @ xc, {"omega_max": used}
    planes = hyperplanes(box, m, layout, g)
    gamma = torch.full((m,), float(scale), dtype=torch.float64) if shape == "ramp" else scale / planes.h * act.sfli_gain
    w = gamma[:, None] * planes.alpha
    return w, -gamma * (planes.alpha @ xc + planes.r), {"gamma": float(gamma.mean())}


class SfliParams(Params):
    omega_max: float | None = Field(None, gt=0)  # sin features: None → κπ m^{1/d}/(2R)
    layout: Layout = "random"  # where the neurons go in d > 1 (sfli_core.layouts); all coincide in 1-D


def sfli(model, box: Box, seed: int, scale: float, params: SfliParams) -> dict[str, float]:
    """Structured first layer (κ = s) on the layers that read x, Xavier normal elsewhere."""
    fill_dense(model, xavier_normal(1.0), stream(seed, 0))
    if isinstance(model, PirateNet) and model.fourier_features:
        B = model.embedding.B  # [cos, sin] of each row: two features per frequency
        rows, used = frequency_vectors(box, B.shape[0], params.layout, stream(seed, 1), scale, params.omega_max,
                                       per_row=2)
        with torch.no_grad():
            B.copy_(rows)
        return {"omega_max": used}
    info: dict[str, float] = {}
    for k, (layer, activation) in enumerate(model.input_layers(), start=1):
        g = stream(seed, k)
        w, b, knobs = sfli_layer(activation, box, layer.d_out, scale, params.omega_max, g, params.layout)
        layer.assign(w, b, g)
        info.update(knobs)
    return info


INITS.register("sfli", Initialisation(sfli, SfliParams, role=InitRole.TREATMENT))
