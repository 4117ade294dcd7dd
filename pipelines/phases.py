"""One phase of a study as one Ray Tune experiment (created, or restored when it already exists)."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from sfli_core import record
from sfli_core.record import Phase

from .audit import AuditedSearch, searcher
from .previews import draws_in_trials
from .progress import Progress
from .ray_session import cluster_address, machine_cpus
from .stop import StopRequest
from .study import Cell, Study
from .terminal import say
from .tracking import Tracker
from .trial import TrialContext, run_trial


def search_space(study: Study, cell: Cell) -> dict[str, Any]:
    space: dict[str, Any] = {"arm": cell.arm, "point": cell.point}
    for path, d in study.arms[cell.arm].search.items():
        if d.type == "log_uniform":
            space[path] = tune.loguniform(d.low, d.high)
        elif d.type == "uniform":
            space[path] = tune.uniform(d.low, d.high)
        elif d.type == "int_uniform":
            space[path] = tune.randint(int(d.low), int(d.high) + 1)
        else:
            space[path] = tune.choice(d.values)
    return space


def damaged_tune_state(path: Path) -> str | None:
    """Why the Tune experiment saved at ``path`` cannot be restored — a state file left empty by a full disk or
    a kill, or the latest experiment state (JSON, the one Tune reads) cut short — or None. (Tune's other state
    files are pickles, whatever their suffix.)"""
    for file in sorted(path.iterdir()):
        if file.is_file() and file.suffix in (".pkl", ".json") and file.stat().st_size == 0:
            return f"{file.name} is empty"
    states = sorted(path.glob("experiment_state-*.json"))
    if states:
        try:
            json.loads(states[-1].read_text())
        except (ValueError, OSError) as err:
            return f"{states[-1].name} is damaged: {err}"
    return None


class TuneStopNoise(logging.Filter):
    """Drops Tune's own words on a graceful stop and on restoring its experiment: they name its Python API
    (``Tuner.restore``) as the way to continue and list, one long line each, the trials that never started
    as results it could not read. The driver says what stopped and how to continue (``sfli resume``)."""

    PREFIXES = ("Stop signal received", "Experiment has been interrupted", "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.PREFIXES)


TUNE_STOP_NOISE = TuneStopNoise()  # one instance: a logger keeps a filter added twice once
STOP_NOISE_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")


class PhaseIncomplete(Exception):
    """A phase's Tune experiment ended with trials not done (interrupted) or failed for good."""

    def __init__(self, label: str, done: int, expected: int, failed: int, why: str = ""):
        super().__init__(f"{label}: {done} of {expected} trials done" + (f", {failed} failed" if failed else "")
                         + (f"; first error: {why}" if why else ""))
        self.failed = failed


def run_phase(state, study: Study, phase: Phase, cell: Cell | None, t0: float,
              python_path: list[str], packing: Any, audit: str) -> dict[str, Any]:
    """Run (or restore and finish) the phase's Tune experiment. Search: returns the best knobs of ``cell``.
    ``python_path``: folders the trials put on their ``sys.path`` (empty when the modules are shipped);
    ``packing``: the search trials' pack size, or the evaluate trials' members (pipelines.packing);
    ``audit``: the Optuna storage of the searches (pipelines.audit)."""
    AuditedSearch.storage_url = audit
    context = TrialContext(study=study, phase=phase, tracking_uri=state.tracking_uri,
                           experiment_id=state.experiment_id, parent_run_id=state.parents[phase],
                           git_revision=state.git_revision, chosen=dict(state.chosen), python_path=python_path,
                           execution=state.execution, pack=packing if phase == Phase.SEARCH else 1,
                           draws_previews=draws_in_trials(cluster_address(state.address), study.resources.gpus,
                                                          ray.cluster_resources().get("CPU", 0), machine_cpus()))
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context),
                                    {"cpu": study.resources.cpus, "gpu": study.resources.gpus})
    name = f"{study.name}-e{state.execution}-" + (f"search-{cell.slug}" if phase == Phase.SEARCH else "evaluate")
    path = f"{state.storage.rstrip('/')}/{name}"  # a local folder or a bucket URI (s3://…, gs://…)
    label = f"search {cell.slug}" if phase == Phase.SEARCH else phase
    # Tune's "Wrote the latest version of all result files …" after every phase: not for the terminal; and its
    # noise on restoring an experiment, which _tuner does
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    for logger in STOP_NOISE_LOGGERS:
        logging.getLogger(logger).addFilter(TUNE_STOP_NOISE)
    tuner, relocated = _tuner(state, study, phase, cell, trainable, packing, audit, name, path, label, t0)
    StopRequest.in_fit = True
    try:
        with relocated:
            results = tuner.fit()
    finally:
        StopRequest.in_fit = False
    return _outcome(state, study, phase, cell, results, len(packing) if phase == Phase.EVALUATE else None,
                    label, path)


