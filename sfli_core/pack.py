"""Packed runs: P runs that share task, architecture, budget and logging cadence, trained as one batched model.

Every member is a full :class:`~sfli_core.trainer.Trainer` (its own initialisation stream, training points,
evaluation and rank points, learning-rate schedule, targets and history); the pack only replaces the
optimiser step. The members' parameters are stacked along a leading member dimension, θ[P, …]; one step is

    u_k(x_k) = vmap(functional_call(model, θ_k, x_k))   x [P, N, d] → [P, N, 1]
    L = Σ_k L_k(θ_k),   ∇_{θ_k} L = ∇_{θ_k} L_k          (members share no tensor, so the sum separates)
    θ_k ← Adam(θ_k, ∇_{θ_k} L_k, state_k, lr_k)          (per-member lr, elementwise state)

with ordinary (nested) autograd outside the vmap, so the PDE residuals' derivatives are those of the solo
run. Member k therefore follows the trajectory of the same run trained alone up to floating-point
reassociation in the batched products (tested to ~1e-10 in float64).

Logging steps sync the stacked tensors back into each member's module and let the member evaluate and record
itself (relative L2, ε-ranks, targets, divergence, callback), so a packed run's record has the solo record's
shape. A member whose loss is non-finite at a logging step is recorded ``diverged`` and removed from the
stack; the others go on. Time: each step's measured duration is divided equally among the members still
training (``time/train_s``); a member's ``time/wall_s`` adds its own evaluations to that share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.func import functional_call, vmap

from .config import RunConfig
from .optim import learning_rate
from .record import Status
from .result import RunResult
from .tasks import task_class
from .trainer import Callback, Trainer

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
    A pack of one is exactly a Trainer (its own step, L-BFGS included)."""

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
        if len(self.members) == 1 and on_log is not None:
            self.members[0].callback = self._solo_callback(callbacks[0])
        self.lead = self.members[0]
        self.step = self.lead.step
        self._stack()

    def _solo_callback(self, callback: Callback | None) -> Callback:
        def both(record: dict[str, float], trainer: Trainer) -> None:
            if callback is not None:
                callback(record, trainer)
            self.step = trainer.step
            self.on_log(self)
        return both

    @property
    def size(self) -> int:
        return len(self.members)

    # ---- the stacked state -----------------------------------------------------------------------------
    def _stack(self) -> None:
        """Stack the live members' parameters, optimiser state and batches along dimension 0."""
        self.live = [k for k, m in enumerate(self.members) if m.status == Status.FINISHED]
        if len(self.members) == 1 or not self.live:
            return
        live = [self.members[k] for k in self.live]
        self.params = {name: torch.stack([m.params[name].detach() for m in live]).requires_grad_(True)
                       for name in self.lead.params}
        self.opt_state = {key: ([torch.stack(ts) for ts in zip(*(m.opt_state[key] for m in live))]
                                if isinstance(value, list) else value)
                          for key, value in live[0].opt_state.items()}
        self._stack_batch()
        forward = vmap(lambda p, x: functional_call(self.lead.model, p, (x,))[0])
        self.field = lambda x: forward(self.params, x)

    def _stack_batch(self) -> None:
        live = [self.members[k] for k in self.live]
        self.batch = {key: torch.stack([m.batch[key] for m in live]) for key in self.lead.batch}

    @torch.no_grad()
    def _sync(self) -> None:
        """Copy the stacked parameters and optimiser state into the live members."""
        for i, k in enumerate(self.live):
            member = self.members[k]
            for name, p in member.params.items():
                p.copy_(self.params[name][i])
            for key, value in self.opt_state.items():
                if isinstance(value, list):
                    for dst, src in zip(member.opt_state[key], value):
                        dst.copy_(src[i])
                else:
                    member.opt_state[key] = value

    def _step(self, lrs: torch.Tensor, update: bool) -> dict[str, torch.Tensor]:
        """Loss terms [P] of the live members before the step; one optimiser step when ``update``."""
        terms = self.lead.task.loss_terms(self.field, self.batch)
        loss = sum(terms.values())
        if update:
            grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
            self.lead.optimizer.update(list(self.params.values()), list(grads), self.opt_state, lrs)
        terms["loss"] = loss
        return {k: v.detach() for k, v in terms.items()}

    # ---- training --------------------------------------------------------------------------------------
    def run(self, until: int | None = None) -> list[RunResult]:
        """Train every member to its budget (or stop after step ``until``); returns the members' results."""
        if len(self.members) == 1:
            return [self.lead.run(until)]
        cfg = self.lead.cfg.train
        total = cfg.total_steps
        last = total if until is None else min(until, total)
        while self.step <= last and self.live:
            s = self.step
            is_log = s % cfg.log_every == 0 or s == total
            evaluations = {}
            if is_log:
                self._sync()
                for k in self.live:
                    member = self.members[k]
                    with_rank = member.cfg.rank.enabled and (
                        (s // cfg.log_every) % member.cfg.rank.every == 0 or s == total)
                    t0 = time.perf_counter()
                    evaluations[k] = member.evaluate(with_rank)
                    member.wall_offset += time.perf_counter() - t0
            if s > 0 and cfg.resample_every and s % cfg.resample_every == 0:
                for k in self.live:
                    self.members[k].batch = self.members[k]._sample()
                self._stack_batch()
            lr = [learning_rate(self.members[k].cfg.train, s) for k in self.live]
            t0 = time.perf_counter()
            terms = self._step(torch.tensor(lr, dtype=self.lead.dtype, device=self.lead.device), s < total)
            if is_log and self.lead.device.type == "cuda":
                torch.cuda.synchronize(self.lead.device)
            share = (time.perf_counter() - t0) / len(self.live)
            self.step = s + 1
            for i, k in enumerate(self.live):
                member = self.members[k]
                member.train_seconds += share
                member.wall_offset += share
                member.step = s + 1
                if is_log:
                    member._record(s, {name: v[i] for name, v in terms.items()}, *evaluations[k], lr[i],
                                   member.wall_offset)
            if is_log:
                if any(self.members[k].status != Status.FINISHED for k in self.live):
                    self._sync()  # the step just taken, then restack without the diverged (recorded)
                    self._stack()
                if self.on_log is not None:
                    self.on_log(self)
        return [m.result() for m in self.members]

    # ---- full state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if len(self.members) > 1 and self.live:
            self._sync()
        return {"step": self.step, "members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.step = state["step"]
        self._stack()
