"""One effect per claim: paired log ratios per cell, pooled across cells by a random-effects meta-analysis
(docs/science.md §6b).

Per cell (study × grid point × task × architecture × baseline arm × treatment arm), pairs by seed:

  speed     d_s = log( min(T_b, B) / min(T_t, B) )   T = steps to the cell's first target τ, B = the budget;
            a run that never reached τ (or diverged) counts B — the restricted time to τ, whose mean is the
            restricted mean survival time with censoring only at the budget: no run is dropped, and a pair
            where neither arm got there adds 0 (no evidence either way);
  accuracy  d_s = log( e_b / e_t )                    e = final relative L2 error.

A cell's effect is the mean of its d_s with the t-interval of a paired mean (exact under normal log ratios,
and ≥ 93 % at nominal 95 % for skewed ones at 6 to 12 pairs: tests/test_pooled.py); its variance s²/n.
Cells are pooled with statsmodels' ``combine_effects`` (Paule–Mandel τ², truncated at 0; the random-effects
mean with a t-interval on k − 1 degrees of freedom, wider than the normal one with few cells); one cell is
its own effect.
Cells of one claim that share an arm (a baseline, or the treatment) are not independent: the pooled interval
treats them as if they were (said beside every pooled effect).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.power import TTestPower

from sfli_core import keys

from .runs import arms_by_role

CELL = ["study", "variant", "task", "arch"]
POWER, ALPHA = 0.8, 0.05
MAX_SEEDS = 1000  # beyond it: None (no study of ours would run that many)


@dataclass
class Pooled:
    """A claim's pooled log ratio (> 0: the treatment better) over ``cells`` cells of ``pairs`` pairs."""
    effect: float
    low: float
    high: float
    p: float
    cells: int
    pairs: int
    tau2: float
    i2: float
    sd: float  # the pairs' standard deviation of d (pooled within cells): for the seeds a decision would need

    @property
    def ratio(self) -> str:
        return f"{math.exp(self.effect):.3g}× [{math.exp(self.low):.3g}, {math.exp(self.high):.3g}]"

    def seeds_needed(self, alpha: float = ALPHA) -> int | None:
        """Evaluation seeds per cell that would decide the claim at the observed effect and spreads with 80 %
        power at level ``alpha``: one cell, a paired t-test (statsmodels); several, the random-effects test on k − 1
        df, whose standard error sqrt((τ² + sd²/n)/k) shrinks with the seeds n only down to sqrt(τ²/k) — None
        when even that cannot decide it (or the effect is 0, the spread unknown): more cells would, not more
        seeds (:meth:`cells_decide`)."""
        if not (self.sd > 0 and self.effect != 0 and math.isfinite(self.sd)):
            return None
        if self.cells == 1:
            power, size = TTestPower(), abs(self.effect) / self.sd
            return next((n for n in range(2, MAX_SEEDS + 1) if power.power(size, n, alpha) >= POWER), None)
        room = self._room(alpha)  # the seeds' noise may add at most this to τ² in a cell's variance
        return max(2, math.ceil(self.sd ** 2 / room)) if room > 0 and self.sd ** 2 / room <= MAX_SEEDS else None

    def _room(self, alpha: float) -> float:
        """k (effect / z)² − τ²: the within-cell variance sd²/n that SE = sqrt((τ² + sd²/n)/k) can afford for
        |effect|/SE ≥ z (≤ 0: none, whatever n)."""
        return self.cells * (self.effect / self._z_needed(alpha)) ** 2 - self.tau2

    def _z_needed(self, alpha: float = ALPHA) -> float:
        """|effect| / SE that a two-sided t-test on k − 1 df passes with 80 % power (normal approximation of the
        power: t_{1−α/2} + t_{power})."""
        df = self.cells - 1
        return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(POWER, df))

    def cells_decide(self, alpha: float = ALPHA) -> bool:
        """Whether the between-cell spread τ² alone keeps the claim undecided at any number of seeds."""
        return self.cells > 1 and self.tau2 > 0 and self._room(alpha) <= 0


