"""The Ray Tune trial: one configuration of one arm trained on its seed(s), recorded in its own MLflow run.

A search trial trains the sampled configuration on every search seed in turn and reports the mean objective
(the MLflow metric histories are those of the first search seed; the series CSV holds every seed). An
evaluate trial is one (arm, seed) pair at the arm's chosen configuration, full budget, no early stopping.

The trainer's full state is checkpointed every ``checkpoint_every`` logging steps; a retried or resumed
trial continues from it, reopens the same MLflow run and does not log a step twice.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from ray import tune

from analysis.run_figures import condensation_heatmap, staircase_plot
from sfli_core import keys
from sfli_core.condensation import input_weights, layer_counts
from sfli_core.models import Dense
from sfli_core.result import DIVERGED, RunResult
from sfli_core.tasks import build_task
from sfli_core.trainer import Trainer

from .study import CENSORED_FACTOR, WORST, Study, chosen_key
from .tracking import Tracker

STATE_FILE = "trial_state.pt"


@dataclass
class TrialContext:
    study: Study
    phase: str  # "search" or "evaluate"
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    git_revision: str
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluate: the knobs of every arm


def objective_value(study: Study, result: RunResult) -> float:
    """The study's objective for one finished run (see pipelines.study)."""
    if result.status != "finished":
        return WORST
    name = study.search.objective
    if name.startswith("target/"):
        steps = result.targets.get(name)
        return float(steps) if steps is not None else CENSORED_FACTOR * result.summary()["final/step"]
    value = result.summary().get(name, math.nan)
    return math.log10(value) if value > 0 and math.isfinite(value) else WORST


def first_layer(model: torch.nn.Module) -> Dense:
    """The layer whose input weights the condensation heat map shows: the first that reads x."""
    layers = model.input_layers()
    return layers[0][0] if layers else next(m for m in model.modules() if isinstance(m, Dense))


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    study, phase = context.study, context.phase
    arm, variant = config["arm"], study.variants()[int(config.get("variant", 0))]
    vid = study.variant_id(variant)
    knobs = {k: v for k, v in config.items() if k not in ("arm", "seed", "variant")} if phase == "search" \
        else context.chosen.get(chosen_key(arm, variant), {})
    seeds = list(study.search.seeds) if phase == "search" else [int(config["seed"])]
    torch.set_num_threads(max(1, int(study.resources.cpus)))

    trial_ctx = tune.get_context()
    trial_id = trial_ctx.get_trial_id()
    where = arm if vid == "base" else f"{arm}-{vid}"
    trial_name = f"{where}-seed{seeds[0]}" if phase == "evaluate" else f"search-{where}-{trial_id}"
    first_cfg = study.run_config(arm, knobs, seeds[0], variant=variant)
    tracker = Tracker(context.tracking_uri)
    tags = {"study": study.name, "phase": phase, "arm": arm, "variant": vid, "trial_id": trial_id,
            "seed": ",".join(map(str, seeds)),
            "task": build_task(first_cfg.task.name, first_cfg.task.params).name,  # coefficient-encoding name
            "init": first_cfg.init.name, "arch": first_cfg.model.arch}
    params = {**first_cfg.flat(), "git.revision": context.git_revision, "phase": phase, "arm": arm,
              **{f"search.{k}": v for k, v in knobs.items()}}
    run_id, created = tracker.child_run(context.experiment_id, context.parent_run_id, trial_name, tags, params)
    done = None if created else tracker.completed(run_id)
    if done is not None:  # completed before the driver could record it (killed in between): never re-train
        tune.report({"objective": done.get("objective", WORST), "complete": 1, "status": done["status"],
                     keys.TRAIN_LOSS: _finite(done.get("final/train/loss", WORST))})
        return
    checkpoint = tune.get_checkpoint()
    state: dict[str, Any] = {"seed_index": 0, "trainer": None, "results": []}
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, weights_only=False)
    tracker.mark_start(run_id, resumed_from=state["trainer"]["step"] if state["trainer"] else 0)
    logged_up_to = -1 if created else tracker.last_step(run_id, keys.TRAIN_LOSS)
    try:
        for index in range(state["seed_index"], len(seeds)):
            cfg = study.run_config(arm, knobs, seeds[index], variant=variant)
            reporter = _Reporter(study, tracker, run_id, index, state, logged_up_to if index == 0 else -1)
            trainer = Trainer(cfg, callback=reporter)
            initial_u = input_weights(first_layer(trainer.model))
            if state["trainer"] is not None:
                trainer.load_state_dict(state["trainer"])
                state["trainer"] = None
            result = trainer.run()
            if index == 0:
                tracker.log_new_params(run_id, {f"init.resolved.{k}": v for k, v in result.init_info.items()}
                                       | {f"meta.{k}": v for k, v in result.metadata.items()})
                _artifacts(tracker, run_id, cfg, result, initial_u, input_weights(first_layer(trainer.model)))
            state["results"].append({"seed": seeds[index], "status": result.status,
                                     "objective": objective_value(study, result), "history": result.history,
                                     "summary": {**result.summary(), **layer_counts(trainer.model)}})
            state["seed_index"] = index + 1
        status, final = _finish(study, tracker, run_id, state)
    except Exception:
        tracker.finish(run_id, "failed")  # Tune retries it from its last checkpoint, in this same run
        raise
    except BaseException:
        tracker.finish(run_id, "stopped")  # stopped from outside (an ASHA decision, a shutdown)
        raise
    tune.report(final)


