"""The search objective (minimised), one function for the value a trial reports while it trains and the
value it ends with (docs/science.md §7).

  * ``target/steps_to_<τ>``: the first logged step with the target metric ≤ τ; a run that has not reached τ
    counts as ``CENSORED_FACTOR`` × the step budget (worse than any run that reaches it);
  * ``final/train/loss``, ``final/eval/rel_l2``: log10 of the metric's latest logged value;
  * a diverged run, or a non-finite or non-positive value: ``WORST``.
A search trial's objective is the mean over its search seeds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from sfli_core.record import Status

OBJECTIVE_PATTERN = re.compile(r"^(target/steps_to_.+|final/train/loss|final/eval/rel_l2)$")
CENSORED_FACTOR = 2.0
WORST = 1e12


def objective_value(name: str, status: str, reached: Mapping[str, float], latest: Mapping[str, float],
                    budget: int) -> float:
    """``reached``: targets met so far (``target/steps_to_<τ>`` → step); ``latest``: the latest logged record
    (``train/loss``, ``eval/rel_l2`` …); ``budget``: the step budget, ``train.steps`` + ``train.lbfgs_steps``."""
    if status == Status.DIVERGED:
        return WORST
    if name.startswith("target/"):
        steps = reached.get(name)
        return float(steps) if steps is not None else CENSORED_FACTOR * budget
    value = latest.get(name.removeprefix("final/"), math.nan)
    return math.log10(value) if value > 0 and math.isfinite(value) else WORST


def finite_or_worst(value: float) -> float:
    """A value Ray Tune and Optuna can compare (they reject NaN / inf)."""
    return value if math.isfinite(value) else WORST
