"""Shared helpers for the pipeline tests: tiny study files and reading back what MLflow recorded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from sfli_core import keys

ROOT = Path(__file__).resolve().parents[1]


def write_study(path: Path, name: str, arms: dict, *, steps: int = 60, log_every: int = 20, seeds=(0, 1),
                search_trials: int = 2, **extra) -> Path:
    study = {
        "name": name,
        "base": {"task": {"name": "fit1d_multiscale"}, "model": {"width": 16, "depth": 2},
                 "train": {"steps": steps, "log_every": log_every}, "rank": {"eps": [1e-3]},
                 "targets": {"thresholds": [1e-1, 1e-2]}},
        "arms": arms,
        "search": {"objective": keys.steps_to(1e-1), "trials": search_trials, "seeds": [1000]},
        "evaluate": {"seeds": list(seeds)},
        "resources": {"cpus": 1},
        "checkpoint_every": 2,
        **extra,
    }
    path.write_text(yaml.safe_dump(study))
    return path


ARTIFACTS = {"config.yaml", "series.csv", "seeds.json", "spectra.json", "staircase.png", "condensation.png",
             "condensation_weights.json"}


def check_trial_run(client: MlflowClient, run, n_logged: int, log_every: int = 20) -> None:
    """What every trial run carries: provenance parameters, identity tags, one point per logging step of the
    curves, the summary metrics and the artifacts."""
    params, tags = run.data.params, run.data.tags
    assert {"task.name", "init.name", "train.lr", "seed", "git.revision", "meta.version.torch", "meta.device",
            "meta.precision"} <= set(params)
    assert {"study", "phase", "arm", "seed", "task", "status"} <= set(tags)
    history = client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS)
    assert sorted(m.step for m in history) == [log_every * i for i in range(n_logged)]
    assert len(client.get_metric_history(run.info.run_id, keys.rank_key(1e-3, 2))) == n_logged
    assert {"final/train/loss", "final/eval/rel_l2", "initial/rank/eps1e-3/layer2", "objective"} <= set(
        run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS
    assert tags["previews"] == "drawn"


def study_in_thread(**kwargs) -> tuple[threading.Thread, dict]:
    """``start_study(**kwargs)`` in a background thread (the test acts on its cluster or server meanwhile):
    the thread, and a dict that gets ``state`` or ``error`` when it ends."""
    from pipelines.runner import start_study

    outcome: dict = {}

    def drive():
        try:
            outcome["state"] = start_study(**kwargs)
        except BaseException as err:  # surfaced by the test
            outcome["error"] = err

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    return thread, outcome


def trial_runs(uri: str, study: str, phase: str | None = None) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study)
    query = "tags.run_type = 'trial'" + (f" and tags.phase = '{phase}'" if phase else "")
    return client.search_runs([exp.experiment_id], filter_string=query, max_results=1000)


def parent_runs(uri: str, study: str) -> dict:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.run_type = 'parent'")
    return {r.data.tags["phase"]: r for r in runs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server(folder: Path, port: int, backend: str | None = None) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:port (one worker), its store and artifacts in ``folder``; stop it
    with :func:`stop_group`."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    backend = backend or f"sqlite:///{folder / 'server.db'}"
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(folder / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def sfli_cli(*args: str, timeout: float = 600, cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, **kw)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    """Stop a process started with start_new_session=True, and everything in its process group."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=wait)


def wait_for(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def healthy(base_url: str) -> bool:
    """Whether an MLflow server (or `sfli ui`) at ``base_url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
