"""A study's state file (``<runs>/studies/<name>/state.json``): what a driver needs to resume it, and the lock
that lets one driver at a time work on it.

Statuses: ``running`` (a driver holds the lock, or held it when it was killed), ``interrupted`` (stopped by
a signal; resumable), ``failed`` (a phase ended with failed trials; resumable, failed trials are retried),
``finished``. Each start of a finished study is a new **execution** (1, 2, …): new Tune experiments and new
MLflow runs tagged with it, the old ones kept.

A runs folder stands on its own: the state file names what lies inside the folder (the embedded store
``sqlite:///mlflow.db``, the Tune storage ``ray``) relative to the folder, which is wherever the command line
(``--runs-dir``) says it is now. Moving or copying the folder keeps the study working, and a study never
reads or writes the store of another folder that now lives where it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from sfli_core.config import ConfigError


class StudyStatus(StrEnum):
    """An execution's status in its state file (``sfli status``); a run's own status is sfli_core.record.Status."""
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # stopped (a signal, a stop request) or its driver died: `sfli resume` continues it
    FAILED = "failed"  # trials failed past their retries
    FINISHED = "finished"


@dataclass
class StudyState:
    name: str
    study: dict[str, Any]
    tracking_uri: str
    storage: str
    address: str | None
    experiment_id: str
    execution: int = 1
    git_revision: str = "unknown"
    parents: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    packing: dict[str, Any] = field(default_factory=dict)  # per phase: search pack size / evaluate packs
    status: StudyStatus = StudyStatus.RUNNING
    ray_session: str | None = None  # the local Ray instance's session folder, while one runs
    report: int | None = None  # the version of the report recorded when this execution finished

    @staticmethod
    def path(runs: Path, name: str) -> Path:
        return runs / "studies" / name / "state.json"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.study)

    def save(self, runs: Path) -> None:
        path = self.path(runs, self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["tracking_uri"], data["storage"] = _portable(self.tracking_uri, self.storage, runs)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)  # atomic: a killed driver leaves the old file or the new one, never half of one

    @classmethod
    def load(cls, runs: Path, name: str) -> StudyState:
        path = cls.path(runs, name)
        if not path.exists():
            known = sorted(p.name for p in (runs / "studies").glob("*")) if (runs / "studies").exists() else []
            raise ConfigError(f"no study '{name}' in {runs}; known: {', '.join(known) or 'none'}")
        try:
            data = json.loads(path.read_text())
            names = {f.name for f in fields(cls)}
            if not isinstance(data, dict) or not {"name", "study", "tracking_uri", "experiment_id"} <= set(data):
                raise ValueError("required fields are missing")
            data["tracking_uri"], data["storage"] = _located(data["tracking_uri"], data.get("storage", "ray"), runs)
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: the study's state file is damaged ({err}); the runs recorded in MLflow are "
                              f"untouched: run the study again under a new name, or restore this file") from None


OWN_STORE, OWN_STORAGE = "sqlite:///mlflow.db", "ray"  # relative to the runs folder


def _portable(uri: str, storage: str, runs: Path) -> tuple[str, str]:
    """The state file's form: the folder's own store and storage relative to it, anything else as given."""
    own = uri == f"sqlite:///{runs / 'mlflow.db'}"
    inside = not _is_url(storage) and Path(storage).is_relative_to(runs)
    return (OWN_STORE if own else uri), (str(Path(storage).relative_to(runs)) if inside else storage)


def _located(uri: str, storage: str, runs: Path) -> tuple[str, str]:
    """Inverse of :func:`_portable` for the folder ``runs`` is now. A state file written before paths were
    relative names its folder's own store and storage absolutely (``<old>/mlflow.db``, ``<old>/ray``): they
    are the folder's own, wherever it is now."""
    old = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:////") else None
    if old and old.endswith("/mlflow.db") and storage == f"{old.removesuffix('/mlflow.db')}/ray":
        uri, storage = OWN_STORE, OWN_STORAGE
    if uri == OWN_STORE:
        uri = f"sqlite:///{runs / 'mlflow.db'}"
    if not _is_url(storage) and not Path(storage).is_absolute():
        storage = str(runs / storage)
    return uri, storage


def _is_url(path: str) -> bool:
    return "://" in path


def fingerprint(study: dict[str, Any]) -> str:
    """A short hash of a study's resolved definition: a changed definition under an old name is noticed."""
    return hashlib.sha256(json.dumps(study, sort_keys=True, default=str).encode()).hexdigest()[:12]


@contextmanager
def driver_lock(runs: Path, name: str):
    """Held by the one driver working on a study (an OS lock: released when its process dies, even by
    SIGKILL). A second driver is refused, naming the holder's PID."""
    path = runs / "studies" / name / "driver.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ConfigError(f"study '{name}' is being run by another sfli process (PID {holder}); wait for it, "
                              f"or stop it and run: sfli resume {name}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def driver_alive(runs: Path, name: str) -> bool:
    """Whether a driver holds the study's lock right now."""
    path = runs / "studies" / name / "driver.lock"
    if not path.exists():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
