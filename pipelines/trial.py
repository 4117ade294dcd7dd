"""The Ray Tune trial: runs of one or more cells (arm × grid point), trained as packs (sfli_core.pack), each
run recorded in its own MLflow run.

A search trial is one run: the sampled configuration of one cell trained on every search seed (in packs of
the phase's pack size; one after the other with pack 1), reporting the mean objective (the MLflow metric
histories are those of the first search seed; the series CSV holds every seed). An evaluate trial is a pack
of runs (cell, seed) at their cells' chosen configurations, full budget, no early stopping: one MLflow run
each, so the UI, the report and the statistics see no difference from one run per trial.

A trial is a sequence of steps over typed values: :func:`plan_trial` (who its runs are: cell, knobs, seeds,
record identity and parameters) → their MLflow runs, opened or found complete (a complete run is never
re-trained) → the :class:`TrialState` restored from the last checkpoint → :func:`train_runs` →
:func:`finish` per run (summary, series, previews, status). The state is checkpointed every ``checkpoint_every``
logging steps; a retried or resumed trial continues from it, reopens the same MLflow runs and logs no step
twice.
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

from sfli_core import keys, record
from sfli_core.condensation import input_weights, layer_counts
from sfli_core.config import RunConfig
from sfli_core.init import INITS
from sfli_core.models import condensation_layers
from sfli_core.pack import Pack
from sfli_core.record import Phase, PreviewState, Status, TrialIdentity
from sfli_core.result import RunResult
from sfli_core.tasks import build_task
from sfli_core.trainer import Trainer

from .objective import WORST, finite_or_worst, objective_value
from .previews import draw_run
from .study import Cell, Study, extend_python_path
from .tracking import Tracker

STATE_FILE = "trial_state.pt"
PACK_TIME = "equal share of each step among the pack's members still training"  # how time/train_s is divided


@dataclass
class TrialContext:
    study: Study
    phase: Phase
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    git_revision: str
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluate: the knobs of every cell
    python_path: list[str] = field(default_factory=list)  # folders of the user's modules, on a shared file system
    execution: int = 1
    pack: int = 1  # search: how many search seeds are trained at once
    draws_previews: bool = False  # the trial draws its runs' previews (pipelines.previews.draws_in_trials)


@dataclass
class TrialPlan:
    """One MLflow run of the trial: a cell at its knobs on its seed(s)."""

    cell: Cell
    knobs: dict[str, Any]
    seeds: list[int]
    name: str
    identity: TrialIdentity
    params: dict[str, Any]

    def config(self, study: Study, seed: int) -> RunConfig:
        return study.run_config(self.cell.arm, self.knobs, seed, grid_point=study.grid_points()[self.cell.point])


@dataclass
class SeedOutcome:
    seed: int
    status: str
    objective: float
    history: list[dict[str, float]]
    summary: dict[str, float]
    run: int = 0  # which of the trial's runs (plans) it belongs to


@dataclass
class TrialState:
    """What a checkpoint holds: the runs' seeds done, the pack under way (its members by name), and the
    metric batches not delivered to the tracking store when it was taken (re-sent when the trial continues)."""

    chunk: int = 0
    pack: dict[str, Any] | None = None
    members: list[str] = field(default_factory=list)
    outcomes: list[SeedOutcome] = field(default_factory=list)
    pending: list = field(default_factory=list)  # logging steps the tracking store had not received yet

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


def plan_trial(config: dict[str, Any], context: TrialContext) -> list[TrialPlan]:
    """The trial's runs: one (search: the sampled knobs on the search seeds), or one per pack member."""
    study, phase = context.study, context.phase
    trial_id = tune.get_context().get_trial_id()
    if phase == Phase.SEARCH:
        cell = study.cell(config["arm"], int(config.get("point", 0)))
        knobs = {k: v for k, v in config.items() if k not in ("arm", "point")}
        return [_plan(context, cell, knobs, list(study.search.seeds), f"search-{cell.slug}-{trial_id}", trial_id,
                      context.pack)]
    plans = []
    for arm, point, seed in config["members"]:
        cell = study.cell(arm, int(point))
        plans.append(_plan(context, cell, context.chosen.get(cell.key, {}), [int(seed)],
                           f"{cell.slug}-seed{seed}", trial_id, len(config["members"])))
    return plans


