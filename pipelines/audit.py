"""The tuning audit: every search's Optuna study is kept in an RDB storage beside the MLflow store
(``<runs>/optuna.db``, SQLite), one Optuna study per searched cell and execution
(``<study>-e<execution>-<cell>``), so that ``optuna-dashboard sqlite:///<runs>/optuna.db`` shows every search
and ``optuna.load_study`` finds every trial: its knobs, its objective (complete trials), its running objective
at each logging step, and whether successive halving pruned it. The Optuna study lives in the driver (Ray
Tune's searcher), so a SQLite file on the driver's disk serves a cluster as well."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from sfli_core import record

from .study import Cell, Study
from .trial import COMPLETE


def audit_storage(runs: Path) -> str:
    """The runs folder's Optuna storage URL."""
    return f"sqlite:///{runs / record.AUDIT_FILE}"


class AuditedSearch(OptunaSearch):
    """Ray Tune's Optuna searcher with two amendments. A trial that ends before its last report (stopped by
    successive halving) is told to Optuna as *pruned*, its running objectives kept as intermediate values,
    instead of *complete* with a partial value. And a search restored from a runs folder that has moved
    since uses the storage of the folder it is in now (``storage_url``, set before a phase runs), not the
    one its saved state names."""

    storage_url: str | None = None

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result and not error and not result.get(COMPLETE):
            result = None  # OptunaSearch then tells it PRUNED
        super().on_trial_complete(trial_id, result, error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        url = type(self).storage_url
        if url and self._storage is not None and self._storage.url != url:
            self._storage = optuna.storages.RDBStorage(url)
            self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                               sampler=self._sampler)


def searcher(study: Study, cell: Cell, execution: int, url: str) -> AuditedSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created" per phase
    return AuditedSearch(metric=record.OBJECTIVE, mode="min", sampler=_sampler(study),
                         study_name=record.search_study_name(study.name, execution, cell.arm, cell.vid),
                         storage=optuna.storages.RDBStorage(url))


def _sampler(study: Study) -> optuna.samplers.BaseSampler:
    if study.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.search.sampler_seed)
    return optuna.samplers.TPESampler(seed=study.search.sampler_seed, n_startup_trials=study.startup_trials)
