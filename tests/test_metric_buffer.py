"""The background channel of the trials' logging steps (pipelines.metric_buffer) on a real MLflow SQLite store:
steps queued within the linger go out as one call per run, a flush does not wait for the linger, and every
metric arrives once with its own step."""

from __future__ import annotations

import time

from mlflow.entities import Metric

from pipelines.metric_buffer import MetricBuffer
from pipelines.tracking import Tracker
from tests.pipeline_helpers import wait_for


def batch(step: int, value: float) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric("train/loss", value, now, step), Metric("eval/rel_l2", value / 10, now, step)]


def test_steps_within_the_linger_go_out_together_and_a_flush_does_not_wait(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment("buffer", tmp_path / "artifacts")
    runs = [tracker.client.create_run(experiment).info.run_id for _ in range(2)]
    buffer = MetricBuffer(tracker.client, linger=30.0)
    buffer.put(runs[0], batch(0, 1.0))  # a run's first step goes out at once
    wait_for(lambda: buffer.delivered_calls == 1, timeout=30, every=0.01, what="the first step delivered")
    for step in range(1, 11):  # a pack's two members, ten logging steps each
        for i, run in enumerate(runs):
            buffer.put(run, batch(step, 1.0 / (step + i)))
    time.sleep(0.5)
    assert len(buffer.pending()) == 20 and buffer.delivered_calls == 1  # lingering, not lost
    t0 = time.monotonic()
    buffer.flush()
    assert time.monotonic() - t0 < 10  # the flush did not wait out the 30 s linger
    assert buffer.pending() == [] and buffer.delivered_calls == 3  # one call per run for the twenty steps
    for i, run in enumerate(runs):
        history = sorted((m.step, m.value) for m in tracker.client.get_metric_history(run, "eval/rel_l2"))
        expected = [(step, 1.0 / (step + i) / 10) for step in range(1, 11)]
        assert history == ([(0, 0.1)] if i == 0 else []) + expected