def _plan(context: TrialContext, cell: Cell, knobs: dict[str, Any], seeds: list[int], name: str,
          trial_id: str, pack: int) -> TrialPlan:
    study = context.study
    first = study.run_config(cell.arm, knobs, seeds[0], grid_point=study.grid_points()[cell.point])
    identity = TrialIdentity(study=study.name, execution=context.execution, phase=context.phase, arm=cell.arm,
                             variant=cell.variant, trial_id=trial_id, seeds=tuple(seeds),
                             task=build_task(first.task.name, first.task.params).name, init=first.init.name,
                             arch=first.model.arch, init_role=INITS.get(first.init.name).role)
    params = {**first.flat(), record.GIT_REVISION: context.git_revision,
              **{f"{record.SEARCHED}{k}": v for k, v in knobs.items()},
              record.PACK_SIZE: pack, record.PACK_TIME: PACK_TIME}
    return TrialPlan(cell, knobs, seeds, name, identity, params)


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    extend_python_path(context.python_path)
    study = context.study
    torch.set_num_threads(max(1, int(study.resources.cpus)))
    plans = plan_trial(config, context)
    tracker = Tracker(context.tracking_uri)
    runs, done = [], {}
    for i, plan in enumerate(plans):
        run_id, created = tracker.child_run(context.experiment_id, context.parent_run_id, plan.name,
                                            plan.identity, plan.params)
        runs.append((run_id, created))
        completed = None if created else tracker.completed(run_id)
        if completed is not None:  # completed before the driver could record it (killed in between)
            done[i] = completed
    if len(done) == len(plans):  # never re-train a complete run
        first = done[0]
        tune.report(tune_result(first.get(record.OBJECTIVE, WORST), first[record.STATUS],
                                first.get(keys.final(keys.TRAIN_LOSS), WORST)))
        return
    state = TrialState.restore()
    tracker.resend(state.pending)
    todo = [i for i in range(len(plans)) if i not in done]
    for i in todo:
        tracker.mark_start(runs[i][0], resumed_from=state.pack[keys.STEP] if state.pack else 0)
    logged_up_to = {i: -1 if runs[i][1] else tracker.last_step(runs[i][0], keys.TRAIN_LOSS) for i in todo}
    try:
        train_runs(plans, todo, state, context, tracker, [r for r, _ in runs], logged_up_to)
        finals = [finish(tracker, runs[i][0], plans[i].name, [o for o in state.outcomes if o.run == i],
                         context.draws_previews) for i in todo]
    except Exception:
        for i in todo:  # Tune retries the trial from its last checkpoint, in these same runs
            tracker.finish(runs[i][0], Status.FAILED)
        raise
    except BaseException:
        for i in todo:
            tracker.finish(runs[i][0], Status.STOPPED)  # stopped from outside (an ASHA decision, a shutdown)
        raise
    tune.report(finals[0])


def train_runs(plans: list[TrialPlan], todo: list[int], state: TrialState, context: TrialContext,
               tracker: Tracker, run_ids: list[str], logged_up_to: dict[int, int]) -> None:
    """Train the members (run, seed) of the runs ``todo`` in packs — the trial's pack (evaluate) or the
    search seeds ``context.pack`` at a time — the pack under way continuing from ``state.pack``."""
    study = context.study
    members = [(i, seed) for i in todo for seed in plans[i].seeds]
    size = len(members) if context.phase == Phase.EVALUATE else context.pack
    chunks = [members[k:k + size] for k in range(0, len(members), size)]
    for index in range(state.chunk, len(chunks)):
        chunk = chunks[index]
        names = [f"{i}/{seed}" for i, seed in chunk]
        cfgs = [plans[i].config(study, seed) for i, seed in chunk]
        reporters = [_Reporter(tracker, run_ids[i], logged_up_to[i] if seed == plans[i].seeds[0] else None)
                     for i, seed in chunk]
        halving = context.phase == Phase.SEARCH and study.search.asha.enabled
        pack = Pack(cfgs, reporters, on_log=_TuneReport(study, state, index, names, tracker, every_step=halving))
        shown = [condensation_layers(m.model)[:1] for m in pack.members]  # the layer whose input weights are recorded
        initial_u = [input_weights(layers[0][0]) if layers else None for layers in shown]
        if state.pack is not None and state.members == names:
            pack.load_state_dict(state.pack)
        state.pack = None  # a pack of other members (some runs completed meanwhile) starts afresh
        results = pack.run()
        for (i, seed), member, result, u0, layers in zip(chunk, pack.members, results, initial_u, shown):
            cfg = member.cfg
            if seed == plans[i].seeds[0]:
                tracker.log_new_params(run_ids[i], {f"{record.RESOLVED}{k}": v for k, v in result.init_info.items()}
                                       | {f"{record.META}{k}": v for k, v in result.metadata.items()})
                _artifacts(tracker, run_ids[i], cfg, result, u0, input_weights(layers[0][0]) if layers else None)
            objective = objective_value(study.search.objective, result.status, result.history,
                                        cfg.targets.metric, cfg.train.total_steps)
            state.outcomes.append(SeedOutcome(seed, result.status, objective, result.history,
                                              {**result.summary(), **layer_counts(member.model)}, run=i))
        state.chunk = index + 1


def tune_result(objective: float, status: str, final_loss: float) -> dict[str, Any]:
    """A trial's last report to Tune."""
    return {record.OBJECTIVE: objective, record.OBJECTIVE_FINAL: 1, record.STATUS: str(status),
            keys.TRAIN_LOSS: finite_or_worst(final_loss)}


