"""Running a study: search phase (Ray Tune + OptunaSearch per searched cell), then evaluate phase (every cell
at its chosen configuration on the fresh evaluation seeds, paired by seed), all recorded in MLflow.

Where things live (``runs`` = the runs folder): ``runs/studies/<name>/state.json`` (what is needed to resume,
:mod:`pipelines.state`), ``runs/ray/<name>-e<execution>-<phase>[-<cell>]`` (Tune experiments and trial
checkpoints), ``runs/mlflow.db`` and ``runs/artifacts`` (the default MLflow store).

Life cycle: nothing is written before the study file, the cluster and the tracking server check out. A phase
that ends with fewer trials done than planned (Ctrl-C, SIGTERM — turned into Tune's graceful stop — or
failed trials) leaves the study ``interrupted`` (or ``failed``), its runs closed as ``stopped``, and exits
non-zero; ``resume_study`` continues it (finished phases skipped, Tune experiments restored: finished trials
are not re-run, unfinished ones continue from their checkpoints, runs of trials Tune no longer knows are
discarded). A finished study started again is a new execution.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from sfli_core import record
from sfli_core.config import ConfigError
from sfli_core.record import Phase

from .audit import audit_storage
from .environment import quiet
from .metric_buffer import TrackingUnavailable
from .packing import evaluation_packs, parallel_trials, search_pack
from .previews import PreviewPainter
from .ray_session import cluster_address, connect_ray, disconnect, remove_leftovers, shipped_modules
from .reach import check_cluster, check_local_resources, check_tracking
from .state import StudyState, StudyStatus, driver_alive, driver_lock, fingerprint
from .stop import StopRequest
from .store_load import load_warning
from .study import Cell, Study, extend_python_path, load_study
from .terminal import say
from .tracking import Tracker, check_store, runs_dir, sqlite_file, store_lock, tracking_uri
from .tuning import edge_flags


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def start_study(path: str, smoke: bool = False, overrides: list[str] = (), address: str | None = None,
                uri: str | None = None, runs: str | None = None, num_cpus: int | None = None,
                storage: str | None = None) -> StudyState:
    """Validate the study file, check what it will use, and run it: a new study, or a new execution of a
    finished one. An unfinished study must be resumed (refused here, saying so)."""
    quiet()
    study = load_study(path, smoke=smoke, overrides=overrides)
    folder = runs_dir(runs)
    uri = tracking_uri(uri, folder)
    if sqlite_file(uri) is not None and sqlite_file(uri).exists():
        check_store(uri)  # an existing store must be sound (and, if its folder moved, re-pointed) before use
    if storage and "://" not in storage:
        storage = str(Path(storage).resolve())
    previous = StudyState.load(folder, study.name) if StudyState.path(folder, study.name).exists() else None
    if previous is not None and previous.status != StudyStatus.FINISHED:
        changed = previous.fingerprint != fingerprint(study.model_dump(mode="json"))
        raise ConfigError(
            f"study '{study.name}' has an unfinished execution ({_status_of(previous, folder)})"
            + (" of a different definition" if changed else "") + f"; continue it with: sfli resume {study.name}"
            + (", or give the changed study another name" if changed else ""))
    check_cluster(cluster_address(address), uri)
    check_local_resources(study, address, num_cpus)
    check_tracking(uri)
    with driver_lock(folder, study.name):
        # creating the store (its schema migrations take seconds) overlaps Ray's start in _drive
        experiment = ThreadPoolExecutor(1).submit(_experiment, uri, folder, study.name, study.description)
        state = StudyState(name=study.name, study=study.model_dump(mode="json"), tracking_uri=uri,
                           storage=storage or str(folder / "ray"), address=address, experiment_id="",
                           execution=previous.execution + 1 if previous else 1, git_revision=git_revision(),
                           chosen={cell.key: {} for cell in study.cells(searched=False)})
        return _drive(state, folder, num_cpus, experiment)  # saves the state once the store exists


def _experiment(uri: str, folder: Path, name: str, description: str) -> str:
    with store_lock(uri):  # the store and experiment are created once, before any trial starts
        return Tracker(uri).experiment(name, folder / "artifacts", description)


def resume_study(name: str, runs: str | None = None, address: str | None = None,
                 num_cpus: int | None = None) -> StudyState:
    quiet()
    folder = runs_dir(runs)
    state = StudyState.load(folder, name)
    if state.status == StudyStatus.FINISHED:
        print(f"study '{name}' (execution {state.execution}) has already finished; nothing to resume"
              + ("" if state.report else " but its report, which was never recorded"), flush=True)
        return state
    if address:
        state.address = address
    check_store(state.tracking_uri)
    check_cluster(cluster_address(state.address), state.tracking_uri)
    extend_python_path(state.study.get("python_path", []))  # the user's modules, before names are resolved
    check_local_resources(Study.model_validate(state.study), state.address, num_cpus)
    check_tracking(state.tracking_uri)
    with driver_lock(folder, name):
        if state.ray_session:  # the local Ray of a driver that was killed: its helpers outlive it
            remove_leftovers(state.ray_session)
            state.ray_session = None
        return _drive(state, folder, num_cpus)


def _interrupt(signum, frame) -> None:
    """SIGINT or SIGTERM: stop the study gracefully (see :class:`pipelines.stop.StopRequest`)."""
    StopRequest.requested = True
    if StopRequest.in_fit:
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop; its result is then checked by the driver
    else:
        raise KeyboardInterrupt


def _drive(state: StudyState, folder: Path, num_cpus: int | None, experiment: Future | None = None) -> StudyState:
    """``experiment``: the study's experiment being created (a new execution); else ``state`` has it, or, when
    its first driver died before it existed, it is created here."""
    from .phases import PhaseIncomplete

    extend_python_path(state.study.get("python_path", []))  # the user's modules, before names are resolved
    study = Study.model_validate(state.study)
    # on a cluster the user's modules travel with the job (Ray's py_modules); locally they are on this disk
    shipped = shipped_modules(study) if cluster_address(state.address) else []
    state.status = StudyStatus.RUNNING
    StopRequest.requested = False
    handlers = _take_signals()
    session, t0, stop = None, time.time(), None
    print(f"study '{study.name}' execution {state.execution}", flush=True)
    try:
        session = connect_ray(state.address, num_cpus, shipped)
        if handlers:  # ray.init installs its own SIGTERM handler, which ends the process
            signal.signal(signal.SIGTERM, _interrupt)
        state.ray_session = session.session_dir
        warning = load_warning(state.tracking_uri, parallel_trials(study))
        if warning:
            say(warning)
        if experiment is not None or not state.experiment_id:
            state.experiment_id = (experiment.result() if experiment is not None else
                                   _experiment(state.tracking_uri, folder, study.name, study.description))
        with PreviewPainter(state.tracking_uri, state.experiment_id, study.name, state.execution):
            _run_phases(state, study, folder, Tracker(state.tracking_uri), t0, [] if shipped else study.python_path)
        state.status = StudyStatus.FINISHED
    except (KeyboardInterrupt, PhaseIncomplete) as err:
        stop = err
        failed = isinstance(err, PhaseIncomplete) and err.failed
        state.status = StudyStatus.FAILED if failed else StudyStatus.INTERRUPTED
    except Exception:
        state.status = StudyStatus.FAILED
        raise
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        _close(state, study, folder, experiment, session)
    _farewell(state, study, folder, stop, t0)
    return state


def _take_signals() -> dict:
    """The driver's own SIGINT/SIGTERM handling (a graceful stop); returns the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be handled there
        return {}
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    # SIGUSR1 ends the process by default: harmless until Tune installs its handler at the start of a run
    handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    return handlers


