"""Whether every arm is searched alike and within ranges that hold its optimum: the edge rule, the flags a
search's choice raises, and what `sfli validate` prints side by side."""

from __future__ import annotations

import re

import pytest
import yaml

from pipelines.cli import main
from pipelines.study import Distribution, Study
from pipelines.tuning import edge_flags, edge_side
from tests.pipeline_helpers import write_study

LR = Distribution(type="log_uniform", low=1e-4, high=1e-1)  # three decades: the outer tenths are 0.3 decade wide


@pytest.mark.parametrize("value, side", [(1e-4, "lower"), (1.9e-4, "lower"), (2.1e-4, None), (3e-3, None),
                                         (4.9e-2, None), (5.1e-2, "upper"), (1e-1, "upper")])
def test_the_outer_tenth_of_a_log_range_is_its_edge(value, side):
    assert edge_side(LR, value) == side


def test_linear_ranges_and_choices():
    linear = Distribution(type="uniform", low=0.0, high=10.0)
    assert (edge_side(linear, 0.9), edge_side(linear, 1.1), edge_side(linear, 9.05)) == ("lower", None, "upper")
    assert edge_side(Distribution(type="choice", values=["a", "b"]), "a") is None


ARMS = {"xavier": {"set": {"init.name": "xavier_normal"},
                   "search": {"train.lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-1},
                              "init.scale": {"type": "log_uniform", "low": 0.1, "high": 10.0}}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"train.lr": {"type": "log_uniform", "low": 3e-4, "high": 3e-3}}},
        "fixed": {"set": {"init.name": "kaiming_uniform"}}}


def test_a_choice_at_an_edge_is_flagged(tmp_path):
    study = Study.model_validate(yaml.safe_load(write_study(tmp_path / "s.yaml", "s", ARMS).read_text()))
    flags = edge_flags(study, study.cell("xavier", 0), {"train.lr": 0.08, "init.scale": 1.0})
    assert flags == {"train.lr": "train.lr chosen at the upper edge of [0.0001, 0.1] (0.08): widen the range"}


def test_validate_prints_every_search_side_by_side_and_warns_where_they_differ(tmp_path, capsys):
    path = write_study(tmp_path / "s.yaml", "unlike", ARMS, search_trials=4)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120
    out = re.sub(r"\n {4,}", " ", out)  # a long line's continuations, read as the one line they wrap
    assert ("  search xavier: 4 trials per grid point; init.scale [0.1, 10] log (2.0 decades); "
            "train.lr [0.0001, 0.1] log (3.0 decades)") in out
    assert "  search sfli: 4 trials per grid point; train.lr [0.0003, 0.003] log (1.0 decades)" in out
    assert "  search fixed: 0 trials per grid point; none (fixed knobs)" in out
    assert "every search: tpe sampler (seed 0, 1 random start-up trial), search seeds [1000], no pruning" in out
    assert "warning: arms fixed are not searched while others are" in out
    assert "warning: arms search different knobs: sfli: train.lr; xavier: init.scale, train.lr" in out
    assert "warning: arms.sfli.search.train.lr spans 1.0 decades" in out
    assert "warning: search.trials is 4: fewer than 16" in out
