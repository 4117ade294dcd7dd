"""Two tiers, chosen by the ``e2e`` marker: every test under ``tests/e2e/`` is end-to-end (real Ray, real MLflow
stores and servers, driver subprocesses, signals, clusters on loopback; minutes) and is marked ``e2e`` here;
everything else is the fast tier (in-process: maths, configurations, registries, statistics, reports, the CLI's
validation; under two minutes). ``pytest -m "not e2e"`` runs the fast tier alone; plain ``pytest`` runs both."""

import os
from pathlib import Path

# Nothing a test starts may phone home or bind beyond loopback (Ray binds the network address unless told).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest  # noqa: E402

pytest.register_assert_rewrite("tests.pipeline_helpers", "tests.e2e.interrupts")  # helpers that assert

import torch  # noqa: E402

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Marks the end-to-end tier, and runs it first: its files take minutes each, the fast tier's seconds, so
    that the two xdist workers end together (longest jobs first) instead of one waiting out a late long file.
    xdist keeps this order only with ``--no-loadscope-reorder`` (pyproject.toml): by default it sends files
    with the most tests first, which put the one-test end-to-end files last."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: not item.path.is_relative_to(E2E))  # stable: each tier keeps its own order


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """Allen–Cahn references are computed once per test session, in a private folder; each xdist worker trains
    on its share of the cores (two workers with two threads each on two cores slow each other down)."""
    os.environ["SFLI_CACHE_DIR"] = str(tmp_path_factory.mktemp("sfli_cache"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))
    yield
