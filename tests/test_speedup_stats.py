"""Censored runtime statistics against known answers (docs/science.md §6)."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.speedup import adjust, compare_arms, min_signed_rank_p, signed_rank_p, statement
from analysis.survival import Runtimes, ert, km_median, logrank_p

STEPS, SECS, ERR, RANK = "target/steps_to_1e-3", "target/seconds_to_1e-3", "final/eval/rel_l2", "initial/rank"


def arm(steps, errors=None, budget=1000.0, seeds=None):
    """An arm's run table: steps-to-target (NaN = not reached), seconds = steps / 100, training seconds =
    budget / 100."""
    steps = np.asarray(steps, dtype=float)
    seeds = range(len(steps)) if seeds is None else seeds
    errors = np.full(len(steps), 0.1) if errors is None else np.asarray(errors, dtype=float)
    return pd.DataFrame({"seed": list(seeds), STEPS: steps, SECS: steps / 100, ERR: errors, "budget": budget,
                         "time/train_s": budget / 100, RANK: 1.0})


def censor(times, budget):
    return np.where(times <= budget, times, np.nan)


@pytest.mark.parametrize("n", [7, 8, 21])
def test_without_censoring_the_km_median_is_the_sample_median(n):
    x = np.random.default_rng(n).permutation(np.arange(1, n + 1) * 37.0)
    m = km_median(Runtimes.of(x, 1e9))
    assert m.estimate == np.median(x)
    assert m.low <= m.estimate <= m.high < math.inf


def test_ert_counts_the_full_budget_of_every_run_that_missed():
    r = Runtimes.of([100, 200, np.nan, np.nan], 1000)
    assert float(ert(r.times, r.reached)) == (100 + 200 + 1000 + 1000) / 2
    assert math.isinf(float(ert(*(lambda q: (q.times, q.reached))(Runtimes.of([np.nan], 10)))))


def test_known_hazard_ratio_under_heavy_censoring():
    """Exponential runtimes: ERT under censoring at any budget equals the mean 1/λ, so the ERT ratio is the
    hazard ratio (3); the median ratio is 3 as well."""
    rng = np.random.default_rng(0)
    n, budget = 1000, 300.0
    base = rng.exponential(1000.0, n)  # P(reach by the budget) = 26 %
    treat = rng.exponential(1000.0 / 3, n)
    row = compare_arms(arm(censor(base, budget), budget=budget), arm(censor(treat, budget), budget=budget),
                       STEPS, SECS, ERR, RANK)
    assert row["reached_base"] < 0.35 * n
    assert row["ert_ratio"] == pytest.approx(3.0, rel=0.15)
    assert row["ert_ratio_low"] < 3.0 < row["ert_ratio_high"]
    assert row["logrank_p"] < 1e-10
    assert math.isnan(row["speedup"]) and row["speedup_statement"].startswith("≥")  # baseline median > budget
    assert 1.0 < row["speedup_low"] < 3.0


def test_identical_arms_show_no_effect():
    steps = [100, 250, 400, np.nan, 700, 120]
    errors = [0.1, 0.2, 0.05, 0.3, 0.1, 0.2]
    row = compare_arms(arm(steps, errors), arm(steps, errors), STEPS, SECS, ERR, RANK)
    assert row["logrank_p"] == 1.0 and row["speedup"] == 1.0 and row["ert_ratio"] == 1.0
    assert row["exact_ratio"] == 1.0 and row["error_ratio"] == 1.0 and row["signed_rank_p"] == 1.0
    assert row["speedup_low"] <= 1.0 <= row["speedup_high"]


def test_zero_effect_interval_covers_one_and_the_tests_see_nothing():
    rng = np.random.default_rng(2)
    n = 30
    base, treat = rng.lognormal(6, 0.5, n), rng.lognormal(6, 0.5, n)
    errors = np.exp(rng.normal(-3, 0.5, n))
    row = compare_arms(arm(censor(base, 800), errors, 800), arm(censor(treat, 800), errors * np.exp(
        rng.normal(0, 0.3, n)), 800), STEPS, SECS, ERR, RANK)
    for name in ("speedup", "ert_ratio", "exact_ratio", "error_ratio"):
        assert row[f"{name}_low"] < 1.0 < row[f"{name}_high"], name
    assert row["logrank_p"] > 0.05 and row["signed_rank_p"] > 0.05


def test_pairs_by_seed_and_exact_pairs_only():
    base = arm([100, 200, 400, np.nan, np.nan], seeds=[0, 1, 2, 3, 4])
    treat = arm([100, 50, np.nan, 100, np.nan], seeds=[2, 0, 1, 3, 4])  # rows in another order
    row = compare_arms(base, treat, STEPS, SECS, ERR, RANK)
    # seed 0: 100/50, seed 2: 400/100 are exact; seed 1 base only; seed 3 treat only; seed 4 neither
    assert row["exact_pairs"] == 2 and row["exact_ratio"] == pytest.approx(math.sqrt(2 * 4))
    assert (row["pairs_base_only"], row["pairs_treat_only"], row["pairs_neither"]) == (1, 1, 1)
    assert (row["reached_base"], row["reached_treat"], row["pairs"]) == (3, 3, 5)


def test_signed_rank_power_is_stated():
    assert min_signed_rank_p(4) == 0.125 and min_signed_rank_p(8) == pytest.approx(0.0078125)
    four = compare_arms(arm([100] * 4, [1, 2, 3, 4]), arm([50] * 4, [0.1, 0.2, 0.3, 0.4]), STEPS, SECS, ERR, RANK)
    assert four["underpowered"] and four["signed_rank_p"] == 0.125 == four["signed_rank_min_p"]
    assert four["error_ratio"] == pytest.approx(10.0)
    rng = np.random.default_rng(3)
    treat_err = np.exp(rng.normal(-5, 0.5, 20))
    assert signed_rank_p(np.log(10 * treat_err * np.exp(rng.normal(0, 0.2, 20))) - np.log(treat_err)) < 0.001


def test_benjamini_hochberg_known_answer():
    got = adjust(pd.Series([0.01, 0.04, 0.03, 0.5, np.nan]))
    assert got.iloc[:4].tolist() == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert math.isnan(got.iloc[4])


def test_statements():
    assert statement(2.0, 1.5, 3.0) == "2× [1.5, 3]"
    assert statement(math.nan, 4.0, math.inf) == "≥ 4×"
    assert statement(math.nan, 0.0, 0.5) == "≤ 0.5×"
    assert statement(math.nan, 0.0, math.inf) == "no estimate"


def test_one_sided_bound_covers_the_true_speedup_at_its_nominal_rate():
    """300 synthetic studies of 8 seed pairs: the baseline's median (3000 steps) lies beyond the budget
    (2000), the treatment's is 300; true speed-up of medians 10. The stated 95 % lower bound must be ≤ 10 in
    at least 95 % of studies (it is conservative by construction), and informative (> 1) in most."""
    rng = np.random.default_rng(7)
    true, budget, covered, informative = 10.0, 2000.0, 0, 0
    for _ in range(300):
        base = rng.lognormal(math.log(3000), 0.6, 8)
        treat = rng.lognormal(math.log(300), 0.6, 8)
        row = compare_arms(arm(censor(base, budget), budget=budget), arm(censor(treat, budget), budget=budget),
                           STEPS, SECS, ERR, RANK)
        covered += row["speedup_low"] <= true
        informative += row["speedup_low"] > 1.0
    assert covered / 300 >= 0.95
    assert informative / 300 > 0.5


def test_two_sided_interval_covers_at_its_nominal_rate_without_censoring():
    rng = np.random.default_rng(8)
    hits = 0
    for _ in range(300):
        base, treat = rng.lognormal(math.log(900), 0.5, 10), rng.lognormal(math.log(300), 0.5, 10)
        row = compare_arms(arm(base, budget=1e6), arm(treat, budget=1e6), STEPS, SECS, ERR, RANK)
        hits += row["speedup_low"] <= 3.0 <= row["speedup_high"]
    assert hits / 300 >= 0.95


def test_logrank_without_any_event_is_no_information():
    none = Runtimes.of([np.nan] * 3, 100)
    assert math.isnan(logrank_p(none, none))
