"""MLflow bookkeeping: one experiment per study, one parent run per phase, exactly one child run per run of a
trial (one for a search trial, one per member of a packed evaluate trial).

Runs are found by their tags before any is created, so a retried or resumed trial reopens its own run
(the trial id is stable across retries and ``Tuner.restore``). Metrics of one logging step are one batch, and
a background thread (:mod:`pipelines.metric_buffer`) sends a run's batches of the last second in one
``log_batch`` call: training never waits for the store. Every other call is retried with back-off while the
store is unreachable or locked (SQLite answers "database is locked" under concurrent writers), up to the
tracking patience.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from sfli_core import record
from sfli_core.config import ConfigError
from sfli_core.record import OUTCOMES, RESUMED_FROM, TRIAL_STARTS, Status, TrialIdentity

from .metric_buffer import (
    PATIENCE_ENV,
    Batch,
    MetricBuffer,
    TrackingUnavailable,
    cause,
    injected_outage,
    no_room,
    patience_s,
    transient,
)

DEFAULT_RUNS_DIR = "sfli_runs"
MAX_PARAM = 6000
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3's experiment kind for model training


def runs_dir(value: str | None = None) -> Path:
    """``--runs-dir``, else ``$SFLI_RUNS_DIR``, else ./sfli_runs (project-local). A path that is a file is
    refused."""
    folder = Path(value or os.environ.get("SFLI_RUNS_DIR", DEFAULT_RUNS_DIR)).resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--runs-dir {folder}: is a file; expected a runs folder (or a path to create one at)")
    return folder


def store_label(uri: str | None, runs: str | None) -> str:
    """The store as the user named it (for generated pages, which name no folder of this machine the user did
    not type): ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI`` as given, else — or when ``uri`` is the runs
    folder's own embedded store, as a study's state holds it — the runs folder as given."""
    given = uri or os.environ.get("MLFLOW_TRACKING_URI")
    folder = runs or os.environ.get("SFLI_RUNS_DIR", DEFAULT_RUNS_DIR)
    if given and given != f"sqlite:///{runs_dir(folder) / 'mlflow.db'}":
        return given
    return (Path(folder) / "mlflow.db").as_posix()


def tracking_uri(value: str | None, runs: Path) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else an embedded SQLite store in the runs folder."""
    return value or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of an embedded SQLite store (None for any other store)."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


SQLITE_HEADER = b"SQLite format 3\x00"


def check_store(uri: str) -> None:
    """An existing embedded store must be there and be an MLflow store: opening a missing or empty SQLite
    file would silently create an empty store (and report no runs), a damaged one fails deep inside
    SQLAlchemy. Read-only commands call this first, so they never create a store. A store moved or copied
    with its runs folder is re-pointed at its own artifacts (:func:`relocate`)."""
    db = sqlite_file(uri)
    if db is None:
        return
    if not db.exists():
        raise ConfigError(f"no tracking store at {db}: the file is missing (no study has run in {db.parent}, or "
                          "the file was moved or deleted); check --runs-dir, or run a study first")
    with open(db, "rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        what = "is empty" if not header else "is not an SQLite database"
        raise ConfigError(f"the tracking store {db} {what} (damaged?); restore it from a copy, or start the study "
                          "again in a new runs folder")
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
            tables = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
    except sqlite3.DatabaseError as err:
        raise ConfigError(f"the tracking store {db} cannot be read ({err}); restore it from a copy") from None
    if "experiments" not in tables:
        raise ConfigError(f"{db} is an SQLite database but not an MLflow tracking store")
    relocate(db)


# columns of MLflow's schema that hold absolute artifact locations
ARTIFACT_COLUMNS = {"experiments": "artifact_location", "runs": "artifact_uri", "logged_models": "artifact_location"}


def relocate(db: Path) -> int:
    """Re-point the artifact locations an embedded store keeps (absolute ``file://`` URIs under the runs folder
    it was created in) at the folder it is in now, after the folder was moved or copied: otherwise a moved
    study would read and write the artifacts of whatever lives at the old place. Returns the rows changed."""
    here = (db.parent / "artifacts").as_uri() + "/"
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        rows = con.execute("select name, artifact_location from experiments").fetchall()
        old = {loc.removesuffix(name) for name, loc in rows
               if loc and loc.startswith("file://") and loc.endswith(f"/artifacts/{name}")}
        changed = 0
        for prefix in old - {here}:
            for table, column in ARTIFACT_COLUMNS.items():
                if con.execute("select 1 from sqlite_master where type = 'table' and name = ?", (table,)).fetchone():
                    changed += con.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) where substr({column}, 1, ?) = ?",
                        (here, len(prefix) + 1, len(prefix), prefix)).rowcount
    return changed


