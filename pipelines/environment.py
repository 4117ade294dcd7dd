"""Process environment for a study: telemetry off unless the user turned it on, loopback-only local Ray."""

from __future__ import annotations

import logging
import os
import sys

QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "RAY_AIR_NEW_OUTPUT": "0",  # our own progress line instead of Tune's tables
    # the driver shares the machine's cores with its trials (and records each result in the Optuna audit): a
    # half-second stall in handling one result is expected there, not the bottleneck Tune's warning suspects
    "TUNE_WARN_THRESHOLD_S": "5",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # not one "View run at …" line per closed run; sfli ui
    # a call to an unreachable tracking server fails in seconds, not after MLflow's ~2 min of retries: our
    # own retries (pipelines.metric_buffer) wait for it up to the tracking patience, and training goes on
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def quiet() -> None:
    """Usage statistics and telemetry off, unless the variable is already set by the user; the libraries'
    routine INFO lines (here MLflow's schema creation; Tune's and Optuna's in :mod:`pipelines.phases`) off the
    terminal, whose lines are the study's progress and results."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    tune_util = sys.modules.get("ray.tune.utils.util")
    if tune_util is not None:  # Tune reads its threshold once, when imported (the driver imports it first)
        tune_util.warn_if_slow.DEFAULT_THRESHOLD = float(os.environ["TUNE_WARN_THRESHOLD_S"])


def loopback_only() -> None:
    """A local Ray instance binds and connects on 127.0.0.1 only: without this variable Ray binds the machine's
    network address even for a local instance. Never for a real cluster."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback instance needs no token in ~/.ray
