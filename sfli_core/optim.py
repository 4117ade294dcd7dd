"""Functional optimisers: the update is a function of (parameters, gradients, optimiser state, lr).

Parameters and state are flat lists of tensors updated in place with ``torch._foreach_*`` kernels (the same
kernels torch.optim uses for its multi-tensor path), so the state is plain data that a checkpoint stores and
that a pack (:mod:`sfli_core.pack`) stacks across many models: there ``lr`` is a tensor [P], one rate per member,
applied along the leading member dimension of every parameter. Adam follows torch.optim.Adam exactly (tested):

    m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
"""

from __future__ import annotations

import math

import torch


def per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values [P] shaped to broadcast along the leading member dimension of ``like`` [P, …]."""
    return values.view(-1, *[1] * (like.dim() - 1))


class Adam:
    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.beta1, self.beta2 = betas
        self.eps = eps

    def init(self, params: list[torch.Tensor]) -> dict:
        return {"t": 0, "m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}

    @torch.no_grad()
    def update(self, params: list[torch.Tensor], grads: list[torch.Tensor], state: dict,
               lr: float | torch.Tensor) -> None:
        state["t"] += 1
        t = state["t"]
        m, v = state["m"], state["v"]
        torch._foreach_lerp_(m, grads, 1 - self.beta1)
        torch._foreach_mul_(v, self.beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - self.beta2)
        step_size = lr / (1 - self.beta1**t)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(1 - self.beta2**t))
        torch._foreach_add_(denom, self.eps)
        if isinstance(step_size, torch.Tensor):
            for p, mi, di in zip(params, m, denom):
                p.sub_(mi / di * per_member(step_size, p))
        else:
            torch._foreach_addcdiv_(params, m, denom, -step_size)


class SGD:
    """θ ← θ − lr·b, b ← μb + g (heavy-ball momentum μ; plain gradient descent when μ = 0)."""

    def __init__(self, momentum: float = 0.0):
        self.momentum = momentum

    def init(self, params: list[torch.Tensor]) -> dict:
        return {"t": 0, "b": [torch.zeros_like(p) for p in params] if self.momentum else []}

    @torch.no_grad()
    def update(self, params: list[torch.Tensor], grads: list[torch.Tensor], state: dict,
               lr: float | torch.Tensor) -> None:
        state["t"] += 1
        if self.momentum:
            torch._foreach_mul_(state["b"], self.momentum)
            torch._foreach_add_(state["b"], grads)
            grads = state["b"]
        if isinstance(lr, torch.Tensor):
            for p, g in zip(params, grads):
                p.sub_(g * per_member(lr, p))
        else:
            torch._foreach_add_(params, grads, alpha=-lr)


def make_optimizer(cfg) -> Adam | SGD:
    """From a :class:`TrainConfig`."""
    if cfg.optimizer == "adam":
        return Adam(cfg.betas, cfg.adam_eps)
    return SGD(cfg.momentum)


def learning_rate(cfg, step: int) -> float:
    """lr at ``step``: constant; exponential lr·rate^(step/decay_steps); cosine lr·½(1 + cos(π step/steps));
    times a linear warm-up min(1, (step + 1)/warmup_steps) when ``warmup_steps`` > 0 (jaxpi's recipe)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "exponential":
        return warm * cfg.lr * cfg.decay_rate ** (step / cfg.decay_steps)
    if cfg.schedule == "cosine":
        return warm * cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / max(cfg.steps, 1)))
    return warm * cfg.lr