@contextmanager
def store_lock(uri: str):
    """Serialise the creation of an embedded SQLite store: two processes creating one file at once collide in
    its schema migration. A file lock beside the database; nothing to do for a tracking server."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _retry(fn):
    """Retry a store call while its error is transient (unreachable, overloaded, locked: metric_buffer's
    ``transient``), with back-off, up to the tracking patience; other errors are raised at once."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        deadline, attempt = time.monotonic() + patience_s(), 0
        while True:
            try:
                injected_outage()
                return fn(*args, **kwargs)
            except Exception as err:
                if no_room(err):
                    store = sqlite_file(args[0].uri) or args[0].uri
                    raise TrackingUnavailable(f"the tracking store {store} cannot be written: {cause(err)}; "
                                              "free disk space there, then: sfli resume <study>") from err
                if not transient(err):
                    raise
                if time.monotonic() > deadline:
                    raise TrackingUnavailable(f"the tracking store has been unreachable for more than "
                                              f"{patience_s():.0f} s ({PATIENCE_ENV}): {err}") from err
                time.sleep(min(5.0, 0.05 * 2**attempt) * (1 + random.random()))
                attempt += 1

    return wrapper


def _params(values: dict[str, Any]) -> list[Param]:
    return [Param(k, record.encode(v)[:MAX_PARAM]) for k, v in sorted(values.items())]


