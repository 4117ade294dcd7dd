"""Staircase statistics of a logged training series, found as change points (docs/science.md §2).

Input: logging steps s_i, training loss L_i and the ε-rank r_i of the last hidden layer at the headline ε.

* **Rank steps.** r is segmented into pieces of constant level (PELT, least-squares cost, segments of ≥ 3
  logging points: a step must persist); a rank step is a change point where the next piece's median exceeds
  the previous piece's by ≥ 1.
* **Plateaus.** y = log10 L is segmented into pieces of constant slope (PELT, least-squares linear cost,
  ≥ 3 points per piece). A piece is a plateau when the piece after it (on the fitted lines, the jump at the
  change point included) descends at least ``STEEPER`` times faster per step and ends at a new low at least
  ``DROP_DECADES`` below every earlier piece: a plateau is the flat tread before a step down. The last piece
  is never a plateau (nothing follows: a converged run oscillating at its floor has no staircase), nor is the
  climb of an Adam spike (its recovery reaches no new low). Only the record up to ``until`` is read: the
  analysis gives every arm of a comparison the same window (analysis.report.common_window).
* **Spearman correlation** between −Δlog L and Δr over consecutive logging windows (NaN when either is
  constant).

Both segmentations use the BIC penalty k σ̂² ln n (k = parameters a new piece adds: 2 for a level, 3 for a
line) and σ̂² the series' noise: for the rank, half the mean squared first difference (its noise is ±1 blips;
floored at the integer quantisation, 1/12); for the log-loss, a robust (MAD) estimate from second differences,
floored at ``RESOLUTION``². The penalty adapts to each run's noise instead of a fixed threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SIZE = 3  # logging points per piece: a level or a slope must persist
STEEPER = 3.0  # the descent after a plateau is at least this many times faster (docs/science.md §2)
DROP_DECADES = 0.1  # and reaches a new low by at least this much (a factor 1.26)
MAD_TO_SIGMA = 1.4826  # σ of Gaussian noise from its median absolute deviation
LEVEL_PARAMS = 2  # BIC: a new level piece adds its mean and its change point
LINEAR_PARAMS = 3  # a new linear piece adds slope, intercept and its change point
RESOLUTION = 0.05  # decades: a smooth loss curve is not cut for bends that move it by less than this


@dataclass
class StaircaseStats:
    rank_steps: int
    plateaus: int
    plateau_steps: int  # total length of plateaus, in training steps
    spearman: float


def _variance(noise: np.ndarray) -> float:
    """σ̂² with σ̂ = 1.4826 · MAD(noise): robust to the few large differences at the steps themselves."""
    return (MAD_TO_SIGMA * float(np.median(np.abs(noise - np.median(noise))))) ** 2


def _pieces(ends: list[int]) -> list[tuple[int, int]]:
    """[(first, last)] index ranges of the pieces given ruptures' segment ends (the last end is n)."""
    starts = [0] + ends[:-1]
    return [(a, b - 1) for a, b in zip(starts, ends)]


def rank_levels(rank: np.ndarray) -> list[tuple[int, int]]:
    """Pieces of constant ε-rank level, [(first, last index)], as change points of a piecewise-constant mean."""
    rank = np.asarray(rank, dtype=float)
    n = len(rank)
    if n < 2 * MIN_SIZE:
        return [(0, n - 1)]
    # not the MAD here: a rank's differences are mostly 0 and its noise is ±1 blips, which a MAD of 0 ignores
    pen = LEVEL_PARAMS * max(float(np.mean(np.diff(rank) ** 2)) / 2, 1 / 12) * math.log(n)
    import ruptures as rpt  # here, not at the top: a trial imports this module for its figures, never Pelt

    ends = rpt.Pelt(model="l2", min_size=MIN_SIZE, jump=1).fit(rank.reshape(-1, 1)).predict(pen=max(pen, 1e-9))
    return _pieces(ends)


