"""Reading recorded runs from MLflow into one table (one row per trial run). Read-only."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from sfli_core import keys, record
from sfli_core.record import TrialIdentity


def load_runs(uri: str, studies: list[str] | None = None, phase: str = record.Phase.EVALUATE,
              execution: int | None = None) -> pd.DataFrame:
    """Summary metrics and identity of every trial run of ``phase`` in the given studies (every study in the
    store when None), read through :mod:`sfli_core.record`. Columns: study, phase, arm, variant, task, arch,
    init, init_role, status, run_id, seed, budget, hidden_layers (measured), width, activation (a name or a
    list), headline, eps (every recorded ε), metric, thresholds, searched (the knobs a search tuned), and one
    column per summary metric (NaN where a target was not reached). Only complete runs (finished or diverged) are read.
    ``execution``: the runs of that execution of each study; by default each study's latest."""
    client = MlflowClient(uri)
    experiments = client.search_experiments()
    if studies is not None:
        experiments = [e for e in experiments if e.name in studies]
        missing = set(studies) - {e.name for e in experiments}
        if missing:
            raise ValueError(f"no recorded study named {', '.join(sorted(missing))} at {uri}")
    rows = []
    for exp in experiments:
        query = record.run_filter(record.RunType.TRIAL, phase)
        for run in client.search_runs([exp.experiment_id], query, max_results=50000):
            if run.data.tags.get(record.STATUS) not in record.OUTCOMES:
                continue  # a run still under way, stopped or failed has no outcome yet
            p = record.decode_params(run.data.params)
            identity = TrialIdentity.from_tags(run.data.tags)
            row = {k: v for k, v in vars(identity).items() if k not in ("trial_id", "seeds")}
            budget = int(p["train.steps"]) + int(p.get("train.lbfgs_steps", 0))  # optimiser steps, then L-BFGS
            row.update(status=run.data.tags.get(record.STATUS), run_id=run.info.run_id, seed=int(p["seed"]),
                       budget=budget, hidden_layers=int(p[f"{record.META}hidden_layers"]),
                       width=int(p["model.width"]), activation=p["model.activation"],
                       headline=float(p["rank.headline"]), eps=tuple(p.get("rank.eps", ())),
                       metric=p["targets.metric"],
                       thresholds=tuple(p["targets.thresholds"]),
                       searched=", ".join(sorted(k.removeprefix(record.SEARCHED) for k in p
                                                 if k.startswith(record.SEARCHED))),
                       chosen={k.removeprefix(record.SEARCHED): v for k, v in p.items()
                               if k.startswith(record.SEARCHED)})
            row.update(run.data.metrics)
            rows.append(row)
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    wanted = runs.groupby("study")["execution"].transform("max") if execution is None else execution
    return runs[runs["execution"] == wanted].reset_index(drop=True)


def treated(runs: pd.DataFrame) -> pd.Series:
    """Whether each run's initialisation is a treatment (its recorded ``init_role``; SFLI, or a user's scheme
    registered as one): the one definition the tables and the claims pair arms by."""
    return runs[record.INIT_ROLE] == record.InitRole.TREATMENT


def arms_by_role(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(treatment arms, baseline arms) among ``runs``, each sorted."""
    mask = treated(runs)
    return sorted(runs.loc[mask, "arm"].unique()), sorted(runs.loc[~mask, "arm"].unique())


def search_trials(uri: str, executions: dict[str, int]) -> pd.DataFrame:
    """Every search trial run of the given executions, whatever its status (pruned ones are ``stopped``): study,
    arm, variant, status, steps trained (the last logged step), training seconds, and its sampled knobs
    (``search.<knob>`` parameters, as ``knobs``). Empty for studies without a search."""
    client = MlflowClient(uri)
    rows = []
    for study, execution in executions.items():
        experiment = client.get_experiment_by_name(study)
        query = record.run_filter(record.RunType.TRIAL, record.Phase.SEARCH, execution)
        for run in client.search_runs([experiment.experiment_id], query, max_results=50000) if experiment else []:
            loss = client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS)
            rows.append({"study": study, "arm": run.data.tags.get("arm"), "variant": run.data.tags.get("variant"),
                         "status": run.data.tags.get(record.STATUS), "steps": max((m.step for m in loss), default=0),
                         "seconds": run.data.metrics.get(keys.TIME_TRAIN, 0.0),
                         "objective": run.data.metrics.get(record.OBJECTIVE),
                         "knobs": {k.removeprefix(record.SEARCHED): record.decode(v)
                                   for k, v in run.data.params.items() if k.startswith(record.SEARCHED)}})
    return pd.DataFrame(rows)


def parent_tags(uri: str, study: str, phase: str, execution: int) -> dict[str, str]:
    """The tags of a study's parent run of ``phase`` in ``execution`` (empty when there is none)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    query = record.run_filter(record.RunType.PARENT, phase, execution)
    parents = client.search_runs([experiment.experiment_id], query, max_results=1) if experiment else []
    return dict(parents[0].data.tags) if parents else {}


def unfinished(uri: str, executions: dict[str, int]) -> dict[str, str]:
    """Study → why its report is partial, for the studies (at the given execution) whose evaluate phase has not
    finished: its parent run is not closed as finished (the study was interrupted, failed or is still running)."""
    client = MlflowClient(uri)
    out = {}
    for study, execution in executions.items():
        experiment = client.get_experiment_by_name(study)
        query = record.run_filter(record.RunType.PARENT, record.Phase.EVALUATE, execution)
        parents = client.search_runs([experiment.experiment_id], query, max_results=1) if experiment else []
        status = parents[0].data.tags.get(record.STATUS, record.Status.RUNNING) if parents else None
        if status != record.Status.FINISHED:
            out[study] = (f"study '{study}' execution {execution} has not finished (its evaluate phase is "
                          f"{status or 'not started'}): these numbers are partial; complete it with: "
                          f"sfli resume {study}")
    return out


def history(uri: str, run_id: str, key: str) -> pd.Series:
    """A metric's history as a Series indexed by step."""
    points = MlflowClient(uri).get_metric_history(run_id, key)
    return pd.Series({m.step: m.value for m in points}, dtype=float).sort_index()


def artifact_json(uri: str, run_id: str, name: str) -> dict | None:
    with tempfile.TemporaryDirectory() as d:
        try:
            path = MlflowClient(uri).download_artifacts(run_id, name, d)
        except Exception:
            return None
        return json.loads(Path(path).read_text())
