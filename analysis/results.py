"""`sfli results`: the project's results page (docs/results.md) regenerated from recorded studies.

For every study of the catalogue (analysis/catalogue.yaml, extended by a user's) found in the store it builds the
study's report (:func:`analysis.report.build_report`), then writes one Markdown page: the catalogue's claims
judged one by one (:mod:`analysis.claims`), the
commands and the wall times recorded in MLflow, our errors beside the peers' (``anchors.yaml``: the peers'
numbers with their sources and budgets), and each study's generated tables and key figures. Nothing on the page
is typed by hand: run the command again after new runs and the page follows them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from sfli_core import keys, record

from . import claims, report
from .catalogue import SHIPPED, Catalogue, load_catalogue
from .condensation import orientation_course
from .formats import markdown
from .report import build_report
from .runs import load_runs, search_trials
from .summary import summary_table

ANCHORS = Path(__file__).with_name("anchors.yaml")
READING = """How to read the numbers (docs/science.md §6). Steps to a target τ are censored data: a run that never
reaches τ within its budget is censored there, not dropped. *reached* counts the paired seeds that got the
target metric to τ (baseline, then treatment). The speed-up is the ratio of Kaplan–Meier median steps to τ
(baseline over treatment) with a conservative 95 % interval; "≥ x×" is the one-sided 95 % bound when the
baseline's median lies beyond the budget. The error ratio (baseline over treatment, geometric mean over seed
pairs, > 1 = treatment more accurate) has a 95 % bootstrap interval. p-values are two-sided (log-rank for steps,
signed-rank for final errors) and adjusted by Benjamini–Hochberg across the rows of each study's report;
with n pairs the signed-rank test cannot go below 2/2ⁿ (0.0078 at 8)."""


def _wall(client: MlflowClient, study: str, execution: int) -> tuple[float, dict[str, int]]:
    """Seconds from the first run's start to the last run's end of one execution, and trial runs per phase."""
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id], f"tags.{record.EXECUTION} = '{execution}'",
                              max_results=50000)
    starts = [r.info.start_time for r in runs if r.info.start_time]
    ends = [r.info.end_time for r in runs if r.info.end_time]
    phases: dict[str, int] = {}
    for r in runs:
        if r.data.tags.get(record.RUN_TYPE) == record.RunType.TRIAL:
            phase = r.data.tags.get(record.PHASE, "?")
            phases[phase] = phases.get(phase, 0) + 1
    return ((max(ends) - min(starts)) / 1000 if starts and ends else float("nan")), phases


def _provenance(client: MlflowClient, run_id: str) -> str:
    p = client.get_run(run_id).data.params
    meta = {k.removeprefix(record.META): v for k, v in p.items() if k.startswith(record.META)}
    return (f"torch {meta.get('version.torch', '?')}, Python {meta.get('version.python', '?')}, numpy "
            f"{meta.get('version.numpy', '?')}, device {meta.get('device', '?')}, {meta.get('precision', '?')}, "
            f"{meta.get('torch.threads', '?')} torch thread(s) per run")


def _study_file(studies_dir: Path, name: str) -> dict:
    path = studies_dir / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _figure(src: Path, figures: Path, doc: Path) -> str:
    """A report figure at half its resolution in the page's figure folder (the page is read on screen; the
    report keeps the print resolution); its Markdown image link, relative to the page."""
    figures.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as picture:  # Pillow (matplotlib's own image library; its thumbnail() is deprecated)
        picture.thumbnail((max(1, picture.width // 2), max(1, picture.height // 2)))
        picture.save(figures / src.name)
    return f"![{src.stem}]({(figures / src.name).relative_to(doc.parent).as_posix()})"


def _anchors(runs: pd.DataFrame) -> pd.DataFrame:
    """Our median final error per (task, arch, arm) at our budget beside each peer's number at theirs."""
    rows = []
    for a in yaml.safe_load(ANCHORS.read_text())["anchors"]:
        ours = runs[(runs["task"] == a["task"]) & (runs["arch"] == a["arch"])]
        for (study, arm), g in ours.groupby(["study", "arm"]):
            err = g[keys.final(keys.EVAL_REL_L2)]
            rows.append({"task": a["task"], "arch": a["arch"], "ours": f"{arm}: {err.median():.3g} "
                         f"[{err.quantile(0.25):.3g}, {err.quantile(0.75):.3g}]",
                         "our_budget": f"{int(g['budget'].iloc[0])} Adam steps, width {int(g['width'].iloc[0])}, "
                                       f"{len(g)} seeds ({study})",
                         "peer": a["peer"], "peer_error": a["error"], "peer_budget": a["budget"],
                         "source": a["source"]})
        if ours.empty:
            rows.append({"task": a["task"], "arch": a["arch"], "ours": "not run here", "our_budget": "—",
                         "peer": a["peer"], "peer_error": a["error"], "peer_budget": a["budget"],
                         "source": a["source"]})
    return pd.DataFrame(rows)


