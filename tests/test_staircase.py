"""Staircase statistics as change points (docs/science.md §2): known staircases, with and without noise."""

import math

import numpy as np
import pytest

from sfli_core.staircase import count_rank_steps, loss_pieces, plateaus, rank_levels, staircase_stats

STEP = np.arange(0, 4001, 25)  # 161 logging points


def staircase_log_loss(step):
    """log10 L: creep 0 → −0.1 until 1000, drop to −1 by 1200, creep to −1.1 until 2500, drop to −2.5 by 2800,
    then creep to −2.6: two treads followed by a step down, and a converged tail."""
    return np.interp(step, [0, 1000, 1200, 2500, 2800, 4000], [0, -0.1, -1, -1.1, -2.5, -2.6])


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.05])
def test_two_treads_are_found_where_they_are(noise):
    y = staircase_log_loss(STEP) + np.random.default_rng(0).normal(0, noise, len(STEP))
    found = plateaus(STEP, 10 ** y)
    assert len(found) == 2
    (a0, b0), (a1, b1) = found
    assert a0 == 0 and abs(STEP[b0] - 1000) <= 50  # the first tread ends where the drop starts
    assert abs(STEP[a1] - 1200) <= 75 and abs(STEP[b1] - 2500) <= 75
    stats = staircase_stats(STEP, 10 ** y, rank=np.r_[[1] * 41, [2] * 60, [5] * 60])
    assert stats.plateaus == 2 and stats.rank_steps == 2
    assert abs(stats.plateau_steps - (1000 + 1300)) <= 150


def test_steady_decay_and_a_converged_tail_are_not_plateaus():
    rng = np.random.default_rng(1)
    decay = -STEP / 1000 + rng.normal(0, 0.01, len(STEP))
    assert plateaus(STEP, 10 ** decay) == [] and len(loss_pieces(STEP, 10 ** decay)) == 1
    # fast descent to a floor, then Adam's oscillation and a spike that recovers to the same floor
    converged = np.where(STEP < 800, -STEP / 200, -4.0) + rng.normal(0, 0.05, len(STEP))
    converged[100:104] += [1.5, 1.0, 0.5, 0.1]
    assert plateaus(STEP, 10 ** converged) == []


def test_rank_levels_persist_and_steps_count_rises_of_the_level():
    assert count_rank_steps(np.r_[[1] * 30, [2] * 30, [3] * 30]) == 2
    assert count_rank_steps(np.r_[[1] * 30, [6] * 30]) == 1  # a jump by several counts once
    assert count_rank_steps(np.r_[[3] * 30, [1] * 30, [2] * 30]) == 1  # a fall lowers the level, uncounted
    blips = np.full(90, 4.0)
    blips[[10, 40, 70]] = 5.0  # isolated one-point blips do not persist
    assert count_rank_steps(blips) == 0
    rng = np.random.default_rng(2)
    noisy = np.r_[[1] * 30, [2] * 30, [3] * 30] + (rng.random(90) < 0.2) * rng.choice([-1, 1], 90)
    levels = rank_levels(noisy)
    assert len(levels) == 3 and count_rank_steps(noisy) == 2
    assert all(abs(a - true) <= 3 for (a, _), true in zip(levels, (0, 30, 60)))  # a blip may shift a border


def test_correlation_is_positive_when_drops_coincide_with_rank_steps_and_undefined_for_constant_rank():
    y = staircase_log_loss(STEP)
    aligned = np.r_[[1] * 41, np.linspace(1, 2, 8).round(), [2] * 52, np.linspace(2, 5, 12).round(), [5] * 48]
    misplaced = np.r_[[1] * 20, np.linspace(1, 2, 8).round(), [2] * 52, np.linspace(2, 5, 12).round(), [5] * 69]
    assert staircase_stats(STEP, 10 ** y, aligned).spearman > 0.2
    assert staircase_stats(STEP, 10 ** y, misplaced).spearman < 0
    assert math.isnan(staircase_stats(STEP, 10 ** y, np.full(len(STEP), 4)).spearman)


def test_every_arm_of_a_comparison_is_read_over_the_same_window():
    import pandas as pd

    from analysis.curves import common_window

    def frame(reached):
        f = pd.DataFrame({"loss": [1.0, 0.5], "rank": [1, 2]}, index=[0, 100])
        f.attrs["reached"] = reached
        return f

    # every run got there: up to the last of them, for both arms (not each run up to its own step)
    assert common_window({"sfli": [frame(200.0), frame(300.0)], "xavier": [frame(900.0)]}) == 900.0
    # one never did: the whole budget for everyone
    assert common_window({"sfli": [frame(200.0)], "xavier": [frame(float("nan"))]}) is None
