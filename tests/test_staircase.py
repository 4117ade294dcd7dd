import math

import numpy as np

from sfli_core.staircase import count_rank_steps, plateaus, staircase_stats


def test_rank_steps_need_three_persistent_points():
    assert count_rank_steps(np.array([1, 1, 2, 2, 2, 3, 3, 3, 3])) == 2
    assert count_rank_steps(np.array([1, 2, 1, 2, 1, 1, 1])) == 0  # blips do not persist
    assert count_rank_steps(np.array([1, 5, 5, 5])) == 1  # a jump by several counts once
    assert count_rank_steps(np.array([3, 3, 1, 1, 1, 2, 2, 2])) == 1  # after a fall the level is lower


def test_plateaus_on_a_synthetic_staircase():
    step = np.arange(0, 1001, 50)  # budget 1000, 10 % = 100 steps = 2 logging intervals
    loss = np.ones_like(step, dtype=float)
    loss[5:] = 0.1  # a single drop between step 200 and 250
    loss[15:] = 0.01  # and another between 700 and 750
    runs = plateaus(step, loss, budget=1000)
    assert runs == [(0, 4), (5, 14), (15, 20)]
    stats = staircase_stats(step, loss, rank=np.r_[[1] * 5, [2] * 10, [3] * 6], budget=1000)
    assert stats.plateaus == 3 and stats.rank_steps == 2
    assert stats.plateau_steps == 200 + 450 + 250
    assert stats.spearman > 0.5  # loss drops coincide with rank steps


def test_steady_decay_is_not_a_plateau_and_constant_rank_has_no_correlation():
    step = np.arange(0, 1001, 50)
    loss = np.exp(-step / 100.0)  # falls far more than 5 % per 100 steps
    stats = staircase_stats(step, loss, rank=np.full(len(step), 4))
    assert stats.plateaus == 0 and stats.rank_steps == 0
    assert math.isnan(stats.spearman)