def _scale(runs: pd.DataFrame, search: pd.DataFrame, walls: dict) -> pd.DataFrame:
    """Per study: the command, what it ran (grid points, arms, seeds, steps, search trials per arm and grid
    point) and its recorded wall time."""
    rows = []
    for study, g in runs.groupby("study", sort=False):
        s = search[search["study"] == study] if not search.empty else search
        cells = g.groupby(["arm", "variant"]).ngroups
        trials = s.groupby(["arm", "variant"]).size() if not s.empty else pd.Series(dtype=int)
        rows.append({"command": f"sfli run studies/{study}.yaml", "grid points": g["variant"].nunique(),
                     "arms": g["arm"].nunique(), "seeds per cell": int(g.groupby(["arm", "variant"]).size().min()),
                     "steps per run": "/".join(str(b) for b in sorted(g["budget"].unique())),
                     "search trials per cell": ("none (fixed knobs)" if trials.empty else
                                                "/".join(str(t) for t in sorted(trials.unique()))
                                                + f" ({len(trials)} of {cells} cells searched)"),
                     "trial runs": ", ".join(f"{n} {k}" for k, n in sorted(walls[study][1].items())),
                     "recorded wall time": f"{walls[study][0] / 60:.1f} min"})
    return pd.DataFrame(rows)


def _section(name: str, patterns: list[str], spec: dict, wall: float, phases: dict[str, int],
             rep: report.Report, report_dir: Path, figures: Path, doc: Path, uri: str, runs: pd.DataFrame) -> list[str]:
    """The study's heading, description, command, tables and figures."""
    tables, speed = rep.tables, rep.speedup if rep.speedup is not None else pd.DataFrame()
    lines = [f"## {name}", "", " ".join(str(spec.get("description", "")).split()), "",
             f"`sfli run studies/{name}.yaml`: {sum(phases.values())} trial runs "
             f"({', '.join(f'{n} {k}' for k, n in sorted(phases.items()))}), {wall / 60:.1f} min recorded.", ""]
    if not speed.empty:
        table = summary_table(speed).drop(columns=["study", "ert_ratio_95", "underpowered"])
        lines += ["Speed-up to each target and final error, each treatment against each baseline:", "",
                  markdown(table), ""]
    for name_, heading in ((report.TUNING, "Tuning: each arm's searched knobs, the values chosen, what the search "
                                           "spent and any choice at the edge of its range"),
                           (report.LAYERWISE, "ε-rank by hidden layer (median over seeds)"),
                           (report.STAIRCASE, "Staircase statistics over one window for every arm (median over seeds)"),
                           (report.CONDENSATION, "Condensation: end of run and initial stage"),
                           (report.CONVENTIONS, "Seeds above 2p under other clustering conventions")):
        table = tables.get(name_, pd.DataFrame())
        if not table.empty:
            table = table.drop(columns=["study"] + (["variant"] if name_ == report.LAYERWISE else []), errors="ignore")
            lines += [f"{heading}:", "", markdown(table), ""]
    for task, table in orientation_course(uri, runs[runs["study"] == name]).items():  # small-init arms that tracked
        lines += [f"First-layer orientations at every logging step, median (max) over seeds ({task}; "
                  "columns: step):", "", markdown(table), ""]
    shown = [p for pattern in patterns for p in sorted(report_dir.glob(pattern.format(study=name)))]
    links = [_figure(p, figures, doc) for p in shown]
    if links:
        lines += ["Figures (from the study's HTML report):", ""] + [f"{link}" for link in links] + [""]
    return lines


