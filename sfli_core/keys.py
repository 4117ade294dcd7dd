"""The one spelling of every recorded quantity (config field, MLflow key, table column).

Metric keys: ``train/loss``, ``train/loss_<term>``, ``eval/rel_l2``, ``rank/eps1e-3/layer2``,
``target/steps_to_1e-3``, ``target/seconds_to_1e-3``, ``time/train_s``, ``time/wall_s``.
"""

from __future__ import annotations

TRAIN_LOSS = "train/loss"
EVAL_REL_L2 = "eval/rel_l2"
TRAIN_LR = "train/lr"
TIME_TRAIN = "time/train_s"
TIME_WALL = "time/wall_s"
STEP = "step"


def fmt_num(x: float) -> str:
    """Compact scientific spelling used in keys and task names: 1e-3 -> '1e-3', 2.5e-4 -> '2.5e-4', 30 -> '30'."""
    x = float(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def loss_term(term: str) -> str:
    return f"train/loss_{term}"


def rank_key(eps: float, layer: int) -> str:
    """ε-rank of hidden layer ``layer`` (1-based) at threshold ``eps``."""
    return f"rank/eps{fmt_num(eps)}/layer{layer}"


def steps_to(threshold: float) -> str:
    return f"target/steps_to_{fmt_num(threshold)}"


def seconds_to(threshold: float) -> str:
    return f"target/seconds_to_{fmt_num(threshold)}"
