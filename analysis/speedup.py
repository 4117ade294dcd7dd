"""Paired speed-up statistics (docs/science.md §6).

Runs are paired by seed within (study, variant, task, arch): a baseline arm against a treatment arm (SFLI, or
a user's initialisation of role ``treatment``), same budget.
Per pair, speed-up = steps_base / steps_treat, where steps are the first logged step with metric ≤ τ:
  * both reached: exact;
  * baseline censored, treatment reached: a lower bound, budget / steps_treat;
  * treatment censored, baseline reached: an upper bound, steps_base / budget;
  * both censored: no information (counted, not used).
Aggregates over the usable pairs (bounds at their bound value, flagged): geometric mean and median with a 95 %
percentile bootstrap interval (scipy.stats.bootstrap, 5000 resamples, fixed seed), the same for wall-clock
seconds, the paired final-error ratio, and a Wilcoxon signed-rank test on log final error. Nothing censored is
dropped silently: every count is a column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 5000


@dataclass
class Interval:
    estimate: float
    low: float
    high: float


def _ci(values: np.ndarray, statistic) -> Interval:
    """Point estimate and 95 % percentile-bootstrap interval of ``statistic`` over a 1-D sample."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan)
    estimate = float(statistic(values))
    if len(values) < 2 or np.ptp(values) == 0:
        return Interval(estimate, estimate if len(values) > 1 else math.nan, estimate if len(values) > 1 else math.nan)
    res = stats.bootstrap((values,), statistic, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                          method="percentile", rng=np.random.default_rng(0))
    return Interval(estimate, float(res.confidence_interval.low), float(res.confidence_interval.high))


def geometric_mean_ci(ratios: np.ndarray) -> Interval:
    """exp(mean log r) with its interval (bootstrap of the mean of log r, mapped back)."""
    logs = _ci(np.log(ratios), np.mean)
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high)) if len(ratios) else logs


def median_ci(ratios: np.ndarray) -> Interval:
    return _ci(np.asarray(ratios, dtype=float), np.median)


def pair_kind(base: float, treat: float) -> str:
    reached_b, reached_s = not math.isnan(base), not math.isnan(treat)
    if reached_b and reached_s:
        return "exact"
    if reached_s:
        return "lower"
    if reached_b:
        return "upper"
    return "none"


def paired(base: pd.DataFrame, treat: pd.DataFrame, column: str, budget_column: str) -> pd.DataFrame:
    """Pair two arms' runs by seed: columns seed, base, treat (NaN = censored), budget, kind, ratio."""
    merged = base[["seed", column, budget_column]].merge(treat[["seed", column]], on="seed", suffixes=("_b", "_s"))
    rows = []
    for _, r in merged.sort_values("seed").iterrows():
        b, s, budget = float(r[f"{column}_b"]), float(r[f"{column}_s"]), float(r[budget_column])
        kind = pair_kind(b, s)
        ratio = {"exact": b / s if s > 0 else math.nan, "lower": budget / s if s > 0 else math.nan,
                 "upper": b / budget, "none": math.nan}[kind]
        rows.append({"seed": r["seed"], "base": b, "treat": s, "budget": budget, "kind": kind, "ratio": ratio})
    return pd.DataFrame(rows, columns=["seed", "base", "treat", "budget", "kind", "ratio"])


def wilcoxon_log_error(base_err: np.ndarray, sfli_err: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on log(error_base) − log(error_treat)."""
    d = np.log(np.asarray(base_err, float)) - np.log(np.asarray(sfli_err, float))
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def compare_arms(base: pd.DataFrame, treat: pd.DataFrame, tau_key: str, seconds_key: str, error_key: str,
                 rank_key: str) -> dict[str, float | str]:
    """One row of the speed-up table for a baseline / SFLI pair of arms at one target.

    ``base`` and ``treat`` hold one row per run with columns seed, budget, and the metric columns named by the
    keys (steps-to-target NaN when censored). Diverged or failed runs count as censored.
    """
    steps = paired(base, treat, tau_key, "budget")
    secs = base[["seed", seconds_key]].merge(treat[["seed", seconds_key]], on="seed", suffixes=("_b", "_s"))
    secs = secs.dropna()  # wall-clock speed-up only where both reached: seconds have no budget to bound by
    wall = (secs[f"{seconds_key}_b"] / secs[f"{seconds_key}_s"]).to_numpy()
    usable = steps[steps.kind != "none"]
    kinds = steps.kind.value_counts()
    g = geometric_mean_ci(usable.ratio.to_numpy())
    m = median_ci(usable.ratio.to_numpy())
    err = base[["seed", error_key]].merge(treat[["seed", error_key]], on="seed", suffixes=("_b", "_s"))
    err = err[np.isfinite(err[f"{error_key}_b"]) & np.isfinite(err[f"{error_key}_s"])]
    n = len(steps)
    if usable.empty:
        bound = "no usable pair"
    elif kinds.get("lower", 0) and not kinds.get("upper", 0):
        bound = "lower bound"
    elif kinds.get("upper", 0) and not kinds.get("lower", 0):
        bound = "upper bound"
    else:
        bound = "mixed bounds" if kinds.get("lower", 0) else "exact"
    return {
        "pairs": n,
        "reached_base": f"{int((~steps.base.isna()).sum())} of {n}",
        "reached_treat": f"{int((~steps.treat.isna()).sum())} of {n}",
        "median_steps_base": float(np.nanmedian(steps.base)) if steps.base.notna().any() else math.nan,
        "median_steps_treat": float(np.nanmedian(steps.treat)) if steps.treat.notna().any() else math.nan,
        "speedup_geomean": g.estimate, "speedup_ci_low": g.low, "speedup_ci_high": g.high,
        "speedup_median": m.estimate, "speedup_median_ci_low": m.low, "speedup_median_ci_high": m.high,
        "speedup_kind": bound, "censored_pairs": int(n - kinds.get("exact", 0)),
        "wall_speedup_geomean": geometric_mean_ci(wall).estimate if len(wall) else math.nan,
        "final_rel_l2_base": float(np.nanmedian(base[error_key])) if len(base) else math.nan,
        "final_rel_l2_treat": float(np.nanmedian(treat[error_key])) if len(treat) else math.nan,
        "error_ratio_geomean": float(np.exp(np.mean(np.log(err[f"{error_key}_b"] / err[f"{error_key}_s"]))))
        if len(err) else math.nan,
        "initial_rank_base": float(np.nanmedian(base[rank_key])) if rank_key in base else math.nan,
        "initial_rank_treat": float(np.nanmedian(treat[rank_key])) if rank_key in treat else math.nan,
        "wilcoxon_p": wilcoxon_log_error(err[f"{error_key}_b"], err[f"{error_key}_s"]),
    }
