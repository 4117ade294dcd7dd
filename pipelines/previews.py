"""Trial runs' preview figures (:mod:`pipelines.run_figures`), drawn from each complete run's records, either by
the trial itself or by the driver while the study runs (:func:`draws_in_trials`): off the trials' path where
they train on a cluster or an accelerator, which then never waits for a figure (≈ 0.5 s of CPU per run).

A complete run (finished or diverged) that its trial did not draw is closed with its previews
:attr:`~sfli_core.record.PreviewState.PENDING` (a run stopped or failed has none). A thread of the driver looks
every :data:`POLL_S` seconds for the execution's runs still pending, downloads what each recorded, draws its
previews, logs them as the run's artifacts and tags them drawn; a look that finds nothing costs one small query.
When the phases are done, the driver draws what is left before it returns; a stopped study leaves it to
``sfli resume``. A run whose records cannot be drawn is tagged so, with why, and the study goes on: previews
are for browsing; the report draws its figures from the records.
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
        self.tracker.set_tags(run_id, draw_run(self.tracker, run_id, name))


def draws_in_trials(address: str | None, gpus: float, ray_cpus: float, machine_cpus: int) -> bool:
    """Whether a study's trials draw their own runs' previews: where they train on CPUs of this machine and the
    local Ray instance has all of them (``ray_cpus`` of ``machine_cpus``), so the driver has no core of its own.
    There, drawing in the driver slows training about as much as it frees the trials, and the driver draws one
    run at a time where the trials draw side by side: measured on 2 cores, a 16-run study took as long with
    the driver drawing (52-57 s against 51-55 s), its trials' training 13 % slower. On a cluster, with
    GPUs or with cores to spare, the driver draws: a trial, and its accelerator, never wait for a figure."""
    return address is None and gpus == 0 and ray_cpus >= machine_cpus


def draw_run(tracker: Tracker, run_id: str, name: str) -> dict[str, str]:
    """Draw a complete run's previews from its records and log them as its artifacts; returns its preview tags
    (drawn; or not drawn, and why, when its records cannot be drawn)."""
    from .run_figures import draw_previews  # matplotlib: only once there is something to draw

    with tempfile.TemporaryDirectory() as d:
        recorded, drawn = Path(d) / "recorded", Path(d) / "drawn"
        drawn.mkdir()
        try:
            tracker.download_artifacts(run_id, recorded)
            for file in draw_previews(recorded):
                (recorded / file).rename(drawn / file)
        except TrackingUnavailable:
            raise
        except Exception as err:  # the run's records, not the study, are at fault: it goes on
            why = f"{type(err).__name__}: {err}"[:500]
            say(f"previews of run {name}: not drawn ({why})")
            return {record.PREVIEWS: PreviewState.NOT_DRAWN, record.PREVIEWS_ERROR: why}
        tracker.log_artifacts(run_id, drawn)
    return {record.PREVIEWS: PreviewState.DRAWN}
