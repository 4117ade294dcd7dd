"""A small architecture of the user's own: two first-layer branches with different activations.

    h₁ = [σ(W_a x + b_a), ρ(W_b x + b_b)]   (widths ⌊split·m⌉ and the rest of m),
    h_{l+1} = σ(W_l h_l + b_l),  l = 1 … depth − 1,   output β·h_L + c.

What sfli needs from it (the model protocol of sfli_core.models): the constructor signature, ``forward``
returning the output and every hidden layer, and ``input_layers`` naming both branches, since both read x:
SFLI then builds each branch for its own activation (a tanh branch of hyperplanes, a sin branch of
frequencies), the ε-rank is measured on every hidden layer, and condensation looks at the branches.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from sfli_core.activations import get_activation
from sfli_core.models import Dense
from sfli_core.params import Params


class TwoBranchParams(Params):
    branch_activation: str = "sin"  # ρ, the second branch's activation
    split: float = Field(0.5, gt=0, lt=1)  # share of the first layer's width in the σ branch

    @field_validator("branch_activation")
    @classmethod
    def _known(cls, name: str) -> str:
        get_activation(name)  # unknown names fail with the list of valid ones
        return name


class TwoBranchMLP(nn.Module):
    """Two first-layer branches (σ and ρ) side by side, then an MLP (a user's architecture)."""

    Params = TwoBranchParams

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str, params: TwoBranchParams):
        super().__init__()
        first = min(width - 1, max(1, round(params.split * width)))
        self.names = (activation, params.branch_activation)
        self.act, self.branch_act = get_activation(activation), get_activation(params.branch_activation)
        self.branch_a, self.branch_b = Dense(d_in, first), Dense(d_in, width - first)
        self.hidden = nn.ModuleList(Dense(width, width) for _ in range(depth - 1))
        self.out = Dense(width, d_out)

    def input_layers(self) -> list[tuple[Dense, str]]:
        return [(self.branch_a, self.names[0]), (self.branch_b, self.names[1])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = torch.cat([self.act(self.branch_a(x)), self.branch_act(self.branch_b(x))], dim=-1)
        features = [h]
        for layer in self.hidden:
            h = self.act(layer(h))
            features.append(h)
        return self.out(h), features
