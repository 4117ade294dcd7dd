"""Running a study: search phase (Ray Tune + OptunaSearch per arm with a search space), then evaluate phase
(every arm at its chosen configuration on the fresh evaluation seeds, paired by seed), all recorded in MLflow.

Where things live (``runs`` = the runs folder): ``runs/studies/<name>/state.json`` (what is needed to resume),
``runs/ray/<name>-<phase>[-<arm>]`` (Tune experiments and trial checkpoints), ``runs/mlflow.db`` and
``runs/artifacts`` (the default MLflow store). A study interrupted at any point is continued by
``resume_study``: finished phases are skipped, a Tune experiment that exists is restored (finished trials are
not re-run, unfinished ones continue from their checkpoints).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfli_core import record
from sfli_core.config import ConfigError

from .environment import loopback_only, quiet
from .study import Cell, Study, extend_python_path, load_study
from .tracking import Tracker, runs_dir, tracking_uri


@dataclass
class StudyState:
    name: str
    study: dict[str, Any]
    tracking_uri: str
    storage: str
    address: str | None
    experiment_id: str
    git_revision: str = "unknown"
    parents: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    status: str = "running"

    @staticmethod
    def path(runs: Path, name: str) -> Path:
        return runs / "studies" / name / "state.json"

    def save(self, runs: Path) -> None:
        path = self.path(runs, self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, runs: Path, name: str) -> StudyState:
        path = cls.path(runs, name)
        if not path.exists():
            known = sorted(p.name for p in (runs / "studies").glob("*")) if (runs / "studies").exists() else []
            raise ConfigError(f"no study '{name}' in {runs}; known: {', '.join(known) or 'none'}")
        return cls(**json.loads(path.read_text()))


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def cluster_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS")


def connect_ray(address: str | None, num_cpus: int | None = None, py_modules: list[str] = ()) -> bool:
    """Connect to the cluster at ``address`` (or $RAY_ADDRESS), shipping ``py_modules`` (the user's modules)
    to its workers with Ray's runtime environment; else start a local instance on 127.0.0.1. Returns True when
    this call started Ray (and so should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    address = cluster_address(address)
    if address:
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"py_modules": list(py_modules)} if py_modules else None)
    else:
        loopback_only()
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def shipped_modules(study: Study) -> list[str]:
    """The files or package folders of the user modules the study names by import path that live in one of
    its ``python_path`` folders (installed packages are the cluster image's business)."""
    folders = [Path(f) for f in study.python_path]
    found = set()
    for path in study.import_paths():
        module = importlib.import_module(path.partition(":")[0].split(".")[0])
        location = Path(module.__path__[0] if hasattr(module, "__path__") else module.__file__).resolve()
        if any(location.is_relative_to(f) for f in folders):
            found.add(str(location))
    return sorted(found)


def start_study(path: str, smoke: bool = False, overrides: list[str] = (), address: str | None = None,
                uri: str | None = None, runs: str | None = None, num_cpus: int | None = None,
                storage: str | None = None) -> StudyState:
    """Validate the study file and run it from the beginning (a previous state of the same name is replaced
    only if that study had finished; an unfinished one must be resumed)."""
    quiet()
    study = load_study(path, smoke=smoke, overrides=overrides)
    folder = runs_dir(runs)
    state_file = StudyState.path(folder, study.name)
    if state_file.exists() and StudyState.load(folder, study.name).status != "finished":
        raise ConfigError(f"study '{study.name}' was interrupted; continue it with: sfli resume {study.name}")
    uri = tracking_uri(uri, folder)
    folder.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(uri)  # the store and experiment are created here, once, before any trial starts
    experiment_id = tracker.experiment(study.name, folder / "artifacts")
    state = StudyState(name=study.name, study=study.model_dump(mode="json"), tracking_uri=uri,
                       storage=storage or str(folder / "ray"), address=address, experiment_id=experiment_id,
                       git_revision=git_revision(),
                       chosen={cell.key: {} for cell in study.cells(searched=False)})
    state.save(folder)
    return _drive(state, folder, num_cpus)


def resume_study(name: str, runs: str | None = None, address: str | None = None,
                 num_cpus: int | None = None) -> StudyState:
    quiet()
    folder = runs_dir(runs)
    state = StudyState.load(folder, name)
    if address:
        state.address = address
    return _drive(state, folder, num_cpus)


def _drive(state: StudyState, folder: Path, num_cpus: int | None) -> StudyState:
    import ray

    from .phases import run_phase

    extend_python_path(state.study.get("python_path", []))  # the user's modules, before names are resolved
    study = Study.model_validate(state.study)
    # on a cluster the user's modules travel with the job (Ray's py_modules); locally they are on this disk
    shipped = shipped_modules(study) if cluster_address(state.address) else []
    started = connect_ray(state.address, num_cpus, shipped)
    t0 = time.time()
    try:
        tracker = Tracker(state.tracking_uri)
        for phase, cell in planned_phases(study):
            key = "evaluate" if phase == "evaluate" else f"search-{cell.key}"
            if key in state.done:
                continue
            state.parents.setdefault(phase, tracker.parent_run(state.experiment_id, study.name, phase))
            state.save(folder)
            best = run_phase(state, study, phase, cell, t0, [] if shipped else study.python_path)
            if phase == "search":
                state.chosen[cell.key] = best
                tracker.log_new_params(state.parents[phase], {f"best.{cell.key}.{k}": v for k, v in best.items()})
            state.done.append(key)
            state.save(folder)
        for parent in state.parents.values():
            tracker.finish(parent, record.Status.FINISHED)
        state.status = "finished"
        state.save(folder)
    finally:
        if started:
            ray.shutdown()
    print(f"\nstudy '{study.name}' finished in {time.time() - t0:.0f} s. Runs: MLflow experiment '{study.name}' "
          f"at {state.tracking_uri}\n  open them with: sfli ui" + (f" --runs-dir {folder}" if folder != runs_dir()
                                                                    else ""), flush=True)
    return state


def planned_phases(study: Study) -> list[tuple[str, Cell | None]]:
    """(phase, cell): one search per searched cell (arm × grid point), then one evaluation of every cell."""
    return [("search", cell) for cell in study.cells(searched=True)] + [("evaluate", None)]


def study_status(name: str, runs: str | None = None) -> str:
    """Phases done, and the child runs per phase and sfli status, read from MLflow."""
    folder = runs_dir(runs)
    state = StudyState.load(folder, name)
    extend_python_path(state.study.get("python_path", []))
    study = Study.model_validate(state.study)
    tracker = Tracker(state.tracking_uri)
    runs_found = tracker.client.search_runs(
        [state.experiment_id], filter_string=f"tags.{record.ROLE} = '{record.ROLE_TRIAL}'", max_results=10000)
    lines = [f"study {name}: {state.status}; phases done: {', '.join(state.done) or 'none'}",
             f"tracking: {state.tracking_uri} (experiment {state.experiment_id})"]
    for phase, cell in planned_phases(study):
        mine = [r for r in runs_found if r.data.tags.get("phase") == phase
                and (cell is None or (r.data.tags.get("arm") == cell.arm and r.data.tags.get("variant") == cell.vid))]
        counts = Counter(r.data.tags.get(record.STATUS, "?") for r in mine)
        label = f"{phase} {cell.key}" if cell else phase
        expected = study.search.trials if cell else study.expected_trials("evaluate")
        lines.append(f"  {label}: {len(mine)}/{expected} runs " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for arm, knobs in state.chosen.items():
        lines.append(f"  chosen {arm}: {knobs or '(fixed)'}")
    return "\n".join(lines)
