"""The one protocol every task implements, built-in or a user's (docs/science.md §5).

A task owns its domain box Ω, how training / collocation points are drawn, its loss terms, its exact or
reference solution and its evaluation grid, and declares its parameters as a ``Params`` model (validated,
recorded with every run). ``u`` below is always a callable x [..., N, d] ↦ u(x) [..., N, 1]. Loss terms are
returned already weighted; the training loss is their sum.

Packing (many runs trained as one batched model, :mod:`sfli_core.pack`) calls ``loss_terms`` on batches with a
leading member dimension, x [P, N, d], and expects terms of shape [P]. A task supports it when its loss terms
reduce over the point dimensions only (:func:`point_mean`) and its residuals index coordinates as
``x[..., k]``; it says so with ``packable = True`` (a user's task is not packed unless it does).

A user's task subclasses :class:`FitTask` or :class:`PDETask` (or :class:`Task`) and is named in a
configuration by its import path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from ..geometry import Box
from ..params import NoParams, Params

Field = Callable[[torch.Tensor], torch.Tensor]
Batch = dict[str, torch.Tensor]


class Task(ABC):
    family: str = ""  # the canonical name; a user task without one is named after its class
    Params: type[Params] = NoParams
    box: Box
    out_dim: int = 1
    default_n_train: int
    packable: bool = False  # loss terms batched over a leading member dimension (see the module docstring)

    def __init__(self, params: Params):
        self.params = params
        self._eval: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def name(self) -> str:
        """Canonical name; PDE families encode their coefficients (``allen_cahn_d1e-4``)."""
        return self.family or type(self).__name__

    @property
    def in_dim(self) -> int:
        return self.box.dim

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Batch:
        """Training data / collocation points: ``n`` interior points plus the task's boundary sets."""

    @abstractmethod
    def loss_terms(self, u: Field, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted scalar loss terms, e.g. {'pde': …, 'bc': …}."""

    @abstractmethod
    def solution(self, x: torch.Tensor) -> torch.Tensor:
        """Exact (or reference) solution at x [N, d] → [N, 1]."""

    @abstractmethod
    def eval_points(self) -> torch.Tensor:
        """The evaluation grid [N_eval, d] (float64) on which the relative L2 error is measured."""

    def eval_data(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(points, solution values) of the evaluation grid, computed once."""
        if self._eval is None:
            x = self.eval_points()
            self._eval = (x, self.solution(x))
        x, y = self._eval
        return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)

    @staticmethod
    def rel_l2(prediction: torch.Tensor, truth: torch.Tensor) -> float:
        """‖u_θ − u‖₂ / ‖u‖₂ on the evaluation grid."""
        return float(torch.linalg.vector_norm(prediction - truth) / torch.linalg.vector_norm(truth))


class FitTask(Task):
    """Regression of a known function: loss {'data': mean (u(x) − f(x))²}."""

    default_n_train = 1000

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> Batch:
        x = self.box.uniform(n, generator)
        return {"x": x.to(dtype), "y": self.solution(x).to(dtype)}

    def loss_terms(self, u: Field, batch: Batch) -> dict[str, torch.Tensor]:
        return {"data": point_mean((u(batch["x"]) - batch["y"]) ** 2)}


