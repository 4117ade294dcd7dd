"""A study's state file (``<runs>/studies/<name>/state.json``): what a driver needs to resume it, and the lock
that lets one driver at a time work on it.

Statuses: ``running`` (a driver holds the lock, or held it when it was killed), ``interrupted`` (stopped by
a signal; resumable), ``failed`` (a phase ended with failed trials; resumable, failed trials are retried),
``finished``. Each start of a finished study is a new **execution** (1, 2, …): new Tune experiments and new
MLflow runs tagged with it, the old ones kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sfli_core.config import ConfigError

RUNNING, INTERRUPTED, FAILED, FINISHED = "running", "interrupted", "failed", "finished"


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
    status: str = RUNNING
    ray_session: str | None = None  # the local Ray instance's session folder, while one runs

    @staticmethod
    def path(runs: Path, name: str) -> Path:
        return runs / "studies" / name / "state.json"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.study)

    def save(self, runs: Path) -> None:
        path = self.path(runs, self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
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
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: the study's state file is damaged ({err}); the runs recorded in MLflow are "
                              f"untouched: run the study again under a new name, or restore this file") from None


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
