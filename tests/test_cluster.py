"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster, loopback only)."""

from __future__ import annotations

import threading

import pytest
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from pipelines.runner import StudyState, start_study
from pipelines.tracking import RESUMED_FROM, TRIAL_STARTS
from tests.pipeline_helpers import trial_runs, wait_for, write_study


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials only run on worker nodes
    yield c
    c.shutdown()


def test_study_by_address_survives_a_killed_worker_node(cluster, tmp_path):
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    assert cluster.address.startswith("127.0.0.1:")
    study = write_study(tmp_path / "cluster.yaml", "on_cluster", {"xavier": {"set": {"init.name": "xavier_normal"}},
                                                                  "sfli": {"set": {"init.name": "sfli"}}},
                        steps=2000, log_every=50, seeds=[0], retries=3)
    runs_folder = tmp_path / "runs"
    uri = f"sqlite:///{runs_folder / 'mlflow.db'}"
    outcome: dict = {}

    def drive():
        try:
            outcome["state"] = start_study(str(study), address=cluster.address, runs=str(runs_folder))
        except BaseException as err:  # surfaced below
            outcome["error"] = err

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()

    def a_trial_past_a_checkpoint():
        if not StudyState.path(runs_folder, "on_cluster").exists():  # the store is complete (see test_resume)
            return None
        try:
            runs = trial_runs(uri, "on_cluster", "evaluate")
        except Exception:
            return None
        client = MlflowClient(uri)
        for run in runs:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
            if steps and 200 <= max(steps) <= 1200 and run.data.tags.get("status") == "running":
                return run.info.run_id
        return None

    victim = wait_for(a_trial_past_a_checkpoint, timeout=240, every=0.2, what="a running trial")
    cluster.remove_node(worker)  # kill the node mid-trial
    cluster.add_node(num_cpus=2)  # capacity comes back; the trial must resume from its checkpoint
    driver.join(timeout=400)
    assert not driver.is_alive(), "study did not finish"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["state"].status == "finished"

    client = MlflowClient(uri)
    runs = trial_runs(uri, "on_cluster", "evaluate")
    assert sorted(r.data.tags["arm"] for r in runs) == ["sfli", "xavier"]  # one run per trial, no duplicates
    assert all(r.data.tags["status"] == "finished" for r in runs)
    killed = client.get_run(victim)
    assert len(client.get_metric_history(victim, TRIAL_STARTS)) >= 2  # it was started again …
    resumed = sorted(client.get_metric_history(victim, RESUMED_FROM), key=lambda m: m.step)
    assert resumed[0].value == 0 and resumed[-1].value >= 100  # … from a checkpoint, not from scratch
    steps = [m.step for m in client.get_metric_history(victim, "train/loss")]
    assert sorted(steps) == list(range(0, 2001, 50))  # … continued, and no step was logged twice
    assert killed.data.metrics["final/step"] == 2000
