"""Shared fixtures of the end-to-end tier (every test here is marked ``e2e``: tests/conftest.py).

Studies that are not about the driver process run in-process on one local Ray instance shared by the whole
session (``local_ray``: Ray's own test guide shares one instance; a start costs seconds). A driver subprocess is
started only where the process itself is under test (signals, SIGKILL, concurrent starts, exit codes of a
process that must end by itself). The quickstart smoke study, the README's main job, runs once per session
through the CLI (``quickstart``); tests that only read it share it, a test that changes a runs folder works on
a copy (``copy_runs``)."""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pipeline_helpers import sfli_cli


@pytest.fixture(scope="session")
def _ray_instance():
    import ray

    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_instance):
    """A local Ray instance on 127.0.0.1 with 2 CPUs, shared by every in-process study of the session; started
    on first use, and again after a test that needed none in this process (a cluster test)."""
    ray = _ray_instance
    if not ray.is_initialized():
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # loopback only
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture
def no_local_ray(_ray_instance):
    """No Ray instance in this process (a test that connects to a cluster of its own)."""
    if _ray_instance.is_initialized():
        _ray_instance.shutdown()


@dataclass(frozen=True)
class FinishedStudy:
    name: str
    runs: Path
    stdout: str

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.runs / 'mlflow.db'}"


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> FinishedStudy:
    """`sfli run studies/quickstart.yaml --smoke` in a driver subprocess, as a user runs the main job: search,
    paired evaluation, the report printed and recorded. Read-only for the tests that share it. Run once per
    test session: its folder is shared by the session's xdist workers (whichever asks first runs it, under a
    file lock) and survives a re-setup of the fixture."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    folder = shared / "quickstart"
    with open(shared / "quickstart.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "stdout.txt").exists():
            proc = sfli_cli("run", "studies/quickstart.yaml", "--smoke", "--runs-dir", str(folder / "runs"),
                            "--num-cpus", "2", timeout=600)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            (folder / "stdout.txt").write_text(proc.stdout)
    return FinishedStudy("quickstart", folder / "runs", (folder / "stdout.txt").read_text())


def copy_runs(source: Path, target: Path) -> Path:
    """A copy of a runs folder whose study states point at the copy's store. (The store's artifact locations
    still name the source: a test on a copy must not write artifacts.)"""
    shutil.copytree(source, target)
    for state in (target / "studies").glob("*/state.json"):
        state.write_text(state.read_text().replace(str(source), str(target)))
    return target
