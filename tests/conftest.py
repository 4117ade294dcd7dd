import os

# Nothing a test starts may phone home or bind beyond loopback (Ray binds the network address unless told).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """Allen–Cahn references are computed once per test session, in a private folder."""
    os.environ["SFLI_CACHE_DIR"] = str(tmp_path_factory.mktemp("sfli_cache"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
