"""`sfli report`: tables and figures of one or several recorded studies: Markdown, CSV, LaTeX, figures (PNG and
PDF), one self-contained HTML page, and a compact table for the terminal.

Reads only (MLflow run search for summaries; metric histories and a few artifacts for the figures). Logging
the files to a study's runs is the caller's decision (``pipelines.reporting``).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sfli_core import keys, record
from sfli_core.staircase import staircase_stats

from . import columns, figures
from . import html as page
from .condensation import condensation_table, convention_check, first_above_2p, stage_step, with_stage
from .curves import common_window, curves_of
from .drawing import Job, draw_all, prepare
from .figure_cache import drawn, figures_of, fingerprint
from .formats import html_table, markdown, write
from .runs import artifact_json, history, load_runs, parent_tags, search_trials, unfinished
from .summary import compact, summary_table
from .survival import Runtimes
from .tables import GROUP, layerwise_table, speedup_table, tuning_table
from .tuning import load_search, tuning_figure

SPEEDUP_COLUMNS = list(columns.GROUP) + list(columns.SPEEDUP)
# the report's tables (files <name>.csv/.md/.tex in its folder; Report.tables by these names)
SUMMARY, SPEEDUP, TUNING, LAYERWISE, STAIRCASE = "speedup_summary", "speedup", "tuning", "layerwise", "staircase"
CONDENSATION, CONVENTIONS = "condensation", "condensation_conventions"


@dataclass
class Report:
    markdown: str
    terminal: str  # the compact table and where the files are, for a 120-column terminal
    html: Path
    files: list[Path] = field(default_factory=list)
    speedup: pd.DataFrame | None = None
    executions: dict[str, int] = field(default_factory=dict)  # the execution reported, per study
    unfinished: dict[str, str] = field(default_factory=dict)  # study → why its numbers are partial
    version: int | None = None  # the version it was recorded as, when it was
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name (SUMMARY, TUNING, …) → table


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts if p not in (None, "base")))


def staircase_table(curves: dict[tuple, dict[str, list[pd.DataFrame]]]) -> pd.DataFrame:
    """Median staircase statistics (docs/science.md §2) per group and arm, every arm over its group's window."""
    rows = []
    for group, per_arm in curves.items():
        window = common_window(per_arm)
        for arm, frames in sorted(per_arm.items()):
            stats = []
            for frame in frames:
                f = frame.dropna()
                if len(f) >= 3 and (f["loss"] > 0).all():
                    stats.append(staircase_stats(f.index.to_numpy(), f["loss"].to_numpy(), f["rank"].to_numpy(),
                                                 until=window))
            if not stats:
                continue
            rows.append({**dict(zip(GROUP, group)), "arm": arm, "runs": len(stats),
                         "rank_steps": float(np.median([s.rank_steps for s in stats])),
                         "plateaus": float(np.median([s.plateaus for s in stats])),
                         "plateau_steps": float(np.median([s.plateau_steps for s in stats])),
                         "spearman": float(np.nanmedian([s.spearman for s in stats]))
                         if not all(math.isnan(s.spearman) for s in stats) else math.nan})
    return pd.DataFrame(rows)


def runtimes_of(runs: pd.DataFrame, taus) -> dict[tuple[str, float], dict[str, Runtimes]]:
    """Per (unit, τ) and arm: steps to τ censored at the budget, training seconds censored at the run's
    training time (docs/science.md §6)."""
    out = {}
    for tau in taus:
        for unit, col, budget in (("steps", keys.steps_to(tau), "budget"),
                                  ("seconds", keys.seconds_to(tau), keys.TIME_TRAIN)):
            out[(unit, tau)] = {arm: Runtimes.of(*(g[c] if c in g else np.full(len(g), np.nan) for c in (col, budget)))
                                for arm, g in runs.groupby("arm")}
    return out