def _run_phases(state: StudyState, study: Study, folder: Path, tracker: Tracker, t0: float,
                python_path: list[str]) -> None:
    """Every phase not done yet, in order (searches, then the evaluation); the parent runs closed at the end.
    The tracker is made by the caller only once the experiment exists (a client may create a missing store)."""
    from .phases import run_phase

    state.save(folder)
    for phase, cell in planned_phases(study):
        key = Phase.EVALUATE if phase == Phase.EVALUATE else f"search-{cell.key}"
        if key in state.done:
            continue
        state.parents.setdefault(phase, tracker.parent_run(state.experiment_id, study.name, phase, state.execution))
        tracker.append_tag(state.parents[phase], record.parallel_tag(cell.key if cell else None),
                           str(parallel_trials(study)))
        if key not in state.packing:  # decided once: a resumed phase keeps its trials
            state.packing[key] = (evaluation_packs(study, state.chosen) if phase == Phase.EVALUATE
                                  else search_pack(study, cell))
        state.save(folder)
        if phase == Phase.EVALUATE:  # the results' run says which knobs every cell was evaluated at
            tracker.log_new_params(state.parents[phase], {f"chosen.{key}.{k}": v for key, knobs
                                                          in state.chosen.items() for k, v in knobs.items()})
        best = run_phase(state, study, phase, cell, t0, python_path, state.packing[key], audit_storage(folder))
        if phase == Phase.SEARCH:
            _record_choice(state, study, cell, best, tracker)
        state.done.append(key)
        state.save(folder)
    for parent in state.parents.values():
        tracker.finish(parent, record.Status.FINISHED)


