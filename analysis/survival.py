"""Runtime-to-target as censored time-to-event data (docs/science.md §6).

One arm's runs at one target τ are a sample of runtimes T (steps, or training seconds, until the recorded
metric first falls to τ or below), right-censored at the run's budget when τ was not reached (a diverged run
counts as not reached, censored at the full budget: it never gets there). Estimators come from scipy:
``scipy.stats.ecdf`` (Kaplan–Meier for ``CensoredData``, log-log confidence band) and ``scipy.stats.logrank``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import stats


@dataclass(frozen=True)
class Runtimes:
    """``times[i]``: the runtime of run i when ``reached[i]``, else its censoring time (the budget it had)."""

    times: np.ndarray
    reached: np.ndarray

    @classmethod
    def of(cls, steps_to_target, budget) -> Runtimes:
        """From a steps-to-target column (NaN = τ never reached) and the budget(s) (scalar or per run). A
        run that did not reach τ and has no budget recorded (NaN) cannot be placed and is left out."""
        t = np.asarray(steps_to_target, dtype=float)
        reached = np.isfinite(t)
        times = np.where(reached, t, np.broadcast_to(np.asarray(budget, dtype=float), t.shape))
        known = np.isfinite(times)
        return cls(times[known], reached[known])

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def n_reached(self) -> int:
        return int(self.reached.sum())

    def censored_data(self) -> stats.CensoredData:
        from scipy import stats  # in the functions: drawing a run's previews need not import SciPy (0.7 s)

        return stats.CensoredData(uncensored=self.times[self.reached], right=self.times[~self.reached])


@dataclass(frozen=True)
class Median:
    """Kaplan–Meier median runtime with its confidence interval; NaN estimate = the curve never reaches ½
    (fewer than half the runs are estimated to reach τ within the budget); ``high`` = inf = open-ended."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Curve:
    """Kaplan–Meier estimate of P(reached τ by t): a right-continuous step function through (t_k, F_k) with
    its pointwise confidence band; F = 0 before t_0."""

    t: np.ndarray
    F: np.ndarray
    low: np.ndarray
    high: np.ndarray


def km_curve(runs: Runtimes, confidence: float = 0.95) -> Curve:
    """The Kaplan–Meier fraction reached by t, F(t) = 1 − Π_{t_k ≤ t} (1 − d_k / n_k), at the observed times
    (events and censorings), with scipy's log-log pointwise band at ``confidence``. No run reached: F ≡ 0."""
    if runs.n_reached == 0:
        t = np.unique(runs.times)
        zero = np.zeros(len(t))
        return Curve(t, zero, zero, np.full(len(t), _none_reached_upper(runs.n, confidence)))
    from scipy import stats

    cdf = stats.ecdf(runs.censored_data()).cdf
    with warnings.catch_warnings():  # the band is undefined where F = 1: filled in below
        warnings.filterwarnings("ignore", "The confidence interval is undefined", RuntimeWarning)
        band = cdf.confidence_interval(confidence, method="log-log")
    low, high = band.low.probabilities.copy(), np.nan_to_num(band.high.probabilities, nan=1.0)
    # Where every run still at risk has reached τ (F = 1) Greenwood's variance is undefined; the lower edge is
    # then the Clopper–Pearson bound for all of m successes, m = the runs that reached τ (exact without
    # censoring, conservative with it), and never below the edge before it.
    all_reached = ((1 - confidence) / 2) ** (1 / runs.n_reached)
    for k in np.nonzero(np.isnan(low))[0]:
        low[k] = max(all_reached, low[k - 1] if k else 0.0) if cdf.probabilities[k] >= 1 else 0.0
    return Curve(cdf.quantiles, cdf.probabilities, low, high)


def _none_reached_upper(n: int, confidence: float) -> float:
    """Upper confidence bound on P(reach by the budget) when none of n runs did: 1 − (α/2)^(1/n), the
    Clopper–Pearson bound for 0 successes in n (two-sided level ``confidence``)."""
    return 1 - ((1 - confidence) / 2) ** (1 / n)


def _first_at_least(t: np.ndarray, F: np.ndarray, level: float) -> float:
    hit = np.nonzero(F >= level - 1e-12)[0]
    return float(t[hit[0]]) if len(hit) else math.nan


def km_median(runs: Runtimes, confidence: float = 0.95) -> Median:
    """Median runtime: the smallest t with F(t) ≥ ½, or, where F equals ½ exactly on [t_k, t_k+1), the
    midpoint (t_k + t_k+1)/2 (the convention of R's ``survfit``; without censoring it is the sample median).
    Interval (Brookmeyer–Crowley, by inverting the band): from the first t where the band's upper edge
    reaches ½ to the first t where its lower edge does; ``high`` is inf when the lower edge never does."""
    if runs.n == 0:
        return Median(math.nan, math.nan, math.nan)
    c = km_curve(runs, confidence)
    if runs.n_reached == 0:  # the median exceeds the budget only if even the upper bound on F stays below ½
        return Median(math.nan, float(c.t[-1]) if c.high[-1] < 0.5 else 0.0, math.inf)
    estimate = _first_at_least(c.t, c.F, 0.5)
    if not math.isnan(estimate):
        k = int(np.searchsorted(c.t, estimate))
        if abs(c.F[k] - 0.5) < 1e-12 and k + 1 < len(c.t) and c.F[k + 1] > c.F[k]:
            estimate = float((c.t[k] + c.t[k + 1]) / 2)
    low = _first_at_least(c.t, c.high, 0.5)
    high = _first_at_least(c.t, c.low, 0.5)
    if math.isnan(low):  # even the band's upper edge stays below ½: the median exceeds every time observed
        low = float(c.t[-1])
    return Median(estimate, low, math.inf if math.isnan(high) else high)


def logrank_p(base: Runtimes, treat: Runtimes) -> float:
    """Two-sided p of the log-rank test of equal runtime distributions (scipy.stats.logrank); NaN when no
    run of either arm reached τ (no event, no information); 1 when the two samples are identical."""
    if base.n_reached + treat.n_reached == 0 or base.n == 0 or treat.n == 0:
        return math.nan
    from scipy import stats

    with np.errstate(invalid="ignore", divide="ignore"):
        p = float(stats.logrank(base.censored_data(), treat.censored_data()).pvalue)
    return 1.0 if math.isnan(p) else p


def ert(spent: np.ndarray, reached: np.ndarray, axis: int = -1) -> np.ndarray:
    """Expected running time (COCO/BBOB): Σ spent / #reached, where a run that reached τ spent its runtime
    and one that did not spent its whole budget; inf when no run reached τ. Vectorised over ``axis``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(spent, axis=axis) / np.sum(reached, axis=axis)


def median_ratio(base: Median, treat: Median) -> tuple[float, float, float]:
    """Ratio of medians m_base / m_treat with a simultaneous interval [low_b / high_t, high_b / low_t].
    If each median's interval holds with probability 1 − α/2, both hold together with probability ≥ 1 − α
    (Bonferroni), and then so does the ratio's interval: called with 97.5 % medians it is a conservative
    95 % interval. A baseline whose median was not reached gives a NaN estimate and still a lower bound."""
    estimate = base.estimate / treat.estimate if treat.estimate > 0 else math.nan
    low = base.low / treat.high if treat.high > 0 else math.nan
    high = base.high / treat.low if treat.low > 0 else math.inf
    return estimate, low, high
