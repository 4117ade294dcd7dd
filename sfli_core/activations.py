"""Activation functions, with what the rest of sfli needs to know about each (docs/science.md §3, §4).

Every activation carries
  * its **multiplicity** p at 0 (condensation): σ^(k)(0) = 0 for k = 1 … p−1 and σ^(p)(0) ≠ 0; ``None`` for
    functions that are not smooth at 0 (ReLU-like);
  * its **SFLI shape**: how a structured first layer is built for it: ``sigmoidal`` (a transition of width
    ≈ 1/γ), ``ramp`` (a kink; ‖w‖ only sets the amplitude), ``periodic`` (a frequency), or ``None`` (SFLI
    cannot serve it);
  * its **SFLI gain**: the factor on γ that makes its transition as wide as tanh's (2 for the logistic
    sigmoid, since tanh z = 2·sigmoid(2z) − 1).

A user's activation is named by import path (``my_pkg.acts:swish``) or registered under ``sfli.activations``:
either an :class:`Activation`, or a plain function z ↦ σ(z) whose multiplicity is then measured numerically
and which SFLI does not serve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .registry import Registry

Shape = Literal["sigmoidal", "ramp", "periodic"]


@dataclass(frozen=True)
class Activation:
    fn: Callable[[torch.Tensor], torch.Tensor]
    multiplicity: int | None
    sfli_shape: Shape | None = None
    sfli_gain: float = 1.0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)


def _adapt(obj: object) -> Activation:
    if isinstance(obj, Activation):
        return obj
    if callable(obj):
        return Activation(obj, multiplicity=numerical_multiplicity(obj))
    raise TypeError(f"expected an sfli_core.activations.Activation or a function z ↦ σ(z), got {type(obj).__name__}")


ACTIVATIONS: Registry[Activation] = Registry("activation", "sfli.activations", _adapt)

for _name, _act in {
    "tanh": Activation(torch.tanh, 1, "sigmoidal"),
    "sigmoid": Activation(torch.sigmoid, 1, "sigmoidal", sfli_gain=2.0),
    "relu": Activation(F.relu, None, "ramp"),
    "leaky_relu": Activation(lambda z: F.leaky_relu(z, 0.01), None, "ramp"),
    "gelu": Activation(F.gelu, 1, "sigmoidal"),
    "silu": Activation(F.silu, 1, "sigmoidal"),
    "softplus": Activation(F.softplus, 1, "sigmoidal"),
    "sin": Activation(torch.sin, 1, "periodic"),
    "x_tanh": Activation(lambda z: z * torch.tanh(z), 2),
    "x2_tanh": Activation(lambda z: z * z * torch.tanh(z), 3),
}.items():
    ACTIVATIONS.register(_name, _act)


def get_activation(name: str) -> Activation:
    return ACTIVATIONS.get(name)


def numerical_multiplicity(fn: Callable[[torch.Tensor], torch.Tensor], max_order: int = 6,
                           tol: float = 1e-7) -> int | None:
    """Smallest p ≥ 1 with |σ^(p)(0)| > tol, by repeated autograd in float64; None if σ is not smooth at 0.

    Smoothness is checked by comparing the first derivative just left and right of 0 (a kink, as in ReLU,
    gives a jump there); a function whose first ``max_order`` derivatives all vanish also gives None.
    """
    delta = 1e-6
    side = torch.tensor([-delta, delta], dtype=torch.float64, requires_grad=True)
    (d_side,) = torch.autograd.grad(fn(side).sum(), side)
    if abs(float(d_side[1] - d_side[0])) > 1e-3:
        return None
    z = torch.zeros((), dtype=torch.float64, requires_grad=True)
    value = fn(z)
    for order in range(1, max_order + 1):
        if not value.requires_grad:  # the previous derivative was a constant: every further one is 0
            return None
        (value,) = torch.autograd.grad(value, z, create_graph=True)
        if abs(value.item()) > tol * math.factorial(order):
            return order
    return None
