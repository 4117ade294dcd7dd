"""A phase's parent run records how many trials ran at once (a search's outcome depends on it: docs/science.md §7),
on a real MLflow SQLite store: once per count, in the order the phase ran with them."""

from __future__ import annotations

from pipelines.tracking import Tracker
from sfli_core import record


def test_the_trials_run_at_once_are_recorded_in_order_of_the_phases_starts(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment("parallel", tmp_path / "artifacts")
    parent = tracker.parent_run(experiment, "parallel", "search", 1)
    seen = []
    for count in ("2", "2", "1", "1", "2"):  # a second search cell, then resumed with --num-cpus 1, then 2 again
        tracker.append_tag(parent, record.PARALLEL_TRIALS, count)
        seen.append(tracker.client.get_run(parent).data.tags[record.PARALLEL_TRIALS])
    assert seen == ["2", "2", "2, then 1", "2, then 1", "2, then 1, then 2"]
