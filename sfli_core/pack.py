"""Packed runs: P runs that share task, architecture, budget and logging cadence, trained as one batched model.

Every member is a full :class:`~sfli_core.trainer.Trainer` (its own initialisation stream, training points,
evaluation and rank points, learning-rate schedule, targets and history); the pack only replaces the
optimiser step. The members' parameters are stacked along a leading member dimension, θ[P, …]; one step is

    u_k(x_k) = vmap(functional_call(model, θ_k, x_k))   x [P, N, d] → [P, N, 1]
    L = Σ_k L_k(θ_k),   ∇_{θ_k} L = ∇_{θ_k} L_k          (members share no tensor, so the sum separates)
    θ_k ← Adam(θ_k, ∇_{θ_k} L_k, state_k, lr_k)          (per-member lr, elementwise state)

with the derivatives of the solo run's plan (sfli_core.fields: Taylor mode inside the vmap, or nested
reverse mode outside it), so the PDE residuals' derivatives are those of the solo run. Member k therefore
follows the trajectory of the same run trained alone up to floating-point reassociation in the batched
products (tested to ~1e-10 in float64).

The loop — cadence, evaluation, recording, divergence, timing — is sfli_core.loop's, the one a solo run
takes; this module gives it the stacked step. Logging steps sync the stacked tensors back into each member's
module, so a packed run's record is made by the same code as the solo record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .config import RunConfig
from .fields import LossTerms, packed_plan
from .loop import run_loop
from .result import RunResult
from .tasks import task_class
from .trainer import Callback, SoloStep, Trainer

# Training settings a member may choose for itself: its learning-rate schedule. Everything else in `train`,
# and the whole task and model, is shared by the pack (one module, one batch shape, one cadence).
PER_MEMBER_TRAIN = ("lr", "schedule", "decay_rate", "decay_steps", "warmup_steps")
PackCallback = Callable[["Pack"], None]


def pack_signature(cfg: RunConfig) -> str:
    """What members of one pack must share: the task, the model and the non-schedule training settings."""
    shared = {k: v for k, v in cfg.flat().items() if k.startswith(("task.", "model.", "train."))
              and k.removeprefix("train.") not in PER_MEMBER_TRAIN}
    return repr(sorted(shared.items()))


def packable(cfg: RunConfig) -> str | None:
    """None when runs of this configuration can be packed, else the reason why not."""
    cls, _ = task_class(cfg.task.name, cfg.task.params)
    if not getattr(cls, "packable", False):
        return f"task '{cfg.task.name}' does not declare packable = True (sfli_core.tasks.base)"
    if cfg.train.lbfgs_steps:
        return "train.lbfgs_steps > 0 (the L-BFGS line search is per run)"
    return None


class Pack:
    """Train ``cfgs`` together; ``callbacks[k]`` is member k's record callback (as for a Trainer) and
    ``on_log`` is called once per logging step after every live member has recorded (checkpoints, reports).
    A pack of one is exactly a Trainer: the same loop with the run's own step, L-BFGS included."""

    def __init__(self, cfgs: list[RunConfig], callbacks: list[Callback | None] | None = None,
                 on_log: PackCallback | None = None):
        callbacks = callbacks or [None] * len(cfgs)
        if len(cfgs) > 1:
            signatures = {pack_signature(c) for c in cfgs}
            if len(signatures) > 1:
                raise ValueError("runs of one pack must share task, model and training settings except "
                                 f"{', '.join('train.' + k for k in PER_MEMBER_TRAIN)}, seed and init")
            reason = packable(cfgs[0])
            if reason:
                raise ValueError(f"these runs cannot be packed: {reason}")
        self.on_log = on_log
        self.members = [Trainer(c, cb) for c, cb in zip(cfgs, callbacks)]
        self.lead = self.members[0]
        if len(self.members) > 1:  # one loss function for the pack: what it used is what each records
            plan = packed_plan(self.lead.plan)
            for member in self.members:
                member.loss_terms.plan = plan
        self.step = self.lead.step
        self.step_fn = SoloStep(self.lead) if len(self.members) == 1 else PackedStep(self.lead)

    @property
    def size(self) -> int:
        return len(self.members)

    def run(self, until: int | None = None) -> list[RunResult]:
        """Train every member to its budget (or stop after step ``until``); returns the members' results."""
        self.step = run_loop(self.members, self.step_fn, self.step, until, self._logged)
        return [m.result() for m in self.members]

    def _logged(self, step: int) -> None:
        self.step = step
        if self.on_log is not None:
            self.on_log(self)

    # ---- full state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.step_fn.sync()
        return {"step": self.step, "members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.step = state["step"]


class PackedStep:
    """The step function of P ≥ 2 runs (sfli_core.loop): their parameters, optimiser state and batches
    stacked along a leading member dimension, one vmapped forward and one backward for all of them."""

    def __init__(self, lead: Trainer):
        self.lead = lead
        self.live: list[Trainer] = []
        self.loss_terms = LossTerms(lead.task, lead.model, lead.plan, packed=True)  # the pack's plan (Pack)

    def stack(self, live: list[Trainer]) -> None:
        self.live = live
        if not live:
            return
        self.params = {name: torch.stack([m.params[name].detach() for m in live]).requires_grad_(True)
                       for name in self.lead.params}
        self.opt_state = {key: ([torch.stack(ts) for ts in zip(*(m.opt_state[key] for m in live))]
                                if isinstance(value, list) else value)
                          for key, value in live[0].opt_state.items()}
        self.batch_changed()

    def batch_changed(self) -> None:
        self.batch = {key: torch.stack([m.batch[key] for m in self.live]) for key in self.lead.batch}

    @torch.no_grad()
    def sync(self) -> None:
        for i, member in enumerate(self.live):
            for name, p in member.params.items():
                p.copy_(self.params[name][i])
            for key, value in self.opt_state.items():
                if isinstance(value, list):
                    for dst, src in zip(member.opt_state[key], value):
                        dst.copy_(src[i])
                else:
                    member.opt_state[key] = value

    def __call__(self, step: int, lrs: list[float]) -> dict[str, torch.Tensor]:
        """Loss terms [P] of the live members; one optimiser step for all of them when step < total."""
        terms = self.loss_terms(self.batch, self.params)
        loss = sum(terms.values())
        if step < self.lead.cfg.train.total_steps:
            grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
            lr = torch.tensor(lrs, dtype=self.lead.dtype, device=self.lead.device)
            self.lead.optimizer.update(list(self.params.values()), list(grads), self.opt_state, lr)
        terms["loss"] = loss
        return {k: v.detach() for k, v in terms.items()}

    def member_terms(self, terms: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in terms.items()}
