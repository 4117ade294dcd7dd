"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster, loopback only), shared by this
module: a study by address survives a worker node killed mid-trial, and the trials of a study whose modules
live outside the package get them shipped by Ray."""

from __future__ import annotations

import shutil
import sys

import pytest
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from pipelines.runner import StudyState, start_study
from pipelines.tracking import RESUMED_FROM, TRIAL_STARTS
from sfli_core import keys, record
from tests.pipeline_helpers import ROOT, study_in_thread, trial_runs, wait_for, write_study


@pytest.fixture(scope="module")
def cluster(_ray_instance):
    if _ray_instance.is_initialized():  # this process must connect to the cluster, not to the shared instance
        _ray_instance.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # trials only run on worker nodes
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    assert c.address.startswith("127.0.0.1:")
    yield c
    if _ray_instance.is_initialized():  # a study that failed half-way may have left its connection open
        _ray_instance.shutdown()
    c.shutdown()


def test_study_by_address_survives_a_killed_worker_node(cluster, tmp_path):
    study = write_study(tmp_path / "cluster.yaml", "on_cluster", {"xavier": {"set": {"init.name": "xavier_normal"}},
                                                                  "sfli": {"set": {"init.name": "sfli"}}},
                        steps=2000, log_every=50, seeds=[0], retries=3)
    runs_folder = tmp_path / "runs"
    uri = f"sqlite:///{runs_folder / 'mlflow.db'}"
    driver, outcome = study_in_thread(path=str(study), address=cluster.address, runs=str(runs_folder))

    def a_trial_past_a_checkpoint():
        if not StudyState.path(runs_folder, "on_cluster").exists():  # the store is complete
            return None
        try:
            runs = trial_runs(uri, "on_cluster", "evaluate")
        except Exception:
            return None
        client = MlflowClient(uri)
        for run in runs:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS)]
            if steps and 200 <= max(steps) <= 1200 and run.data.tags.get("status") == "running":
                return run.info.run_id
        return None

    victim = wait_for(a_trial_past_a_checkpoint, timeout=240, every=0.2, what="a running trial")
    worker = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
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
    steps = [m.step for m in client.get_metric_history(victim, keys.TRAIN_LOSS)]
    assert sorted(steps) == list(range(0, 2001, 50))  # … continued, and no step was logged twice
    assert killed.data.metrics["final/step"] == 2000
    # trials on a cluster leave their previews to the driver (pipelines.previews), which draws every one
    assert all(r.data.tags.get(record.PREVIEWS) == "drawn" for r in runs)
    assert {record.STAIRCASE_FILE, record.HEATMAP_FILE} <= {a.path for a in client.list_artifacts(victim)}


def test_user_modules_reach_cluster_workers_through_ray(cluster, tmp_path, monkeypatch):
    """On a cluster the trials get the user's package from Ray (py_modules), not from the driver's disk: the
    study is copied to a folder that the workers never see on their sys.path."""
    copy = tmp_path / "ext"
    shutil.copytree(ROOT / "examples" / "poisson3d", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "my_sfli_ext").rename(copy / "my_ext_shipped")  # a name no other test has imported
    text = (copy / "study.yaml").read_text().replace("my_sfli_ext.", "my_ext_shipped.")
    (copy / "study.yaml").write_text(text.replace("name: poisson3d_extension", "name: shipped"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the driver's own path change is undone afterwards
    state = start_study(str(copy / "study.yaml"), smoke=True, address=cluster.address, runs=str(tmp_path / "runs"),
                        overrides=["evaluate.seeds=[0]", "search.trials=1"])
    assert state.status == "finished"
    runs = trial_runs(state.tracking_uri, "shipped", "evaluate")
    assert sorted(r.data.tags["arm"] for r in runs) == ["lecun", "sfli", "xavier"]
    assert all(r.data.tags["status"] == "finished" for r in runs)
