"""One row of the speed-up table: a baseline arm against a treatment arm at one target τ (docs/science.md §6).

Runtimes to τ are censored time-to-event data (:mod:`analysis.survival`). Per row:
  * speed-up: the ratio of Kaplan–Meier median steps-to-target, baseline over treatment, with a conservative
    95 % interval from the two medians' 97.5 % intervals (Bonferroni). Where the baseline's median was not
    reached within the budget the estimate is open and the row states the 95 % lower bound ("≥ x×");
  * ERT (expected running time, COCO/BBOB) of each arm and their ratio, with a paired percentile-bootstrap
    interval over seeds (scipy.stats.bootstrap, 5000 resamples, fixed seed);
  * the per-seed ratio over the pairs where both arms reached τ (exact pairs only), with the censored pairs
    counted beside it, never mixed in;
  * the log-rank test of equal runtime distributions;
  * final error: the paired geometric-mean ratio with its bootstrap interval, the Wilcoxon signed-rank test on
    log error, the smallest p that test can give with this many pairs, and an underpowered flag.
p-values are adjusted across the rows of a report by :func:`adjust` (Benjamini–Hochberg).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from sfli_core import keys

from .survival import Runtimes, ert, km_median, logrank_p, median_ratio

CONFIDENCE = 0.95
PER_MEDIAN = 1 - (1 - CONFIDENCE) / 2  # each median's level, so that the ratio's interval holds at 95 %
RESAMPLES = 5000
ALPHA = 0.05
MIN_BOOTSTRAP = 6  # fewer pairs give no bootstrap interval (and no signed-rank p below 0.05 either)


def _bootstrap(data: tuple[np.ndarray, ...], statistic) -> tuple[float, float]:
    """Paired percentile-bootstrap 95 % interval of a vectorised ``statistic(*data, axis)``; NaN below
    MIN_BOOTSTRAP observations, where resampling a handful of values says nothing about the population."""
    if len(data[0]) < MIN_BOOTSTRAP:
        return math.nan, math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # degenerate resamples (inf ERT, a constant sample) are expected
        res = stats.bootstrap(data, statistic, paired=True, vectorized=True, confidence_level=CONFIDENCE,
                              n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _geomean(x, axis=-1):
    return np.exp(np.mean(np.log(x), axis=axis))


def pair_kinds(base: Runtimes, treat: Runtimes) -> pd.Series:
    """Per seed pair: 'exact' (both reached τ), 'treat_only', 'base_only', 'neither'."""
    kinds = np.where(base.reached & treat.reached, "exact",
                     np.where(treat.reached, "treat_only", np.where(base.reached, "base_only", "neither")))
    return pd.Series(kinds).value_counts()


def ert_ratio(base: Runtimes, treat: Runtimes) -> tuple[float, float, float, float, float]:
    """(ERT_base, ERT_treat, ratio, low, high); the interval resamples seed pairs (inf where a resample of the
    baseline reached τ in no run: then the ratio is unbounded above)."""
    def ratio(tb, rb, tt, rt, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):
            return ert(tb, rb, axis) / ert(tt, rt, axis)

    e_b, e_t = float(ert(base.times, base.reached)), float(ert(treat.times, treat.reached))
    if treat.n_reached == 0:
        return e_b, e_t, math.nan, math.nan, math.nan
    low, high = _bootstrap((base.times, base.reached, treat.times, treat.reached), ratio)
    return e_b, e_t, e_b / e_t, low, high


def min_signed_rank_p(n: int) -> float:
    """The smallest two-sided p the exact signed-rank test can give with n non-zero pairs: 2 / 2^n."""
    return min(1.0, 2.0 / 2**n) if n > 0 else math.nan


def signed_rank_p(log_ratio: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of log(error_base / error_treat) = 0; 1 when every pair ties."""
    d = np.asarray(log_ratio, float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def adjust(p: pd.Series) -> pd.Series:
    """Benjamini–Hochberg adjusted p-values (scipy.stats.false_discovery_control) over the non-NaN entries."""
    out = pd.Series(np.nan, index=p.index)
    ok = p.notna()
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok].to_numpy(float), method="bh")
    return out


def statement(estimate: float, low: float, high: float) -> str:
    """The headline in words: 'x× [lo, hi]' ('∞' for an open end), '≥ lo×' where only the lower bound is
    known (the baseline's median was not reached), '≤ hi×' where only the upper one is, or 'no estimate'."""
    def f(v):
        return "∞" if math.isinf(v) else f"{v:.3g}"

    if not math.isnan(estimate):
        return f"{f(estimate)}× [{f(low)}, {f(high)}]"
    if low > 0:
        return f"≥ {f(low)}×"
    if math.isfinite(high):
        return f"≤ {f(high)}×"
    return "no estimate"


