"""The MLflow server of `sfli ui` must not outlive the command, however it ends (Ctrl-C, SIGTERM, a closed
terminal's SIGHUP, SIGKILL). `sfli ui` starts this guard in a process group of its own; the guard starts the
server in that group, and stops the whole group when its parent is gone: told at once by the kernel (Linux's
parent-death signal), or seen within half a second (its parent PID changes when it is re-parented).

Usage: ``python -m pipelines.ui_guard <parent pid> -- <server command …>``; exits with the server's code.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
POLL_S, PATIENCE_S = 0.5, 10.0


def _on_parent_death(sig: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def _stop_group(server: subprocess.Popen) -> None:
    """SIGTERM to the group (server and its workers), SIGKILL to what is left after the patience."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's signal reaches this guard too
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgrp(), signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=PATIENCE_S)
    os.killpg(os.getpgrp(), signal.SIGKILL)  # this guard included: nothing of the group stays


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[argv.index("--") + 1:]
    _on_parent_death(signal.SIGTERM)
    server = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: _stop_group(server))
    while server.poll() is None:
        if os.getppid() != parent:
            _stop_group(server)
        time.sleep(POLL_S)
    return server.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
