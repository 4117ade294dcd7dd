"""The search objective (minimised), one function for the value a trial reports while it trains and the
value it ends with (docs/science.md §7). It ranks every trial: no two trials with different curves tie.

  * ``target/steps_to_<τ>`` on the study's target metric m (logged at steps s_0 < s_1 < …):
      - reached: the step at which log m crosses log τ, interpolated linearly between the last logged point
        above τ and the first at or below it, s_{i-1} + (s_i − s_{i-1})·(log m_{i-1} − log τ)/(log m_{i-1} −
        log m_i) (0 when m ≤ τ at step 0);
      - not reached (yet): ``budget × (1 + log10(m_last / τ))``, the budget plus one budget per decade still
        to go. Both branches meet at the budget: a run that reaches τ at its last step and one that ends just
        above τ score alike (continuous at the boundary); among runs that miss τ, a lower last value ranks
        better; a run that reached τ always ranks before one that has not.
    While a run trains, the same formula on the curve so far gives its running objective, which successive
    halving compares at equal steps.
  * ``final/train/loss``, ``final/eval/rel_l2``: log10 of the metric's latest logged value;
  * a diverged run, or a non-finite or non-positive value: ``WORST``.
A search trial's objective is the mean over its search seeds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from sfli_core import keys
from sfli_core.record import Status

OBJECTIVE_PATTERN = re.compile("^(" + "|".join([re.escape(keys.STEPS_TO) + ".+", re.escape(keys.final(keys.TRAIN_LOSS)),
                                                re.escape(keys.final(keys.EVAL_REL_L2))]) + ")$")
WORST = 1e12


def objective_value(name: str, status: str, history: Sequence[Mapping[str, float]], metric: str,
                    budget: int) -> float:
    """``history``: the run's logged records so far (each with ``step`` and the metrics); ``metric``: the
    study's target metric (``train/loss`` or ``eval/rel_l2``); ``budget``: the step budget, ``train.steps`` +
    ``train.lbfgs_steps``."""
    if status == Status.DIVERGED or not history:
        return WORST
    if name.startswith(keys.STEPS_TO):
        tau = keys.threshold_of(name)
        points = [(float(r[keys.STEP]), float(r.get(metric, math.nan))) for r in history]
        return steps_to_objective(points, tau, budget)
    value = history[-1].get(name.removeprefix(keys.FINAL), math.nan)
    return math.log10(value) if value > 0 and math.isfinite(value) else WORST


def steps_to_objective(points: Sequence[tuple[float, float]], tau: float, budget: int) -> float:
    """The steps-to-τ objective of a curve ``points`` = [(step, value)] in step order (see the module)."""
    previous = None
    for step, value in points:
        if not (value > 0 and math.isfinite(value)):
            return WORST
        if value <= tau:
            if previous is None:
                return step
            (s0, v0), (s1, v1) = previous, (step, value)
            return s0 + (s1 - s0) * (math.log(v0) - math.log(tau)) / (math.log(v0) - math.log(v1))
        previous = (step, value)
    return budget * (1.0 + math.log10(previous[1] / tau))


def finite_or_worst(value: float) -> float:
    """A value Ray Tune and Optuna can compare (they reject NaN / inf)."""
    return value if math.isfinite(value) else WORST
