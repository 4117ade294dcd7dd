"""The driver's request to stop the study (Ctrl-C, SIGTERM), read by the phase that is running and by its progress
display."""

from __future__ import annotations


class StopRequest:
    """Set by the driver's SIGINT/SIGTERM handler. Ray Tune's own SIGINT handling is turned off
    (TUNE_DISABLE_SIGINT_HANDLER), because an interrupted Tune run marks every trial terminated and cannot be
    told from a finished one afterwards; the driver's handler records the request and, during a Tune run,
    sends the SIGUSR1 that Tune takes as the same graceful stop (trials stopped, experiment state saved)."""

    requested = False
    in_fit = False