def count_rank_steps(rank: np.ndarray) -> int:
    """Change points of the rank level that raise its median by ≥ 1."""
    rank = np.asarray(rank, dtype=float)
    medians = [np.median(rank[a:b + 1]) for a, b in rank_levels(rank)]
    return int(sum(b - a >= 1 for a, b in zip(medians, medians[1:])))


def loss_pieces(step: np.ndarray, loss: np.ndarray) -> list[tuple[int, int]]:
    """Pieces of constant slope of log10 L(step), [(first, last index)]: change points of a piecewise-linear
    least-squares fit."""
    y = np.log10(np.asarray(loss, dtype=float))
    n = len(y)
    if n < 2 * MIN_SIZE:
        return [(0, n - 1)]
    pen = LINEAR_PARAMS * max(_variance(np.diff(y, 2) / math.sqrt(6)), RESOLUTION ** 2) * math.log(n)
    t = np.asarray(step, dtype=float) / max(float(step[-1] - step[0]), 1.0)
    signal = np.column_stack([y, t, np.ones(n)])  # ruptures' linear cost: y regressed on (t, 1) per piece
    import ruptures as rpt

    ends = rpt.Pelt(model="linear", min_size=MIN_SIZE, jump=1).fit(signal).predict(pen=max(pen, 1e-12))
    return _pieces(ends)


def plateaus(step: np.ndarray, loss: np.ndarray) -> list[tuple[int, int]]:
    """(first index, last index) of each plateau: a piece of log L whose successor, on the pieces' least-squares
    lines and counting the jump at the change point, descends ≥ STEEPER× faster per step and ends at a new
    low ≥ DROP_DECADES below every earlier piece's line."""
    step, y = np.asarray(step, dtype=float), np.log10(np.asarray(loss, dtype=float))
    pieces = loss_pieces(step, loss)
    lines = []  # fitted log L at each piece's first and last step
    for a, b in pieces:
        slope, icpt = np.polyfit(step[a:b + 1], y[a:b + 1], 1) if b > a else (0.0, y[a])
        lines.append((slope * step[a] + icpt, slope * step[b] + icpt))
    out = []
    for j in range(len(pieces) - 1):
        (a, b), (_, d) = pieces[j], pieces[j + 1]
        flat = (lines[j][0] - lines[j][1]) / max(step[b] - step[a], 1.0)  # descent per step along the tread
        after = (lines[j][1] - lines[j + 1][1]) / max(step[d] - step[b], 1.0)  # the next piece, jump included
        lowest = min(min(line) for line in lines[:j + 1])
        if after > 0 and after >= STEEPER * max(flat, 0.0) and lines[j + 1][1] <= lowest - DROP_DECADES:
            out.append((a, b))
    return out


def staircase_stats(step, loss, rank, until: float | None = None) -> StaircaseStats:
    """Rank steps, plateaus (count and total steps) and the Spearman correlation of one run's series, over the
    logging steps ≤ ``until`` (None: all). The analysis passes every arm of a comparison the same window: up to
    the step by which every run reached the smallest target (after it, the record is the optimiser's noise
    around a floor), or the whole budget."""
    step, loss, rank = (np.asarray(a, dtype=float) for a in (step, loss, rank))
    if until is not None and np.isfinite(until):
        keep = step <= until
        step, loss, rank = step[keep], loss[keep], rank[keep]
    runs = plateaus(step, loss)
    d_loss = -np.diff(np.log(loss))
    d_rank = np.diff(rank)
    if len(d_loss) < 2 or np.ptp(d_loss) == 0 or np.ptp(d_rank) == 0:
        rho = math.nan
    else:
        from scipy.stats import spearmanr  # here: drawing a run's previews need not import SciPy (0.7 s)

        rho = float(spearmanr(d_loss, d_rank).statistic)
    return StaircaseStats(rank_steps=count_rank_steps(rank), plateaus=len(runs),
                          plateau_steps=int(sum(step[b] - step[a] for a, b in runs)), spearman=rho)
