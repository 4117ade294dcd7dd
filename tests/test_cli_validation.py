"""What the command line refuses before anything runs, called in-process (`pipelines.cli.main`, as the `sfli`
command calls it): bad study files, unreachable clusters and tracking servers, a file store on a cluster, a
UI port in use. Each exits 2 with a message naming the cause, and writes nothing."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import yaml

from pipelines.cli import main
from tests.pipeline_helpers import free_port, write_study

XAVIER = {"xavier": {"set": {"init.name": "xavier_normal"}}}

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
def test_bad_study_files_exit_2_and_write_nothing(tmp_path, capsys, case):
    body, message = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump({"name": case, **body}))
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err, err
    assert not (tmp_path / "runs").exists()  # no store, no experiment, nothing


def test_unreachable_cluster_and_tracking_server_fail_fast_and_write_nothing(tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", "unreachable", XAVIER, seeds=[0])
    runs = str(tmp_path / "runs")
    closed = free_port  # nothing listens on a port just handed out and released
    t0 = time.time()
    assert main(["run", str(study), "--runs-dir", runs, "--address", f"127.0.0.1:{closed()}",
                 "--tracking-uri", f"http://127.0.0.1:{closed()}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "Traceback" not in err and time.time() - t0 < 30, err
    t0 = time.time()
    assert main(["run", str(study), "--runs-dir", runs, "--tracking-uri", f"http://127.0.0.1:{closed()}"]) == 2
    err = capsys.readouterr().err
    assert "tracking server" in err and time.time() - t0 < 30, err
    assert main(["run", str(study), "--runs-dir", runs, "--address", f"127.0.0.1:{closed()}"]) == 2
    err = capsys.readouterr().err
    assert "Ray cluster" in err and time.time() - t0 < 60, err
    assert not (tmp_path / "runs" / "studies").exists()  # no state written: the next run is not "interrupted"


@pytest.mark.parametrize("server", ["silent", "http"])
def test_an_address_where_something_else_listens_fails_fast(tmp_path, capsys, server):
    """A port where something that is not Ray listens (a silent one, a web server): refused in seconds, and the
    study is not left "interrupted" (nothing written), so that a run with the right address is not refused."""
    study = write_study(tmp_path / "s.yaml", "wrong_port", XAVIER, seeds=[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        answer = threading.Thread(target=_answer_http, args=(s,), daemon=True) if server == "http" else None
        if answer:
            answer.start()
        t0 = time.time()
        assert main(["run", str(study), "--runs-dir", str(tmp_path / "runs"), "--address",
                     f"127.0.0.1:{s.getsockname()[1]}"]) == 2
    err = capsys.readouterr().err
    assert "does not answer as a Ray cluster" in err and time.time() - t0 < 20, err
    assert not (tmp_path / "runs").exists()


def _answer_http(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _more_gpus_than_here() -> int:
    import torch

    return torch.cuda.device_count() + 1


@pytest.mark.parametrize("resources, argv, message", [
    ({"cpus": 2}, ["--num-cpus", "1"], "resources.cpus: 2 per trial, but the local Ray instance has 1 CPU"),
    ({"cpus": 1, "gpus": "more"}, [], "per trial, but this machine has"),
])
def test_trials_that_could_never_start_are_refused(tmp_path, capsys, resources, argv, message):
    if resources.get("gpus") == "more":  # one more GPU than this machine has, whatever it has
        resources = {**resources, "gpus": _more_gpus_than_here()}
        message = f"resources.gpus: {resources['gpus']} {message} {resources['gpus'] - 1} GPUs"
    study = write_study(tmp_path / "s.yaml", "too_big", XAVIER, seeds=[0], resources=resources)
    assert main(["run", str(study), "--runs-dir", str(tmp_path / "runs"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_containers_cpu_quota_is_what_a_local_instance_has(tmp_path, capsys, monkeypatch):
    """In a container whose CPU quota is one core, however many cores the host shows, a local Ray instance gets one
    CPU (Ray reads the quota): a study asking two per trial would wait for ever, so it is refused."""
    import ray._private.utils

    monkeypatch.setattr(ray._private.utils, "_get_docker_cpus", lambda *args, **kwargs: 1.0)  # the cgroup quota

    def started(*args, **kwargs):  # a study let through would wait for ever for its trials: fail at once instead
        raise AssertionError("the study started")

    monkeypatch.setattr("pipelines.runner._drive", started)
    study = write_study(tmp_path / "s.yaml", "quota", XAVIER, seeds=[0], resources={"cpus": 2})
    assert main(["run", str(study), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "resources.cpus: 2 per trial, but the local Ray instance has 1 CPU:" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_cluster_needs_a_tracking_server_every_node_reaches(tmp_path, capsys):
    study = write_study(tmp_path / "s.yaml", "local_store", XAVIER, seeds=[0])
    # refused before any connection is tried (the .invalid name would never resolve anyway)
    assert main(["run", str(study), "--runs-dir", str(tmp_path / "runs"), "--address",
                 "ray://ray-head.invalid:10001"]) == 2
    err = capsys.readouterr().err
    assert "tracking server" in err and "mlflow server" in err and "--tracking-uri" in err
    assert not (tmp_path / "runs" / "studies").exists()


def test_ui_refuses_a_taken_port(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["ui", "--runs-dir", str(tmp_path), "--port", str(s.getsockname()[1])]) == 2
    assert "in use" in capsys.readouterr().err
