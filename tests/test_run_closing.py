"""Closing a completed phase's runs (pipelines.tracking) on a real MLflow SQLite store: a run left RUNNING for
MLflow after its trial wrote its sfli status (a trial stopped by successive halving, its actor ended between
the two writes) gets the MLflow status that matches, its sfli status kept; a run its trial never closed (the
actor ended before the first write) is closed as stopped; closed runs are left as they are."""

from __future__ import annotations

from pipelines.tracking import Tracker
from sfli_core import record
from sfli_core.record import Status, TrialIdentity


def test_runs_a_completed_phase_left_open_are_closed_to_match_their_trial(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment("closing", tmp_path / "artifacts")
    parent = tracker.parent_run(experiment, "closing", "search", 1)
    runs = {}
    for trial, status, closed in [("cut", Status.STOPPED, False), ("done", Status.FINISHED, True),
                                  ("broken", Status.FAILED, False), ("never closed", Status.RUNNING, False),
                                  ("complete", Status.FINISHED, False)]:
        identity = TrialIdentity(study="closing", execution=1, phase="search", arm="sfli", variant="base",
                                 trial_id=trial, seeds=(1000,), task="fit1d_multiscale", init="sfli", arch="mlp",
                                 init_role="treatment")
        run_id, _ = tracker.child_run(experiment, parent, trial, identity, {"train.lr": 0.01})
        tracker.set_tags(run_id, {record.STATUS: status})  # the first of the two writes that close a run
        if closed:
            tracker.client.set_terminated(run_id, "FINISHED")
        runs[trial] = run_id
    assert tracker.close_open(experiment, "closing", 1, "search") == 4
    seen = {trial: tracker.client.get_run(run_id) for trial, run_id in runs.items()}
    assert {trial: (run.data.tags[record.STATUS], run.info.status) for trial, run in seen.items()} == {
        "cut": ("stopped", "FINISHED"), "done": ("finished", "FINISHED"), "broken": ("failed", "FAILED"),
        "never closed": ("stopped", "FINISHED"), "complete": ("finished", "FINISHED")}
    # a complete run closed here has its previews drawn by the driver (pipelines.previews); the others none
    assert {trial: run.data.tags.get(record.PREVIEWS) for trial, run in seen.items()} == {
        "cut": None, "done": None, "broken": None, "never closed": None, "complete": "pending"}
    assert tracker.close_open(experiment, "closing", 1, "evaluate") == 0
    assert tracker.close_open(experiment, "closing", 1) == 0  # the whole execution: nothing left open