def _figures(uri: str, runs: pd.DataFrame, curves: dict, speed: pd.DataFrame, out: Path) -> list[Job]:
    """The report's figures to draw, each a figure function and its arguments (analysis.drawing)."""
    jobs: list[Job] = []
    for group, g in runs.groupby(GROUP, dropna=False, sort=True):
        slug, title = _slug(*group), " ".join(str(p) for p in group if p != "base")
        first = g.iloc[0]
        eps, taus = float(first["headline"]), list(first["thresholds"])
        jobs += [(figures.km_curves, (runtimes_of(g, taus), taus, float(g["budget"].max()), out / f"km_{slug}.png",
                                      title)),
                 (figures.staircase_curves, (curves[group], eps, taus, first["metric"],
                                             out / f"staircase_{slug}.png", title)),
                 (figures.staircase_segments, (curves[group], eps, out / f"staircase_segments_{slug}.png", title)),
                 (figures.initial_rank_bars, (g, out / f"initial_rank_{slug}.png", title))]
        lowest = g.sort_values("seed").groupby("arm").head(1)
        spectra = {r["arm"]: (int(r["seed"]), artifact_json(uri, r["run_id"], record.SPECTRA_FILE))
                   for _, r in lowest.iterrows()}
        jobs.append((figures.spectra_plot, (spectra, eps, out / f"spectra_{slug}.png", title)))
        for _, r in pd.concat([lowest, first_above_2p(g)]).drop_duplicates("run_id").iterrows():
            jobs += _heatmap(uri, r, out / f"condensation_{slug}_{r['arm']}_seed{int(r['seed'])}.png",
                             f"{title}, {r['arm']} seed {int(r['seed'])}, first analysed layer")
    if not speed.empty:
        jobs.append((figures.forest_plot, (speed, out / "speedup_forest.png")))
    return jobs


def _tuning_figures(runs: pd.DataFrame, audit: str, out: Path) -> list[Job]:
    """Per searched cell, the objective of every search trial against each knob (analysis.tuning)."""
    jobs: list[Job] = []
    for (study, execution, variant, arm), g in runs.groupby(["study", "execution", "variant", "arm"], sort=True):
        trials = load_search(audit, record.search_study_name(study, int(execution), arm, variant))
        if trials:
            title = (f"{study}: search of {arm}" + (f" at {variant}" if variant != "base" else "")
                     + f" ({len(trials)} trials)")
            jobs.append((tuning_figure, (trials, g["chosen"].iloc[0], out / f"tuning_{_slug(study, variant, arm)}.png",
                                         title)))
    return jobs


def _heatmap(uri: str, run: pd.Series, path: Path, title: str) -> list[Job]:
    """Heat maps of the first condensation layer at the start, in the initial stage (when the run tracked its
    weights) and at the end; none when the run recorded no weights."""
    weights = artifact_json(uri, run["run_id"], record.WEIGHTS_FILE)
    if weights is None:
        return []
    panels = {"start": weights[record.WEIGHTS_START]}
    if record.WEIGHTS_STEPS in weights:
        step = stage_step(history(uri, run["run_id"], keys.TRAIN_LOSS))
        panels[f"initial stage, step {step}"] = weights[record.WEIGHTS_STEPS][str(step)]
    panels["end"] = weights[record.WEIGHTS_END]
    return [(figures.condensation_heatmap, (panels, path, title))]


def build_report(uri: str, studies: list[str] | None, out: Path, with_figures: bool = True,
                 execution: int | None = None, audit: str | None = None, store: str | None = None,
                 workers: int = 1) -> Report:
    """The report of ``studies`` (all recorded studies when None) in the folder ``out``: tables (CSV, Markdown,
    LaTeX), figures, report.md and report.html. ``audit``: the Optuna storage of the studies' searches
    (pipelines.audit), for the tuning figures; ``store``: the store as the user named it, for the pages. Figures
    already drawn in ``out`` from the same runs by the same code are reused (analysis.figure_cache); the others
    are drawn by up to ``workers`` processes (analysis.drawing: a command passes ``available_workers()``)."""
    runs = load_runs(uri, studies, execution=execution)
    label = ", ".join(studies) if studies else "all studies"
    if runs.empty:
        which = f" (execution {execution})" if execution is not None else ""
        raise ValueError(f"no evaluation runs recorded for {label}{which} at {uri}")
    key = fingerprint(runs, audit) if with_figures else ""
    if with_figures and drawn(out, key) is None:
        prepare(workers)
    executions = {s: int(e) for s, e in runs.groupby("study")["execution"].first().items()}
    partial = unfinished(uri, executions)
    out.mkdir(parents=True, exist_ok=True)
    speed, curves, tables = _tables(uri, runs, executions)
    files = [f for name, _, table in tables if not table.empty
             for f in write(table, out, name, tex=name != "speedup")]

    def draw() -> list[Path]:
        jobs = _figures(uri, runs, curves, speed, out) + (_tuning_figures(runs, audit, out) if audit else [])
        return draw_all(jobs, workers)

    figure_files = figures_of(out, key, draw) if with_figures else []
    statuses = ", ".join(f"{k} {v}" for k, v in runs["status"].value_counts().items())
    which = ", ".join(f"{s} execution {e}" for s, e in executions.items())
    intro = (f"{len(runs)} evaluation runs ({statuses}) of {which}; tracking store {store or 'as given'}. "
             "Steps to a target are censored at the budget (a run that never reached τ, or diverged); medians "
             "are Kaplan–Meier estimates, intervals 95 % unless a column says otherwise, p-values are "
             "two-sided and adjusted across this report's rows by Benjamini–Hochberg (the _adj columns).")
    warning = [f"WARNING: {why}" for why in partial.values()]
    headline = compact(speed)
    text, html_path = _pages(out, label, warning, intro, headline, tables, figure_files)
    terminal = "".join(f"{w}\n\n" for w in warning) + (
        f"{len(runs)} evaluation runs ({statuses}) of {which}\n\n{headline}\n\n"
        f"Full tables, figures and {html_path.name}: {out}")
    return Report(markdown=text, terminal=terminal, html=html_path,
                  files=files + figure_files + [out / "report.md", html_path], speedup=speed,
                  executions=executions, unfinished=partial, tables={name: table for name, _, table in tables})


