"""The tuning audit in the report: each searched cell's Optuna study (pipelines.audit), read back from the runs
folder's Optuna storage, drawn as the objective against each searched knob — every trial, pruned ones at the
running objective of the last rung they reached, the chosen one highlighted. (Optuna's own ``plot_slice``
leaves pruned trials out, which would hide what successive halving decided.)"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from .figures import plt, save

PRUNED_MARK, CHOSEN_MARK = "x", "*"


def load_search(storage: str, name: str) -> list[optuna.trial.FrozenTrial] | None:
    """The trials of the Optuna study ``name`` (None when the storage has no such study)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return None


def _value(trial: optuna.trial.FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        return trial.value
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def tuning_figure(trials: list[optuna.trial.FrozenTrial], chosen: dict, path: Path, title: str) -> list[Path]:
    """One panel per searched knob: objective (minimised) against the knob, log axes where the knob was
    searched on a log scale."""
    knobs = sorted({k for t in trials for k in t.params})
    if not knobs:
        return []
    fig, axes = plt.subplots(1, len(knobs), figsize=(4.2 * len(knobs), 3.6), squeeze=False, sharey=True,
                             layout="constrained")
    axes[0][0].set_ylabel("objective (lower is better)")
    for ax, knob in zip(axes[0], knobs):
        for state, marker, label in ((TrialState.COMPLETE, "o", "complete"), (TrialState.PRUNED, PRUNED_MARK,
                                                                              "pruned (last rung)")):
            points = [(t.params[knob], v) for t in trials if t.state == state and knob in t.params
                      and (v := _value(t)) is not None]
            if points:
                ax.scatter(*zip(*points), marker=marker, s=28, label=f"{label} ({len(points)})", alpha=0.8)
        if knob in chosen:
            best = [_value(t) for t in trials if t.state == TrialState.COMPLETE and t.params == chosen]
            if best:
                ax.scatter([chosen[knob]], best[:1], marker=CHOSEN_MARK, s=200, color="black", label="chosen")
        distribution = next(t.distributions[knob] for t in trials if knob in t.distributions)
        if getattr(distribution, "log", False):
            ax.set_xscale("log")
        if hasattr(distribution, "low"):  # the searched range, whose edges a choice should not sit on
            for end in (distribution.low, distribution.high):
                ax.axvline(end, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(knob)
    # below the panels: inside one it would hide the trials at the edge a reader looks for
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=7)
    fig.suptitle(title + "; dotted: the searched range", fontsize=9)
    return save(fig, path)
