"""Staircase statistics of a logged training series (docs/science.md §2, our convention).

Input: logging steps s_i, training loss L_i and the ε-rank r_i of the last hidden layer at the headline ε.
  * rank step: r rises by ≥ 1 above the current level and stays there for ≥ 3 consecutive logging points;
    a persistent fall lowers the level without counting.
  * plateau: a maximal run of consecutive logging segments over which the loss falls by less than 5 % per
    10 % of the step budget, i.e. 1 − (L_{i+1}/L_i)^{0.1·budget/(s_{i+1}−s_i)} < 0.05; a plateau needs ≥ 2
    segments (3 logging points, the same persistence as a rank step).
  * Spearman correlation between −Δlog L and Δr over consecutive logging windows (NaN when either is constant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

PERSIST = 3
PLATEAU_DROP = 0.05
PLATEAU_WINDOW = 0.10


@dataclass
class StaircaseStats:
    rank_steps: int
    plateaus: int
    plateau_steps: int  # total length of plateaus, in training steps
    spearman: float


def count_rank_steps(rank: np.ndarray, persist: int = PERSIST) -> int:
    level, steps = rank[0], 0
    for i in range(1, len(rank) - persist + 1):
        window = rank[i : i + persist]
        if window.min() >= level + 1:
            steps += 1
            level = window.min()
        elif window.max() <= level - 1:
            level = window.max()
    return int(steps)


def plateaus(step: np.ndarray, loss: np.ndarray, budget: float) -> list[tuple[int, int]]:
    """(first index, last index) of each plateau."""
    ratio = loss[1:] / loss[:-1]
    span = np.diff(step).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = 1 - np.power(ratio, PLATEAU_WINDOW * budget / span)
    flat = ~(drop >= PLATEAU_DROP)  # NaN (diverged) counts as flat
    runs, start = [], None
    for i, f in enumerate(np.append(flat, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start >= 2:
                runs.append((start, i))
            start = None
    return runs


def staircase_stats(step, loss, rank, budget: float | None = None) -> StaircaseStats:
    step, loss, rank = (np.asarray(a, dtype=float) for a in (step, loss, rank))
    budget = float(budget if budget is not None else step[-1] - step[0])
    runs = plateaus(step, loss, budget)
    d_loss = -np.diff(np.log(loss))
    d_rank = np.diff(rank)
    if len(d_loss) < 2 or np.ptp(d_loss) == 0 or np.ptp(d_rank) == 0:
        rho = math.nan
    else:
        rho = float(spearmanr(d_loss, d_rank).statistic)
    return StaircaseStats(rank_steps=count_rank_steps(rank), plateaus=len(runs),
                          plateau_steps=int(sum(step[b] - step[a] for a, b in runs)), spearman=rho)
