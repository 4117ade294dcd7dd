"""Activation functions and their multiplicity at 0 (condensation paper, Definition 1).

Multiplicity p: σ^(k)(0) = 0 for k = 1 … p−1 and σ^(p)(0) ≠ 0. ReLU-like functions are not smooth at 0,
so p is undefined (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]

ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
    "sin": torch.sin,
    "x_tanh": lambda z: z * torch.tanh(z),
    "x2_tanh": lambda z: z * z * torch.tanh(z),
}

# The table of science.md §4; `numerical_multiplicity` reproduces it (tested).
MULTIPLICITY: dict[str, int | None] = {
    "tanh": 1,
    "sigmoid": 1,
    "relu": None,
    "leaky_relu": None,
    "gelu": 1,
    "silu": 1,
    "softplus": 1,
    "sin": 1,
    "x_tanh": 2,
    "x2_tanh": 3,
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation '{name}'; valid: {', '.join(ACTIVATIONS)}") from None


def numerical_multiplicity(fn: Activation, max_order: int = 6, tol: float = 1e-7) -> int | None:
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
        (value,) = torch.autograd.grad(value, z, create_graph=True)
        if abs(value.item()) > tol * math.factorial(order):
            return order
    return None