class _Reporter:
    """Trainer callback: one MLflow batch and one Tune report per logging step, a checkpoint every K."""

    def __init__(self, study: Study, tracker: Tracker, run_id: str, seed_index: int, state: dict,
                 logged_up_to: int):
        self.study, self.tracker, self.run_id = study, tracker, run_id
        self.seed_index, self.state, self.logged_up_to = seed_index, state, logged_up_to
        self.n = 0

    def __call__(self, record: dict[str, float], trainer: Trainer) -> None:
        step = int(record[keys.STEP])
        if self.seed_index == 0 and step > self.logged_up_to:
            self.tracker.log_metrics(self.run_id, record, step)
        self.n += 1
        budget = trainer.cfg.train.steps
        reached = trainer.targets.reached.get(self.study.search.objective)
        running = float(reached) if reached is not None else CENSORED_FACTOR * budget
        if not self.study.search.objective.startswith("target/"):
            value = record.get(self.study.search.objective.removeprefix("final/"), math.nan)
            running = math.log10(value) if value > 0 and math.isfinite(value) else WORST
        metrics = {"objective": running, keys.TRAIN_LOSS: _finite(record[keys.TRAIN_LOSS]),
                   "step": step, "seed_index": self.seed_index, "complete": 0}
        if self.n % self.study.checkpoint_every == 0 and trainer.status == "finished" and step < budget:
            self.state["trainer"] = trainer.state_dict()
            self.state["seed_index"] = self.seed_index
            with tempfile.TemporaryDirectory() as d:
                torch.save(self.state, Path(d) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            self.state["trainer"] = None
        else:
            tune.report(metrics)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else WORST


def _finish(study: Study, tracker: Tracker, run_id: str, state: dict) -> tuple[str, dict[str, Any]]:
    """Summary metrics, the series of every seed, the sfli status; returns (status, final Tune result)."""
    results = state["results"]
    objective = sum(r["objective"] for r in results) / len(results)
    status = "finished" if all(r["status"] == "finished" for r in results) else DIVERGED
    summary = {k: v for k, v in results[0]["summary"].items() if isinstance(v, (int, float))}
    tracker.log_metrics(run_id, {**summary, "objective": objective}, step=int(summary.get("final/step", 0)))
    with tempfile.TemporaryDirectory() as d:
        rows = [{"seed": r["seed"], **rec} for r in results for rec in r["history"]]
        pd.DataFrame(rows).to_csv(Path(d) / "series.csv", index=False)
        (Path(d) / "seeds.json").write_text(json.dumps(
            [{k: r[k] for k in ("seed", "status", "objective", "summary")} for r in results], indent=1))
        tracker.log_artifact(run_id, Path(d) / "series.csv")
        tracker.log_artifact(run_id, Path(d) / "seeds.json")
    tracker.finish(run_id, status)
    return status, {"objective": objective, "complete": 1, "status": status,
                    keys.TRAIN_LOSS: _finite(summary.get("final/train/loss", WORST))}


def _artifacts(tracker: Tracker, run_id: str, cfg, result: RunResult, u_start, u_end) -> None:
    """Resolved config, staircase plot and first-layer condensation heat map of the first seed."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        (d / "spectra.json").write_text(json.dumps(result.spectra))
        title = f"{cfg.task.name} {cfg.model.arch} {cfg.init.name} seed {cfg.seed}"
        staircase_plot(result.history, cfg.rank.headline, cfg.model.depth, d / "staircase.png", title)
        condensation_heatmap({"start": u_start, "end": u_end}, d / "condensation.png", title)
        for name in ("config.yaml", "spectra.json", "staircase.png", "condensation.png"):
            tracker.log_artifact(run_id, d / name)