def _tables(uri: str, runs: pd.DataFrame, executions: dict[str, int]) -> tuple[pd.DataFrame, dict, list]:
    """The speed-up rows, the loss and rank curves per group, and the report's tables (name, heading, table)."""
    with warnings.catch_warnings():  # a group whose runs all diverged has only NaN: shown as —, not warned
        warnings.filterwarnings("ignore", "All-NaN slice|Mean of empty slice", RuntimeWarning)
        speed = speedup_table(runs)
        tuning = tuning_table(runs, search_trials(uri, executions),
                              {s: parent_tags(uri, s, record.Phase.SEARCH, e) for s, e in executions.items()})
        layers = layerwise_table(runs)
        condensed = condensation_table(with_stage(uri, runs))
        conventions = convention_check(uri, runs)
    speed = speed[[c for c in SPEEDUP_COLUMNS if c in speed.columns]] if not speed.empty else speed
    curves = {group: curves_of(uri, g) for group, g in runs.groupby(GROUP, dropna=False, sort=True)}
    tables = [(SUMMARY, "Speed-up to target and final error, baseline against treatment", summary_table(speed)),
              (SPEEDUP, "All estimates behind it (a LaTeX table this wide would not fit a page: CSV, Markdown)",
               speed),
              (TUNING, "Tuning: what each arm's search could change (a comparison is fair when every arm was "
                       "tuned alike)", tuning),
              (LAYERWISE, "ε-rank by hidden layer (headline ε; median over seeds)", layers),
              (STAIRCASE, "Staircase statistics over one window for every arm (median over seeds; docs/science.md §2)",
               staircase_table(curves)),
              (CONDENSATION, "Condensation of the hidden layers: end of run and initial stage (loss still "
                             "≥ 70 % of its initial value; docs/science.md §4)", condensed),
              (CONVENTIONS, "Seeds above 2p (first layer) under other clustering conventions, "
                            "recounted from the recorded weights", conventions)]
    return speed, curves, [t for t in tables if not t[2].empty or t[0] not in (CONDENSATION, CONVENTIONS)]


def _pages(out: Path, label: str, warning: list[str], intro: str, headline: str, tables: list,
           figure_files: list[Path]) -> tuple[str, Path]:
    """report.md and report.html in ``out``; returns the Markdown text and the HTML file."""
    used = {c for _, _, t in tables for c in t.columns}
    glossary = {k: v for k, v in columns.ALL.items() if k in used}
    pictures = [p for p in figure_files if p.suffix == ".png"]
    md = [f"# sfli report: {label}", ""] + [f"**{w}**\n" for w in warning]
    md += [intro, "", "## Headline", "", "```", headline, "```", ""]
    for _, heading, table in tables:
        md += [f"## {heading}", "", markdown(table), ""]
    md += ["## Columns", ""] + [f"- `{k}`: {v}" for k, v in glossary.items()]
    if pictures:
        md += ["", "## Figures", ""] + [f"- {p.name}" for p in pictures]
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text)
    html_path = out / "report.html"
    sections = [("Unfinished", "".join(page.paragraph(w) for w in warning))] if warning else []
    sections += [("About", page.paragraph(intro)), ("Headline", page.preformatted(headline))]
    sections += [(heading, html_table(table)) for _, heading, table in tables]
    sections += [("Columns", page.glossary(glossary))]
    if pictures:
        sections += [("Figures", "".join(page.image(p) for p in pictures))]
    html_path.write_text(page.page(f"sfli report: {label}", sections))
    return text, html_path
