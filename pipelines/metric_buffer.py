"""Metric batches delivered to the tracking store by a background thread, so that training never waits for it.

A trial's logging steps are queued (each batch's timestamps fixed when it is queued) and one thread delivers
them in order, one call per run for the steps queued since the last delivery: a step waits up to
:data:`LINGER_S` to go out with the next ones (:meth:`MetricBuffer.flush` does not wait), so a run's curves
reach the store about once a second whatever its logging cadence, and a trial spends one store call (SQLite
under a lock, or an HTTP request) per run and second instead of one per logging step.

When the store is unreachable — a tracking server restarting, an SQLite file locked — the thread keeps the
batches and retries with back-off; training goes on. Re-sending a batch whose first
delivery did reach the store is harmless: MLflow stores a metric once per (key, timestamp, step, value), so
the same batch sent twice is recorded once. A trial's checkpoint carries the batches not yet delivered
(:meth:`MetricBuffer.pending`), so that a trial killed during an outage re-sends them when it continues.

The store may stay away up to :func:`patience_s` seconds (``SFLI_TRACKING_PATIENCE_S``, default 600): past
that, :meth:`MetricBuffer.flush` — called before a run is closed — raises :class:`TrackingUnavailable`, the
trial fails clearly, and ``sfli resume`` completes the study once the store is back.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque

import requests
from mlflow.entities import Metric

from .errors import StudyError

PATIENCE_ENV = "SFLI_TRACKING_PATIENCE_S"
DEFAULT_PATIENCE_S = 600.0
OUTAGE_ENV = "SFLI_FAULT_TRACKING_OUTAGE"  # fault injection: see injected_outage
TRANSIENT_CODES = ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
LINGER_S = 1.0  # seconds a queued logging step may wait for the next ones (one store call for all of them)

Batch = tuple[str, list[Metric]]


def patience_s() -> float:
    return float(os.environ.get(PATIENCE_ENV, DEFAULT_PATIENCE_S))


def injected_outage() -> None:
    """Fault injection (tests, operators' drills): while the file named by ``$SFLI_FAULT_TRACKING_OUTAGE``
    exists, every call this process and its trials make to the tracking store fails as a call to an unreachable
    store does (ConnectionError), so that an outage of any length starts and ends when the file is created and
    removed, with the store itself untouched. Unset (the default), nothing happens."""
    path = os.environ.get(OUTAGE_ENV)
    if path and os.path.exists(path):
        raise ConnectionError(f"tracking store unreachable (outage injected: {path} exists)")


# the store's disk is full or read-only: waiting does not help, and MLflow reports it as an internal error
NO_ROOM = ("disk is full", "no space left", "readonly database", "read-only file system", "disk quota")


def no_room(err: Exception) -> bool:
    """Whether the store cannot write because its disk is full or read-only (SQLite's "database or disk is
    full", ENOSPC, a read-only file system)."""
    return any(marker in str(err).lower() for marker in NO_ROOM)


def cause(err: Exception) -> str:
    """The line of an error that says what happened (SQLAlchemy wraps it in lines of SQL and advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    return next((line for line in lines if any(m in line.lower() for m in NO_ROOM)), lines[0])[:300]


def transient(err: Exception) -> bool:
    """Whether an error of the store may go away by itself (unreachable, overloaded, locked), as opposed to a
    request the store refuses (an invalid value, a deleted run) or a store without room to write."""
    if no_room(err):
        return False
    text = str(err).lower()
    # SQLite's lock; the server's database connection pool exhausted (MLflow answers it with BAD_REQUEST)
    if "locked" in text or "queuepool limit" in text:
        return True
    if isinstance(err, (ConnectionError, TimeoutError, requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout)):
        return True
    return getattr(err, "error_code", None) in TRANSIENT_CODES


class TrackingUnavailable(StudyError):
    """The tracking store stayed unreachable longer than the patience, or refused a batch."""


class MetricBuffer:
    def __init__(self, client, patience: float | None = None, linger: float = LINGER_S):
        self.client = client
        self.patience = patience_s() if patience is None else patience
        self.linger = linger
        self.queue: deque[Batch] = deque()
        self.cond = threading.Condition()
        self.failing_since: float | None = None
        self.refused: Exception | None = None
        self.last_error: Exception | None = None
        self.last_delivery = -math.inf  # the first step goes out at once
        self.flushing = 0
        self.delivered_calls = 0
        self.thread = threading.Thread(target=self._deliver, name="sfli-metrics", daemon=True)
        self.thread.start()

    def put(self, run_id: str, metrics: list[Metric]) -> None:
        if metrics:
            with self.cond:
                self.queue.append((run_id, metrics))
                self.cond.notify_all()

    def pending(self) -> list[Batch]:
        """The batches not delivered yet (for a checkpoint)."""
        with self.cond:
            return list(self.queue)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every batch is delivered; raise TrackingUnavailable when the store refused one or was
        unreachable for longer than the patience (or ``timeout`` passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            self.flushing += 1
            self.cond.notify_all()
            try:
                while self.queue:
                    self._raise_if_hopeless()
                    if deadline is not None and time.monotonic() > deadline:
                        raise TrackingUnavailable(f"{len(self.queue)} metric batches not delivered in "
                                                  f"{timeout:.0f} s")
                    self.cond.wait(0.2)
                self._raise_if_hopeless()
            finally:
                self.flushing -= 1

    def _raise_if_hopeless(self) -> None:
        if self.refused is not None:
            raise TrackingUnavailable(f"the tracking store refused a metric batch: {cause(self.refused)}")
        if self.failing_since is not None and time.monotonic() - self.failing_since > self.patience:
            raise TrackingUnavailable(
                f"the tracking store has been unreachable for more than {self.patience:.0f} s "
                f"({PATIENCE_ENV}); {len(self.queue)} metric batches kept in the trial's checkpoint; "
                f"last error: {self.last_error}")

    def _next_calls(self) -> list[tuple[str, list[Batch]]]:
        """Once batches are queued and the linger since the last delivery has passed (or a flush waits): the
        queued batches grouped by run, in the order of each run's first batch."""
        with self.cond:
            while True:
                if self.queue and self.refused is None:
                    wait = self.last_delivery + self.linger - time.monotonic()
                    if wait <= 0 or self.flushing:
                        break
                    self.cond.wait(wait)
                else:
                    self.cond.wait()
            calls: dict[str, list[Batch]] = {}
            for batch in self.queue:
                calls.setdefault(batch[0], []).append(batch)
            return list(calls.items())

    def _deliver(self) -> None:
        delay = 0.1
        while True:
            for run_id, batches in self._next_calls():
                try:
                    injected_outage()
                    self.client.log_batch(run_id, metrics=[m for _, metrics in batches for m in metrics])
                except Exception as err:  # noqa: BLE001 - every failure is either retried or reported by flush
                    with self.cond:
                        self.last_error = err
                        if not transient(err):
                            self.refused = err
                        elif self.failing_since is None:
                            self.failing_since = time.monotonic()
                        self.cond.notify_all()
                    time.sleep(delay)
                    delay = min(2 * delay, 5.0)
                    break
                delay = 0.1
                delivered = {id(batch) for batch in batches}
                with self.cond:
                    self.queue = deque(batch for batch in self.queue if id(batch) not in delivered)
                    self.failing_since = None
                    self.delivered_calls += 1
                    self.last_delivery = time.monotonic()
                    self.cond.notify_all()
