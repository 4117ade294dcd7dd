"""The loss and ε-rank curves of recorded runs, and the one window every arm of a comparison is read over
(the staircase statistics and their figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sfli_core import keys

from .runs import history


def curves_of(uri: str, runs: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """Per arm, one frame (index step; loss, rank of the last layer at the headline ε) per run; its
    ``attrs["reached"]`` is the step at which the run reached the study's smallest target (NaN if never)."""
    out: dict[str, list[pd.DataFrame]] = {}
    for _, r in runs.iterrows():
        loss = history(uri, r["run_id"], keys.TRAIN_LOSS)
        rank = history(uri, r["run_id"], keys.rank_key(r["headline"], r["hidden_layers"]))
        frame = pd.DataFrame({"loss": loss, "rank": rank})
        frame.attrs["reached"] = float(r.get(keys.steps_to(min(r["thresholds"])), np.nan))
        out.setdefault(r["arm"], []).append(frame)
    return out


def common_window(per_arm: dict[str, list[pd.DataFrame]]) -> float | None:
    """The one window every arm of a group is read over (docs/science.md §2): up to the step by which every run
    had reached the smallest target, else (some run never did) the whole budget — the same steps for every arm,
    so that a fast arm's short series is not compared with a slow arm's long one."""
    reached = [frame.attrs.get("reached", np.nan) for frames in per_arm.values() for frame in frames]
    return float(max(reached)) if reached and all(np.isfinite(r) for r in reached) else None
