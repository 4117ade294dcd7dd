"""The report's figures (matplotlib, files only; PNG at 200 dpi and PDF): Kaplan–Meier curves of reaching
each target, staircase curves and their change points, the speed-up forest plot, initial ε-rank per arm and
layer, ε-spectra, condensation heat maps."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sfli_core import keys, record  # noqa: E402
from sfli_core.condensation import analyse  # noqa: E402
from sfli_core.staircase import loss_pieces, plateaus, rank_levels  # noqa: E402

from .curves import common_window  # noqa: E402
from .survival import Runtimes, km_curve  # noqa: E402

DPI = 200


def _colours() -> list[str]:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save(fig, path: Path, dpi: int = DPI, pdf: bool = True) -> list[Path]:
    """``path`` (PNG) and, with ``pdf``, the same figure as PDF beside it, cropped to what is drawn. The
    figure's layout (when it has a layout engine) and the crop are computed once, for both files:
    ``savefig(bbox_inches="tight")`` lays out and draws twice per file, which was most of a report's time."""
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine(None)
    box = fig.get_tightbbox().padded(plt.rcParams["savefig.pad_inches"])
    fig.savefig(path, dpi=dpi, bbox_inches=box)
    out = [path]
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), bbox_inches=box)
        out.append(path.with_suffix(".pdf"))
    plt.close(fig)
    return out


def km_curves(runtimes: dict[tuple[str, float], dict[str, Runtimes]], taus: list[float], budget: float,
              path: Path, title: str) -> list[Path]:
    """Kaplan–Meier fraction of runs that reached τ by step (top row) and by training second (bottom row),
    one column per τ, one colour per arm, with the 95 % log-log band; the step budget is marked.
    ``runtimes[("steps" | "seconds", τ)][arm]``."""
    arms = sorted({a for per_arm in runtimes.values() for a in per_arm})
    fig, axes = plt.subplots(2, len(taus), figsize=(4.4 * len(taus), 6.4), squeeze=False, layout="constrained")
    for j, tau in enumerate(taus):
        for i, unit in enumerate(("steps", "seconds")):
            ax = axes[i][j]
            # the curves run on to the end of the budget (steps) or of the longest run (seconds)
            end = budget if unit == "steps" else max((float(r.times.max()) for r in runtimes[(unit, tau)].values()
                                                      if r.n), default=1.0)
            for colour, arm in zip(_colours(), arms):
                r = runtimes[(unit, tau)].get(arm)
                if r is None or r.n == 0:
                    continue
                c = km_curve(r)
                t = np.concatenate([[0.0], c.t, [max(end, float(c.t[-1]))]])

                def run_on(v, start=0.0):
                    return np.concatenate([[start], v, v[-1:]])

                # no run reached τ: the bound on F holds from the start, not only from the censoring times
                top = float(c.high[0]) if r.n_reached == 0 else 0.0
                ax.step(t, run_on(c.F), where="post", color=colour, label=f"{arm} ({r.n_reached} of {r.n} reached)")
                ax.fill_between(t, run_on(c.low), run_on(c.high, top), step="post", color=colour, alpha=0.15)
            if unit == "steps":
                ax.axvline(budget, color="black", linestyle=":", linewidth=1)
                ax.annotate("budget", (budget, 1.0), xytext=(-3, -3), textcoords="offset points", ha="right",
                            va="top", fontsize=7)
            ax.axhline(0.5, color="grey", linewidth=0.6, linestyle="--")
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("optimiser step" if unit == "steps" else "training seconds")
            ax.set_ylabel(f"fraction reached τ = {keys.fmt_num(tau)}")
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"τ = {keys.fmt_num(tau)}, by {unit}", fontsize=9)
    fig.suptitle(f"{title}: Kaplan–Meier, 95 % band (dashed: ½ = median)", fontsize=10)
    return save(fig, path)


