"""The Ray instance a study runs on: a cluster by address (the user's modules shipped to it), or a local
instance on 127.0.0.1 that the driver starts and also cleans up after, even after a driver killed by SIGKILL
(whose Ray helpers outlive it) — by the session folder recorded in the study's state."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .environment import loopback_only
from .study import Study


@dataclass
class RaySession:
    started: bool  # this driver started Ray (and stops it)
    session_dir: str | None  # the local instance's session folder (None on a cluster)


def cluster_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS")


def machine_cpus() -> int:
    """The CPUs a local Ray instance started without ``--num-cpus`` gets: Ray's own count, which honours a
    container's CPU quota (cgroups) where ``os.cpu_count()`` reports every core of the host. Ray offers it only
    as a private function: without it, the host's count."""
    try:
        from ray._private.utils import get_num_cpus

        return max(1, int(get_num_cpus(override_docker_cpu_warning=True)))
    except (ImportError, AttributeError, TypeError):
        return os.cpu_count() or 1


def connect_ray(address: str | None, num_cpus: int | None = None, py_modules: list[str] = ()) -> RaySession:
    """Connect to the cluster at ``address`` (or $RAY_ADDRESS), shipping ``py_modules`` (the user's modules)
    to its workers with Ray's runtime environment; else start a local instance on 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return RaySession(started=False, session_dir=None)
    address = cluster_address(address)
    if address:
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"py_modules": list(py_modules)} if py_modules else None)
        return RaySession(started=True, session_dir=None)
    loopback_only()
    # address="local": always a new instance of our own, never a cluster some other program started here
    with _own_session():
        # warnings only: the driver says what it started, Ray's INFO line would repeat it with a timestamp
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    node = getattr(ray._private.worker, "_global_node", None)  # no public accessor for the session folder
    return RaySession(started=True, session_dir=node.get_session_dir_path() if node is not None else None)


@contextlib.contextmanager
def _own_session():
    """Start the local instance's processes (GCS, raylet and the workers it forks) in a session of their own.
    A signal sent to the driver's whole process group — what `timeout`, systemd and Kubernetes send, and a
    terminal's Ctrl-C — then reaches the driver alone, which stops the study gracefully through Ray; in the
    driver's group they would die at once and leave the driver waiting a minute for a GCS that is gone. Ray
    has no option for it: its process launcher is wrapped while ``ray.init`` starts them. Their lives stay
    bound to the driver's by Ray's own fate sharing (and :func:`remove_leftovers` after a SIGKILL)."""
    from ray._private import services

    launcher = services.ConsolePopen

    class OwnSession(launcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "start_new_session": True})

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = launcher


def disconnect(session: RaySession) -> None:
    import ray

    if session.started:
        ray.shutdown()
    if session.session_dir:
        remove_leftovers(session.session_dir)


def _session_processes(session_dir: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) != os.getpid() and session_dir.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return found


def remove_leftovers(session_dir: str, patience_s: float = 10.0) -> None:
    """Stop every process of a local Ray session (helpers that ignore SIGTERM included) and delete its folder,
    which Ray would otherwise keep for ever. Processes still exiting can write into the folder: it is deleted
    once they are gone, and again if something came back."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        pids = _session_processes(session_dir)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            shutil.rmtree(session_dir, ignore_errors=True)
            if not os.path.exists(session_dir):
                break
        time.sleep(0.2)
    latest = Path(session_dir).parent / "session_latest"
    if latest.is_symlink() and not latest.exists():
        latest.unlink(missing_ok=True)


def shipped_modules(study: Study) -> list[str]:
    """The files or package folders of the user modules the study names by import path that live in one of
    its ``python_path`` folders (installed packages are the cluster image's business)."""
    folders = [Path(f) for f in study.python_path]
    found = set()
    for path in study.import_paths():
        module = importlib.import_module(path.partition(":")[0].split(".")[0])
        location = Path(module.__path__[0] if hasattr(module, "__path__") else module.__file__).resolve()
        if any(location.is_relative_to(f) for f in folders):
            found.add(str(location))
    return sorted(found)
