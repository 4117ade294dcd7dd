"""A study's life cycle as users live it: interrupts, re-runs, concurrent starts, bad addresses, corrupt state,
the UI server, study-file mistakes and leftovers. Real driver subprocesses signalled by PID, real Ray, real
MLflow stores."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.runner import StudyState
from pipelines.study import load_study
from sfli_core.config import ConfigError
from tests.pipeline_helpers import ROOT, free_port, sfli_cli, stop_group, trial_runs, wait_for, write_study

ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"init.scale": {"type": "log_uniform", "low": 0.5, "high": 2.0}}}}


def start_driver(tmp_path, *args: str) -> tuple[subprocess.Popen, object]:
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed by the caller
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def finished_runs(uri: str, study: str, phase: str) -> list:
    try:
        return [r for r in trial_runs(uri, study, phase) if r.data.tags["status"] == "finished"]
    except Exception:  # the store is being created
        return []


@pytest.mark.parametrize("sig,phase", [(signal.SIGINT, "evaluate"), (signal.SIGTERM, "search")])
def test_an_interrupt_leaves_a_resumable_study_that_resume_finishes(tmp_path, sig, phase):
    study = write_study(tmp_path / "s.yaml", "interrupted", ARMS, steps=400, log_every=20, seeds=[0, 1, 2],
                        search_trials=3)
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    driver, log = start_driver(tmp_path, "run", str(study), "--runs-dir", str(runs), "--num-cpus", "2")
    try:
        def under_way():
            if not StudyState.path(runs, "interrupted").exists():
                return False
            if phase == "search":
                return len(finished_runs(uri, "interrupted", "search")) >= 1
            return len(finished_runs(uri, "interrupted", "evaluate")) >= 1

        wait_for(under_way, timeout=300, every=0.3, what=f"a finished {phase} trial")
        os.kill(driver.pid, sig)
        code = driver.wait(timeout=120)
    finally:
        stop_group(driver, signal.SIGKILL)
        log.close()
    out = (tmp_path / "driver.log").read_text()
    assert code != 0, out[-3000:]
    assert "interrupted" in out and "sfli resume interrupted" in out, out[-3000:]
    state = json.loads(StudyState.path(runs, "interrupted").read_text())
    assert state["status"] == "interrupted"
    assert "evaluate" not in state["done"]
    # nothing is left running in MLflow
    left = trial_runs(uri, "interrupted")
    assert all(r.data.tags["status"] != "running" and r.info.status != "RUNNING" for r in left)
    status = sfli_cli("status", "interrupted", "--runs-dir", str(runs), timeout=120)
    assert "interrupted: interrupted" in status.stdout and "sfli resume interrupted" in status.stdout
    again = sfli_cli("run", str(study), "--runs-dir", str(runs), timeout=120)
    assert again.returncode == 2 and "sfli resume interrupted" in again.stderr
    finished_before = {r.info.run_id for r in trial_runs(uri, "interrupted") if r.data.tags["status"] == "finished"}

    proc = sfli_cli("resume", "interrupted", "--runs-dir", str(runs), "--num-cpus", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(uri)
    search, evaluate = trial_runs(uri, "interrupted", "search"), trial_runs(uri, "interrupted", "evaluate")
    assert len(search) == 3 and len(evaluate) == 6  # one run per trial: no orphan of the interrupted ones
    for run in search + evaluate:
        assert run.data.tags["status"] == "finished"
        starts = client.get_metric_history(run.info.run_id, "trial/starts")
        if run.info.run_id in finished_before:
            assert len(starts) == 1  # never re-trained
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(0, 401, 20))  # every step logged once


def test_running_a_finished_study_again_is_a_new_execution(tmp_path):
    arms = {"xavier": ARMS["xavier"], "sfli": {"set": {"init.name": "sfli"}}}
    study = write_study(tmp_path / "s.yaml", "again", arms, seeds=[0])
    runs = tmp_path / "runs"
    first = sfli_cli("run", str(study), "--runs-dir", str(runs), "--num-cpus", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = sfli_cli("run", str(study), "--runs-dir", str(runs), "--num-cpus", "2", "--set", "base.train.lr=3e-3")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "execution 2" in second.stdout
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    runs_found = trial_runs(uri, "again", "evaluate")
    assert sorted((r.data.tags["execution"], r.data.tags["arm"]) for r in runs_found) == [
        ("1", "sfli"), ("1", "xavier"), ("2", "sfli"), ("2", "xavier")]  # trained again, old runs kept
    lrs = {r.data.tags["execution"]: r.data.params["train.lr"] for r in runs_found}
    assert lrs == {"1": "0.001", "2": "0.003"}
    report = sfli_cli("report", "again", "--runs-dir", str(runs), "--no-figures")
    assert "execution 2" in report.stdout and "2 evaluation runs" in report.stdout  # the latest execution
    old = sfli_cli("report", "again", "--runs-dir", str(runs), "--no-figures", "--execution", "1")
    assert "execution 1" in old.stdout


def test_two_first_starts_on_one_fresh_store_both_finish(tmp_path):
    runs = tmp_path / "runs"
    procs = []
    for name in ("first", "second"):
        study = write_study(tmp_path / f"{name}.yaml", name, {"xavier": ARMS["xavier"]}, seeds=[0], steps=20)
        procs.append(subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(study), "--runs-dir",
                                       str(runs), "--num-cpus", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        outs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            stop_group(p, signal.SIGKILL)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    assert len(trial_runs(uri, "first", "evaluate")) == len(trial_runs(uri, "second", "evaluate")) == 1


def closed_port() -> int:
    port = free_port()  # nothing listens there
    return port


def test_unreachable_cluster_and_tracking_server_fail_fast_and_write_nothing(tmp_path):
    study = write_study(tmp_path / "s.yaml", "unreachable", {"xavier": ARMS["xavier"]}, seeds=[0])
    runs = tmp_path / "runs"
    t0 = time.time()
    proc = sfli_cli("run", str(study), "--runs-dir", str(runs), "--address", f"127.0.0.1:{closed_port()}",
                    "--tracking-uri", f"http://127.0.0.1:{closed_port()}", timeout=120)
    assert proc.returncode == 2 and "cannot reach" in proc.stderr and time.time() - t0 < 30
    assert proc.stderr.count("Traceback") == 0
    t0 = time.time()
    proc = sfli_cli("run", str(study), "--runs-dir", str(runs), "--tracking-uri",
                    f"http://127.0.0.1:{closed_port()}", timeout=120)
    assert proc.returncode == 2 and "tracking server" in proc.stderr and time.time() - t0 < 30, proc.stderr
    proc = sfli_cli("run", str(study), "--runs-dir", str(runs), "--address", f"127.0.0.1:{closed_port()}",
                    timeout=120)
    assert proc.returncode == 2 and "Ray cluster" in proc.stderr and time.time() - t0 < 60, proc.stderr
    assert not (runs / "studies").exists()  # no state written: the next run is not "interrupted"


def test_a_cluster_needs_a_tracking_server_every_node_reaches(tmp_path):
    study = write_study(tmp_path / "s.yaml", "local_store", {"xavier": ARMS["xavier"]}, seeds=[0])
    # refused before any connection is tried (the .invalid name would never resolve anyway)
    proc = sfli_cli("run", str(study), "--runs-dir", str(tmp_path / "runs"), "--address",
                    "ray://ray-head.invalid:10001", timeout=120)
    assert proc.returncode == 2
    assert "tracking server" in proc.stderr and "mlflow server" in proc.stderr and "--tracking-uri" in proc.stderr
    assert not (tmp_path / "runs" / "studies").exists()


def test_corrupt_state_and_missing_store_are_named(tmp_path):
    study = write_study(tmp_path / "s.yaml", "fragile", {"xavier": ARMS["xavier"]}, seeds=[0], steps=20)
    runs = tmp_path / "runs"
    assert sfli_cli("run", str(study), "--runs-dir", str(runs), "--num-cpus", "1").returncode == 0
    state_file = StudyState.path(runs, "fragile")
    good = state_file.read_text()
    state_file.write_text(good[: len(good) // 2])
    for command in ("status", "resume"):
        proc = sfli_cli(command, "fragile", "--runs-dir", str(runs), timeout=120)
        assert proc.returncode == 2 and str(state_file) in proc.stderr and "Traceback" not in proc.stderr
    state_file.write_text(good)
    (runs / "mlflow.db").unlink()
    proc = sfli_cli("status", "fragile", "--runs-dir", str(runs), timeout=120)
    assert proc.returncode == 2 and "mlflow.db" in proc.stderr and "missing" in proc.stderr
    assert not (runs / "mlflow.db").exists()  # not silently re-created empty


def test_ui_refuses_a_taken_port_and_stops_its_server_on_a_signal(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc = sfli_cli("ui", "--runs-dir", str(tmp_path), "--port", str(s.getsockname()[1]), timeout=60)
    assert proc.returncode == 2 and "in use" in proc.stderr
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--runs-dir", str(tmp_path), "--port",
                           str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        wait_for(lambda: _listening(port), timeout=120, what="sfli ui")
        os.kill(ui.pid, signal.SIGTERM)  # the command only, not its process group
        ui.wait(timeout=30)
        wait_for(lambda: not _listening(port), timeout=30, what="the MLflow server to stop")
    finally:
        stop_group(ui, signal.SIGKILL)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_study_file_mistakes_are_caught(tmp_path):
    path = write_study(tmp_path / "s.yaml", "files", ARMS, seeds=[0])
    # a nested --set on an arm changes that knob only
    study = load_study(path, overrides=["arms.sfli.set.init.scale=2.5"])
    cfg = study.run_config("sfli")
    assert (cfg.init.name, cfg.init.scale) == ("sfli", 2.5)
    # a duplicate key is an error, with its line
    text = path.read_text() + "search: {trials: 9}\n"
    (tmp_path / "dup.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"dup.yaml: line \d+: duplicate key 'search'"):
        load_study(tmp_path / "dup.yaml")
    # an error of the base is reported against the base, not an arm
    data = yaml.safe_load(path.read_text())
    data["base"]["train"]["lr"] = -1
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"base\.yaml: base: train\.lr: Input should be greater than 0"):
        load_study(tmp_path / "base.yaml")
    # both profiles are checked, whichever is asked for
    data = yaml.safe_load(path.read_text())
    data["smoke"] = {"base": {"train": {"stepz": 3}}}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"smoke profile: .*stepz: unknown key"):
        load_study(tmp_path / "smoke.yaml")
    data["smoke"] = {"base": {"train": {"steps": 3, "log_every": 1}}}  # the smoke profile would hide it
    data["base"]["train"]["log_every"] = 0
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"log_every"):
        load_study(tmp_path / "full.yaml", smoke=True)


def test_a_search_killed_with_its_driver_resumes_without_orphans_or_leftovers(tmp_path):
    """SIGKILL during the search: the resumed study has one run per search trial (a trial Tune lost with the
    driver is discarded, not counted twice), nothing left running, and the killed driver's Ray processes
    and session folder are gone once `sfli resume` has run."""
    study = write_study(tmp_path / "s.yaml", "killed", ARMS, steps=400, log_every=20, seeds=[0], search_trials=4)
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {"HOME": str(home)}
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(study), "--runs-dir", str(runs),
                               "--num-cpus", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    try:
        wait_for(lambda: StudyState.path(runs, "killed").exists() and len(finished_runs(uri, "killed", "search")) >= 1
                 and json.loads(StudyState.path(runs, "killed").read_text()).get("ray_session"),
                 timeout=300, every=0.3, what="a finished search trial")
        time.sleep(1.5)  # the next trials are under way
        session = json.loads(StudyState.path(runs, "killed").read_text())["ray_session"]
        os.kill(driver.pid, signal.SIGKILL)  # the driver only: its Ray helpers live on, as after a crash
        driver.wait(timeout=30)
    finally:
        log.close()
    assert session and os.path.isdir(session)
    proc = sfli_cli("resume", "killed", "--runs-dir", str(runs), "--num-cpus", "2", timeout=600, env=env)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        search = trial_runs(uri, "killed", "search")
        assert len(search) == 4, [(r.data.tags["trial_id"], r.data.tags["status"]) for r in search]
        assert all(r.data.tags["status"] == "finished" for r in search + trial_runs(uri, "killed", "evaluate"))
        assert not os.path.exists(session)  # the session folder Ray would keep for ever
        left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, session)]
        assert left == []
        assert not (home / ".ray" / "auth_token").exists()  # a loopback instance needs no token
    finally:
        stop_group(driver, signal.SIGKILL)


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False
