"""How many trials may write to a tracking store at once, from ``benchmarks/tracking_load.py`` (deploy/README.md
has the table): a study that would run more trials at once than its store was measured to take is warned.

Measured on one 2-core host (clients and store on the same cores), 30 logging steps of 17 values per trial:
every store lost nothing up to 16 writers with a logging call's p99 ≤ 1.6 s. Beyond, the embedded SQLite
store still lost nothing at 64 but calls waited up to 6 s (the background buffer keeps training from waiting,
not the store from falling behind); `mlflow server` with MLflow's default database pool failed at 64 (pool
exhausted over SQLite, stalled over PostgreSQL) and held 64 only with a larger pool.
"""

from __future__ import annotations

from .tracking import sqlite_file

HOLDS = 16  # writers every measured store took with nothing lost and a logging call's p99 within 1.6 s


def load_warning(uri: str, parallel: int) -> str | None:
    """A warning when ``parallel`` concurrent trials exceed what the store at ``uri`` was measured to hold."""
    if parallel <= HOLDS:
        return None
    if sqlite_file(uri) is not None:
        return (f"warning: {parallel} trials will write to the embedded SQLite store at once; it was measured to "
                f"hold {HOLDS} with nothing lost and second-long waits beyond that. For more, run `mlflow server` "
                "over PostgreSQL with several workers (deploy/README.md)")
    return (f"warning: {parallel} trials will write to the tracking server at once; one server worker was measured "
            f"to hold {HOLDS} (errors at 64). Give the server several workers (`--workers`) and PostgreSQL, and "
            "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE / _MAX_OVERFLOW above the trial count (deploy/README.md)")