class PDETask(Task):
    """PINN task: mean squared PDE residual at collocation points plus weighted boundary / initial terms."""

    @abstractmethod
    def residual(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        """PDE residual r(x) [N, 1] of the field u at x (derivatives from :func:`derivatives`, or autograd on
        x, which requires grad); 0 for the exact solution."""

    def pde_term(self, u: Field, x: torch.Tensor) -> torch.Tensor:
        return point_mean(self.residual(u, differentiable(u, x)) ** 2)


def point_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over the points of values [..., N, k] → [...] (a scalar for one run, [P] for a pack)."""
    return values.mean(dim=(-2, -1))


class Derivatives(NamedTuple):
    """u [..., N, 1], ∇u [..., N, d] and the pure second derivatives ∂²u/∂x_k² [..., N, m] for the m
    coordinates k asked for (in that order; None when none were). Asked along directions V [k, d] instead of
    the coordinate axes: ``grad`` holds ∇u·v_j [..., N, k] and ``second`` v_jᵀ(∇²u)v_j. Asked ``summed``:
    ``second`` holds the sum over the m [..., N, 1] (the Laplacian Δu for all coordinates), plus ∇u·b when asked
    with a drift b."""

    value: torch.Tensor
    grad: torch.Tensor
    second: torch.Tensor | None


def derivatives(u: Field, x: torch.Tensor, second: Sequence[int] = (),
                directions: Sequence[Sequence[float]] | None = None, summed: bool = False,
                drift: Sequence[float] | None = None) -> Derivatives:
    """u, ∇u and ∂²u/∂x_k² (k ∈ ``second``) at x [..., N, d]: in one Taylor-mode pass when the field offers
    one (a ``derivatives`` method, :class:`sfli_core.taylor.TaylorField`), else by nested reverse mode, the
    reference (x must require grad). With ``directions`` V [k, d] (rows v_j), the derivatives along them:
    ∇u·v_j and, for j ∈ ``second``, v_jᵀ(∇²u)v_j; Taylor mode then carries k streams instead of d. ``summed``:
    the sum of the second derivatives only (one Taylor-mode stream instead of m); with a ``drift`` b [d], the
    sum plus ∇u·b, a linear operator Σ_j v_jᵀ(∇²u)v_j + b·∇u in that one stream (no first-order stream along b:
    ask ``directions`` for the second-order ones only)."""
    v = None if directions is None else torch.as_tensor(directions, dtype=x.dtype, device=x.device)
    b = None if drift is None else torch.as_tensor(drift, dtype=x.dtype, device=x.device)
    if b is not None and not summed:
        raise ValueError("a drift adds to the summed second derivatives: ask for summed=True")
    own = getattr(u, "derivatives", None)
    if own is not None:
        return Derivatives(*own(x, tuple(second), v, summed, b))
    value = u(x)
    first = gradient(value, x)
    along = first if v is None else first @ v.T
    curvature = torch.cat([second_derivative(along, x, j, v) for j in second], -1) if second else None
    if summed and curvature is not None:
        curvature = curvature.sum(-1, keepdim=True)
    if b is not None:
        drifted = first @ b[:, None]
        curvature = drifted if curvature is None else curvature + drifted
    return Derivatives(value, along, curvature)


def differentiable(u: Field, x: torch.Tensor) -> torch.Tensor:
    """x as the residual's input: a leaf that requires grad for nested reverse mode; unchanged for a field
    with Taylor-mode derivatives (which would only be slowed, and kept from compiling, by the extra leaf)."""
    return x if hasattr(u, "derivatives") else x.detach().requires_grad_(True)


def gradient(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∂y/∂x for y [..., N, 1] computed point-wise from x [..., N, d] → [..., N, d], keeping the graph (for
    training). Points (and pack members) are independent, so one vector-Jacobian product with ones gives all."""
    return torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)[0]


def second_derivative(first: torch.Tensor, x: torch.Tensor, k: int, directions: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """∂²y/∂x_k² [..., N, 1] from the first derivatives ``first`` [..., N, d]; along directions V [k', d]
    (``first`` then holds ∇y·v_j [..., N, k']): v_kᵀ(∇²y)v_k."""
    hessian_row = gradient(first[..., k : k + 1], x)
    return hessian_row[..., k : k + 1] if directions is None else hessian_row @ directions[k : k + 1].T


def boundary_points(box: Box, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points uniform on ∂Ω of a box (each face equally likely; 1-D: the two end points)."""
    if box.dim == 1:
        return torch.tensor([[box.lo[0]], [box.hi[0]]], dtype=torch.float64)
    x = box.uniform(n, generator)
    face = torch.randint(0, 2 * box.dim, (n,), generator=generator)
    for k in range(box.dim):
        x[face == 2 * k, k] = box.lo[k]
        x[face == 2 * k + 1, k] = box.hi[k]
    return x
