"""The one training loop: cadence, resampling, learning-rate schedule, timing and recording for one run or a
pack of runs, around a step function that differs between the two (sfli_core.trainer.SoloStep: the run's own
optimiser and L-BFGS; sfli_core.pack.PackedStep: the members' parameters stacked and vmapped).

At step s (0 ≤ s ≤ total = train.steps + train.lbfgs_steps) the loop, for every member still training:

1. on a logging step (s a multiple of ``log_every``, or s = total) evaluates the member at θ_s — relative L2,
   and its ε-ranks when the rank cadence falls on s — after the step function has synced θ_s into it;
2. on a resampling step (s > 0 a multiple of ``resample_every``) draws the member's new training batch;
3. takes one step (s < total) with the member's learning rate lr(s), or only evaluates the loss (s = total);
4. adds the step's measured time, shared equally among the members, to ``time/train_s`` and, with the
   member's own evaluations, to ``time/wall_s``; on a logging step records the member (loss terms at θ_s).

A member whose loss is non-finite at a logging step is recorded ``diverged`` and leaves the step function
(the step function restacks without it); the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import torch

from .record import Status

if TYPE_CHECKING:
    from .trainer import Trainer

Terms = dict[str, torch.Tensor]


class StepFunction(Protocol):
    """One optimiser step of the members that still train, given to :func:`run_loop`."""

    def stack(self, live: list[Trainer]) -> None:
        """Take up the parameters, optimiser state and batches of ``live`` (at the start, after a divergence)."""

    def sync(self) -> None:
        """Write the current parameters and optimiser state back into the live members."""

    def batch_changed(self) -> None:
        """The live members drew new training batches."""

    def __call__(self, step: int, lrs: list[float]) -> Terms:
        """Loss terms (``loss`` included) of the live members at θ_step, in the step function's own layout;
        one update when step < total."""

    def member_terms(self, terms: Terms, i: int) -> Terms:
        """The terms of the ``i``-th live member (read on logging steps only: no per-step indexing)."""


def run_loop(members: list[Trainer], step_fn: StepFunction, start: int, until: int | None = None,
             on_log: Callable[[int], None] | None = None) -> int:
    """Train ``members`` (sharing ``train``'s cadence and budget) from step ``start`` to the budget, or stop after
    step ``until``; ``on_log(next_step)`` runs after every logging step once all live members have recorded.
    Returns the next step to take."""
    cfg = members[0].cfg.train
    total = cfg.total_steps
    last = total if until is None else min(until, total)
    device = members[0].device
    live = [m for m in members if m.status == Status.FINISHED]
    step_fn.stack(live)
    s = start
    while s <= last and live:
        is_log = s % cfg.log_every == 0 or s == total
        evaluations = []  # aligned with live, on logging steps
        if is_log:
            step_fn.sync()
            for member in live:
                t0 = time.perf_counter()
                evaluations.append(member.evaluate(member.ranks_at(s)))
                member.wall_offset += time.perf_counter() - t0
        if s > 0 and cfg.resample_every and s % cfg.resample_every == 0:
            for member in live:
                member.resample()
            step_fn.batch_changed()
        lrs = [member.lr_at(s) for member in live]
        t0 = time.perf_counter()
        terms = step_fn(s, lrs)
        if is_log and device.type == "cuda":
            torch.cuda.synchronize(device)  # queued steps land in this interval: the total is exact
        share = (time.perf_counter() - t0) / len(live)
        s += 1
        for i, (member, lr) in enumerate(zip(live, lrs)):
            member.train_seconds += share
            member.wall_offset += share
            member.step = s
            if is_log:
                member.record(s - 1, step_fn.member_terms(terms, i), *evaluations[i], lr, member.wall_offset)
        if is_log:
            still = [m for m in live if m.status == Status.FINISHED]
            if len(still) < len(live):
                step_fn.sync()  # the step just taken, then restack without the diverged (recorded)
                live = still
                step_fn.stack(live)
            if on_log is not None:
                on_log(s)
    step_fn.sync()  # the members hold the parameters reached, whether or not the last step logged
    return s
