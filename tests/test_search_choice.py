"""The knobs a search chooses do not depend on the order in which Tune returns its trials: an interrupted and
resumed search (whose results come back in another order) chooses what an uninterrupted one does."""

from __future__ import annotations

import itertools

from pipelines.phases import choose


def _trial(number: int, objective: float, scale: float) -> tuple[dict, dict]:
    return ({"objective": objective, "experiment_tag": f"{number}_init.scale={scale}"},
            {"arm": "sfli", "variant": 0, "init.scale": scale})


TRIALS = [_trial(0, 200.0, 0.7), _trial(1, 180.0, 1.3), _trial(2, 250.0, 0.2), _trial(3, 180.0, 0.9),
          _trial(4, 180.0, 1.1)]


def test_ties_go_to_the_earliest_trial_whatever_the_order():
    chosen = {str(choose(list(order))) for order in itertools.permutations(TRIALS)}
    assert chosen == {str({"init.scale": 1.3})}  # trial 1: the earliest of the three at 180


def test_the_lowest_objective_wins_over_trial_order():
    assert choose([_trial(0, 3.0, 0.5), _trial(7, 2.5, 2.0)]) == {"init.scale": 2.0}


def test_without_trial_numbers_the_knobs_break_ties():
    untagged = [({"objective": 1.0}, {"arm": "a", "variant": 0, "train.lr": lr}) for lr in (0.01, 0.001, 0.1)]
    assert {str(choose(list(order))) for order in itertools.permutations(untagged)} == {str({"train.lr": 0.001})}
