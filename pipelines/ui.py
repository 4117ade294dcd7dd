"""`sfli ui`: the MLflow UI of a store, bound to 127.0.0.1, whose server lives exactly as long as the command.

MLflow's server runs in its own process group, under a guard (:mod:`pipelines.ui_guard`): SIGINT, SIGTERM or
SIGHUP to ``sfli ui`` stops that whole group, and so does the guard when ``sfli ui`` dies without a word
(SIGKILL), so no server is left serving the store to the next user of the port. A port already in use is
refused up front.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sfli_core.config import ConfigError

from .environment import quiet


def check_port(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(f"port {port} on 127.0.0.1 is in use; choose another with --port") from None


def experiment_url(base: str, experiment_id: str) -> str:
    """The page of an experiment's training runs. MLflow 3's UI otherwise opens an experiment on its GenAI
    overview (traces) in any browser that has not switched to model training before (it keeps the choice in
    the browser's storage); the ``workflowType`` parameter makes that choice."""
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


def studies(uri: str) -> list[tuple[str, str]]:
    """(name, experiment id) of every study in the store (none yet: an empty list)."""
    from mlflow.tracking import MlflowClient

    return [(e.name, e.experiment_id) for e in MlflowClient(uri).search_experiments() if e.name != "Default"]


def serve_ui(uri: str, folder: Path, port: int) -> int:
    """Run the UI until it exits or this process is signalled; returns its exit code (0 when stopped)."""
    quiet()
    check_port(port)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    if uri.startswith("sqlite"):
        cmd += ["--default-artifact-root", (folder / "artifacts").as_uri()]
    base = f"http://127.0.0.1:{port}"
    print(f"MLflow UI for {uri} on {base} (Ctrl-C stops it)", flush=True)
    for name, experiment_id in studies(uri):
        print(f"  {name}: {experiment_url(base, experiment_id)}", flush=True)
    guarded = [sys.executable, "-m", "pipelines.ui_guard", str(os.getpid()), "--", *cmd]
    server = subprocess.Popen(guarded, env=os.environ.copy(), start_new_session=True)
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            code = server.wait()
        except BaseException:
            stop(None, None)
            raise
        if stopping:
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            return 0
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            os.killpg(server.pid, signal.SIGKILL)  # whatever of the group is still there (gunicorn workers)
        except ProcessLookupError:
            pass
