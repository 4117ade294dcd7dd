"""Errors a user can act on, which the command line prints as one line (no traceback) and exits with 1.
Invalid input is :class:`sfli_core.config.ConfigError` (exit 2)."""

from __future__ import annotations


class StudyError(RuntimeError):
    """A study could not go on for a reason outside the study file (the tracking store unavailable or full,
    the cluster gone); the message names the cause and what to do."""
