"""The one spelling of every recorded quantity (config field, MLflow key, table column).

Metric keys of a logging step: ``train/loss``, ``train/loss_<term>``, ``train/lr``, ``eval/rel_l2``,
``rank/eps1e-3/layer2``, ``condensation/layer1/orientations``, ``time/train_s``, ``time/wall_s``. A run's
summary adds ``initial/<key>`` (its first ranked record), ``final/<key>`` (its last), ``target/steps_to_1e-3``
and ``target/seconds_to_1e-3``; the condensation analysis adds ``stage/<key>`` (at the end of the first stage).
Code outside this module builds and reads keys through these names only, never by splitting them.
"""

from __future__ import annotations

import re

STEP = "step"
TRAIN_LOSS = "train/loss"
TRAIN_LR = "train/lr"
EVAL = "eval/"
EVAL_REL_L2 = EVAL + "rel_l2"
TIME_TRAIN = "time/train_s"
TIME_WALL = "time/wall_s"
RANK = "rank/"
TARGET = "target/"
STEPS_TO = TARGET + "steps_to_"
SECONDS_TO = TARGET + "seconds_to_"
INITIAL, FINAL, STAGE = "initial/", "final/", "stage/"
CONDENSATION = "condensation/"
ORIENTATIONS, LINES = "orientations", "lines"  # the two condensation counts (sfli_core.condensation)
_CONDENSATION_KEY = re.compile(rf"^{CONDENSATION}layer(\d+)/({ORIENTATIONS}|{LINES})$")


def initial(key: str) -> str:
    """A quantity at the run's first record that has it (step 0 for losses; the first ranked step for ranks)."""
    return INITIAL + key


def final(key: str) -> str:
    """A quantity at the run's last record that has it."""
    return FINAL + key


def stage(key: str) -> str:
    """A quantity at the end of the first (condensation) stage (analysis.condensation)."""
    return STAGE + key


FINAL_STEP = final(STEP)


def fmt_num(x: float) -> str:
    """Compact scientific spelling used in keys and task names: 1e-3 -> '1e-3', 2.5e-4 -> '2.5e-4', 30 -> '30'."""
    x = float(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def loss_term(term: str) -> str:
    return f"{TRAIN_LOSS}_{term}"


def rank_key(eps: float, layer: int) -> str:
    """ε-rank of hidden layer ``layer`` (1-based) at threshold ``eps``."""
    return f"{RANK}eps{fmt_num(eps)}/layer{layer}"


def relative_rank_key(eps: float, layer: int) -> str:
    """Relative ε-rank of hidden layer ``layer``: eigenvalues above ε times the layer's largest (scale-free)."""
    return f"{RANK}rel{fmt_num(eps)}/layer{layer}"


def steps_to(threshold: float) -> str:
    return f"{STEPS_TO}{fmt_num(threshold)}"


def seconds_to(threshold: float) -> str:
    return f"{SECONDS_TO}{fmt_num(threshold)}"


def threshold_of(steps_key: str) -> float:
    """τ of a ``target/steps_to_<τ>`` key."""
    return float(steps_key.removeprefix(STEPS_TO))


def condensation_key(layer: int, count: str) -> str:
    """Condensation count ``count`` (``orientations`` or ``lines``) of layer ``layer`` (1-based)."""
    return f"{CONDENSATION}layer{layer}/{count}"


def condensation_layers(columns) -> list[int]:
    """The layers (1-based, sorted) that have a condensation count among the keys ``columns``."""
    return sorted({int(m.group(1)) for c in columns if (m := _CONDENSATION_KEY.match(c))})
