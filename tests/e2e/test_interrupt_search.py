"""Kill → resume in the search phase: the driver stopped gracefully (SIGTERM to its whole process group, as
`timeout` and systemd send it), its runs folder moved, then the driver that resumes it from the new place
killed (SIGKILL), and `sfli resume` finishes the study. After the resume: one MLflow run per trial (no orphan of
an interrupted one), nothing left running, no finished trial trained again, every logging step recorded once;
the graceful stop leaves a study that says how to continue it and refuses a plain re-run; the killed driver's
Ray helpers and session folder are gone once the study is resumed."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from tests.e2e.interrupts import Driver, Study, cmdline_has


@pytest.fixture
def killed_driver_env(tmp_path) -> tuple[dict, Path]:
    """The driver's environment with a HOME of its own: a loopback Ray instance must write no token there."""
    home = tmp_path / "home"
    home.mkdir()
    return {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"HOME": str(home)}, home


def test_search_stopped_then_killed_resumes_without_orphans_or_leftovers(tmp_path, capsys, local_ray,
                                                                        killed_driver_env):
    """SIGTERM during the search (graceful), then SIGKILL of the resuming driver, still in the search (a trial
    Tune lost with the driver is discarded, not counted twice; its Ray helpers outlive it)."""
    env, home = killed_driver_env
    study = Study(tmp_path, "search_cut", steps=200, seeds=[0, 1], search_trials=4)
    driver = Driver.start(tmp_path, "run", str(study.file), "--runs-dir", str(study.runs), "--num-cpus", "2",
                          env=env)
    t0 = time.time()
    code = driver.stop(signal.SIGTERM, lambda: study.finished("search") >= 1, "a finished search trial", every=0.3,
                       group=True)
    assert time.time() - t0 < 60, driver.output()[-3000:]  # not Ray's minute of waiting for a GCS that died
    study.stopped_gracefully(driver, code, "search", capsys)
    finished_before = study.finished_starts()
    assert len(finished_before) < 4, "the search was over before it could be interrupted"
    assert set(finished_before.values()) == {1}

    # the runs folder moved, and another study's store now where it was: the moved study must never touch it
    old = study.runs
    study.move_to(tmp_path / "moved" / "runs")
    # (in a process of its own: this one's MLflow keeps the moved file open under the old name)
    subprocess.run([sys.executable, "-c", "import sys; from mlflow import MlflowClient; "
                    "MlflowClient(sys.argv[1]).create_experiment(sys.argv[2])", f"sqlite:///{old / 'mlflow.db'}",
                    study.name], check=True, env=env)
    decoy_files = sorted(p.name for p in old.iterdir())

    started = time.time()
    driver = Driver.start(tmp_path, "resume", study.name, "--runs-dir", str(study.runs), "--num-cpus", "2", env=env)
    code = driver.stop(signal.SIGKILL, lambda: (study.state() or {}).get("ray_session") and study.checkpoints(
        "search", started), "a search trial training again")
    assert code == -signal.SIGKILL
    session = study.state()["ray_session"]
    assert session and os.path.isdir(session) and "search-" not in "".join(study.state()["done"])
    finished_before = study.finished_starts() | finished_before
    status = main(["status", study.name, "--runs-dir", str(study.runs)])
    assert status == 0 and f"{study.name}: interrupted: its driver is gone" in capsys.readouterr().out

    study.resume_in_process(capsys)
    study.completed_once(finished_before, 200, 20, search=4,
                         evaluate=[(arm, str(s)) for arm in ("xavier", "sfli") for s in (0, 1)])
    assert not os.path.exists(session)  # the session folder Ray would keep for ever …
    assert [p for p in os.listdir("/proc") if p.isdigit() and cmdline_has(p, session)] == []  # … its helpers
    assert not (home / ".ray" / "auth_token").exists()  # a loopback instance needs no token
    # nothing of the moved study written where its folder was (store, artifacts, Tune, Optuna audit)
    assert sorted(p.name for p in old.iterdir()) == decoy_files
    with contextlib.closing(sqlite3.connect(old / "mlflow.db")) as decoy:
        assert decoy.execute("select count(*) from runs").fetchone() == (0,)
    audit = optuna.load_study(study_name="search_cut-e1-sfli", storage=f"sqlite:///{study.runs / 'optuna.db'}")
    assert len([t for t in audit.get_trials() if t.state.is_finished()]) == 4  # the search's audit moved with it
    artifacts = {MlflowClient(study.uri).get_run(r).info.artifact_uri for r in finished_before}
    assert artifacts and all(a.startswith((study.runs / "artifacts").as_uri()) for a in artifacts), artifacts