def _tuner(state, study: Study, phase: Phase, cell: Cell | None, trainable, packing: Any, audit: str, name: str,
           path: str, label: str, t0: float) -> tuple[tune.Tuner, contextlib.AbstractContextManager]:
    """The phase's Tuner: restored from its saved state (a damaged one set aside first), else a new search
    (Optuna through Tune, successive halving when enabled) or a new grid of the evaluation's packs; and the
    context to fit it in (a restored search re-pointed at a moved runs folder)."""
    expected = study.search.trials if phase == Phase.SEARCH else len(packing)
    pruning = phase == Phase.SEARCH and study.search.asha.enabled
    Progress.t0 = t0  # a restored phase's callback (unpickled by Tune) shows this driver's elapsed time too
    progress = Progress(label, expected, pruning, searching=phase == Phase.SEARCH)
    run_config = tune.RunConfig(
        name=name, storage_path=state.storage, verbose=0, callbacks=[progress],
        failure_config=tune.FailureConfig(max_failures=study.retries),
        # num_to_keep would force an experiment-state snapshot every few checkpoints (a bottleneck at ~1 s
        # per trial in the overhead benchmark); trial checkpoints are small, so all are kept.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None))
    if "://" not in path and tune.Tuner.can_restore(path) and (why := damaged_tune_state(Path(path))):
        aside = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        os.rename(path, aside)
        say(f"[{label}] the saved Tune state cannot be restored ({why}): set aside as {aside}; the phase "
            "starts again and its new runs replace those recorded so far")
    if tune.Tuner.can_restore(path):
        return (tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True),
                _search_storage_at(state.storage))
    if phase == Phase.EVALUATE:
        return tune.Tuner(trainable, param_space={"members": tune.grid_search(packing)}, run_config=run_config,
                          tune_config=tune.TuneConfig(reuse_actors=True)), contextlib.nullcontext()
    scheduler = None
    if study.search.asha.enabled:
        scheduler = ASHAScheduler(metric=record.OBJECTIVE, mode="min", time_attr="training_iteration",
                                  grace_period=study.search.asha.grace_period,
                                  reduction_factor=study.search.asha.reduction_factor)
    return tune.Tuner(trainable, param_space=search_space(study, cell), run_config=run_config,
                      tune_config=tune.TuneConfig(search_alg=searcher(study, cell, state.execution, audit),
                                                  scheduler=scheduler, num_samples=study.search.trials,
                                                  reuse_actors=True)), contextlib.nullcontext()


def _outcome(state, study: Study, phase: Phase, cell: Cell | None, results, packs: int | None, label: str,
             path: str) -> dict[str, Any]:
    """A fitted phase: incomplete (stopped, failed trials) raises; the runs of trials the restored experiment
    lost are discarded; a search returns its chosen knobs."""
    expected = study.search.trials if phase == Phase.SEARCH else packs
    if StopRequest.requested or results.num_errors or len(results) < expected:
        done = sum(1 for r in results if r.metrics and r.metrics.get(record.OBJECTIVE_FINAL))
        failed = 0 if StopRequest.requested else results.num_errors
        why = str(results.errors[0]).strip().splitlines()[-1][:300] if failed and results.errors else ""
        raise PhaseIncomplete(label, done, expected, failed, why)
    keep = {r.metrics.get("trial_id") for r in results if r.metrics}
    tracker = Tracker(state.tracking_uri)
    tracker.discard_orphans(state.experiment_id, study.name, state.execution, phase, cell.arm if cell else None,
                            cell.variant if cell else None, keep)
    tracker.close_open(state.experiment_id, study.name, state.execution, phase)
    if phase != Phase.SEARCH:
        return {}
    finished = [r for r in results if r.metrics and r.metrics.get(record.OBJECTIVE_FINAL)]
    if not finished:
        raise RuntimeError(f"search of {cell.key}: no trial finished; see {path}")
    return choose([(r.metrics, r.config) for r in finished])


def choose(trials: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """The knobs of the best of a search's finished trials, given as (last result, config) in any order: the
    lowest objective; among equal objectives the earliest trial (Tune's trial number, the start of its
    ``experiment_tag``), then the knobs themselves. The order in which Tune returns results differs between an
    uninterrupted and a resumed search; the choice must not."""
    def rank(trial) -> tuple:
        metrics, config = trial
        number = str(metrics.get("experiment_tag", "")).split("_", 1)[0]
        return (metrics[record.OBJECTIVE], int(number) if number.isdigit() else math.inf,
                json.dumps(config, sort_keys=True, default=str))

    return {k: v for k, v in min(trials, key=rank)[1].items() if k not in ("arm", "point")}


@contextlib.contextmanager
def _search_storage_at(storage: str):
    """Restore a search whose runs folder was moved. Tune re-points the restored trials at the experiment's new
    place, but not the experiment spec kept in its search algorithm's state, from which it creates the trials
    still to come: they would write to the old place (another study's folder now, or nowhere). While this is
    active, a restored search state is re-pointed at ``storage`` (a local folder; a bucket does not move)."""
    from ray.tune.search.search_generator import SearchGenerator

    original = SearchGenerator.set_state

    def set_state(self, saved: dict) -> None:
        original(self, saved)
        kept = (self._experiment.spec or {}).get("storage") if self._experiment is not None else None
        if kept is not None and "://" not in storage and kept.storage_fs_path != storage:
            moved = copy.copy(kept)
            moved.storage_fs_path = storage
            self._experiment.spec["storage"] = moved

    SearchGenerator.set_state = set_state
    try:
        yield
    finally:
        SearchGenerator.set_state = original
