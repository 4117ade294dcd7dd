"""The tracking server killed and restarted while a study trains: trials keep training, their logging steps
wait in a buffer and arrive when the server is back, nothing is lost or recorded twice, the study finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from tests.pipeline_helpers import (
    ROOT,
    free_port,
    healthy,
    mlflow_server,
    stop_group,
    trial_runs,
    wait_for,
    write_study,
)

STEPS, LOG_EVERY = 1500, 20


def test_server_killed_and_restarted_mid_study_loses_nothing(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = mlflow_server(tmp_path, port)
    driver = None
    try:
        wait_for(lambda: healthy(uri), timeout=120, what="mlflow server")
        study = write_study(tmp_path / "outage.yaml", "outage", {"xavier": {"set": {"init.name": "xavier_normal"}},
                                                                "sfli": {"set": {"init.name": "sfli"}}},
                            steps=STEPS, log_every=LOG_EVERY, seeds=[0, 1, 2])
        log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below, read on failure
        driver = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", str(study), "--tracking-uri", uri, "--runs-dir",
             str(tmp_path / "runs"), "--num-cpus", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "SFLI_TRACKING_PATIENCE_S": "300"}, start_new_session=True)

        def training_logged():
            try:
                runs = trial_runs(uri, "outage", "evaluate")
            except Exception:
                return None
            client = MlflowClient(uri)
            return any(len(client.get_metric_history(r.info.run_id, "train/loss")) >= 5 for r in runs) or None

        wait_for(training_logged, timeout=300, every=0.3, what="evaluate trials logging")
        stop_group(server, signal.SIGKILL)  # the server and its worker, by PID
        killed = time.time()
        time.sleep(10)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]  # trials did not fail
        server = mlflow_server(tmp_path, port)  # same store, same port
        wait_for(lambda: healthy(uri), timeout=120, what="the restarted mlflow server")
        back = time.time()
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
        log.close()

        client = MlflowClient(uri)
        runs = trial_runs(uri, "outage", "evaluate")
        assert len(runs) == 6
        during = []
        for run in runs:
            assert run.data.tags["status"] == "finished", run.info.run_name
            for key in ("train/loss", "eval/rel_l2", "rank/eps1e-3/layer2"):
                history = client.get_metric_history(run.info.run_id, key)
                steps = sorted(m.step for m in history)
                assert steps == list(range(0, STEPS + 1, LOG_EVERY)), (run.info.run_name, key)  # once each
            during.append(sum(killed * 1000 < m.timestamp < back * 1000
                              for m in client.get_metric_history(run.info.run_id, "train/loss")))
        # trials went on training while the server was down (a trial blocked on its store could stamp one
        # step at most): those steps were queued then, and delivered after the restart
        assert max(during) >= 5, during
    finally:
        if driver is not None and driver.poll() is None:
            stop_group(driver, signal.SIGKILL)
        stop_group(server)


def test_server_away_past_the_patience_fails_clearly_and_resume_completes(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = mlflow_server(tmp_path, port)
    runs = tmp_path / "runs"
    env = {**os.environ, "SFLI_TRACKING_PATIENCE_S": "8"}
    try:
        wait_for(lambda: healthy(uri), timeout=120, what="mlflow server")
        study = write_study(tmp_path / "away.yaml", "away", {"xavier": {"set": {"init.name": "xavier_normal"}},
                                                            "sfli": {"set": {"init.name": "sfli"}}},
                            steps=STEPS, log_every=LOG_EVERY, seeds=[0, 1])
        driver = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", str(study), "--tracking-uri", uri, "--runs-dir",
             str(runs), "--num-cpus", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, start_new_session=True)

        def training_logged():
            try:
                return trial_runs(uri, "away", "evaluate") or None
            except Exception:
                return None

        wait_for(training_logged, timeout=300, every=0.3, what="evaluate trials")
        stop_group(server, signal.SIGKILL)
        out, _ = driver.communicate(timeout=600)  # the server stays away: the study must end, not hang
        assert driver.returncode not in (0, None), out[-3000:]
        assert "unreachable for more than 8 s" in out, out[-3000:]  # says why
        assert "sfli resume away" in out, out[-3000:]

        server = mlflow_server(tmp_path, port)
        wait_for(lambda: healthy(uri), timeout=120, what="the restarted mlflow server")
        resumed = subprocess.run([sys.executable, "-m", "pipelines.cli", "resume", "away", "--runs-dir", str(runs),
                                  "--num-cpus", "2"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        client = MlflowClient(uri)
        evaluate = trial_runs(uri, "away", "evaluate")
        assert len(evaluate) == 4 and {r.data.tags["status"] for r in evaluate} == {"finished"}
        for run in evaluate:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
            assert steps == list(range(0, STEPS + 1, LOG_EVERY)), run.info.run_name
    finally:
        stop_group(server)
