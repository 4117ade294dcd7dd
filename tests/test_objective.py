"""The search objective ranks every trial (docs/science.md §7): known values, continuity where reaching τ and
missing it meet, and an order among censored trials by how close they came."""

from __future__ import annotations

import math

import pytest

from pipelines.objective import WORST, objective_value, steps_to_objective
from sfli_core.record import Status

TAU, BUDGET = 1e-3, 1500


def curve(*values: float, every: int = 50) -> list[tuple[float, float]]:
    return [(every * i, v) for i, v in enumerate(values)]


def test_a_reached_target_is_the_interpolated_crossing():
    # log10 goes -2 → -4 between steps 50 and 100: it crosses -3 halfway
    assert steps_to_objective(curve(1.0, 1e-2, 1e-4), TAU, BUDGET) == pytest.approx(75.0)
    assert steps_to_objective(curve(1e-4, 1e-5), TAU, BUDGET) == 0.0  # at or below τ from the start
    assert steps_to_objective(curve(1.0, 1e-3), TAU, BUDGET) == pytest.approx(50.0)  # exactly τ at a logged step


def test_a_missed_target_costs_a_budget_per_decade_still_to_go():
    assert steps_to_objective(curve(1.0, 1e-2), TAU, BUDGET) == pytest.approx(3000.0)
    assert steps_to_objective(curve(1.0, 1e-1), TAU, BUDGET) == pytest.approx(4500.0)


def test_continuous_where_reaching_and_missing_meet():
    just_missed = steps_to_objective(curve(1.0, 1e-2, TAU * (1 + 1e-9)), TAU, 100)
    just_reached = steps_to_objective(curve(1.0, 1e-2, TAU * (1 - 1e-9)), TAU, 100)
    assert just_missed == pytest.approx(100.0, abs=1e-5) and just_reached == pytest.approx(100.0, abs=1e-5)
    assert just_reached < just_missed


def test_censored_trials_are_ordered_by_how_close_they_came():
    finals = [5e-3, 2e-3, 1.1e-3, 3e-2, 1.05e-3]
    scores = [steps_to_objective(curve(1.0, 0.1, f), TAU, BUDGET) for f in finals]
    assert sorted(range(5), key=scores.__getitem__) == sorted(range(5), key=finals.__getitem__)
    assert len(set(scores)) == 5 and all(s > BUDGET for s in scores)  # behind every trial that reached τ


def test_trials_that_reach_at_the_same_logged_step_do_not_tie():
    fast, slow = curve(1.0, 1e-2, 1e-5), curve(1.0, 1e-2, 9e-4)  # both first at/below τ at step 100
    assert steps_to_objective(fast, TAU, BUDGET) < steps_to_objective(slow, TAU, BUDGET) < 100


def test_the_running_objective_and_other_objectives():
    history = [{"step": 0, "train/loss": 1.0, "eval/rel_l2": 0.5}, {"step": 50, "train/loss": 1e-2, "eval/rel_l2": 0.1}]
    assert objective_value("target/steps_to_1e-3", Status.FINISHED, history, "train/loss", 200) == pytest.approx(400)
    assert objective_value("target/steps_to_1e-3", Status.FINISHED, history, "eval/rel_l2", 200) == pytest.approx(
        200 * (1 + math.log10(0.1 / 1e-3)))
    assert objective_value("final/eval/rel_l2", Status.FINISHED, history, "train/loss", 200) == pytest.approx(-1.0)
    assert objective_value("target/steps_to_1e-3", Status.DIVERGED, history, "train/loss", 200) == WORST
    broken = history + [{"step": 100, "train/loss": math.nan}]
    assert objective_value("target/steps_to_1e-3", Status.FINISHED, broken, "train/loss", 200) == WORST
