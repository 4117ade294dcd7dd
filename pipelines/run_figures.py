"""Figures a trial logs as artifacts of its own run, while it trains: the staircase plot (loss and ε-rank
against step) and the condensation heat map. (``analysis`` draws figures from recorded runs only.)"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sfli_core import keys  # noqa: E402
from sfli_core.condensation import analyse  # noqa: E402


def staircase_plot(history: list[dict[str, float]], eps: float, n_layers: int, path: Path, title: str = "") -> Path:
    """Training loss (log scale, left) and the ε-rank of every hidden layer (right) against step."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
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
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path


def condensation_heatmap(weights: dict[str, torch.Tensor], path: Path, title: str = "") -> Path:
    """Cosine-similarity heat maps of a layer's input weights (w, b), e.g. {'start': U0, 'end': U1}, each
    ordered by its leading eigenvector, with the condensed orientation / line counts in the panel title."""
    fig, axes = plt.subplots(1, len(weights), figsize=(3.6 * len(weights), 3.4), squeeze=False)
    for ax, (label, u) in zip(axes[0], weights.items()):
        c = analyse(u)
        im = ax.imshow(c.similarity.numpy(), cmap="RdYlBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{label}: {c.orientations} orientations, {c.lines} lines", fontsize=8)
        ax.set_xlabel("neuron (ordered by leading eigenvector)", fontsize=7)
        ax.set_ylabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="D(u, v)")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path