def _record_choice(state: StudyState, study: Study, cell: Cell, best: dict, tracker: Tracker) -> None:
    """A search's chosen knobs: kept for the evaluation, recorded on the search parent run with any edge flags,
    and printed."""
    parent = state.parents[Phase.SEARCH]
    state.chosen[cell.key] = best
    tracker.log_new_params(parent, {f"best.{cell.key}.{k}": v for k, v in best.items()})
    flags = edge_flags(study, cell, best)
    tracker.set_tags(parent, {record.edge_tag(cell.key, k): v for k, v in flags.items()})
    say(f"[search {cell.slug}] chosen: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in best.items())
        + "".join(f"\n  warning: {text}" for text in flags.values()))


def _close(state: StudyState, study: Study, folder: Path, experiment: Future | None, session) -> None:
    """Whatever the end: the experiment's creation awaited, Ray left, open runs closed, the state saved."""
    if experiment is not None:
        wait([experiment])  # never leave the store half-created behind an early failure
        if not state.experiment_id and experiment.exception() is None:
            state.experiment_id = experiment.result()
    if session is not None:  # first: a trial still starting could otherwise open a run after the closing
        disconnect(session)
    if state.status != StudyStatus.FINISHED and state.experiment_id:  # nobody writes to them now: none stays "running"
        try:
            Tracker(state.tracking_uri).close_open(state.experiment_id, study.name, state.execution)
        except TrackingUnavailable as err:  # resume reopens them; the state below must still be saved
            print(f"could not close the study's open runs: {err}", flush=True)
    state.ray_session = None
    state.save(folder)


def _farewell(state: StudyState, study: Study, folder: Path, stop: BaseException | None, t0: float) -> None:
    where = f"MLflow experiment '{study.name}' at {state.tracking_uri}"
    if stop is not None:
        reason = str(stop) or "stopped by a signal"
        say(f"\nstudy '{study.name}' {state.status} after {time.time() - t0:.0f} s ({reason}).\n  runs so far: {where}")
        next_command = f"  continue it with: sfli resume {study.name}"
    else:
        say(f"\nstudy '{study.name}' finished in {time.time() - t0:.0f} s (execution {state.execution}).\n"
            f"  runs: {where}")
        next_command = "  open them with: sfli ui"
    print(next_command + _runs_arg(folder), flush=True)  # unwrapped: a command to copy whole


def _runs_arg(folder: Path) -> str:
    return f" --runs-dir {folder}" if folder != runs_dir() else ""


def planned_phases(study: Study) -> list[tuple[str, Cell | None]]:
    """(phase, cell): one search per searched cell (arm × grid point), then one evaluation of every cell."""
    return [(Phase.SEARCH, cell) for cell in study.cells(searched=True)] + [(Phase.EVALUATE, None)]


def _status_of(state: StudyState, folder: Path) -> str:
    """The status a person should see: a 'running' study whose driver is gone was interrupted."""
    if state.status == StudyStatus.RUNNING and not driver_alive(folder, state.name):
        return f"{StudyStatus.INTERRUPTED}: its driver is gone"
    return state.status


def study_status(name: str, runs: str | None = None) -> str:
    """Phases done, and the child runs per phase and sfli status of the current execution, read from MLflow."""
    folder = runs_dir(runs)
    state = StudyState.load(folder, name)
    check_store(state.tracking_uri)
    extend_python_path(state.study.get("python_path", []))
    study = Study.model_validate(state.study)
    runs_found = (Tracker(state.tracking_uri).trial_runs(state.experiment_id, study.name, state.execution)
                  if state.experiment_id else [])  # a driver that died before its experiment existed
    status = _status_of(state, folder)
    lines = [f"study {name}: {status} (execution {state.execution}); phases done: {', '.join(state.done) or 'none'}",
             f"tracking: {state.tracking_uri} (experiment {state.experiment_id})"]
    for phase, cell in planned_phases(study):
        mine = [r for r in runs_found if r.data.tags.get(record.PHASE) == phase and (
            cell is None or (r.data.tags.get("arm"), r.data.tags.get("variant")) == (cell.arm, cell.variant))]
        counts = Counter(r.data.tags.get(record.STATUS, "?") for r in mine)
        label = f"{phase} {cell.key}" if cell else phase
        expected = study.search.trials if cell else study.expected_trials(Phase.EVALUATE)
        lines.append(f"  {label}: {len(mine)}/{expected} runs " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for arm, knobs in state.chosen.items():
        lines.append(f"  chosen {arm}: {knobs or '(fixed)'}")
    if status != StudyStatus.FINISHED and not driver_alive(folder, name):
        lines.append(f"continue it with: sfli resume {name}" + _runs_arg(folder))
    return "\n".join(lines)
