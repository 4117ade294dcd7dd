"""An interrupted study continues with `sfli resume`: nothing finished re-runs, nothing is recorded twice."""

from __future__ import annotations

import signal
import subprocess
import sys

from mlflow.tracking import MlflowClient

from pipelines.runner import StudyState
from pipelines.tracking import RESUMED_FROM, TRIAL_STARTS
from tests.pipeline_helpers import ROOT, sfli_cli, stop_group, trial_runs, wait_for, write_study


def test_killed_driver_then_resume_completes_without_rerunning_finished_trials(tmp_path):
    study = write_study(tmp_path / "resume.yaml", "resumable", {
        "xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"}, "search": {"init.scale": {"type": "log_uniform", "low": 0.5,
                                                                         "high": 2.0}}},
    }, steps=300, log_every=20, seeds=[0, 1, 2], search_trials=2)
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below, read on failure
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(study), "--runs-dir", str(runs),
                               "--num-cpus", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def evaluate_under_way():
            # the driver writes its state file only once the store exists: opening the store earlier would
            # run its schema migration concurrently with the driver's (an SQLite collision)
            if not StudyState.path(runs, "resumable").exists():
                return None
            try:
                done = [r for r in trial_runs(uri, "resumable", "evaluate") if r.data.tags["status"] == "finished"]
            except Exception:
                return None
            return done if len(done) >= 2 else None

        try:
            wait_for(evaluate_under_way, timeout=300, every=0.3, what="two finished evaluate trials")
        except TimeoutError:
            raise AssertionError((tmp_path / "driver.log").read_text()[-4000:]) from None
    finally:
        stop_group(driver, signal.SIGKILL)  # the driver and the local Ray instance it started
        log.close()
    before = {r.info.run_id: r.data.tags["status"] for r in trial_runs(uri, "resumable")}
    finished_before = {k for k, v in before.items() if v == "finished"}
    assert 2 + 2 <= len(finished_before) < 2 + 6  # both search trials and some evaluate trials

    status = sfli_cli("status", "resumable", "--runs-dir", str(runs), timeout=120)
    assert status.returncode == 0 and "resumable: interrupted: its driver is gone" in status.stdout

    proc = sfli_cli("resume", "resumable", "--runs-dir", str(runs), "--num-cpus", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "study 'resumable' finished" in proc.stdout

    client = MlflowClient(uri)
    search, evaluate = trial_runs(uri, "resumable", "search"), trial_runs(uri, "resumable", "evaluate")
    assert len(search) == 2
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in evaluate) == sorted(
        (arm, str(s)) for arm in ("xavier", "sfli") for s in (0, 1, 2))  # exactly one run per trial
    for run in search + evaluate:
        assert run.data.tags["status"] == "finished"
        starts = client.get_metric_history(run.info.run_id, TRIAL_STARTS)
        if run.info.run_id in finished_before:
            assert len(starts) == 1, run.info.run_name  # a finished trial never re-ran
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(0, 301, 20)), run.info.run_name  # each step logged once
    restarted = [r for r in evaluate if len(client.get_metric_history(r.info.run_id, TRIAL_STARTS)) > 1]
    for run in restarted:  # an interrupted trial continued from its last checkpoint (or from 0 if it had none):
        # checkpoints every 2 logging steps (steps 20, 60, 100, …) hold the next step to run, 21, 61, 101, …
        last = max(client.get_metric_history(run.info.run_id, RESUMED_FROM), key=lambda m: m.step)
        assert last.value == 0 or (last.value - 21) % 40 == 0, last.value
