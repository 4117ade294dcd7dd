"""The report's figures (matplotlib, files only): staircase curves, speed-up forest plot, initial ε-rank per
arm and layer, ε-spectra at start and end."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sfli_core import keys  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def staircase_curves(curves: dict[str, list[pd.DataFrame]], eps: float, path: Path, title: str) -> Path:
    """Loss (top) and last-layer ε-rank (bottom) against step: median and inter-quartile band across seeds,
    one colour per arm. ``curves[arm]`` is a list of frames (index step; columns loss, rank)."""
    fig, (ax_loss, ax_rank) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True)
    for colour, (arm, frames) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], sorted(curves.items())):
        for ax, col in ((ax_loss, "loss"), (ax_rank, "rank")):
            # ε-ranks may be logged at every k-th logging step only (rank.every): plot the steps that have them
            table = pd.concat([f[col] for f in frames], axis=1).dropna(how="all")
            q1, med, q3 = (table.quantile(q, axis=1) for q in (0.25, 0.5, 0.75))
            ax.plot(med.index, med.values, color=colour, label=f"{arm} (n={len(frames)})")
            ax.fill_between(med.index, q1.values, q3.values, color=colour, alpha=0.2)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel(keys.TRAIN_LOSS)
    ax_rank.set_ylabel(f"ε-rank, last layer (ε={keys.fmt_num(eps)})")
    ax_rank.set_xlabel("step")
    ax_loss.legend(fontsize=8)
    ax_loss.set_title(title, fontsize=9)
    return _save(fig, path)


def forest_plot(table: pd.DataFrame, path: Path) -> Path:
    """Geometric-mean speed-up with its 95 % interval, one line per table row (log axis; 1 = no effect)."""
    rows = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.2))
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        if math.isnan(r["speedup_geomean"]):
            continue
        lo, hi = r["speedup_ci_low"], r["speedup_ci_high"]
        if not (math.isnan(lo) or math.isnan(hi)):
            ax.plot([lo, hi], [y, y], color="black")
        marker = ">" if r["speedup_kind"] == "lower bound" else "o"
        ax.plot(r["speedup_geomean"], y, marker, color="tab:blue")
    ax.axvline(1.0, color="grey", linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.task} {r.arch} {r.variant} τ={keys.fmt_num(r.tau)} {r.baseline}→{r.treatment}"
                        for r in rows.iloc[::-1].itertuples()], fontsize=7)
    ax.set_xlabel("speed-up in steps to target (geometric mean, 95 % CI; ▶ = lower bound)")
    return _save(fig, path)


def initial_rank_bars(runs: pd.DataFrame, path: Path, title: str) -> Path:
    """Median initial ε-rank (headline ε) per arm and hidden layer."""
    arms = sorted(runs["arm"].unique())
    depth, eps = int(runs["hidden_layers"].max()), float(runs["headline"].iloc[0])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        g = runs[runs["arm"] == arm]
        values = [float(np.nanmedian(g[c])) if (c := f"initial/{keys.rank_key(eps, l)}") in g else 0.0
                  for l in range(1, depth + 1)]
        ax.bar(np.arange(1, depth + 1) + (i - (len(arms) - 1) / 2) * width, values, width, label=arm)
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(f"initial ε-rank (ε={keys.fmt_num(eps)})")
    ax.set_xticks(range(1, depth + 1))
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def spectra_plot(spectra: dict[str, dict], eps: list[float], path: Path, title: str) -> Path:
    """Gram eigenvalues of the last hidden layer at start (dashed) and end (solid), one colour per arm."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for colour, (arm, sp) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], sorted(spectra.items())):
        for when, style in (("initial", "--"), ("final", "-")):
            if sp and when in sp:
                lam = np.clip(np.asarray(sp[when][-1]), 1e-18, None)
                ax.semilogy(np.arange(1, len(lam) + 1), lam, style, color=colour, label=f"{arm} {when}")
    for e in eps:
        ax.axhline(e, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue of M = ΦᵀΦ/N")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
