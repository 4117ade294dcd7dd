"""Kill → resume in the search phase: the driver stopped gracefully (SIGTERM), then the driver that resumes it
killed (SIGKILL), and `sfli resume` finishes the study. After the resume: one MLflow run per trial (no orphan of
an interrupted one), nothing left running, no finished trial trained again, every logging step recorded once;
the graceful stop leaves a study that says how to continue it and refuses a plain re-run; the killed driver's
Ray helpers and session folder are gone once the study is resumed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

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
    code = driver.stop(signal.SIGTERM, lambda: study.finished("search") >= 1, "a finished search trial", every=0.3)
    study.stopped_gracefully(driver, code, "search", capsys)
    finished_before = study.finished_starts()
    assert len(finished_before) < 4, "the search was over before it could be interrupted"
    assert set(finished_before.values()) == {1}

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
