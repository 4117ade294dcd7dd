"""`sfli report`: builds the analysis report and logs its files to the study's evaluate parent run."""

from __future__ import annotations

from pathlib import Path

from analysis.report import Report, build_report
from sfli_core.config import ConfigError

from .environment import quiet
from .tracking import Tracker, check_store, runs_dir, tracking_uri


def report(study: str | None, all_studies: bool = False, out: str | None = None, runs: str | None = None,
           uri: str | None = None, with_figures: bool = True, execution: int | None = None) -> Report:
    """``execution``: which execution of the study (default: each study's latest)."""
    quiet()
    if not study and not all_studies:
        raise ConfigError("report: give a study name, or --all")
    folder = runs_dir(runs)
    uri = tracking_uri(uri, folder)
    check_store(uri)
    target = Path(out) if out else folder / "reports" / (study if study and not all_studies else "all")
    try:
        result = build_report(uri, None if all_studies else [study], target, with_figures=with_figures,
                              execution=execution)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    tracker = Tracker(uri)
    for name in result.executions:
        experiment = tracker.client.get_experiment_by_name(name)
        parent = tracker.find_parent(experiment.experiment_id, name, "evaluate", result.executions[name])
        if parent is not None:
            for path in result.files:
                tracker.log_artifact(parent, path, "report")
    return result
