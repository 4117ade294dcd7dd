"""The claims table's verdicts (analysis/claims.py) on synthetic recorded data with known answers."""

import pandas as pd

from analysis import claims
from analysis.catalogue import ClaimSpec
from analysis.claims import Verdict

SPEC = ClaimSpec(claim="claim", source="paper", test="speed", studies=["s"])


def runs(ranks_base, ranks_treat, final_base=None, final_treat=None):
    """Evaluation runs of one grid point: a Xavier and an SFLI arm, one run per seed, 3 hidden layers."""
    rows = []
    for arm, init, role, initial, final in (("xavier", "xavier_normal", "baseline", ranks_base, final_base),
                                            ("sfli", "sfli", "treatment", ranks_treat, final_treat)):
        for seed, r in enumerate(initial):
            row = {"study": "s", "variant": "base", "task": "fit1d_multiscale", "arch": "mlp", "arm": arm,
                   "init": init, "init_role": role, "seed": seed, "hidden_layers": 3, "headline": 1e-3,
                   "initial/rank/eps1e-3/layer3": r}
            if final is not None:
                row.update({f"final/rank/eps1e-3/layer{l}": v for l, v in enumerate(final[seed], start=1)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_initial_rank_is_reproduced_only_when_every_pair_is_higher():
    v = claims.initial_rank(runs([1, 2, 1, 1, 2, 1, 1, 3], [40, 38, 41, 39, 40, 42, 37, 40]), SPEC)
    assert v.verdict == Verdict.REPRODUCED
    assert "8 of 8 seed pairs" in v.statistic and "sign test p = 3.9e-03" in v.statistic  # 2⁻⁸, one-sided
    mixed = claims.initial_rank(runs([1, 2, 50, 1], [40, 38, 41, 39]), SPEC)
    assert mixed.verdict == Verdict.PARTLY and "3 of 4 seed pairs" in mixed.statistic


def test_the_treatment_is_the_recorded_role_not_the_name():
    """A scheme called anything, recorded as a treatment, is paired as the treatment; SFLI recorded as a
    baseline (a user's study comparing SFLI variants) is a baseline."""
    table = runs([1, 2, 1, 1], [40, 38, 41, 39])
    swapped = table.assign(init_role=table["init_role"].map({"baseline": "treatment", "treatment": "baseline"}))
    v = claims.initial_rank(swapped, SPEC)
    assert v.verdict == Verdict.NOT_REPRODUCED and "treatment higher in 0 of 4 seed pairs" in v.statistic
    mine = table.assign(init=table["init"].replace("sfli", "lecun_treatment"), arm=table["arm"].replace("sfli", "mine"))
    pairs = claims.paired_initial_ranks(mine)
    assert set(pairs["treatment"]) == {"mine"} and set(pairs["baseline"]) == {"xavier"}


def test_depth_growth_counts_runs_with_a_binomial_interval():
    grows, falls = [1, 5, 9], [9, 5, 1]
    v = claims.depth(runs([1] * 8, [40] * 8, final_base=[grows] * 8, final_treat=[falls] * 8), SPEC)
    assert v.verdict == Verdict.PARTLY  # holds for the standard initialisations, not for SFLI
    assert "baselines: non-decreasing in 8 of 8 runs (100%, 95 % CI 63%–100%)" in v.statistic
    assert "treatment: non-decreasing in 0 of 8 runs" in v.statistic
    few = claims.depth(runs([1] * 4, [40] * 4, final_base=[grows] * 4, final_treat=[grows] * 4), SPEC)
    assert few.verdict == Verdict.INCONCLUSIVE  # 4 of 4 cannot show a majority at 95 % (Clopper–Pearson 40 %)


def speed_rows(**cols):
    base = {"study": "s", "variant": "v", "task": "fit1d_multiscale", "arch": "mlp", "baseline": "xavier",
            "treatment": "sfli", "tau": 1e-2, "budget": 1000, "pairs": 8, "speedup_statement": "x",
            "reached_base": 2, "reached_treat": 8,
            "logrank_p_adj": 0.001, "signed_rank_p_adj": 0.01}
    n = len(next(iter(cols.values())))
    return pd.DataFrame([{**base, "variant": f"v{i}", **{k: v[i] for k, v in cols.items()}} for i in range(n)])


def test_speed_and_accuracy_grades_need_the_interval_and_the_adjusted_p():
    table = speed_rows(speedup_low=[2.0, 0.8, 1.5], speedup_high=[9.0, 3.0, float("inf")], ert_ratio=[3, 1, 2],
                       error_ratio=[3.0, 1.2, 0.5], error_ratio_low=[2.0, 0.9, 0.3], error_ratio_high=[4.0, 1.5, 0.8])
    table.loc[2, "logrank_p_adj"] = 0.2  # an interval above 1 without a significant test does not count
    v = claims.speed(table, SPEC)
    assert v.verdict == Verdict.PARTLY and "in 1 of 3 comparisons" in v.statistic
    a = claims.accuracy(table, SPEC)
    assert a.verdict == Verdict.PARTLY and "in 1 of 3" in a.statistic and "higher in 1" in a.statistic
    other = SPEC.model_copy(update={"studies": ["other"]})
    assert claims.speed(claims._select(table, other), other).verdict == Verdict.NOT_TESTED
    no_interval = table.assign(speedup_low=0.0, speedup_high=float("inf"), ert_ratio=float("inf"))
    assert "in 2 of 3" in claims.speed(no_interval, SPEC).statistic  # only SFLI got there
    silent = table.assign(reached_base=0, reached_treat=0)
    assert claims.speed(silent, SPEC).verdict == Verdict.NOT_TESTED  # nobody got there


def test_staircase_verdict_from_per_run_statistics():
    stats = pd.DataFrame([{"arm": "xavier", "rank_steps": 15 + i % 3, "plateaus": 2, "plateau_steps": 500,
                           "spearman": 0.2 + 0.01 * i} for i in range(8)]
                         + [{"arm": "sfli", "rank_steps": i % 2, "plateaus": 0, "plateau_steps": 0,
                             "spearman": 0.0} for i in range(8)])
    v = claims.staircase(stats, ["sfli"], 4000, SPEC)
    assert v.verdict == Verdict.REPRODUCED and "8 treatment and 8 baseline runs" in v.budget
    flat = stats.assign(rank_steps=3, plateaus=1)
    assert claims.staircase(flat, ["sfli"], 4000, SPEC).verdict == Verdict.PARTLY  # no difference in steps
