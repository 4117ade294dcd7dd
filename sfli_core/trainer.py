"""The instrumented trainer: one run of a :class:`RunConfig`, logging loss terms, relative L2 error and the
ε-rank of every hidden layer, tracking steps- and seconds-to-target, stopping on divergence, and able to
save and restore its full state so that a resumed run continues bit for bit.

Logging convention: the record at step s describes the parameters θ_s after s updates (loss terms of the
training batch, error on the evaluation grid, ε-ranks on the evaluation set). Steps 0, every ``log_every``
and the last step are logged. ``time/train_s`` counts only the training steps (what seconds-to-target
measures); ``time/wall_s`` adds the run's logging evaluations. The loop itself is sfli_core.loop's, shared
with packed runs; this module gives it one run's state and its step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call

from . import keys
from .condensation import input_weights, layer_counts
from .config import RunConfig
from .fields import DerivativePlan, LossTerms, plan_derivatives
from .geometry import Box
from .init import apply_init
from .loop import run_loop
from .models import build_model, condensation_layers
from .optim import learning_rate, make_optimizer
from .provenance import resolve_device, run_metadata
from .rank import eps_rank, layer_spectra, relative_eps_rank
from .record import SPECTRA_FINAL, SPECTRA_INITIAL, Status
from .result import RunResult, TargetTracker
from .tasks import build_task

Callback = Callable[[dict[str, float], "Trainer"], None]

CPU_CHUNK_BYTES = 2**19  # a hidden activation of this size stays in a core's L2 cache (512 KiB and up)


def cpu_chunk_rows(width: int, x: torch.Tensor) -> int:
    """Points per chunk of a forward pass over many points on a CPU: a ``width``-wide activation of that many
    rows of ``x``'s dtype fills :data:`CPU_CHUNK_BYTES`. Whole, the evaluation grid's activations (tens of MB)
    are fresh allocations streamed through memory several times; in such chunks a run's evaluations take a
    third less time (51 of them in a 1 000-step run on Allen–Cahn's 25 856 points, 3×64, one thread: MLP
    1.9 → 1.2 s, modified MLP 3.5 → 2.1 s)."""
    return max(1, CPU_CHUNK_BYTES // (width * x.element_size()))


class Trainer:
    def __init__(self, cfg: RunConfig, callback: Callback | None = None):
        self.cfg = cfg
        self.callback = callback
        self.device = resolve_device(cfg.train.device)
        self.dtype = getattr(torch, cfg.train.dtype)
        self.task = build_task(cfg.task.name, cfg.task.params)
        self.model = build_model(cfg.model, self.task.in_dim, self.task.out_dim)
        self.init_info = apply_init(self.model, cfg.init, self.task.box, cfg.seed)
        self.model.to(device=self.device, dtype=self.dtype)
        self.params = dict(self.model.named_parameters())
        self.loss_terms = LossTerms(self.task, self.model,
                                    plan_derivatives(cfg.train, self.model, self.task, self.dtype, self.device))
        self.optimizer = make_optimizer(cfg.train)
        self.opt_state = self.optimizer.init(list(self.params.values()))
        # the refinement phase: torch's L-BFGS (strong Wolfe line search), one iteration per step
        self.lbfgs = torch.optim.LBFGS(list(self.params.values()), lr=cfg.train.lbfgs_lr, max_iter=1,
                                       history_size=cfg.train.lbfgs_history, line_search_fn="strong_wolfe"
                                       ) if cfg.train.lbfgs_steps else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.n_train = cfg.train.n_train or self.task.default_n_train
        self.batch = self._sample()
        self.eval_x, self.eval_y = self.task.eval_data(self.dtype, self.device)
        self.rank_x = self._rank_points(self.task.box)
        with torch.no_grad():  # a user's architecture need not have `depth` hidden layers: count them
            self.n_layers = len(self.model(self.rank_x[:2])[1])
        self.step = 0
        self.train_seconds = 0.0
        self.wall_offset = 0.0
        self.history: list[dict[str, float]] = []
        self.spectra: dict[str, list[list[float]]] = {}
        self.weights: dict[int, list[list[float]]] = {}  # step → u [m, d+1] (condensation.track)
        self.targets = TargetTracker(cfg.targets.metric, cfg.targets.thresholds)
        self.status = Status.FINISHED
        self.metadata = run_metadata(self.device, self.dtype, cfg.seed)
        self.metadata["rank.n_points"] = str(len(self.rank_x))
        self.metadata["hidden_layers"] = str(self.n_layers)

    # ----------------------------------------------------------------------------------------------------
    def resample(self) -> None:
        """Draw a new training batch from this run's generator."""
        self.batch = self._sample()

    def _sample(self) -> dict[str, torch.Tensor]:
        batch = self.task.sample(self.n_train, self.generator, self.dtype)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _rank_points(self, box: Box) -> torch.Tensor:
        """Evaluation set for the Gram matrix: N ≥ 10·width points (docs/science.md §1)."""
        n_min = max(self.cfg.rank.n_points or 0, 10 * self.cfg.model.width)
        return box.evaluation_set(n_min, seed=self.cfg.seed).to(self.device, self.dtype)

    @property
    def plan(self) -> DerivativePlan:
        """How this run's derivatives are taken (what its loss function runs under and what it records)."""
        return self.loss_terms.plan

    def terms(self, params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms at the parameter set ``params``: the module's own tensors directly (under the run's
        derivative plan); any other set goes through ``functional_call`` (nested reverse mode)."""
        if params is self.params:
            return self.loss_terms(batch)
        return self.task.loss_terms(lambda x: functional_call(self.model, params, (x,))[0], batch)

    def train_step(self, params: dict[str, torch.Tensor], opt_state: dict, batch: dict[str, torch.Tensor],
                   lr: float) -> dict[str, torch.Tensor]:
        """One optimiser step; a function of (parameters, optimiser state, batch). Returns the loss terms
        at the parameters *before* the update (they are what the logged record for this step shows)."""
        terms = self.terms(params, batch)
        loss = sum(terms.values())
        grads = torch.autograd.grad(loss, list(params.values()))
        self.optimizer.update(list(params.values()), list(grads), opt_state, lr)
        terms["loss"] = loss
        return {k: v.detach() for k, v in terms.items()}

    def warm_up(self) -> None:
        """Compile a compiled loss before the timed steps: its first call compiles (seconds to a minute), which
        ``time/train_s`` and seconds-to-target must not count — else whichever run a process trains first
        would pay it. The call changes nothing (its gradients are discarded); its seconds are recorded as
        ``meta.compile_s``."""
        if not self.plan.compiled or "compile_s" in self.metadata:
            return
        t0 = time.perf_counter()
        terms = self.loss_terms(self.batch)
        torch.autograd.grad(sum(terms.values()), list(self.params.values()))
        self.metadata["compile_s"] = f"{time.perf_counter() - t0:.2f}"

    def lbfgs_step(self) -> dict[str, torch.Tensor]:
        """One L-BFGS iteration on the current batch; returns the loss terms before it (as ``train_step``)."""
        before: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.lbfgs.zero_grad()
            terms = self.loss_terms(self.batch)
            loss = sum(terms.values())
            loss.backward()
            if not before:  # the line search evaluates again: the record shows the point it started from
                before.update({k: v.detach() for k, v in terms.items()}, loss=loss.detach())
            return loss

        self.lbfgs.step(closure)
        return before

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output u(x) [n, out_dim] at points ``x`` [n, in_dim]; on a CPU in chunks of
        :func:`cpu_chunk_rows` points (the same values: every point's output is its own row's)."""
        if self.device.type != "cpu":
            return self.model(x)[0]
        return torch.cat([self.model(chunk)[0] for chunk in x.split(cpu_chunk_rows(self.cfg.model.width, x))])

    @torch.no_grad()
    def evaluate(self, with_rank: bool) -> tuple[dict[str, float], list[torch.Tensor]]:
        """Relative L2 error on the evaluation grid and, optionally, every hidden layer's Gram spectrum; with
        ``condensation.track`` the condensation counts of every layer and the first layer's weights."""
        record = {keys.EVAL_REL_L2: self.task.rel_l2(self.predict(self.eval_x), self.eval_y)}
        spectra = []
        if with_rank:
            spectra = layer_spectra(self.model, self.rank_x)
            for layer, lam in enumerate(spectra, start=1):
                for eps in self.cfg.rank.eps:
                    record[keys.rank_key(eps, layer)] = eps_rank(lam, eps)
                    record[keys.relative_rank_key(eps, layer)] = relative_eps_rank(lam, eps)
        if self.cfg.condensation.track:
            record.update(layer_counts(self.model))
            self.weights[self.step] = input_weights(condensation_layers(self.model)[0][0]).tolist()
        return record, spectra

    def lr_at(self, s: int) -> float:
        """The learning rate of step ``s``: the schedule's, then ``lbfgs_lr`` in the L-BFGS phase."""
        cfg = self.cfg.train
        return cfg.lbfgs_lr if s >= cfg.steps and cfg.lbfgs_steps else learning_rate(cfg, s)

    def ranks_at(self, s: int) -> bool:
        """Whether the logging step ``s`` measures ε-ranks: every ``rank.every``-th multiple of ``log_every``
        (a function of the step, so a restored run keeps the cadence of an uninterrupted one) and the last."""
        cfg = self.cfg.train
        return self.cfg.rank.enabled and ((s // cfg.log_every) % self.cfg.rank.every == 0 or s == cfg.total_steps)

    def step_terms(self, s: int, lr: float) -> dict[str, torch.Tensor]:
        """Step ``s`` of this run alone: an optimiser step, an L-BFGS iteration, or (s = total) the loss only."""
        cfg = self.cfg.train
        if s < cfg.steps:
            return self.train_step(self.params, self.opt_state, self.batch, lr)
        if s < cfg.total_steps:
            return self.lbfgs_step()
        terms = {k: v.detach() for k, v in self.loss_terms(self.batch).items()}
        terms["loss"] = sum(terms.values())
        return terms

    def run(self, until: int | None = None) -> RunResult:
        """Train from the current step up to ``train.steps`` optimiser steps and then ``train.lbfgs_steps`` L-BFGS
        iterations (or stop after step ``until``, for tests): the loop of sfli_core.loop with this run's step."""
        run_loop([self], SoloStep(self), self.step, until)
        return self.result()

    def record(self, s: int, terms: dict[str, torch.Tensor], evaluation: dict[str, float],
               spectra: list[torch.Tensor], lr: float, wall: float) -> None:
        """Append the record of step ``s`` (loss terms at θ_s, its evaluation, lr, times); a non-finite loss
        marks the run diverged; targets reached are noted; the callback sees the record."""
        record = {keys.STEP: s, keys.TRAIN_LOSS: float(terms.pop("loss"))}
        record.update({keys.loss_term(k): float(v) for k, v in terms.items()})
        record.update(evaluation)
        record.update({keys.TRAIN_LR: lr, keys.TIME_TRAIN: self.train_seconds, keys.TIME_WALL: wall})
        if spectra:
            self.spectra.setdefault(SPECTRA_INITIAL, [lam.tolist() for lam in spectra])
            self.spectra[SPECTRA_FINAL] = [lam.tolist() for lam in spectra]
        if not math.isfinite(record[keys.TRAIN_LOSS]):
            self.status = Status.DIVERGED
        else:
            self.targets.update(record)
        self.history.append(record)
        if self.callback is not None:
            self.callback(record, self)

    def result(self) -> RunResult:
        return RunResult(status=self.status, config=self.cfg.flat(), history=list(self.history),
                         targets=dict(self.targets.reached), spectra=dict(self.spectra), init_info=self.init_info,
                         weights=dict(self.weights),
                         metadata=self.metadata | self.plan.metadata(), n_layers=self.n_layers,
                         eps=list(self.cfg.rank.eps),
                         thresholds=list(self.cfg.targets.thresholds))

    # ---- full state: model, optimiser, RNG, step, history ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "status": self.status, "train_seconds": self.train_seconds,
            "wall_offset": self.wall_offset,
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "opt_state": {k: ([t.clone() for t in v] if isinstance(v, list) else v)
                          for k, v in self.opt_state.items()},
            "generator": self.generator.get_state(), "batch": dict(self.batch),
            "history": list(self.history), "spectra": dict(self.spectra), "targets": dict(self.targets.reached),
            "weights": dict(self.weights),
            "lbfgs": self.lbfgs.state_dict() if self.lbfgs is not None else None,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["params"].items():
            self.params[k].copy_(v)
        for k, v in state["opt_state"].items():
            if isinstance(v, list):
                for dst, src in zip(self.opt_state[k], v):
                    dst.copy_(src)
            else:
                self.opt_state[k] = v
        self.generator.set_state(state["generator"])
        self.batch = {k: v.to(self.device) for k, v in state["batch"].items()}
        self.step, self.status = state["step"], state["status"]
        self.train_seconds, self.wall_offset = state["train_seconds"], state["wall_offset"]
        self.history, self.spectra = list(state["history"]), dict(state["spectra"])
        self.weights = dict(state.get("weights", {}))  # a checkpoint written before condensation.track existed
        self.targets.reached = dict(state["targets"])
        if self.lbfgs is not None and state.get("lbfgs") is not None:
            self.lbfgs.load_state_dict(state["lbfgs"])

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)

    def restore(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))


class SoloStep:
    """The step function of one run (sfli_core.loop): its own module's tensors, optimiser and L-BFGS."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def stack(self, live: list[Trainer]) -> None:
        """Nothing to stack: the run steps its module's own tensors; a compiled loss is compiled now, before
        the loop times a step (:meth:`Trainer.warm_up`)."""
        self.trainer.warm_up()

    def sync(self) -> None:
        """Nothing to sync: the module holds the current parameters."""

    def batch_changed(self) -> None:
        """The run reads its batch afresh at every step."""

    def __call__(self, step: int, lrs: list[float]) -> dict[str, torch.Tensor]:
        return self.trainer.step_terms(step, lrs[0])

    def member_terms(self, terms: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
        return terms