def staircase_curves(curves: dict[str, list[pd.DataFrame]], eps: float, taus: list[float], metric: str,
                     path: Path, title: str) -> list[Path]:
    """Loss (top) and last-layer ε-rank (bottom) against step: median and inter-quartile band across seeds,
    one colour per arm; the targets τ as horizontal lines when the target metric is the training loss.
    ``curves[arm]`` is a list of frames (index step; columns loss, rank), one per seed."""
    fig, (ax_loss, ax_rank) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, layout="constrained")
    for colour, (arm, frames) in zip(_colours(), sorted(curves.items())):
        for ax, col in ((ax_loss, "loss"), (ax_rank, "rank")):
            # ε-ranks may be logged at every k-th logging step only (rank.every): plot the steps that have them
            table = pd.concat([f[col] for f in frames], axis=1).dropna(how="all")
            q1, med, q3 = (table.quantile(q, axis=1) for q in (0.25, 0.5, 0.75))
            ax.plot(med.index, med.values, color=colour,
                    label=f"{arm}: median, inter-quartile band, n = {len(frames)} seeds")
            ax.fill_between(med.index, q1.values, q3.values, color=colour, alpha=0.2)
    if metric == keys.TRAIN_LOSS:
        for tau in taus:
            ax_loss.axhline(tau, color="grey", linestyle=":", linewidth=0.8)
            ax_loss.annotate(f"τ = {keys.fmt_num(tau)}", (0, tau), xycoords=("axes fraction", "data"),
                             xytext=(2, 2), textcoords="offset points", fontsize=7, color="grey")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel(keys.TRAIN_LOSS)
    ax_rank.set_ylabel(f"ε-rank, last hidden layer (ε = {keys.fmt_num(eps)})")
    ax_rank.set_xlabel("optimiser step")
    ax_loss.legend(fontsize=7)
    ax_loss.set_title(title, fontsize=9)
    return save(fig, path)


def staircase_segments(curves: dict[str, list[pd.DataFrame]], eps: float, path: Path, title: str,
                       seeds: int = 4) -> list[Path]:
    """What the staircase statistics see (docs/science.md §2): per arm (rows) and seed (columns, the first
    ``seeds``), the training loss with its change points (grey) and plateaus (shaded), and the last layer's
    ε-rank with its level changes (green, dotted), over the window the statistics read."""
    arms = sorted(curves)
    window = common_window(curves)
    fig, axes = plt.subplots(len(arms), seeds, figsize=(3.2 * seeds, 2.4 * len(arms)), squeeze=False,
                             layout="constrained")
    for row, arm in enumerate(arms):
        for col in range(seeds):
            ax = axes[row][col]
            if col >= len(curves[arm]):
                ax.axis("off")
                continue
            frame = curves[arm][col]
            f = frame.dropna()
            f = f[f.index <= window] if window is not None else f
            s, loss, rank = f.index.to_numpy(dtype=float), f["loss"].to_numpy(), f["rank"].to_numpy()
            if len(s) < 3 or not (loss > 0).all():
                ax.axis("off")
                continue
            ax.semilogy(s, loss, linewidth=0.8)
            for a, _ in loss_pieces(s, loss)[1:]:
                ax.axvline(s[a], color="grey", linewidth=0.4)
            for a, b in plateaus(s, loss):
                ax.axvspan(s[a], s[b], color="orange", alpha=0.3)
            twin = ax.twinx()
            twin.plot(s, rank, color="green", linewidth=0.8)
            for a, _ in rank_levels(rank)[1:]:
                twin.axvline(s[a], color="green", linestyle=":", linewidth=0.6)
            ax.set_title(f"{arm}, run {col + 1}", fontsize=8)
            ax.tick_params(which="both", labelsize=6)
            twin.tick_params(which="both", labelsize=6, colors="green")
    fig.suptitle(f"{title}: loss pieces (grey), plateaus (shaded), ε-rank (green, ε = {keys.fmt_num(eps)}) and "
                 "its level changes, " + (f"up to step {window:g}, when every run had reached the smallest target"
                                          if window is not None else "over the budget (the same window for every arm)"),
                 fontsize=9)
    return save(fig, path)


