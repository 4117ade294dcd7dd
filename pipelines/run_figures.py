"""The staircase plot a trial logs as an artifact of its own run (loss and ε-rank against step), at a
resolution for browsing: every figure is drawn on the trial's critical path, so the report draws the
paper-quality figures (200 dpi and PDF) from the recorded data instead."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from sfli_core import keys

PREVIEW_DPI = 90


def staircase_plot(history: list[dict[str, float]], eps: float, n_layers: int, path: Path, title: str = "") -> Path:
    """Training loss (log scale, left) and the ε-rank of every hidden layer (right) against step.

    A bare :class:`Figure` (no pyplot state to keep or close) with fixed margins: a layout engine would draw
    the figure once more to measure it, a third of the drawing time."""
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    steps = [r[keys.STEP] for r in history]
    ax.semilogy(steps, [r[keys.TRAIN_LOSS] for r in history], color="black", label=keys.TRAIN_LOSS)
    ax.set_xlabel("step")
    ax.set_ylabel(keys.TRAIN_LOSS)
    right = ax.twinx()
    for layer in range(1, n_layers + 1):
        key = keys.rank_key(eps, layer)
        pts = [(r[keys.STEP], r[key]) for r in history if key in r]
        if pts:
            right.step(*zip(*pts), where="post", alpha=0.8, label=f"layer {layer}")
    right.set_ylabel(f"ε-rank (ε={keys.fmt_num(eps)})")
    right.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.88, bottom=0.13, top=0.92)
    fig.savefig(path, dpi=PREVIEW_DPI)
    return path