class _Reporter:
    """A member's record callback: one MLflow batch per logging step into its run (only a run's first seed
    logs curves; steps logged before a restart are not logged again)."""

    def __init__(self, tracker: Tracker, run_id: str, logged_up_to: int | None):
        self.tracker, self.run_id, self.logged_up_to = tracker, run_id, logged_up_to

    def __call__(self, entry: dict[str, float], trainer: Trainer) -> None:
        step = int(entry[keys.STEP])
        if self.logged_up_to is not None and step > self.logged_up_to:
            self.tracker.log_step(self.run_id, entry, step)


class _TuneReport:
    """The pack's callback after each logging step: a Tune report (the members' mean running objective and
    loss), with a checkpoint every ``checkpoint_every`` logging steps while members still train.

    A Tune report is a round trip to the driver (the function trainable waits until the driver has taken it),
    about 7 ms each here, so a trial reports only what someone reads: every logging step when successive
    halving (``every_step``) decides on them, else the checkpoints alone (the trial's final result follows
    from :func:`run_trial`)."""

    def __init__(self, study: Study, state: TrialState, chunk: int, names: list[str], tracker: Tracker,
                 every_step: bool):
        self.study, self.state, self.chunk, self.names, self.tracker = study, state, chunk, names, tracker
        self.every_step = every_step
        self.n = 0

    def __call__(self, pack: Pack) -> None:
        self.n += 1
        training = any(m.status == Status.FINISHED for m in pack.members)
        checkpoint = (self.n % self.study.checkpoint_every == 0 and training
                      and pack.step <= pack.lead.cfg.train.total_steps)
        if not (checkpoint or self.every_step):
            return
        latest = [m.history[-1] for m in pack.members]
        running = [objective_value(self.study.search.objective, m.status, m.history, m.cfg.targets.metric,
                                   m.cfg.train.total_steps) for m in pack.members]
        metrics = {record.OBJECTIVE: sum(running) / len(running),
                   keys.TRAIN_LOSS: sum(finite_or_worst(e[keys.TRAIN_LOSS]) for e in latest) / len(latest),
                   keys.STEP: pack.step - 1, record.SEED_INDEX: self.chunk, record.OBJECTIVE_FINAL: 0}
        if checkpoint:
            self.state.pack, self.state.members, self.state.chunk = pack.state_dict(), self.names, self.chunk
            self.state.pending = self.tracker.pending()
            self.state.report(metrics)
            self.state.pack, self.state.pending = None, []
        else:
            tune.report(metrics)


def finish(tracker: Tracker, run_id: str, name: str, outcomes: list[SeedOutcome], draw: bool) -> dict[str, Any]:
    """Summary metrics (of the first seed) and the mean objective, the series of every seed, the previews
    (``draw``; else the driver draws them), the sfli status; returns the trial's last Tune report."""
    objective = sum(o.objective for o in outcomes) / len(outcomes)
    status = Status.FINISHED if all(o.status == Status.FINISHED for o in outcomes) else Status.DIVERGED
    summary = {k: v for k, v in outcomes[0].summary.items() if isinstance(v, (int, float))}
    initial = {k: v for k, v in summary.items() if k.startswith(keys.INITIAL)}  # measured at step 0
    tracker.log_metrics(run_id, initial, step=0)
    tracker.log_metrics(run_id, {**{k: v for k, v in summary.items() if k not in initial},
                                 record.OBJECTIVE: objective}, step=int(summary.get(keys.FINAL_STEP, 0)))
    with tempfile.TemporaryDirectory() as d:
        rows = [{"seed": o.seed, **entry} for o in outcomes for entry in o.history]
        pd.DataFrame(rows).to_csv(Path(d) / record.SERIES_FILE, index=False)
        (Path(d) / record.SEEDS_FILE).write_text(json.dumps(
            [{k: v for k, v in asdict(o).items() if k not in ("history", "run")} for o in outcomes], indent=1))
        tracker.log_artifacts(run_id, Path(d))
    tracker.finish(run_id, status, draw_run(tracker, run_id, name) if draw else {record.PREVIEWS: PreviewState.PENDING})
    return tune_result(objective, status, summary.get(keys.final(keys.TRAIN_LOSS), WORST))


def _artifacts(tracker: Tracker, run_id: str, cfg: RunConfig, result: RunResult, u_start, u_end) -> None:
    """Resolved config, spectra and, for a net with a condensation layer, that layer's input weights at the start
    and the end (and at every logging step with condensation.track) of the first seed: the records its previews
    are drawn from (:func:`finish`, or the driver: pipelines.previews)."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / record.CONFIG_FILE).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        (d / record.SPECTRA_FILE).write_text(json.dumps(result.spectra))
        if u_start is not None:
            weights = {record.WEIGHTS_START: u_start.tolist(), record.WEIGHTS_END: u_end.tolist()}
            if result.weights:
                weights[record.WEIGHTS_STEPS] = {str(step): u for step, u in sorted(result.weights.items())}
            (d / record.WEIGHTS_FILE).write_text(json.dumps(weights))
        tracker.log_artifacts(run_id, d)
