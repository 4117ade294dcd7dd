"""A trial run's preview figures, for browsing it in the MLflow UI: the staircase plot (loss and ε-rank against
step) and the condensation heat map of its first layer, drawn from what the run recorded (its resolved
configuration, its series and its first layer's weights) at a resolution for browsing, by the trial or by the
driver (:mod:`pipelines.previews`); the report draws the paper-quality figures (200 dpi and PDF) from the same
records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.figure import Figure

from sfli_core import keys, record

PREVIEW_DPI = 90


def staircase_figure(series: pd.DataFrame, eps: float, title: str = "") -> Figure:
    """Training loss (log scale, left) and the ε-rank of every hidden layer (right, a step line through the
    steps it was measured at) against step. ``series``: one seed's logged rows, columns ``step``,
    ``train/loss`` and ``rank/eps<ε>/layer<l>`` for l = 1, 2, … (NaN where a rank was not measured).

    A bare :class:`Figure` (no pyplot state) with fixed margins: a layout engine would draw the figure once
    more to measure it."""
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    ax.semilogy(series[keys.STEP], series[keys.TRAIN_LOSS], color="black", label=keys.TRAIN_LOSS)
    ax.set_xlabel("step")
    ax.set_ylabel(keys.TRAIN_LOSS)
    right = ax.twinx()
    layer = 1
    while (key := keys.rank_key(eps, layer)) in series:
        ranked = series[[keys.STEP, key]].dropna()
        right.step(ranked[keys.STEP], ranked[key], where="post", alpha=0.8, label=f"layer {layer}")
        layer += 1
    right.set_ylabel(f"ε-rank (ε={keys.fmt_num(eps)})")
    if layer > 1:
        right.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.88, bottom=0.13, top=0.92)
    return fig


def draw_previews(folder: Path) -> list[str]:
    """Draw, into ``folder``, the previews of the run whose artifacts are there: the staircase plot of its first
    seed (the seed of its resolved configuration) and, when it recorded its first layer's weights, their heat
    map at the start and the end of training. Returns the names of the files drawn."""
    cfg = yaml.safe_load((folder / record.CONFIG_FILE).read_text())
    series = pd.read_csv(folder / record.SERIES_FILE)
    title = f"{cfg['task']['name']} {cfg['model']['arch']} {cfg['init']['name']} seed {cfg['seed']}"
    staircase = staircase_figure(series[series["seed"] == cfg["seed"]], cfg["rank"]["headline"], title)
    staircase.savefig(folder / record.STAIRCASE_FILE, dpi=PREVIEW_DPI)
    drawn = [record.STAIRCASE_FILE]
    if (folder / record.WEIGHTS_FILE).exists():
        # the report's figure code (matplotlib's pyplot, the condensation analysis): only once there is one to draw
        from analysis.figures import condensation_heatmap

        weights = json.loads((folder / record.WEIGHTS_FILE).read_text())
        condensation_heatmap({"start": weights[record.WEIGHTS_START], "end": weights[record.WEIGHTS_END]},
                             folder / record.HEATMAP_FILE, title, PREVIEW_DPI, pdf=False)
        drawn.append(record.HEATMAP_FILE)
    return drawn
