"""The driver's process environment (pipelines.environment)."""

from __future__ import annotations

from ray.tune.utils.util import warn_if_slow

from pipelines import environment


def test_tunes_slow_result_warning_takes_our_threshold_after_tune_was_imported(monkeypatch):
    """Tune reads TUNE_WARN_THRESHOLD_S when it is imported, before the driver sets it: quiet() sets the
    threshold Tune already read (a user's own setting wins)."""
    monkeypatch.setattr(warn_if_slow, "DEFAULT_THRESHOLD", 0.5)
    monkeypatch.delenv("TUNE_WARN_THRESHOLD_S", raising=False)
    environment.quiet()
    assert warn_if_slow("process_trial_result").threshold == 5.0
    monkeypatch.setenv("TUNE_WARN_THRESHOLD_S", "30")
    environment.quiet()
    assert warn_if_slow("process_trial_result").threshold == 30.0
