"""A user's initialisation: LeCun normal, W ~ N(0, s²/fan_in), b ~ N(0, bias_std²), on every dense layer.

An initialisation is one function ``apply(model, box, seed, scale, params) -> dict`` of the resolved knobs it
wants recorded; its ``Params`` declare its own knobs (``init.params``) and its ``role`` says whether a study
treats it as a baseline (the default) or as the treatment it tests. ``fill_dense`` and ``stream`` are the
building blocks sfli's own initialisations use: every draw comes from the run's seed, never the global RNG.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from sfli_core.geometry import Box
from sfli_core.init import fill_dense, stream
from sfli_core.params import Params


class LecunParams(Params):
    bias_std: float = Field(0.0, ge=0)


def lecun_normal(model: torch.nn.Module, box: Box, seed: int, scale: float, params: LecunParams) -> dict:
    """W ~ N(0, s²/fan_in), b ~ N(0, bias_std²) on every dense layer (LeCun normal; a user's baseline)."""

    def draw(d_in: int, d_out: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        w = scale / math.sqrt(d_in) * torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
        return w, params.bias_std * torch.randn(d_out, generator=g, dtype=torch.float64)

    fill_dense(model, draw, stream(seed, 0))
    return {}  # nothing is derived from the knobs: init.scale and init.params are recorded already


lecun_normal.Params = LecunParams
lecun_normal.role = "baseline"
