"""A store that cannot write is not an outage: SQLite's real "database or disk is full" ends the call at once,
naming the store, instead of being retried for the whole tracking patience."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.metric_buffer import PATIENCE_ENV, TrackingUnavailable, no_room, transient
from pipelines.tracking import Tracker


@pytest.fixture
def full_store(tmp_path, monkeypatch):
    """A real MLflow SQLite store with one run, then capped at its current size: SQLite itself answers every
    write that needs a new page with "database or disk is full", as on a full disk. (A fresh connection per
    session, MLflow's NullPool setting, so that every connection gets the cap; SQLite's max_page_count.)"""
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    monkeypatch.setenv(PATIENCE_ENV, "600")
    db = tmp_path / "mlflow.db"
    cap: list[int] = []

    def limit(connection, record) -> None:
        if cap:
            connection.execute(f"PRAGMA max_page_count = {cap[0]}")

    event.listen(Engine, "connect", limit)
    try:
        tracker = Tracker(f"sqlite:///{db}")
        run = tracker.client.create_run(tracker.experiment("full", tmp_path / "artifacts")).info.run_id
        with sqlite3.connect(db) as con:
            cap.append(con.execute("PRAGMA page_count").fetchone()[0])
        yield tracker, run, db
    finally:
        event.remove(Engine, "connect", limit)


def test_a_full_store_fails_at_once_naming_it(full_store):
    tracker, run, db = full_store
    values = {f"metric/{i}": float(i) for i in range(2000)}  # far more than the free room of the last page
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable) as caught:
        tracker.log_metrics(run, values, step=0)
    assert time.monotonic() - t0 < 10
    assert f"the tracking store {db} cannot be written" in str(caught.value)
    assert "database or disk is full" in str(caught.value) and "sfli resume" in str(caught.value)
    assert no_room(caught.value.__cause__) and not transient(caught.value.__cause__)


def test_the_background_channel_reports_a_full_store(full_store):
    tracker, run, _ = full_store
    tracker.log_step(run, {f"metric/{i}": float(i) for i in range(2000)}, step=0)
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="refused a metric batch.*database or disk is full"):
        tracker.flush()
    assert time.monotonic() - t0 < 10
