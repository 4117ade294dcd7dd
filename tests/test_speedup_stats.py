import math

import numpy as np
import pandas as pd
import pytest

from analysis.speedup import compare_arms, geometric_mean_ci, paired, wilcoxon_log_error

STEPS, SECS, ERR, RANK = "target/steps_to_1e-3", "target/seconds_to_1e-3", "final/eval/rel_l2", "initial/rank"


def arm(seeds, steps, errors=None, budget=1000, rank=1.0):
    steps = np.asarray(steps, dtype=float)
    errors = np.full(len(seeds), 0.1) if errors is None else np.asarray(errors, dtype=float)
    return pd.DataFrame({"seed": seeds, STEPS: steps, SECS: steps / 100, ERR: errors, "budget": budget,
                         RANK: rank})


def test_pairs_by_seed_not_by_row_order():
    base = arm([0, 1, 2], [100, 200, 400])
    sfli = arm([2, 0, 1], [100, 50, 100])  # shuffled rows
    pairs = paired(base, sfli, STEPS, "budget")
    assert pairs.ratio.tolist() == [2.0, 2.0, 4.0]
    row = compare_arms(base, sfli, STEPS, SECS, ERR, RANK)
    assert row["speedup_geomean"] == pytest.approx(16 ** (1 / 3))
    assert row["speedup_median"] == 2.0
    assert row["speedup_kind"] == "exact" and row["censored_pairs"] == 0
    assert row["wall_speedup_geomean"] == pytest.approx(16 ** (1 / 3))


def test_censored_pairs_are_bounds_and_counted_never_dropped():
    base = arm([0, 1, 2, 3], [100, np.nan, np.nan, 200])
    sfli = arm([0, 1, 2, 3], [50, 100, np.nan, np.nan])
    pairs = paired(base, sfli, STEPS, "budget").set_index("seed")
    assert pairs.loc[0, "kind"] == "exact" and pairs.loc[0, "ratio"] == 2.0
    assert pairs.loc[1, "kind"] == "lower" and pairs.loc[1, "ratio"] == 10.0  # budget / steps_sfli
    assert pairs.loc[2, "kind"] == "none" and math.isnan(pairs.loc[2, "ratio"])
    assert pairs.loc[3, "kind"] == "upper" and pairs.loc[3, "ratio"] == 0.2  # steps_base / budget
    row = compare_arms(base, sfli, STEPS, SECS, ERR, RANK)
    assert row["pairs"] == 4 and row["censored_pairs"] == 3
    assert row["reached_base"] == "2 of 4" and row["reached_treat"] == "2 of 4"
    assert row["speedup_kind"] == "mixed bounds"
    assert row["speedup_geomean"] == pytest.approx((2.0 * 10.0 * 0.2) ** (1 / 3))
    only_lower = compare_arms(arm([0, 1], [100, np.nan]), arm([0, 1], [50, 100]), STEPS, SECS, ERR, RANK)
    assert only_lower["speedup_kind"] == "lower bound"
    nothing = compare_arms(arm([0], [np.nan]), arm([0], [np.nan]), STEPS, SECS, ERR, RANK)
    assert nothing["speedup_kind"] == "no usable pair" and math.isnan(nothing["speedup_geomean"])


def test_geometric_mean_is_exact():
    assert geometric_mean_ci(np.array([2.0, 8.0])).estimate == pytest.approx(4.0)


def test_bootstrap_interval_covers_the_true_ratio_and_excludes_no_effect():
    rng = np.random.default_rng(1)
    true = 3.0
    base_steps = rng.integers(200, 900, size=40).astype(float)
    sfli_steps = base_steps / (true * np.exp(rng.normal(0, 0.3, size=40)))
    row = compare_arms(arm(range(40), base_steps), arm(range(40), sfli_steps), STEPS, SECS, ERR, RANK)
    assert row["speedup_ci_low"] < true < row["speedup_ci_high"]
    assert row["speedup_ci_low"] > 1.0
    assert row["speedup_ci_high"] / row["speedup_ci_low"] < 1.6  # informative at n = 40


def test_zero_effect_interval_covers_one_and_wilcoxon_sees_nothing():
    rng = np.random.default_rng(2)
    base_steps = rng.integers(200, 900, size=30).astype(float)
    sfli_steps = base_steps * np.exp(rng.normal(0, 0.2, size=30))
    errors = np.exp(rng.normal(-3, 0.5, size=30))
    row = compare_arms(arm(range(30), base_steps, errors), arm(range(30), sfli_steps,
                                                                errors * np.exp(rng.normal(0, 0.1, 30))),
                       STEPS, SECS, ERR, RANK)
    assert row["speedup_ci_low"] < 1.0 < row["speedup_ci_high"]
    assert row["wilcoxon_p"] > 0.05


def test_wilcoxon_detects_a_tenfold_error_reduction():
    rng = np.random.default_rng(3)
    sfli_err = np.exp(rng.normal(-5, 0.5, size=20))
    assert wilcoxon_log_error(10 * sfli_err * np.exp(rng.normal(0, 0.2, 20)), sfli_err) < 0.001
    assert wilcoxon_log_error(sfli_err, sfli_err) == 1.0
