"""End-to-end studies on one real local Ray instance (shared by this module) with real MLflow stores."""

from __future__ import annotations

import os

import pytest
import ray
from mlflow.tracking import MlflowClient

from pipelines.runner import start_study, study_status
from pipelines.tracking import TRIAL_STARTS
from tests.pipeline_helpers import (
    ROOT,
    free_port,
    healthy,
    mlflow_server,
    parent_runs,
    sfli_cli,
    stop_group,
    trial_runs,
    wait_for,
    write_study,
)

ARTIFACTS = {"config.yaml", "series.csv", "seeds.json", "spectra.json", "staircase.png", "condensation.png",
             "condensation_weights.json"}


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # loopback only
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def check_trial_run(client: MlflowClient, run, n_logged: int) -> None:
    params, tags = run.data.params, run.data.tags
    assert {"task.name", "init.name", "train.lr", "seed", "git.revision", "meta.version.torch", "meta.device",
            "meta.precision"} <= set(params)
    assert {"study", "phase", "arm", "seed", "task", "status"} <= set(tags)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [20 * i for i in range(n_logged)]
    assert len(client.get_metric_history(run.info.run_id, "rank/eps1e-3/layer2")) == n_logged
    assert {"final/train/loss", "final/eval/rel_l2", "initial/rank/eps1e-3/layer2", "objective"} <= set(
        run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS


def test_smoke_study_end_to_end_on_sqlite(tmp_path):
    state = start_study(str(ROOT / "studies" / "quickstart.yaml"), smoke=True, runs=str(tmp_path))
    uri = state.tracking_uri
    assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parents = parent_runs(uri, "quickstart")
    assert set(parents) == {"search", "evaluate"}
    search, evaluate = trial_runs(uri, "quickstart", "search"), trial_runs(uri, "quickstart", "evaluate")
    assert len(search) == 4 and len(evaluate) == 4  # 2 search trials per arm: both arms are tuned
    assert sorted(r.data.tags["arm"] for r in search) == ["sfli", "sfli", "xavier", "xavier"]
    assert all(r.data.tags["mlflow.parentRunId"] == parents["search"].info.run_id for r in search)
    assert all(r.data.tags["mlflow.parentRunId"] == parents["evaluate"].info.run_id for r in evaluate)
    # evaluation is paired: every arm on every fresh seed, once
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in evaluate) == [
        ("sfli", "0"), ("sfli", "1"), ("xavier", "0"), ("xavier", "1")]
    for run in search + evaluate:
        assert run.data.tags["status"] == "finished" and run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, TRIAL_STARTS)) == 1
        check_trial_run(client, run, n_logged=4)
    # the evaluate runs of each arm use the knobs its search chose
    for arm in ("sfli", "xavier"):
        best = {k: parents["search"].data.params[f"best.{arm}.{k}"] for k in ("init.scale", "train.lr")}
        assert all({k: r.data.params[k] for k in best} == best for r in evaluate if r.data.tags["arm"] == arm)
    assert "evaluate: 4/4 runs finished 4" in study_status("quickstart", runs=str(tmp_path))


def test_diverging_arm_is_recorded_and_the_study_completes(tmp_path):
    study = write_study(tmp_path / "div.yaml", "diverge", {
        "ok": {"set": {"init.name": "sfli"}},
        "blowup": {"set": {"init.name": "xavier_normal", "train.optimizer": "sgd", "train.lr": 1e6}},
    }, seeds=[0])
    state = start_study(str(study), runs=str(tmp_path / "runs"))
    assert state.status == "finished"
    runs = {r.data.tags["arm"]: r for r in trial_runs(state.tracking_uri, "diverge", "evaluate")}
    assert runs["blowup"].data.tags["status"] == "diverged" and runs["ok"].data.tags["status"] == "finished"
    # the report of a study with a diverged arm shows it, and prints no all-NaN warnings
    proc = sfli_cli("report", "diverge", "--runs-dir", str(tmp_path / "runs"), "--no-figures", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "diverged 1" in proc.stdout and "RuntimeWarning" not in proc.stderr


def test_study_against_a_real_mlflow_server(tmp_path):
    port = free_port()
    server = mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(uri), timeout=120, what="mlflow server")
        study = write_study(tmp_path / "http.yaml", "over_http", {"xavier": {"set": {"init.name": "xavier_normal"}},
                                                                  "sfli": {"set": {"init.name": "sfli"}}})
        state = start_study(str(study), uri=uri, runs=str(tmp_path / "runs"))
        assert state.tracking_uri == uri
        runs = trial_runs(uri, "over_http", "evaluate")
        assert len(runs) == 4
        client = MlflowClient(uri)
        for run in runs:
            check_trial_run(client, run, n_logged=4)
        assert (tmp_path / "server-artifacts").exists()  # artifacts went through the server
        assert not (tmp_path / "runs" / "mlflow.db").exists()  # nothing in the embedded default
    finally:
        stop_group(server)


BAD = {
    "unknown_key": ({"arms": {"a": {"set": {"init.name": "sfli"}}}, "serch": {}}, "serch: unknown key"),
    "wrong_type": ({"arms": {"a": {"set": {"train.steps": "many"}}}}, "arms.a: train.steps: Input should be"),
    "unknown_init": ({"arms": {"a": {"set": {"init.name": "lecun"}}}}, "unknown initialisation 'lecun'"),
    "unknown_task": ({"base": {"task": {"name": "poisson9d"}}, "arms": {"a": {}}}, "unknown task 'poisson9d'"),
    "empty_search": ({"arms": {"a": {"search": {}}}}, "arms.a: search: empty search space"),
    "unknown_knob": ({"arms": {"a": {"search": {"init.scal": {"type": "uniform", "low": 0.1, "high": 1}}}}},
                     "arms.a.search.init.scal"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_study_files_exit_2_and_write_nothing(tmp_path, case):
    import yaml

    body, message = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump({"name": case, **body}))
    proc = sfli_cli("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / "runs").exists()  # no store, no experiment, nothing


def test_asha_search_closes_every_run_and_evaluation_is_not_truncated(tmp_path):
    study = write_study(tmp_path / "asha.yaml", "with_asha", {
        "xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"init.scale": {"type": "log_uniform", "low": 0.01, "high": 10.0}}},
    }, steps=200, log_every=10, seeds=[0], search_trials=6,
        search={"objective": "target/steps_to_1e-1", "trials": 6, "seeds": [1000],
                "asha": {"enabled": True, "grace_period": 2, "reduction_factor": 2}})
    state = start_study(str(study), runs=str(tmp_path / "runs"))
    search = trial_runs(state.tracking_uri, "with_asha", "search")
    assert len(search) == 6
    statuses = [r.data.tags["status"] for r in search]
    assert "running" not in statuses and all(r.info.status != "RUNNING" for r in search)
    assert "stopped" in statuses  # ASHA cut at least one trial short …
    client = MlflowClient(state.tracking_uri)
    for run in trial_runs(state.tracking_uri, "with_asha", "evaluate"):  # … but never an evaluation run
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert max(steps) == 200 and run.data.tags["status"] == "finished"
