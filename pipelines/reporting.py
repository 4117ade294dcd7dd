"""`sfli report`: builds the analysis report; with ``log`` (always after `sfli run`, on request for `sfli
report --log`) also records it on the study's evaluate parent run, as a new version that never replaces an
earlier one: files under ``report/v<N>``, the headline statistics of every row as metrics at step N, and the
summary table as the run's description (Markdown)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis.formats import markdown
from analysis.report import Report, build_report
from analysis.summary import summary_table
from sfli_core import keys, record
from sfli_core.config import ConfigError

from .environment import quiet
from .state import StudyState
from .tracking import Tracker, check_store, runs_dir, store_label, tracking_uri

HEADLINE = ["pairs", "reached_base", "reached_treat", "speedup", "speedup_low", "speedup_high", "ert_ratio",
            "ert_ratio_low", "ert_ratio_high", "logrank_p", "logrank_p_adj", "error_ratio", "error_ratio_low",
            "error_ratio_high", "signed_rank_p", "signed_rank_p_adj"]


def _prefix(row: dict) -> str:
    return f"result/{row['variant']}/{row['baseline']}-vs-{row['treatment']}/tau{keys.fmt_num(row['tau'])}"


def result_metrics(speed: pd.DataFrame) -> dict[str, float]:
    """``result/<grid point>/<baseline>-vs-<treatment>/tau<τ>/<statistic>`` for every row of the table; a
    value that is not finite (an open interval end, a missing estimate) is not logged: the row's
    ``.../speedup_statement`` tag says it in words."""
    out = {}
    for r in speed.to_dict("records"):
        out.update({f"{_prefix(r)}/{k}": float(r[k]) for k in HEADLINE
                    if isinstance(r.get(k), (int, float)) and math.isfinite(float(r[k]))})
    return out


def _next_version(tracker: Tracker, run_id: str) -> int:
    """One more than any version begun before, whether its files or only its mark were recorded."""
    names = [a.path.rsplit("/", 1)[-1] for a in tracker.client.list_artifacts(run_id, record.REPORT_FOLDER)]
    names += [k.rsplit("/", 1)[-1] for k in tracker.client.get_run(run_id).data.tags
              if k.startswith(f"{record.REPORT_FOLDER}/v")]
    return 1 + max((int(n[1:]) for n in names if n.startswith("v") and n[1:].isdigit()), default=0)


def log_report(tracker: Tracker, study: str, execution: int, result: Report) -> int | None:
    """Record the report on the study's evaluate parent run as version N (returned; None without a parent).
    The version is marked incomplete first and complete once every file, metric and tag is recorded: a
    recording cut off half-way stays marked for what it is."""
    experiment = tracker.client.get_experiment_by_name(study)
    parent = tracker.find_parent(experiment.experiment_id, study, record.Phase.EVALUATE, execution)
    if parent is None:
        return None
    version = _next_version(tracker, parent)
    tracker.set_tags(parent, {record.report_tag(version): record.ReportState.INCOMPLETE})
    for path in result.files:
        tracker.log_artifact(parent, path, record.report_tag(version))
    tracker.log_metrics(parent, result_metrics(result.speedup), step=version)
    summary = summary_table(result.speedup).drop(columns="study")
    tracker.set_tags(parent, {record.report_tag(version): record.ReportState.COMPLETE,
                              record.REPORT_VERSION: version, "mlflow.note.content":
                              f"**Report v{version}** (all files under `report/v{version}`; open `report.html`)"
                              f"\n\n{markdown(summary)}",
                              **{f"{_prefix(r)}/speedup_statement": r["speedup_statement"]
                                 for r in result.speedup.to_dict("records")}})
    return version


def report(study: str | None, all_studies: bool = False, out: str | None = None, runs: str | None = None,
           uri: str | None = None, with_figures: bool = True, execution: int | None = None,
           log: bool = False, workers: int = 1) -> Report:
    """``execution``: which execution of the study (default: each study's latest). ``log``: record the report
    on the study's parent run (one study only: a report over several studies belongs to none of them).
    ``workers``: processes that draw the figures (analysis.drawing)."""
    quiet()
    if not study and not all_studies:
        raise ConfigError("report: give a study name, or --all")
    if log and all_studies:
        raise ConfigError("report: --log records a report on one study's runs; it does not apply to --all")
    folder = runs_dir(runs)
    given, uri = uri, tracking_uri(uri, folder)
    check_store(uri)
    target = Path(out) if out else folder / "reports" / (study if study and not all_studies else "all")
    try:
        audit = folder / record.AUDIT_FILE
        result = build_report(uri, None if all_studies else [study], target, with_figures=with_figures,
                              execution=execution, audit=f"sqlite:///{audit}" if audit.exists() else None,
                              store=store_label(given, runs), workers=workers)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if log:
        if result.unfinished:
            raise ConfigError(f"report --log: {result.unfinished[study]}; a report is recorded on a study's runs "
                              "once it has finished (the report above was written, not recorded)")
        version = log_report(Tracker(uri), study, result.executions[study], result)
        if version is not None:
            result.terminal += f"\nRecorded on the study's evaluate parent run as report/v{version}."
            result.version = version
    return result


def final_report(state: StudyState, runs: str | None, workers: int = 1) -> Report:
    """The report that closes a finished execution, printed and recorded once: `sfli run` makes it; a driver
    killed before it was recorded leaves the execution without one, and `sfli resume` makes it then."""
    result = report(state.name, runs=runs, uri=state.tracking_uri, log=state.report is None, workers=workers)
    if state.report is None:
        state.report = result.version
        state.save(runs_dir(runs))
    return result


def results(doc: str, runs: str | None = None, uri: str | None = None, studies_dir: str = "studies",
            catalogue: str | None = None, workers: int = 1) -> str:
    """Regenerate the results page ``doc`` (and its figures, in ``figures/`` beside it) from the catalogue's
    studies recorded in the store (the shipped catalogue, extended by ``catalogue``: a user's studies and
    claims); each study's full report goes to <runs>/reports/<study>."""
    from analysis.catalogue import SHIPPED, load_catalogue
    from analysis.claims import TESTS
    from analysis.results import build_results

    quiet()
    chosen = load_catalogue(SHIPPED, list(TESTS))
    if catalogue:
        chosen = chosen.extended(load_catalogue(catalogue, list(TESTS)))
    folder = runs_dir(runs)
    given, uri = uri, tracking_uri(uri, folder)
    check_store(uri)
    page = Path(doc)
    try:
        build_results(uri, folder / "reports", page, page.parent / "figures", Path(studies_dir), chosen,
                      store_label(given, runs), workers)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return f"{page} regenerated from {uri}; figures in {page.parent / 'figures'}"
