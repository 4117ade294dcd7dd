"""A study against a real `mlflow server` (one per module, on loopback): everything recorded goes through the
server; the server killed and restarted while the study trains loses nothing (trials keep training, their
logging steps wait in a buffer and arrive when it is back, each stored once); a store away longer than the
tracking patience fails the study clearly and `sfli resume` completes it (that outage injected through
``SFLI_FAULT_TRACKING_OUTAGE``, so that it lasts exactly as long as the test needs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.metric_buffer import OUTAGE_ENV, PATIENCE_ENV
from sfli_core import keys
from tests.pipeline_helpers import (
    ROOT,
    check_trial_run,
    free_port,
    healthy,
    mlflow_server,
    stop_group,
    study_in_thread,
    trial_runs,
    wait_for,
    write_study,
)

STEPS, LOG_EVERY = 800, 20
ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}}, "sfli": {"set": {"init.name": "sfli"}}}


class Server:
    """A real `mlflow server` on 127.0.0.1 with its store in ``folder``, restartable on the same port."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = mlflow_server(self.folder, self.port)
        wait_for(lambda: healthy(self.uri), timeout=120, what="mlflow server")

    def kill(self) -> None:
        stop_group(self.proc, signal.SIGKILL)  # the server and its worker, by PID


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("server"))
    yield server
    stop_group(server.proc)


def checkpoints_since(storage: Path, since: float) -> int:
    """Checkpoints the trials wrote since ``since`` (one every 2 logging steps, straight into the runs folder):
    training progress that the test can see while the tracking server is away."""
    return sum(c.stat().st_mtime >= since for c in storage.glob("*/*/checkpoint_*"))


def test_study_over_http_survives_a_server_restart_and_records_everything_once(server, tmp_path, local_ray):
    study = write_study(tmp_path / "outage.yaml", "outage", ARMS, steps=STEPS, log_every=LOG_EVERY, seeds=[0, 1, 2])
    runs = tmp_path / "runs"
    driver, outcome = study_in_thread(path=str(study), uri=server.uri, runs=str(runs))
    client = MlflowClient(server.uri)

    def training_logged():
        try:
            found = trial_runs(server.uri, "outage", "evaluate")
        except Exception:
            return None
        # a run's first step reaches the store at once, later ones once a second (pipelines.metric_buffer): wait
        # for the first, so that the outage comes early in training
        return any(client.get_metric_history(r.info.run_id, keys.TRAIN_LOSS) for r in found) or None

    wait_for(training_logged, timeout=300, every=0.1, what="evaluate trials logging")
    server.kill()
    killed = time.time()
    # trials go on training while the server is away: five checkpoints (ten logging steps) more, no MLflow
    wait_for(lambda: checkpoints_since(runs / "ray", killed) >= 5 or "error" in outcome,
             timeout=120, every=0.1, what="training to go on without the tracking server")
    assert driver.is_alive() and "error" not in outcome, outcome.get("error")  # trials did not fail
    server.start()  # same store, same port
    back = time.time()
    driver.join(timeout=600)
    assert not driver.is_alive(), "study did not finish"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["state"].status == "finished" and outcome["state"].tracking_uri == server.uri

    evaluate = trial_runs(server.uri, "outage", "evaluate")
    assert len(evaluate) == 6
    during = []
    for run in evaluate:
        assert run.data.tags["status"] == "finished", run.info.run_name
        check_trial_run(client, run, n_logged=STEPS // LOG_EVERY + 1)  # once each: curves, summary, artifacts
        for key in (keys.EVAL_REL_L2, keys.rank_key(1e-3, 2)):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(0, STEPS + 1, LOG_EVERY)), (run.info.run_name, key)
        during.append(sum(killed * 1000 < m.timestamp < back * 1000
                          for m in client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS)))
    # steps stamped while the server was down were queued then, and delivered after the restart (a trial
    # blocked on its store could stamp one step at most)
    assert max(during) >= 5, during
    assert (server.folder / "server-artifacts").exists()  # artifacts went through the server
    assert not (runs / "mlflow.db").exists()  # nothing in the embedded default


def test_store_away_past_the_patience_fails_clearly_and_resume_completes(server, tmp_path, capsys, local_ray):
    # no retries: each would wait out the patience again before the study ends
    study = write_study(tmp_path / "away.yaml", "away", ARMS, steps=STEPS, log_every=LOG_EVERY, seeds=[0],
                        retries=0)
    runs = tmp_path / "runs"
    outage = tmp_path / "outage"
    env = {**os.environ, PATIENCE_ENV: "4", OUTAGE_ENV: str(outage)}
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(study), "--tracking-uri",
                               server.uri, "--runs-dir", str(runs), "--num-cpus", "2"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True)
    try:
        def training_logged():
            try:
                return trial_runs(server.uri, "away", "evaluate") or None
            except Exception:
                return None

        wait_for(training_logged, timeout=300, every=0.3, what="evaluate trials")
        outage.touch()  # the store is away for the driver and its trials from now on
        out, _ = driver.communicate(timeout=600)  # … and stays away: the study must end, not hang
    finally:
        stop_group(driver, signal.SIGKILL)
    assert driver.returncode == 1, out[-3000:]  # failed (not interrupted): resumable
    assert "unreachable for more than 4 s" in out, out[-3000:]  # says why
    assert "sfli resume away" in out, out[-3000:]

    outage.unlink()  # the store is back
    assert main(["resume", "away", "--runs-dir", str(runs)]) == 0, capsys.readouterr().out[-3000:]
    client = MlflowClient(server.uri)
    evaluate = trial_runs(server.uri, "away", "evaluate")
    assert len(evaluate) == 2 and {r.data.tags["status"] for r in evaluate} == {"finished"}
    for run in evaluate:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS))
        assert steps == list(range(0, STEPS + 1, LOG_EVERY)), run.info.run_name
