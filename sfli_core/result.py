"""The outcome of one run: its records, targets reached, spectra, provenance, and a readable summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import keys


class TargetTracker:
    """First logged step (and training seconds) at which ``metric`` ≤ τ, per threshold τ (docs/science.md §6)."""

    def __init__(self, metric: str, thresholds: list[float]):
        self.metric, self.thresholds = metric, list(thresholds)
        self.reached: dict[str, float] = {}

    def update(self, record: dict[str, float]) -> None:
        value = record.get(self.metric, math.nan)
        for tau in self.thresholds:
            if keys.steps_to(tau) not in self.reached and value <= tau:
                self.reached[keys.steps_to(tau)] = record[keys.STEP]
                self.reached[keys.seconds_to(tau)] = record[keys.TIME_TRAIN]


@dataclass
class RunResult:
    status: str
    config: dict[str, Any]
    history: list[dict[str, float]]
    targets: dict[str, float]
    spectra: dict[str, list[list[float]]]
    init_info: dict[str, float]
    metadata: dict[str, str]
    n_layers: int
    eps: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    weights: dict[int, list[list[float]]] = field(default_factory=dict)  # step → first layer's u (tracked)

    def summary(self) -> dict[str, float]:
        """Final and initial values: ``final/train/loss``, ``final/eval/rel_l2``, ``initial/rank/…``,
        ``final/rank/…`` (from the last record that has ranks), targets reached, steps done."""
        last = self.history[-1]
        out = {keys.final(k): v for k, v in last.items() if k.startswith((keys.TRAIN_LOSS, keys.EVAL))}
        ranked = [r for r in self.history if any(k.startswith(keys.RANK) for k in r)]
        if ranked:
            out.update({keys.initial(k): v for k, v in ranked[0].items() if k.startswith(keys.RANK)})
            out.update({keys.final(k): v for k, v in ranked[-1].items() if k.startswith(keys.RANK)})
        out[keys.FINAL_STEP] = last[keys.STEP]
        out[keys.TIME_TRAIN] = last[keys.TIME_TRAIN]
        out.update(self.targets)
        return out

    def describe(self, headline_eps: float) -> str:
        """Human-readable summary: status, final loss and error, ε-rank per layer at start and end, targets."""
        s = self.summary()
        lines = [f"status {self.status}   steps {int(s[keys.FINAL_STEP])}   train time {s[keys.TIME_TRAIN]:.1f} s",
                 f"final {keys.TRAIN_LOSS} {s.get(keys.final(keys.TRAIN_LOSS), math.nan):.3e}   "
                 f"{keys.EVAL_REL_L2} {s.get(keys.final(keys.EVAL_REL_L2), math.nan):.3e}"]
        for eps in self.eps:
            first = [s.get(keys.initial(keys.rank_key(eps, l))) for l in range(1, self.n_layers + 1)]
            last = [s.get(keys.final(keys.rank_key(eps, l))) for l in range(1, self.n_layers + 1)]
            mark = "  (headline)" if eps == headline_eps else ""
            lines.append(f"ε-rank ε={keys.fmt_num(eps)} per layer: initial {_ints(first)} → final {_ints(last)}{mark}")
        for tau in self.thresholds:
            st = s.get(keys.steps_to(tau))
            lines.append(f"{keys.steps_to(tau)}: " + (f"{int(st)} ({s[keys.seconds_to(tau)]:.2f} s)" if st is not None
                                                         else "not reached (censored)"))
        return "\n".join(lines)


def _ints(values: list) -> str:
    return "[" + ", ".join("-" if v is None else str(int(v)) for v in values) + "]"

