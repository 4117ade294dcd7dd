"""A run's loss terms as a function of its batch, and how they get their derivatives (docs/science.md §5).

Two paths give the same numbers (to round-off):

* **Taylor mode** (:mod:`sfli_core.taylor`): u, ∇u and ∂²u/∂x_k² in one forward pass, then one reverse pass
  for the parameter gradients. It can be compiled (``torch.compile``): the compiled function takes the task,
  the model and the batch as arguments, so one compilation per process serves every run of the same
  architecture, task and shapes (Ray reuses a trial's process; inductor's on-disk cache serves the next one).
* **Nested reverse mode** (``create_graph=True``): the reference, and the path for an architecture or a task
  that Taylor mode cannot serve. It cannot be compiled (double backward is unsupported in aot_autograd).

``train.derivatives = "taylor"`` takes Taylor mode wherever a check at a few points finds it equal to nested
reverse mode for this model; ``train.compile = "auto"`` compiles it for runs of at least
:data:`COMPILE_MIN_STEPS` steps (compilation costs seconds, a short run would not earn it back), alone (a
pack runs uncompiled, :func:`packed_plan`). What each
run used is recorded (:func:`DerivativePlan.metadata`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from .config import RunConfig, TrainConfig
from .tasks import task_class
from .tasks.base import Batch, PDETask, Task, derivatives
from .taylor import TaylorField, taylor_derivatives

log = logging.getLogger(__name__)

COMPILE_MIN_STEPS = 1000
COMPILE_BACKEND = "inductor"  # generated kernels; "aot_eager" traces and differentiates the same graph, unfused
# inductor's wrapper, which calls a graph's kernels in order, generated in C++ rather than Python: the same
# kernels, 3–9 % less time per step for a PINN's small graphs on a CPU (benchmarks/pinn_derivatives.py); a
# graph's first compilation takes longer, a cached one no longer
INDUCTOR_OPTIONS = {"cpp_wrapper": True}
Terms = dict[str, torch.Tensor]


@dataclass
class DerivativePlan:
    """How one run's derivatives are taken: ``path`` "taylor" / "autograd" / "none" (no derivatives in the
    loss), whether the loss is compiled, and why Taylor mode or compilation was not used, if it was not."""

    path: str
    compiled: bool
    note: str = ""

    @property
    def taylor(self) -> bool:
        return self.path == "taylor"

    def metadata(self) -> dict[str, str]:
        meta = {"derivatives": self.path, "compiled": str(self.compiled).lower()}
        return meta | ({"derivatives.note": self.note} if self.note else {})


def taylor_refusal(model: nn.Module, task: Task, dtype: torch.dtype, device: torch.device) -> str | None:
    """None when Taylor mode serves ``model`` on ``task``: it runs, and at 8 points of the domain it gives
    u, ∇u and every ∂²u/∂x_k² equal to nested reverse mode (relative 1e-4 in float32, 1e-9 in float64);
    else the reason it does not."""
    x = task.box.uniform(8, torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    second = tuple(range(x.shape[-1]))
    try:
        jet = taylor_derivatives(lambda j: model(j)[0], x, second)
    except Exception as error:  # noqa: BLE001 — any failure of a user's architecture means: use the reference
        return f"Taylor mode does not run through {type(model).__name__}: {error}"
    reference = derivatives(lambda y: model(y)[0], x.requires_grad_(True), second)
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    for name, a, b in zip(("u", "∇u", "∂²u"), jet, reference):
        a, b = a.detach(), b.detach()
        if not torch.allclose(a, b, rtol=rtol, atol=rtol * (float(b.abs().max()) + 1.0)):
            return f"Taylor mode disagrees with nested autograd on {name} for {type(model).__name__}"
    return None


def plan_derivatives(cfg: TrainConfig, model: nn.Module, task: Task, dtype: torch.dtype,
                     device: torch.device) -> DerivativePlan:
    """The path and compilation for one run (see the module docstring)."""
    if not isinstance(task, PDETask):
        return DerivativePlan("none", False)
    if cfg.derivatives == "autograd":
        return DerivativePlan("autograd", False)
    refusal = taylor_refusal(model, task, dtype, device)
    if refusal:
        return DerivativePlan("autograd", False, refusal)
    return DerivativePlan("taylor", compiles(cfg))


def packed_plan(plan: DerivativePlan) -> DerivativePlan:
    """The plan of a pack of ≥ 2 runs: its members' path, uncompiled. Every pack size (members drop out as
    they diverge or finish) would be compiled anew, at tens of seconds each on a CPU, where a pack of PINN
    runs gains little over compiled runs alone (``resources.pack: auto`` then chooses runs alone)."""
    if not plan.compiled:
        return plan
    return DerivativePlan(plan.path, False, "packed runs are not compiled")


def compiles(cfg: TrainConfig) -> bool:
    """Whether ``train.compile`` asks a Taylor-mode run to be compiled (``auto``: ≥ COMPILE_MIN_STEPS steps)."""
    return cfg.compile == "on" or (cfg.compile == "auto" and cfg.total_steps >= COMPILE_MIN_STEPS)


def would_compile(cfg: RunConfig) -> bool:
    """Whether a run of ``cfg`` alone would be compiled, as far as its configuration tells: Taylor mode on a
    PDE task, with ``train.compile`` asking for it (:func:`compiles`). Whether Taylor mode serves the model is
    known once it is built (:func:`plan_derivatives`, which falls back to nested autograd otherwise)."""
    return (compiles(cfg.train) and cfg.train.derivatives == "taylor"
            and issubclass(task_class(cfg.task.name, cfg.task.params)[0], PDETask))


def _solo_terms(task: Task, model: nn.Module, batch: Batch, taylor: bool) -> Terms:
    def forward(x):
        return model(x)[0]

    return task.loss_terms(TaylorField(forward) if taylor else forward, batch)


def _packed_terms(task: Task, model: nn.Module, params: dict[str, torch.Tensor], batch: Batch,
                  taylor: bool) -> Terms:
    """Loss terms [P] of P runs whose parameters are stacked along a leading member dimension."""
    value = vmap(lambda p, x: functional_call(model, p, (x,))[0])

    def forward(x):
        return value(params, x)

    if not taylor:
        return task.loss_terms(forward, batch)

    def jet(x, second, directions, summed, drift):
        some = bool(second) or drift is not None  # whether the third is a tensor (vmap returns tensors only)

        def member(p, xi):
            u, grad, curvature = taylor_derivatives(lambda j: functional_call(model, p, (j,))[0], xi, second,
                                                    directions, summed, drift)
            return u, grad, curvature if some else u
        u, grad, curvature = vmap(member)(params, x)
        return u, grad, curvature if some else None

    return task.loss_terms(TaylorField(forward, jet), batch)


@functools.cache
def _compiled(fn: Callable, backend: str) -> Callable:
    # one compiled entry per (task type, architecture, shapes, dtype): a process that trains many cells would
    # pass Dynamo's default limit of 8 and silently run the rest uncompiled
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 128)
    # dynamic=False: a process's second shape would otherwise be recompiled with symbolic sizes, a graph whose
    # cache key depends on what the process compiled before — another process, compiling in another order
    # (a trial actor), then misses inductor's on-disk cache and compiles for seconds to a minute again
    return torch.compile(fn, backend=backend, dynamic=False,
                         options=INDUCTOR_OPTIONS if backend == "inductor" else None)


class LossTerms:
    """``terms(batch)`` (solo) or ``terms(batch, params)`` (a pack): the task's loss terms under a plan.

    A compiled function that fails to compile (no C++ compiler, an unsupported operation) falls back to
    the same function uncompiled, once, and the plan records it."""

    def __init__(self, task: Task, model: nn.Module, plan: DerivativePlan, packed: bool = False):
        self.task, self.model, self.plan = task, model, plan
        self.fn = _packed_terms if packed else _solo_terms

    def __call__(self, batch: Batch, params: dict[str, torch.Tensor] | None = None) -> Terms:
        args = (self.task, self.model) + ((params,) if params is not None else ()) + (batch, self.plan.taylor)
        if not self.plan.compiled:
            return self.fn(*args)
        try:
            return _compiled(self.fn, COMPILE_BACKEND)(*args)
        except Exception as error:  # noqa: BLE001 — the uncompiled function is the same computation
            log.warning("torch.compile failed (%s); running Taylor mode uncompiled", error)
            self.plan.compiled, self.plan.note = False, f"compilation failed: {type(error).__name__}"
            return self.fn(*args)
