"""The Ray Tune trial: one configuration of one cell (arm × grid point) trained on its seed(s), recorded in its
own MLflow run.

A search trial trains the sampled configuration on every search seed in turn and reports the mean objective
(the MLflow metric histories are those of the first search seed; the series CSV holds every seed). An
evaluate trial is one (cell, seed) pair at the cell's chosen configuration, full budget, no early stopping.

A trial is a sequence of steps over typed values: :func:`plan_trial` (who it is: cell, knobs, seeds, record
identity and parameters) → its MLflow run, opened or found complete (a complete run is never re-trained) →
its :class:`TrialState` restored from the last checkpoint → :func:`train_seeds` → :func:`finish` (summary,
series, status). The state is checkpointed every ``checkpoint_every`` logging steps; a retried or resumed
trial continues from it, reopens the same MLflow run and does not log a step twice.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from ray import tune

from analysis.figures import condensation_heatmap
from sfli_core import keys, record
from sfli_core.condensation import input_weights, layer_counts
from sfli_core.config import RunConfig
from sfli_core.init import INITS
from sfli_core.models import condensation_layers
from sfli_core.record import Status, TrialIdentity
from sfli_core.result import RunResult
from sfli_core.tasks import build_task
from sfli_core.trainer import Trainer

from .objective import WORST, finite_or_worst, objective_value
from .run_figures import PREVIEW_DPI, staircase_plot
from .study import Cell, Study, extend_python_path
from .tracking import Tracker

STATE_FILE = "trial_state.pt"
COMPLETE = "complete"  # Tune-only key: 1 in a trial's last report (its objective is final), 0 before


@dataclass
class TrialContext:
    study: Study
    phase: str  # "search" or "evaluate"
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    git_revision: str
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluate: the knobs of every cell
    python_path: list[str] = field(default_factory=list)  # folders of the user's modules, on a shared file system
    execution: int = 1


@dataclass
class TrialPlan:
    cell: Cell
    knobs: dict[str, Any]
    seeds: list[int]
    name: str
    identity: TrialIdentity
    params: dict[str, Any]

    def config(self, study: Study, seed: int) -> RunConfig:
        return study.run_config(self.cell.arm, self.knobs, seed, variant=study.variants()[self.cell.variant])


@dataclass
class SeedOutcome:
    seed: int
    status: str
    objective: float
    history: list[dict[str, float]]
    summary: dict[str, float]


@dataclass
class TrialState:
    """What a checkpoint holds: the seeds done, and the trainer state of the seed under way."""

    seed_index: int = 0
    trainer: dict[str, Any] | None = None
    outcomes: list[SeedOutcome] = field(default_factory=list)

    @classmethod
    def restore(cls) -> TrialState:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return cls()
        with checkpoint.as_directory() as d:
            return torch.load(Path(d) / STATE_FILE, weights_only=False)

    def report(self, metrics: dict[str, Any]) -> None:
        """``tune.report`` with this state as the trial's checkpoint."""
        with tempfile.TemporaryDirectory() as d:
            torch.save(self, Path(d) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def plan_trial(config: dict[str, Any], context: TrialContext) -> TrialPlan:
    study, phase = context.study, context.phase
    cell = study.cell(config["arm"], int(config.get("variant", 0)))
    if phase == "search":
        knobs, seeds = {k: v for k, v in config.items() if k not in ("arm", "variant")}, list(study.search.seeds)
    else:
        knobs, seeds = context.chosen.get(cell.key, {}), [int(config["seed"])]
    trial_id = tune.get_context().get_trial_id()
    name = f"{cell.slug}-seed{seeds[0]}" if phase == "evaluate" else f"search-{cell.slug}-{trial_id}"
    first = study.run_config(cell.arm, knobs, seeds[0], variant=study.variants()[cell.variant])
    identity = TrialIdentity(study=study.name, execution=context.execution, phase=phase, arm=cell.arm,
                             variant=cell.vid, trial_id=trial_id, seeds=tuple(seeds),
                             task=build_task(first.task.name, first.task.params).name, init=first.init.name,
                             arch=first.model.arch, comparison=INITS.get(first.init.name).role)
    params = {**first.flat(), record.GIT_REVISION: context.git_revision,
              **{f"{record.SEARCHED}{k}": v for k, v in knobs.items()}}
    return TrialPlan(cell, knobs, seeds, name, identity, params)


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    extend_python_path(context.python_path)
    study = context.study
    torch.set_num_threads(max(1, int(study.resources.cpus)))
    plan = plan_trial(config, context)
    tracker = Tracker(context.tracking_uri)
    run_id, created = tracker.child_run(context.experiment_id, context.parent_run_id, plan.name, plan.identity,
                                        plan.params)
    done = None if created else tracker.completed(run_id)
    if done is not None:  # completed before the driver could record it (killed in between): never re-train
        tune.report(tune_result(done.get(record.OBJECTIVE, WORST), done[record.STATUS],
                                done.get(f"final/{keys.TRAIN_LOSS}", WORST)))
        return
    state = TrialState.restore()
    tracker.mark_start(run_id, resumed_from=state.trainer["step"] if state.trainer else 0)
    logged_up_to = -1 if created else tracker.last_step(run_id, keys.TRAIN_LOSS)
    try:
        train_seeds(plan, state, study, tracker, run_id, logged_up_to)
        final = finish(tracker, run_id, state)
    except Exception:
        tracker.finish(run_id, Status.FAILED)  # Tune retries it from its last checkpoint, in this same run
        raise
    except BaseException:
        tracker.finish(run_id, Status.STOPPED)  # stopped from outside (an ASHA decision, a shutdown)
        raise
    tune.report(final)


def train_seeds(plan: TrialPlan, state: TrialState, study: Study, tracker: Tracker, run_id: str,
                logged_up_to: int) -> None:
    """Train the seeds not done yet, the first one continuing from ``state.trainer`` if it holds one."""
    for index in range(state.seed_index, len(plan.seeds)):
        cfg = plan.config(study, plan.seeds[index])
        reporter = _Reporter(study, tracker, run_id, index, state, logged_up_to if index == 0 else -1)
        trainer = Trainer(cfg, callback=reporter)
        shown = condensation_layers(trainer.model)[:1]  # the heat map shows the first analysed layer
        initial_u = input_weights(shown[0][0]) if shown else None
        if state.trainer is not None:
            trainer.load_state_dict(state.trainer)
            state.trainer = None
        result = trainer.run()
        if index == 0:
            tracker.log_new_params(run_id, {f"{record.RESOLVED}{k}": v for k, v in result.init_info.items()}
                                   | {f"{record.META}{k}": v for k, v in result.metadata.items()})
            final_u = input_weights(shown[0][0]) if shown else None
            _artifacts(tracker, run_id, cfg, result, initial_u, final_u)
        objective = objective_value(study.search.objective, result.status, result.targets, result.history[-1],
                                    cfg.train.total_steps)
        state.outcomes.append(SeedOutcome(plan.seeds[index], result.status, objective, result.history,
                                          {**result.summary(), **layer_counts(trainer.model)}))
        state.seed_index = index + 1


def tune_result(objective: float, status: str, final_loss: float) -> dict[str, Any]:
    """A trial's last report to Tune."""
    return {record.OBJECTIVE: objective, COMPLETE: 1, record.STATUS: str(status),
            keys.TRAIN_LOSS: finite_or_worst(final_loss)}


class _Reporter:
    """Trainer callback: one MLflow batch and one Tune report per logging step, a checkpoint every K."""

    def __init__(self, study: Study, tracker: Tracker, run_id: str, seed_index: int, state: TrialState,
                 logged_up_to: int):
        self.study, self.tracker, self.run_id = study, tracker, run_id
        self.seed_index, self.state, self.logged_up_to = seed_index, state, logged_up_to
        self.n = 0

    def __call__(self, entry: dict[str, float], trainer: Trainer) -> None:
        step = int(entry[keys.STEP])
        if self.seed_index == 0 and step > self.logged_up_to:
            self.tracker.log_metrics(self.run_id, entry, step)
        self.n += 1
        budget = trainer.cfg.train.total_steps
        running = objective_value(self.study.search.objective, trainer.status, trainer.targets.reached, entry,
                                  budget)
        metrics = {record.OBJECTIVE: running, keys.TRAIN_LOSS: finite_or_worst(entry[keys.TRAIN_LOSS]),
                   "step": step, "seed_index": self.seed_index, COMPLETE: 0}
        if self.n % self.study.checkpoint_every == 0 and trainer.status == Status.FINISHED and step < budget:
            self.state.trainer, self.state.seed_index = trainer.state_dict(), self.seed_index
            self.state.report(metrics)
            self.state.trainer = None
        else:
            tune.report(metrics)


def finish(tracker: Tracker, run_id: str, state: TrialState) -> dict[str, Any]:
    """Summary metrics (of the first seed) and the mean objective, the series of every seed, the sfli status;
    returns the trial's last Tune report."""
    outcomes = state.outcomes
    objective = sum(o.objective for o in outcomes) / len(outcomes)
    status = Status.FINISHED if all(o.status == Status.FINISHED for o in outcomes) else Status.DIVERGED
    summary = {k: v for k, v in outcomes[0].summary.items() if isinstance(v, (int, float))}
    initial = {k: v for k, v in summary.items() if k.startswith("initial/")}  # measured at step 0
    tracker.log_metrics(run_id, initial, step=0)
    tracker.log_metrics(run_id, {**{k: v for k, v in summary.items() if k not in initial},
                                 record.OBJECTIVE: objective}, step=int(summary.get("final/step", 0)))
    with tempfile.TemporaryDirectory() as d:
        rows = [{"seed": o.seed, **entry} for o in outcomes for entry in o.history]
        pd.DataFrame(rows).to_csv(Path(d) / "series.csv", index=False)
        (Path(d) / "seeds.json").write_text(json.dumps(
            [{k: v for k, v in asdict(o).items() if k != "history"} for o in outcomes], indent=1))
        tracker.log_artifact(run_id, Path(d) / "series.csv")
        tracker.log_artifact(run_id, Path(d) / "seeds.json")
    tracker.finish(run_id, status)
    return tune_result(objective, status, summary.get(f"final/{keys.TRAIN_LOSS}", WORST))


def _artifacts(tracker: Tracker, run_id: str, cfg: RunConfig, result: RunResult, u_start, u_end) -> None:
    """Resolved config, spectra, staircase plot and condensation heat map of the first seed."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        (d / "spectra.json").write_text(json.dumps(result.spectra))
        title = f"{cfg.task.name} {cfg.model.arch} {cfg.init.name} seed {cfg.seed}"
        staircase_plot(result.history, cfg.rank.headline, result.n_layers, d / "staircase.png", title)
        names = ["config.yaml", "spectra.json", "staircase.png"]
        if u_start is not None:  # the weights, for the report's figure; a preview for the UI
            (d / "condensation_weights.json").write_text(json.dumps({"start": u_start.tolist(),
                                                                     "end": u_end.tolist()}))
            condensation_heatmap({"start": u_start, "end": u_end}, d / "condensation.png", title, PREVIEW_DPI,
                                 pdf=False)
            names += ["condensation_weights.json", "condensation.png"]
        for name in names:
            tracker.log_artifact(run_id, d / name)