def forest_plot(table: pd.DataFrame, path: Path) -> list[Path]:
    """The headline speed-up (ratio of Kaplan–Meier medians) with its conservative 95 % interval, one line
    per table row, on a log axis (1 = no effect). An end that is open (the median was not reached within the
    budget) is drawn as an arrow running off to that side; a row with no estimate says so."""
    rows = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(rows) + 1.4), layout="constrained")
    finite = pd.concat([rows["speedup_low"], rows["speedup_high"], rows["speedup"]]).replace([np.inf, 0], np.nan)
    lo_lim = float(np.nanmin(finite)) / 3 if finite.notna().any() else 0.1
    hi_lim = float(np.nanmax(finite)) * 3 if finite.notna().any() else 10.0
    lo_lim, hi_lim = min(lo_lim, 0.5), max(hi_lim, 2.0)
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        low = r["speedup_low"] if r["speedup_low"] > 0 else math.nan
        high = r["speedup_high"] if math.isfinite(r["speedup_high"]) else math.nan
        estimate = r["speedup"] if math.isfinite(r["speedup"]) else math.nan
        if not (math.isnan(low) or math.isnan(high)):
            ax.plot([low, high], [y, y], color="black", linewidth=1.2)
        else:  # an open end: an arrow from the known end (or the estimate) off the axis on the open side
            ends = []
            if math.isnan(high):
                ends.append((low if not math.isnan(low) else estimate, hi_lim))
            if math.isnan(low):
                ends.append((high if not math.isnan(high) else estimate, lo_lim))
            for start, end in ends:
                if not math.isnan(start):
                    ax.annotate("", xy=(end, y), xytext=(start, y),
                                arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.2})
        if not math.isnan(estimate):
            ax.plot(estimate, y, "o", color="tab:blue")
        elif math.isnan(low) and math.isnan(high):
            ax.annotate("no estimate", (1.0, y), ha="center", va="center", fontsize=7, color="grey",
                        bbox={"facecolor": "white", "edgecolor": "none"})
    ax.axvline(1.0, color="grey", linestyle="--")
    ax.set_xscale("log")
    ax.set_xlim(lo_lim, hi_lim)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.task} {r.arch}{'' if r.variant == 'base' else ' ' + str(r.variant)}, "
                        f"τ={keys.fmt_num(r.tau)}: {r.baseline} vs {r.treatment}"
                        for r in rows.iloc[::-1].itertuples()], fontsize=8)
    ax.set_xlabel("speed-up in steps to τ: median(baseline) / median(treatment), conservative 95 % interval\n"
                  "(arrow = interval open on that side; > 1: the treatment is faster)", fontsize=8)
    return save(fig, path)


def initial_rank_bars(runs: pd.DataFrame, path: Path, title: str) -> list[Path]:
    """Median initial ε-rank (headline ε) per arm and hidden layer."""
    arms = sorted(runs["arm"].unique())
    depth, eps = int(runs["hidden_layers"].max()), float(runs["headline"].iloc[0])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        g = runs[runs["arm"] == arm]
        values = [float(np.nanmedian(g[c])) if (c := keys.initial(keys.rank_key(eps, l))) in g else 0.0
                  for l in range(1, depth + 1)]
        ax.bar(np.arange(1, depth + 1) + (i - (len(arms) - 1) / 2) * width, values, width,
               label=f"{arm} (median of {len(g)} seeds)")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(f"initial ε-rank (ε = {keys.fmt_num(eps)})")
    ax.set_xticks(range(1, depth + 1))
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def spectra_plot(spectra: dict[str, tuple[int, dict]], eps: float, path: Path, title: str) -> list[Path]:
    """Gram eigenvalues of the last hidden layer at start (dashed) and end (solid), one colour per arm;
    ``spectra[arm] = (seed, {'initial': [per layer], 'final': [per layer]})``."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for colour, (arm, (seed, sp)) in zip(_colours(), sorted(spectra.items())):
        for when, style in ((record.SPECTRA_INITIAL, "--"), (record.SPECTRA_FINAL, "-")):
            if sp and when in sp:
                layer = len(sp[when])
                lam = np.clip(np.asarray(sp[when][-1]), 1e-18, None)
                ax.semilogy(np.arange(1, len(lam) + 1), lam, style, color=colour,
                            label=f"{arm}, seed {seed}, layer {layer}, {when}")
    ax.axhline(eps, color="grey", linewidth=0.6, linestyle=":")
    ax.annotate(f"ε = {keys.fmt_num(eps)}", (1.0, eps), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                textcoords="offset points", ha="right", fontsize=7, color="grey")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue of M = ΦᵀΦ/N")
    ax.legend(fontsize=7)
    ax.set_title(f"{title}: spectrum of the last hidden layer", fontsize=9)
    return save(fig, path)


def condensation_heatmap(weights: dict, path: Path, title: str = "", dpi: int = DPI,
                         pdf: bool = True) -> list[Path]:
    """Cosine-similarity heat maps D(u_i, u_j) of a layer's input weights u = (w, b) [m, d + 1], e.g.
    {'start': U0, 'end': U1} (tensors or nested lists), each ordered by its leading eigenvector, with the
    condensed orientation and line counts (docs/science.md §4) in the panel titles."""
    import torch

    # no layout engine: this figure is also every trial run's preview, drawn while the study runs
    fig, axes = plt.subplots(1, len(weights), figsize=(3.6 * len(weights), 3.4), squeeze=False)
    for ax, (label, u) in zip(axes[0], weights.items()):
        c = analyse(torch.as_tensor(u, dtype=torch.float64))
        im = ax.imshow(c.similarity.numpy(), cmap="RdYlBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{label}: {c.orientations} orientations, {c.lines} lines", fontsize=8)
        ax.set_xlabel("neuron (ordered by leading eigenvector)", fontsize=7)
        ax.set_ylabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="D(u, v)")
    fig.suptitle(title, fontsize=9)
    return save(fig, path, dpi, pdf)
