"""`sfli report`: tables and figures of one or several recorded studies, as Markdown plus files.

Reads only (MLflow run search for summaries; metric histories and a few artifacts for the figures). The
caller (the CLI in ``pipelines``) logs the written files to the study's parent run.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sfli_core import keys
from sfli_core.staircase import staircase_stats

from . import figures
from .runs import artifact_file, artifact_json, history, load_runs
from .tables import GROUP, condensation_table, layerwise_table, markdown, speedup_table, tuning_table, write

SPEEDUP_COLUMNS = ["study", "variant", "task", "arch", "tau", "baseline", "treatment", "reached_base",
                   "reached_treat", "median_steps_base", "median_steps_treat", "speedup_geomean", "speedup_ci_low",
                   "speedup_ci_high", "speedup_median", "speedup_kind", "censored_pairs", "wall_speedup_geomean",
                   "final_rel_l2_base", "final_rel_l2_treat", "initial_rank_base", "initial_rank_treat",
                   "wilcoxon_p"]


@dataclass
class Report:
    markdown: str
    files: list[Path] = field(default_factory=list)
    speedup: pd.DataFrame | None = None
    executions: dict[str, int] = field(default_factory=dict)  # the execution reported, per study


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts if p not in (None, "base")))


def curves_of(uri: str, runs: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """Per arm, one frame (index step; loss, rank of the last layer at the headline ε) per run."""
    out: dict[str, list[pd.DataFrame]] = {}
    for _, r in runs.iterrows():
        loss = history(uri, r["run_id"], keys.TRAIN_LOSS)
        rank = history(uri, r["run_id"], keys.rank_key(r["headline"], r["hidden_layers"]))
        out.setdefault(r["arm"], []).append(pd.DataFrame({"loss": loss, "rank": rank}))
    return out


def staircase_table(curves: dict[tuple, dict[str, list[pd.DataFrame]]], budgets: dict[tuple, int]) -> pd.DataFrame:
    """Median staircase statistics (docs/science.md §2) per group and arm."""
    rows = []
    for group, per_arm in curves.items():
        for arm, frames in sorted(per_arm.items()):
            stats = []
            for f in frames:
                f = f.dropna()
                if len(f) >= 3 and (f["loss"] > 0).all():
                    stats.append(staircase_stats(f.index.to_numpy(), f["loss"].to_numpy(), f["rank"].to_numpy(),
                                                 budget=budgets[group]))
            if not stats:
                continue
            rows.append({**dict(zip(GROUP, group)), "arm": arm, "runs": len(stats),
                         "rank_steps": float(np.median([s.rank_steps for s in stats])),
                         "plateaus": float(np.median([s.plateaus for s in stats])),
                         "plateau_steps": float(np.median([s.plateau_steps for s in stats])),
                         "spearman": float(np.nanmedian([s.spearman for s in stats]))
                         if not all(math.isnan(s.spearman) for s in stats) else math.nan})
    return pd.DataFrame(rows)


def build_report(uri: str, studies: list[str] | None, out: Path, with_figures: bool = True,
                 execution: int | None = None) -> Report:
    runs = load_runs(uri, studies, execution=execution)
    label = ", ".join(studies) if studies else "all studies"
    if runs.empty:
        which = f" (execution {execution})" if execution is not None else ""
        raise ValueError(f"no evaluation runs recorded for {label}{which} at {uri}")
    executions = {s: int(e) for s, e in runs.groupby("study")["execution"].first().items()}
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with warnings.catch_warnings():  # a group whose runs all diverged has only NaN: shown as —, not warned
        warnings.filterwarnings("ignore", "All-NaN slice|Mean of empty slice", RuntimeWarning)
        speed = speedup_table(runs)
        tuning = tuning_table(runs, load_runs(uri, studies, phase="search", execution=execution))
        layers = layerwise_table(runs)
        condensed = condensation_table(runs)
    speed = speed[[c for c in SPEEDUP_COLUMNS if c in speed.columns]] if not speed.empty else speed
    curves, budgets = {}, {}
    for group, g in runs.groupby(GROUP, dropna=False, sort=True):
        curves[group] = curves_of(uri, g)
        budgets[group] = int(g["budget"].iloc[0])
    stair = staircase_table(curves, budgets)
    for name, table in (("speedup", speed), ("tuning", tuning), ("layerwise", layers), ("staircase", stair),
                        ("condensation", condensed)):
        if not table.empty:
            files += write(table, out, name)

    if with_figures:
        for group, g in runs.groupby(GROUP, dropna=False, sort=True):
            slug, title = _slug(*group), " ".join(str(p) for p in group if p != "base")
            eps = float(g["headline"].iloc[0])
            files.append(figures.staircase_curves(curves[group], eps, out / f"staircase_{slug}.png", title))
            files.append(figures.initial_rank_bars(g, out / f"initial_rank_{slug}.png", title))
            first = g.sort_values("seed").groupby("arm").head(1)
            spectra = {r["arm"]: artifact_json(uri, r["run_id"], "spectra.json") for _, r in first.iterrows()}
            eps_all = [eps]
            files.append(figures.spectra_plot(spectra, eps_all, out / f"spectra_{slug}.png", title))
            for _, r in first.iterrows():
                got = artifact_file(uri, r["run_id"], "condensation.png", out)
                if got is not None:
                    target = out / f"condensation_{slug}_{r['arm']}.png"
                    got.replace(target)
                    files.append(target)
        if not speed.empty:
            files.append(figures.forest_plot(speed, out / "speedup_forest.png"))

    n_runs = len(runs)
    statuses = ", ".join(f"{k} {v}" for k, v in runs["status"].value_counts().items())
    which = ", ".join(f"{s} execution {e}" for s, e in executions.items())
    md = [f"# sfli report: {label}", "",
          f"{n_runs} evaluation runs ({statuses}) of {which}; tracking store {uri}; files in {out}.", "",
          "## Paired speed-up (steps to target; docs/science.md §6)", "",
          "Censored pairs count as bounds (`speedup_kind`), never dropped; `reached_*` is k of n paired seeds.",
          "", markdown(speed), "",
          "## Tuning (what each arm's search could change; a comparison is fair when every arm was tuned alike)",
          "", markdown(tuning), "",
          "## ε-rank by layer (headline ε; median over seeds)", "", markdown(layers), "",
          "## Staircase statistics (median over seeds; docs/science.md §2)", "", markdown(stair)]
    if not condensed.empty:
        md += ["", "## Condensation of the hidden layers (end of run)", "", markdown(condensed)]
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text)
    files.append(out / "report.md")
    return Report(markdown=text, files=files, speedup=speed, executions=executions)
