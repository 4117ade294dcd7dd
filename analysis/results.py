"""`sfli results`: the project's results page (docs/results.md) regenerated from recorded studies.

For every shipped study found in the store it builds the study's report (:func:`analysis.report.build_report`),
then writes one Markdown page: the source papers' claims judged one by one (:mod:`analysis.claims`), the
commands and the wall times recorded in MLflow, our errors beside the peers' (``anchors.yaml``: the peers'
numbers with their sources and budgets), and each study's generated tables and key figures. Nothing on the page
is typed by hand: run the command again after new runs and the page follows them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml
from matplotlib import image
from mlflow.tracking import MlflowClient

from sfli_core import record

from . import claims
from .condensation import orientation_course
from .formats import markdown
from .report import build_report, curves_of
from .runs import load_runs
from .summary import summary_table

STUDIES = ["quickstart", "function_fitting", "pinn_suite", "staircase", "condensation", "sfli_layouts"]
ANCHORS = Path(__file__).with_name("anchors.yaml")
# the report figures the page shows per study (the rest stay in each study's report): loss and ε-rank curves
# everywhere, Kaplan–Meier curves where a speed-up is the point, what the staircase statistics see, heat maps
FIGURES = {None: ["staircase_{study}_*.png"],
           "quickstart": ["staircase_{study}_*.png", "km_*.png"],
           "pinn_suite": ["staircase_{study}_*.png", "km_*helmholtz*.png"],
           "staircase": ["staircase_*.png", "spectra_*.png"],
           "condensation": ["condensation_*.png"]}
READING = """How to read the numbers (docs/science.md §6). Steps to a target τ are censored data: a run that never
reaches τ within its budget is censored there, not dropped. *reached* counts the paired seeds that got the
target metric to τ (baseline, then SFLI). The speed-up is the ratio of Kaplan–Meier median steps to τ
(baseline over SFLI) with a conservative 95 % interval; "≥ x×" is the one-sided 95 % bound when the
baseline's median lies beyond the budget. The error ratio (baseline over SFLI, geometric mean over seed
pairs, > 1 = SFLI more accurate) has a 95 % bootstrap interval. p-values are two-sided (log-rank for steps,
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
        if r.data.tags.get(record.ROLE) == record.ROLE_TRIAL:
            phases[r.data.tags.get("phase", "?")] = phases.get(r.data.tags.get("phase", "?"), 0) + 1
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
    image.thumbnail(str(src), str(figures / src.name), scale=0.5)
    return f"![{src.stem}]({(figures / src.name).relative_to(doc.parent).as_posix()})"


def _anchors(runs: pd.DataFrame) -> pd.DataFrame:
    """Our median final error per (task, arch, arm) at our budget beside each peer's number at theirs."""
    rows = []
    for a in yaml.safe_load(ANCHORS.read_text())["anchors"]:
        ours = runs[(runs["task"] == a["task"]) & (runs["arch"] == a["arch"])]
        for (study, arm), g in ours.groupby(["study", "arm"]):
            err = g["final/eval/rel_l2"]
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


def _section(name: str, spec: dict, wall: float, phases: dict[str, int], report_dir: Path, speed: pd.DataFrame,
             figures: Path, doc: Path, uri: str, runs: pd.DataFrame) -> list[str]:
    lines = [f"## {name}", "", " ".join(str(spec.get("description", "")).split()), "",
             f"`sfli run studies/{name}.yaml`: {sum(phases.values())} trial runs "
             f"({', '.join(f'{n} {k}' for k, n in sorted(phases.items()))}), {wall / 60:.1f} min recorded.", ""]
    if not speed.empty:
        table = summary_table(speed).drop(columns=["study", "ert_ratio_95", "underpowered"])
        lines += ["Speed-up to each target and final error, SFLI against each baseline:", "", markdown(table), ""]
    for stem, heading in (("tuning", "Tuning: each arm's searched knobs, the values chosen, what the search spent and "
                                     "any choice at the edge of its range"),
                          ("layerwise", "ε-rank by hidden layer (median over seeds)"),
                          ("staircase", "Staircase statistics up to the smallest target (median over seeds)"),
                          ("condensation", "Condensation: end of run and initial stage"),
                          ("condensation_conventions", "Seeds above 2p under other clustering conventions")):
        path = report_dir / f"{stem}.csv"
        if path.exists():
            table = pd.read_csv(path).drop(columns=["study"], errors="ignore")
            if stem == "layerwise":
                table = table.drop(columns=["variant"], errors="ignore")
            lines += [f"{heading}:", "", markdown(table), ""]
    if name == "condensation":
        for task, table in orientation_course(uri, runs[runs["study"] == name]).items():
            lines += [f"First-layer orientations at every logging step, median (max) over seeds ({task}; "
                      "columns: step):", "", markdown(table), ""]
    shown = [p for pattern in FIGURES.get(name, FIGURES[None])
             for p in sorted(report_dir.glob(pattern.format(study=name)))]
    links = [_figure(p, figures, doc) for p in shown]
    if links:
        lines += ["Figures (from the study's HTML report):", ""] + [f"{link}" for link in links] + [""]
    return lines


def build_results(uri: str, reports: Path, doc: Path, figures: Path, studies_dir: Path) -> str:
    """Write ``doc`` (Markdown) and its figures from the recorded shipped studies; returns the text."""
    client = MlflowClient(uri)
    recorded = [s for s in STUDIES if client.get_experiment_by_name(s) is not None]
    runs = load_runs(uri, recorded) if recorded else pd.DataFrame()
    present = [s for s in recorded if not runs.empty and s in set(runs["study"])]  # with finished evaluations
    if not present:
        raise ValueError(f"none of the shipped studies ({', '.join(STUDIES)}) has finished evaluation runs "
                         f"at {uri}")
    reps, walls = {}, {}
    for study in present:
        reps[study] = build_report(uri, [study], reports / study)
        walls[study] = _wall(client, study, reps[study].executions[study])
    speed = pd.concat([r.speedup for r in reps.values() if r.speedup is not None and not r.speedup.empty],
                      ignore_index=True)
    stair_runs = runs[runs["study"] == "staircase"]
    stair = claims.per_run_staircase(curves_of(uri, stair_runs)) if not stair_runs.empty else pd.DataFrame()
    cond_dir = reports / "condensation"
    cond = pd.read_csv(cond_dir / "condensation.csv") if (cond_dir / "condensation.csv").exists() else pd.DataFrame()
    conv = (pd.read_csv(cond_dir / "condensation_conventions.csv")
            if (cond_dir / "condensation_conventions.csv").exists() else pd.DataFrame())
    pdes = list(claims.PDES)
    pde_studies = ["pinn_suite", "sfli_layouts"]
    verdicts = [
        claims.initial_rank(runs),
        claims.speed(speed, ["quickstart", "function_fitting"], ["fit1d_multiscale"], None,
                     "SFLI accelerates training on 1-D function fitting", "SFLI paper"),
        claims.accuracy(speed, ["quickstart", "function_fitting"], ["fit1d_multiscale"], None,
                        "SFLI improves accuracy on 1-D function fitting", "SFLI paper"),
        claims.speed(speed, ["function_fitting", "sfli_layouts"], ["fit2d_multiscale"], None,
                     "SFLI accelerates training on 2-D function fitting", "SFLI paper"),
        claims.accuracy(speed, ["function_fitting", "sfli_layouts"], ["fit2d_multiscale"], None,
                        "SFLI improves accuracy on 2-D function fitting", "SFLI paper"),
        claims.speed(speed, pde_studies, pdes, ["mlp"], "SFLI accelerates PINN training (MLP)", "SFLI paper"),
        claims.accuracy(speed, pde_studies, pdes, ["mlp"], "SFLI improves PINN accuracy (MLP)", "SFLI paper"),
        claims.speed(speed, pde_studies, pdes, ["modified_mlp"], "SFLI accelerates PINN training (modified MLP)",
                     "SFLI paper"),
        claims.accuracy(speed, pde_studies, pdes, ["modified_mlp"], "SFLI improves PINN accuracy (modified MLP)",
                        "SFLI paper"),
        claims.accuracy(speed, pde_studies, pdes, ["pirate"], "SFLI improves PINN accuracy (PirateNet)",
                        "SFLI paper"),
        claims.staircase(stair, int(stair_runs["budget"].max()) if not stair_runs.empty else 0),
        claims.depth(runs),
        claims.condensation(cond, conv),
    ]
    table = pd.DataFrame([vars(v) for v in verdicts])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    lines = ["# Results: does SFLI speed up training, by how much, and does the ε-rank explain it?", "",
             f"_Generated on {when} by `sfli results` from the runs recorded at `{uri}` "
             f"(studies: {', '.join(present)}). Regenerate it; do not edit it._", "",
             f"Every number below comes from this repository's studies on this project's machine "
             f"({_provenance(client, runs['run_id'].iloc[0])}), recorded in MLflow. Evaluation seeds are never "
             "search seeds, every arm runs the full budget, runs are paired by seed, and every arm of a study "
             "had the same number of search trials (none where a study says so).", "", READING, "",
             "## The papers' claims", "",
             "Verdicts (docs/science.md; `analysis/claims.py`): *reproduced* = every comparison tested supports "
             "the claim at 95 % (interval excluding 1, adjusted p < 0.05); *partly* = some do; *not reproduced* "
             "= none does; *not tested here* = no study covers it at this machine's budget.", "",
             markdown(table), "",
             "## Commands and wall times", "",
             markdown(_scale(runs, load_runs(uri, present, phase="search"), walls)), "",
             "Wall time is from the first run's start to the last run's end as MLflow recorded them (2 cores, "
             "studies run one after the other); Ray's start-up and the final report add about half a minute. "
             "Each study file states the `--set` line for a GPU cluster's paper-scale budget.", "",
             "## Accuracy beside the peers", "",
             "Our median final relative L2 error [inter-quartile range] at our budget, beside a peer's at its own. "
             "The budgets differ by one to two orders of magnitude: this is a position, not a claim of parity.", "",
             markdown(_anchors(runs)), ""]
    for study in present:
        spec = _study_file(studies_dir, study)
        section = _section(study, spec, *walls[study], reports / study,
                           speed[speed["study"] == study] if not speed.empty else speed, figures, doc, uri, runs)
        if study in reps[study].unfinished:  # under its heading: partial numbers never look final
            section[2:2] = [f"**WARNING: {reps[study].unfinished[study]}**", ""]
        lines += section
    text = "\n".join(lines) + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    for stale in _images(doc) - _images(text):  # figures the previous page showed and this one does not
        (doc.parent / stale).unlink(missing_ok=True)
    doc.write_text(text)
    return text


def _images(page: Path | str) -> set[str]:
    """The relative image paths a page (a file, or its text) links to."""
    if isinstance(page, Path) and not page.exists():
        return set()
    text = page.read_text() if isinstance(page, Path) else page
    return {line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")}