def paired_log_ratios(runs: pd.DataFrame, value: Callable[[pd.DataFrame], pd.Series | None],
                      higher_is_better: bool = False) -> pd.DataFrame:
    """One row per cell and seed pair: CELL, baseline, treatment, seed, both runs' values (``base``, ``treat``)
    and d, the log ratio oriented so that d > 0 favours the treatment (baseline over treatment, or the reverse
    when ``higher_is_better``). ``value(cell's runs)``: one positive number per run, or None when the cell has
    none (:func:`restricted_steps`, :func:`final_error`, or a claim's own)."""
    rows = []
    for cell, g in runs.groupby(CELL, sort=True):
        treatments, baselines = arms_by_role(g)
        values = value(g)
        if values is None:
            continue
        g = g.assign(value=values.astype(float))
        for b in baselines:
            for t in treatments:
                m = g[g["arm"] == b][["seed", "value"]].merge(g[g["arm"] == t][["seed", "value"]], on="seed",
                                                              suffixes=("_b", "_t"))
                m = m[(m["value_b"] > 0) & (m["value_t"] > 0)]
                rows += [{**dict(zip(CELL, cell)), "baseline": b, "treatment": t, "seed": s, "base": vb, "treat": vt,
                          "d": math.log(vt / vb) if higher_is_better else math.log(vb / vt)}
                         for s, vb, vt in zip(m["seed"], m["value_b"], m["value_t"])]
    return pd.DataFrame(rows)


def final_error(g: pd.DataFrame) -> pd.Series | None:
    """The final relative L2 error per run (None when the runs did not record it)."""
    return g.get(keys.final(keys.EVAL_REL_L2))


def restricted_steps(g: pd.DataFrame) -> pd.Series:
    """min(steps to the cell's first target, budget) per run: the budget when it never got there."""
    tau = max(g["thresholds"].iloc[0])
    reached = g[keys.steps_to(tau)] if keys.steps_to(tau) in g else pd.Series(np.nan, index=g.index)
    return reached.fillna(g["budget"]).clip(upper=g["budget"]).clip(lower=1)


def cell_effects(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: n pairs, mean d, its variance s²/n and 95 % t-interval."""
    rows = []
    for cell, g in pairs.groupby(CELL + ["baseline", "treatment"], sort=True):
        d = g["d"].to_numpy()
        n, mean = len(d), float(d.mean())
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        rows.append({**dict(zip(CELL + ["baseline", "treatment"], cell)), "pairs": n, "effect": mean,
                     "variance": sd ** 2 / n if n > 1 else math.nan, "sd": sd, "low": mean - half,
                     "high": mean + half})
    return pd.DataFrame(rows)


def pool(cells: pd.DataFrame) -> Pooled | None:
    """The random-effects pooled effect of ``cell_effects`` rows (None without a cell of ≥ 2 pairs)."""
    cells = cells[cells["variance"].notna()]
    if cells.empty:
        return None
    pairs = int(cells["pairs"].sum())
    sd = float(np.sqrt(np.average(cells["sd"] ** 2, weights=cells["pairs"] - 1)))
    if len(cells) == 1:
        c = cells.iloc[0]
        se = math.sqrt(c["variance"])
        p = 2 * stats.t.sf(abs(c["effect"]) / se, c["pairs"] - 1) if se > 0 else (0.0 if c["effect"] else 1.0)
        return Pooled(float(c["effect"]), float(c["low"]), float(c["high"]), float(p), 1, pairs, 0.0, 0.0, sd)
    variances = np.maximum(cells["variance"].to_numpy(), 1e-12)  # a cell of identical pairs has s = 0
    with warnings.catch_warnings():  # the cells' own intervals (not used here) would want their sample sizes
        warnings.simplefilter("ignore")
        result = combine_effects(cells["effect"].to_numpy(), variances, method_re="pm", use_t=True)
        row = result.summary_frame().loc["random effect"]
    effect, se = float(row["eff"]), float(row["sd_eff"])
    p = 2 * stats.t.sf(abs(effect) / se, len(cells) - 1) if se > 0 else 1.0
    return Pooled(effect, float(row["ci_low"]), float(row["ci_upp"]), float(p), len(cells), pairs,
                  float(result.tau2), float(max(0.0, result.i2)), sd)
