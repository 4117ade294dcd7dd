"""The tuning audit: every search's Optuna study is kept in an RDB storage beside the MLflow store
(``<runs>/optuna.db``, SQLite), one Optuna study per searched cell and execution
(``<study>-e<execution>-<cell>``), so that ``optuna-dashboard sqlite:///<runs>/optuna.db`` shows every search
and ``optuna.load_study`` finds every trial: its knobs, its objective (complete trials), its running objective
at each logging step, and whether successive halving pruned it. The Optuna study lives in the driver (Ray
Tune's searcher), so a SQLite file on the driver's disk serves a cluster as well."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from sfli_core import record

from .study import Cell, Study


def audit_storage(runs: Path) -> str:
    """The runs folder's Optuna storage URL."""
    return f"sqlite:///{runs / record.AUDIT_FILE}"


class AuditedSearch(OptunaSearch):
    """Ray Tune's Optuna searcher with three amendments. A trial that ends before its last report (stopped by
    successive halving) is told to Optuna as *pruned*, its running objectives kept as intermediate values,
    instead of *complete* with a partial value. A search restored from a runs folder that has moved
    since uses the storage of the folder it is in now (``storage_url``, set before a phase runs), never
    the one its saved state names (which may now belong to another study). And the steps a resumed trial
    reports again are not warned of."""

    storage_url: str | None = None
    _storage_url: str | None = None  # the storage a pickled searcher was using

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # a trial resumed from its checkpoint reports again the steps it had reported after that checkpoint, with
        # the same values (a restored run continues bit for bit): Optuna keeps the first, and would warn of each
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=",
                                    category=UserWarning)
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result and not error and not result.get(record.OBJECTIVE_FINAL):
            result = None  # OptunaSearch then tells it PRUNED
        super().on_trial_complete(trial_id, result, error)

    # Ray pickles the searcher (with the Tuner, and in its checkpoints). Optuna's RDB storage, its study and
    # trial handles connect to the database they name as soon as they are unpickled (creating the file, for
    # SQLite): the pickled form keeps the storage's URL and the trials' ids instead, bound again when used.
    def __getstate__(self) -> dict[str, Any]:
        url = self._storage.url if self._storage is not None else self._storage_url
        return {**self.__dict__, "_storage": None, "_ot_study": None, "_storage_url": url,
                "_ot_trials": {tid: getattr(trial, "_trial_id", trial) for tid, trial in self._ot_trials.items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__getstate__(), handle)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._bind_storage()
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._sampler)
        self._ot_trials = {tid: optuna.trial.Trial(self._ot_study, trial_id)
                           for tid, trial_id in self._ot_trials.items()}

    def _setup_study(self, mode) -> None:
        self._bind_storage()
        super()._setup_study(mode)

    def _bind_storage(self) -> None:
        """The storage of the runs folder in use (``storage_url``), else the one the searcher was given."""
        url = type(self).storage_url or self._storage_url
        if url and (self._storage is None or self._storage.url != url):
            self._storage = optuna.storages.RDBStorage(url)


def searcher(study: Study, cell: Cell, execution: int, url: str) -> AuditedSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created" per phase
    return AuditedSearch(metric=record.OBJECTIVE, mode="min", sampler=_sampler(study),
                         study_name=record.search_study_name(study.name, execution, cell.arm, cell.variant),
                         storage=optuna.storages.RDBStorage(url))


def _sampler(study: Study) -> optuna.samplers.BaseSampler:
    if study.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=study.search.sampler_seed)
    return optuna.samplers.TPESampler(seed=study.search.sampler_seed, n_startup_trials=study.startup_trials)