class Tracker:
    def __init__(self, uri: str):
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.buffer: MetricBuffer | None = None  # started by the first log_step

    @_retry
    def experiment(self, study: str, artifact_root: Path | None = None, description: str = "") -> str:
        """Experiment id of the study, created on first use (artifacts beside an embedded store). Its
        description is the study's (shown on the experiment page) and its kind is model training, not GenAI;
        MLflow 3's UI still opens on its GenAI overview in a browser that never chose otherwise, hence the
        URLs of :func:`pipelines.ui.experiment_url`."""
        found = self.client.get_experiment_by_name(study)
        tags = {"mlflow.note.content": description.strip(), "mlflow.experimentKind": EXPERIMENT_KIND}
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = (artifact_root / study).as_uri() if artifact_root and self.uri.startswith("sqlite") else None
            experiment_id = self.client.create_experiment(study, artifact_location=location)
        for key, value in tags.items():
            self.client.set_experiment_tag(experiment_id, key, value)
        return experiment_id

    @_retry
    def find_run(self, experiment_id: str, tags: dict[str, str]) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([experiment_id], filter_string=query, max_results=2)
        return runs[0].info.run_id if runs else None

    @staticmethod
    def _parent_tags(study: str, phase: str, execution: int) -> dict[str, str]:
        return {record.STUDY: study, record.PHASE: phase, record.EXECUTION: str(execution),
                record.RUN_TYPE: record.RunType.PARENT}

    def find_parent(self, experiment_id: str, study: str, phase: str, execution: int) -> str | None:
        return self.find_run(experiment_id, self._parent_tags(study, phase, execution))

    @_retry
    def parent_run(self, experiment_id: str, study: str, phase: str, execution: int) -> str:
        """The phase's parent run of an execution, created on first use."""
        run_id = self.find_parent(experiment_id, study, phase, execution)
        if run_id is None:
            name = f"{study}-{phase}" + (f"-e{execution}" if execution > 1 else "")
            run = self.client.create_run(experiment_id, run_name=name,
                                         tags=self._parent_tags(study, phase, execution))
            run_id = run.info.run_id
        return run_id

    def trial_runs(self, experiment_id: str, study: str, execution: int, phase: str | None = None,
                   status: str | None = None) -> list:
        """The trial runs of one execution of a study (optionally of one phase, or with one sfli status)."""
        query = record.run_filter(record.RunType.TRIAL, phase, execution, study)
        query += f" and tags.{record.STATUS} = '{status}'" if status else ""
        return self.search_runs(experiment_id, query)

    @_retry
    def search_runs(self, experiment_id: str, query: str) -> list:
        """Every run of the experiment that matches the MLflow filter ``query``."""
        return self.client.search_runs([experiment_id], filter_string=query, max_results=50000)

    def close_open(self, experiment_id: str, study: str, execution: int, phase: str | None = None) -> int:
        """Close the runs of an execution (or of one phase) that nobody writes to any more and that are still
        open: after a completed phase, or once an interrupted driver has let its trials go. A trial closes a
        run in two writes (its sfli status, then MLflow's), and a trial stopped from outside (successive
        halving, a shutdown) may make neither or only the first. A run still ``running`` by its sfli status is
        closed as ``stopped`` (a resumed trial reopens it); one with its sfli status keeps it and gets MLflow's
        to match. Returns how many."""
        open_runs = [r for r in self.trial_runs(experiment_id, study, execution, phase) if r.info.status == "RUNNING"
                     or r.data.tags.get(record.STATUS, Status.RUNNING) == Status.RUNNING]
        for run in open_runs:
            status = Status(run.data.tags.get(record.STATUS, Status.RUNNING))
            complete = status in OUTCOMES and record.PREVIEWS not in run.data.tags
            self._close(run.info.run_id, Status.STOPPED if status == Status.RUNNING else status,
                        {record.PREVIEWS: record.PreviewState.PENDING} if complete else None)
        return len(open_runs)

    def discard_orphans(self, experiment_id: str, study: str, execution: int, phase: str, arm: str | None,
                        variant: str | None, keep: set[str]) -> int:
        """Delete (MLflow's soft delete, tagged why) the runs of a finished phase whose trial the restored Tune
        experiment no longer has: a trial started just before its driver was killed, never in Tune's saved
        state, is re-run under a new trial id. Returns how many."""
        orphans = [r for r in self.trial_runs(experiment_id, study, execution, phase)
                   if r.data.tags.get("trial_id") not in keep and (arm is None or (
                       r.data.tags.get("arm") == arm and r.data.tags.get("variant") == variant))]
        for run in orphans:
            self.set_tags(run.info.run_id, {"discarded": "its trial is not in the restored Tune experiment"})
            if run.info.status == "RUNNING":
                self.finish(run.info.run_id, Status.STOPPED)
            self.client.delete_run(run.info.run_id)
        return len(orphans)

    @_retry
    def child_run(self, experiment_id: str, parent_id: str, trial_name: str, identity: TrialIdentity,
                  params: dict[str, Any]) -> tuple[str, bool]:
        """(run id, created?) of the trial's run; params are logged at creation (and, on a later start, any
        the run lacks). A run found complete (finished / diverged) is returned untouched."""
        tags = identity.tags()  # a pack's runs share the trial id: its member (arm, grid point, seed) tells them apart
        member = ("trial_id", record.PHASE, record.STUDY, record.EXECUTION, "arm", "variant", "seed")
        run_id = self.find_run(experiment_id, {k: tags[k] for k in member})
        if run_id is not None:
            if self.client.get_run(run_id).data.tags.get(record.STATUS) not in OUTCOMES:
                self.client.set_tag(run_id, record.STATUS, Status.RUNNING)
                # the store may have gone away between the run's creation and its parameters
                self.log_new_params(run_id, params)
            return run_id, False
        run = self.client.create_run(experiment_id, run_name=trial_name,
                                     tags={**identity.tags(), record.PARENT_RUN: parent_id,
                                           record.RUN_TYPE: record.RunType.TRIAL, record.STATUS: Status.RUNNING})
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id, True

    @staticmethod
    def _metrics(values: dict[str, float], step: int) -> list[Metric]:
        """One timestamp for the batch (re-sending it is then idempotent). Non-finite values are kept (a
        diverged loss is data)."""
        now = int(time.time() * 1000)
        return [Metric(k, float(v), now, int(step)) for k, v in values.items()
                if isinstance(v, (int, float)) and k != "step"]

    @_retry
    def log_metrics(self, run_id: str, values: dict[str, float], step: int) -> None:
        """One call for a whole logging step, delivered before this returns."""
        self.client.log_batch(run_id, metrics=self._metrics(values, step))

    def log_step(self, run_id: str, values: dict[str, float], step: int) -> None:
        """A training logging step: queued and delivered in the background (:meth:`flush` waits for it)."""
        self._queue(run_id, self._metrics(values, step))

    def _queue(self, run_id: str, metrics: list[Metric]) -> None:
        if self.buffer is None:
            self.buffer = MetricBuffer(self.client)
        self.buffer.put(run_id, metrics)

    def pending(self) -> list[Batch]:
        """Queued logging steps not delivered yet (a trial's checkpoint keeps them)."""
        return self.buffer.pending() if self.buffer is not None else []

    def resend(self, batches: list[Batch]) -> None:
        """Queue again the batches a checkpoint kept (those that did arrive are recorded once regardless)."""
        for run_id, metrics in batches:
            self._queue(run_id, metrics)

    def flush(self) -> None:
        """Wait until every queued logging step is delivered (TrackingUnavailable past the patience)."""
        if self.buffer is not None:
            self.buffer.flush()

    @_retry
    def last_step(self, run_id: str, key: str) -> int:
        history = self.client.get_metric_history(run_id, key)
        return max((m.step for m in history), default=-1)

    @_retry
    def completed(self, run_id: str) -> dict[str, Any] | None:
        """The run's sfli status and final metrics if it already completed, else None."""
        run = self.client.get_run(run_id)
        status = run.data.tags.get(record.STATUS)
        return {record.STATUS: status, **run.data.metrics} if status in OUTCOMES else None

    @_retry
    def count_starts(self, run_id: str) -> int:
        return len(self.client.get_metric_history(run_id, TRIAL_STARTS))

    def mark_start(self, run_id: str, resumed_from: int) -> None:
        """Every start of a trial (first, retry, resume) leaves one point, with the training step it starts
        from (0, or the step of the checkpoint it continues): tests and people can see what re-ran."""
        n = self.count_starts(run_id)
        self.log_metrics(run_id, {TRIAL_STARTS: n + 1, RESUMED_FROM: resumed_from}, step=n)

    @_retry
    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    @_retry
    def log_artifacts(self, run_id: str, folder: Path) -> None:
        """Every file of ``folder``, at the top of the run's artifacts (one call for all of them)."""
        self.client.log_artifacts(run_id, str(folder))

    @_retry
    def download_artifacts(self, run_id: str, folder: Path) -> Path:
        """Every artifact at the top of the run's artifacts, into ``folder``."""
        return Path(self.client.download_artifacts(run_id, "", str(folder)))

    @_retry
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    @_retry
    def append_tag(self, run_id: str, key: str, value: str) -> None:
        """Tag ``key`` = ``value``; where the run's tag holds other values, ``value`` follows them unless it is
        already the latest ('2', then '2, then 1')."""
        held = self.client.get_run(run_id).data.tags.get(key)
        if held is None or held.rsplit(record.THEN, 1)[-1] != value:
            self.set_tags(run_id, {key: value if held is None else f"{held}{record.THEN}{value}"})

    def finish(self, run_id: str, status: Status, tags: dict[str, str] | None = None) -> None:
        """The sfli status is a tag (written with ``tags``); MLflow's own status is FAILED for a failed run, else
        FINISHED. A run is closed only once its logging steps are delivered; a failed or stopped one is closed
        regardless (its undelivered steps stay in the trial's checkpoint)."""
        if status not in (Status.FAILED, Status.STOPPED):
            self.flush()
        self._close(run_id, status, tags)

    @_retry
    def _close(self, run_id: str, status: Status, tags: dict[str, str] | None = None) -> None:
        self.set_tags(run_id, {record.STATUS: status, **(tags or {})})
        self.client.set_terminated(run_id, "FAILED" if status == Status.FAILED else "FINISHED")

    @_retry
    def log_new_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log the params the run does not have yet (MLflow params are write-once)."""
        have = self.client.get_run(run_id).data.params
        new = {k: v for k, v in params.items() if k not in have}
        if new:
            self.client.log_batch(run_id, params=_params(new))