def compare_arms(base: pd.DataFrame, treat: pd.DataFrame, tau_key: str, seconds_key: str, error_key: str,
                 rank_key: str, seconds_budget_key: str = keys.TIME_TRAIN) -> dict[str, float | str]:
    """One row for a baseline / treatment pair of arms at one target.

    ``base`` and ``treat`` hold one row per run with columns seed, budget, and the metric columns named by the
    keys (steps- and seconds-to-target NaN when τ was not reached; ``seconds_budget_key`` = the run's training
    seconds, its censoring time on the clock). Rows are paired by seed; unpaired seeds are dropped.
    """
    cols = ["seed", "budget", tau_key, seconds_key, error_key, seconds_budget_key]
    pairs = base[cols].merge(treat[cols], on="seed", suffixes=("_b", "_t")).sort_values("seed")
    rb, rt = (Runtimes.of(pairs[f"{tau_key}{s}"], pairs[f"budget{s}"]) for s in ("_b", "_t"))
    sb, st = (Runtimes.of(pairs[f"{seconds_key}{s}"], pairs[f"{seconds_budget_key}{s}"]) for s in ("_b", "_t"))
    mb, mt = km_median(rb, PER_MEDIAN), km_median(rt, PER_MEDIAN)
    speed, speed_low, speed_high = median_ratio(mb, mt)
    wall, wall_low, wall_high = median_ratio(km_median(sb, PER_MEDIAN), km_median(st, PER_MEDIAN))
    e_b, e_t, e_ratio, e_low, e_high = ert_ratio(rb, rt)
    kinds = pair_kinds(rb, rt)
    exact = (rb.times / rt.times)[rb.reached & rt.reached]
    ex_low, ex_high = _bootstrap((exact,), _geomean)
    err_b, err_t = pairs[f"{error_key}_b"].to_numpy(float), pairs[f"{error_key}_t"].to_numpy(float)
    with np.errstate(all="ignore"):
        log_err = np.log(err_b) - np.log(err_t)
    log_err = log_err[np.isfinite(log_err)]
    er_low, er_high = _bootstrap((log_err,), np.mean)
    n_err = int(np.count_nonzero(log_err))
    return {
        "pairs": len(pairs), "budget": float(pairs["budget_b"].max()) if len(pairs) else math.nan,
        "reached_base": rb.n_reached, "reached_treat": rt.n_reached,
        "median_base": mb.estimate, "median_base_low": mb.low, "median_base_high": mb.high,
        "median_treat": mt.estimate, "median_treat_low": mt.low, "median_treat_high": mt.high,
        "speedup": speed, "speedup_low": speed_low, "speedup_high": speed_high,
        "speedup_statement": statement(speed, speed_low, speed_high),
        "ert_base": e_b, "ert_treat": e_t, "ert_ratio": e_ratio, "ert_ratio_low": e_low, "ert_ratio_high": e_high,
        "exact_pairs": int(kinds.get("exact", 0)), "exact_ratio": float(_geomean(exact)) if len(exact) else math.nan,
        "exact_ratio_low": ex_low, "exact_ratio_high": ex_high,
        "pairs_treat_only": int(kinds.get("treat_only", 0)), "pairs_base_only": int(kinds.get("base_only", 0)),
        "pairs_neither": int(kinds.get("neither", 0)),
        "logrank_p": logrank_p(rb, rt),
        "wall_speedup": wall, "wall_speedup_low": wall_low, "wall_speedup_high": wall_high,
        "error_base": float(np.nanmedian(err_b)) if np.isfinite(err_b).any() else math.nan,
        "error_treat": float(np.nanmedian(err_t)) if np.isfinite(err_t).any() else math.nan,
        "error_ratio": float(np.exp(log_err.mean())) if len(log_err) else math.nan,
        "error_ratio_low": math.exp(er_low) if not math.isnan(er_low) else math.nan,
        "error_ratio_high": math.exp(er_high) if not math.isnan(er_high) else math.nan,
        "signed_rank_p": signed_rank_p(log_err), "signed_rank_min_p": min_signed_rank_p(n_err),
        "underpowered": bool(not min_signed_rank_p(n_err) <= ALPHA),
        "initial_rank_base": float(np.nanmedian(base[rank_key])) if base[rank_key].notna().any() else math.nan,
        "initial_rank_treat": float(np.nanmedian(treat[rank_key])) if treat[rank_key].notna().any() else math.nan,
    }
