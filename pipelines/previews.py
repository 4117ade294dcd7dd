"""Trial runs' preview figures (:mod:`pipelines.run_figures`), drawn by the driver while the study runs, off the
trials' path: a trial process draws nothing, so it neither imports matplotlib nor spends ≈ 0.5 s of CPU per run
on figures, and on an accelerator the next run starts at once.

A trial run closed complete (finished or diverged) has its previews :attr:`~sfli_core.record.PreviewState.PENDING`
(a run stopped or failed has none). A thread of the driver looks every :data:`POLL_S` seconds for the
execution's runs still pending, downloads what each recorded, draws its previews, logs them as the run's
artifacts and tags them drawn; a look that finds nothing costs one small query. When the phases are done, the
driver draws what is left before it returns; a stopped study leaves it to ``sfli resume``. A run whose records
cannot be drawn is tagged so, with why, and the study goes on: previews are for browsing; the report draws its
figures from the records.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from sfli_core import record
from sfli_core.record import PreviewState, RunType

from .metric_buffer import TrackingUnavailable
from .terminal import say
from .tracking import Tracker

POLL_S = 2.0
JOIN_S = 10.0  # a run is drawn in well under a second: longer means the thread is waiting for the store


class PreviewPainter:
    """``with PreviewPainter(uri, experiment_id, study, execution): <run the phases>``: previews drawn while the
    block runs, and the rest at its end (unless it ends by an exception: a stop, a failure)."""

    def __init__(self, uri: str, experiment_id: str, study: str, execution: int):
        self.tracker, self.experiment_id = Tracker(uri), experiment_id
        self.query = (record.run_filter(RunType.TRIAL, execution=execution, study=study)
                      + f" and tags.{record.PREVIEWS} = '{PreviewState.PENDING}'")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sfli-previews", daemon=True)

    def __enter__(self) -> PreviewPainter:
        self.thread.start()
        return self

    def __exit__(self, kind, err, tb) -> None:
        self.stop.set()
        self.thread.join(JOIN_S)
        if self.thread.is_alive():
            say("previews: not all drawn (the tracking store did not answer); the runs' records are complete")
        elif kind is None:
            try:
                self.sweep()
            except TrackingUnavailable as unavailable:
                say(f"previews: not all drawn ({unavailable}); the runs' records are complete")

    def _watch(self) -> None:
        while not self.stop.wait(POLL_S):
            try:
                self.sweep(self.stop)
            except TrackingUnavailable:
                pass  # the store is away: the next look, or the last one, draws them

    def sweep(self, stop: threading.Event | None = None) -> int:
        """Draw the previews of every complete trial run of the execution still pending; returns how many runs
        were drawn. ``stop``: leave off when it is set."""
        drawn = 0
        for run in self.tracker.search_runs(self.experiment_id, self.query):
            if stop is not None and stop.is_set():
                break
            self.draw(run.info.run_id, run.info.run_name)
            drawn += 1
        return drawn

    def draw(self, run_id: str, name: str) -> None:
        """One run's previews, logged as its artifacts, and its tag; a run that cannot be drawn is tagged why."""
        with tempfile.TemporaryDirectory() as d:
            recorded, drawn = Path(d) / "recorded", Path(d) / "drawn"
            drawn.mkdir()
            try:
                from .run_figures import draw_previews  # matplotlib: not on the driver's start-up path

                self.tracker.download_artifacts(run_id, recorded)
                for file in draw_previews(recorded):
                    (recorded / file).rename(drawn / file)
            except TrackingUnavailable:
                raise
            except Exception as err:  # the run's records, not the study, are at fault: it goes on
                why = f"{type(err).__name__}: {err}"[:500]
                say(f"previews of run {name}: not drawn ({why})")
                self.tracker.set_tags(run_id, {record.PREVIEWS: PreviewState.NOT_DRAWN, record.PREVIEWS_ERROR: why})
            else:
                self.tracker.log_artifacts(run_id, drawn)
                self.tracker.set_tags(run_id, {record.PREVIEWS: PreviewState.DRAWN})