def build_results(uri: str, reports: Path, doc: Path, figures: Path, studies_dir: Path,
                  catalogue: Catalogue | None = None, store: str | None = None, workers: int = 1) -> str:
    """Write ``doc`` (Markdown) and its figures from the catalogue's recorded studies; returns the text.
    ``catalogue``: the studies and claims (default: the shipped one); ``store``: the store as the user named it,
    for the page's provenance (default: the URI's last path element); ``workers``: processes that draw each
    report's figures (analysis.drawing)."""
    catalogue = catalogue or load_catalogue(SHIPPED, list(claims.TESTS))
    client = MlflowClient(uri)
    present, runs = _recorded(client, uri, catalogue)
    reps = {study: build_report(uri, [study], reports / study, store=store, workers=workers) for study in present}
    walls = {study: _wall(client, study, reps[study].executions[study]) for study in present}
    verdicts = claims.judge(claims.Evidence(uri, runs), catalogue.claims)
    lines = _head(store or _store_name(uri), present, _provenance(client, runs["run_id"].iloc[0]), verdicts)
    executions = {study: reps[study].executions[study] for study in present}
    lines += _overview(runs, search_trials(uri, executions), walls)
    for study in present:
        section = _section(study, catalogue.studies[study], _study_file(studies_dir, study), *walls[study],
                           reps[study], reports / study, figures, doc, uri, runs)
        if study in reps[study].unfinished:  # under its heading: partial numbers never look final
            section[2:2] = [f"**WARNING: {reps[study].unfinished[study]}**", ""]
        lines += section
    text = "\n".join(lines) + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    for stale in _images(doc) - _images(text):  # figures the previous page showed and this one does not
        (doc.parent / stale).unlink(missing_ok=True)
    doc.write_text(text)
    return text


def _recorded(client: MlflowClient, uri: str, catalogue: Catalogue) -> tuple[list[str], pd.DataFrame]:
    """The catalogue's studies with finished evaluation runs in the store, and those runs."""
    recorded = [s for s in catalogue.studies if client.get_experiment_by_name(s) is not None]
    runs = load_runs(uri, recorded) if recorded else pd.DataFrame()
    present = [s for s in recorded if not runs.empty and s in set(runs["study"])]
    if not present:
        raise ValueError(f"none of the catalogue's studies ({', '.join(catalogue.studies)}) has finished "
                         f"evaluation runs at {uri}")
    return present, runs


def _store_name(uri: str) -> str:
    """A store named without the machine's folders: an SQLite file by its own and its folder's names."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return f"sqlite:///…/{path.parent.name}/{path.name}"
    return uri


def _head(store: str, present: list[str], provenance: str, verdicts: pd.DataFrame) -> list[str]:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    legend = ", ".join(f"*{v}*" for v in claims.Verdict)
    return ["# Results: does SFLI speed up training, by how much, and does the ε-rank explain it?", "",
            f"_Generated on {when} by `sfli results` from the runs recorded in `{store}` "
            f"(studies: {', '.join(present)}). Regenerate it; do not edit it._", "",
            f"Every number below comes from this repository's studies ({provenance}), recorded in MLflow. "
            "Evaluation seeds are never search seeds, every arm runs the full budget, runs are paired by seed, "
            "and every arm of a study had the same number of search trials (none where a study says so).", "",
            READING, "", "## The papers' claims", "",
            f"Verdicts ({legend}; `analysis/claims.py`, catalogue `analysis/catalogue.yaml`). A claim about "
            "speed, accuracy or the initial ε-rank has one effect: per cell the paired log ratio (baseline over "
            "treatment; steps to the first target counted up to the budget, so a run that never got there counts "
            "the budget), pooled across cells by a random-effects meta-analysis (Paule–Mandel τ², t-interval on "
            "cells − 1 df); *supported* = the pooled effect is in the claimed direction with its p, Holm-adjusted "
            "across the claims of this page (p_adj), below 0.05; *contradicted* = the same in the other direction; "
            "*inconclusive* = neither (seeds_needed: evaluation seeds per cell that would decide it at the observed "
            "effect and spreads with 80 % power at level 0.05/m (m: the pooled claims of this page) — a paired "
            "t-test for one cell, the random-effects test for several — or \"more cells, not seeds\" where the "
            "spread between cells alone keeps it open; "
            "docs/science.md §6b); *not tested* = no recorded run covers it. The "
            "staircase, depth and condensation claims state their own rule in their statistic. The treatment is "
            "every arm whose initialisation's role is treatment (SFLI, or a scheme registered as one).", "",
            markdown(verdicts), ""]


def _overview(runs: pd.DataFrame, search: pd.DataFrame, walls: dict) -> list[str]:
    return ["## Commands and wall times", "", markdown(_scale(runs, search, walls)), "",
            "Wall time is from the first run's start to the last run's end as MLflow recorded them (studies run "
            "one after the other); Ray's start-up and the final report are not in it. Each study file states "
            "the `--set` line for a GPU cluster's paper-scale budget.", "",
            "## Accuracy beside the peers", "",
            "Our median final relative L2 error [inter-quartile range] at our budget, beside a peer's at its own. "
            "The budgets differ by one to two orders of magnitude: this is a position, not a claim of parity.", "",
            markdown(_anchors(runs)), ""]


def _images(page: Path | str) -> set[str]:
    """The relative image paths a page (a file, or its text) links to."""
    if isinstance(page, Path) and not page.exists():
        return set()
    text = page.read_text() if isinstance(page, Path) else page
    return {line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")}

