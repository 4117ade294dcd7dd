"""The record a trial leaves in the tracking store: one contract that ``pipelines`` writes and ``analysis``
reads (metric keys themselves are spelled in :mod:`sfli_core.keys`).

  * **Tags** identify a run (:class:`TrialIdentity`, plus ``run_type`` and the sfli ``status``); a phase's
    parent run carries ``study``, ``phase`` (:class:`Phase`) and ``run_type = parent`` (:class:`RunType`).
  * **Parameters** are the run configuration's flat dotted keys (``train.lr``, ``task.params.a`` …), then
    ``init.resolved.<knob>`` (what the initialisation computed, e.g. SFLI's γ), ``search.<path>`` (the knobs a
    search trial sampled), ``meta.<name>`` (versions, device, precision, hidden layers; see
    :func:`sfli_core.provenance.run_metadata`) and ``git.revision``. MLflow stores parameters as text: every
    value is written by :func:`encode` (strings as they are, everything else as JSON) and read back by
    :func:`decode`, so that lists, numbers, booleans and None survive the round trip.
  * **Statuses**: :class:`Status`; a run is *complete* when it finished or diverged (both are outcomes,
    :data:`OUTCOMES`); failed and stopped runs are retried or resumed.
  * **Artifacts** of a trial run and of a report: the file names below, written and read through these names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"  # training produced a non-finite loss: a recorded outcome, not an error
    FAILED = "failed"  # an exception; the trial is retried from its last checkpoint
    STOPPED = "stopped"  # stopped from outside (an early-stopping decision, a shutdown)


OUTCOMES = (Status.FINISHED, Status.DIVERGED)  # the statuses of a complete run


class Phase(StrEnum):
    SEARCH = "search"  # trials sample the arms' knobs on the search seeds
    EVALUATE = "evaluate"  # every arm at its chosen knobs on the evaluation seeds


class RunType(StrEnum):
    """A run's place in a study: a phase's parent run, or one trial's run under it."""
    PARENT = "parent"
    TRIAL = "trial"


class InitRole(StrEnum):
    """An initialisation's role in the comparisons: the speed-up tables and the claims pair every treatment
    arm with every baseline arm of a cell. SFLI is a treatment; a user's scheme declares its own."""
    BASELINE = "baseline"
    TREATMENT = "treatment"


# tags
RUN_TYPE, STATUS, PARENT_RUN, EXECUTION, PHASE, STUDY = (
    "run_type", "status", "mlflow.parentRunId", "execution", "phase", "study")
INIT_ROLE = "init_role"  # TrialIdentity.init_role


def run_filter(run_type: RunType, phase: str | None = None, execution: int | None = None,
               study: str | None = None) -> str:
    """The MLflow search filter for the runs of ``run_type`` (optionally of one phase, execution, study)."""
    parts = [(RUN_TYPE, run_type), (STUDY, study), (PHASE, phase), (EXECUTION, execution)]
    return " and ".join(f"tags.{k} = '{v}'" for k, v in parts if v is not None)

# artifacts of a trial run (its first seed): resolved configuration, Gram spectra at the first and last ranked
# steps, the staircase plot, the first layer's weights and their heat map (condensation); and of every seed:
# the logged series and the per-seed outcomes
CONFIG_FILE, SPECTRA_FILE, STAIRCASE_FILE = "config.yaml", "spectra.json", "staircase.png"
WEIGHTS_FILE, HEATMAP_FILE = "condensation_weights.json", "condensation.png"
SERIES_FILE, SEEDS_FILE = "series.csv", "seeds.json"
SPECTRA_INITIAL, SPECTRA_FINAL = "initial", "final"  # the keys of SPECTRA_FILE
# a trial run's previews (STAIRCASE_FILE, HEATMAP_FILE), drawn by its trial or by the driver once it is complete
PREVIEWS, PREVIEWS_ERROR = "previews", "previews_error"  # tags: a PreviewState; why they were not drawn


class PreviewState(StrEnum):
    PENDING = "pending"  # the run is complete; the driver has not drawn them yet
    DRAWN = "drawn"
    NOT_DRAWN = "not drawn"  # the run's records could not be drawn (PREVIEWS_ERROR says why)
WEIGHTS_START, WEIGHTS_END, WEIGHTS_STEPS = "start", "end", "steps"  # the keys of WEIGHTS_FILE

# a study's reports, recorded on its evaluate parent run as versions: files under ``report/v<N>``; the tag
# ``report/v<N>`` says whether version N was recorded completely, ``report_version`` names the latest complete one
REPORT_FOLDER, REPORT_VERSION = "report", "report_version"


class ReportState(StrEnum):
    INCOMPLETE = "incomplete"  # being recorded, or its recording was cut off: not a report to read
    COMPLETE = "complete"


def report_tag(version: int) -> str:
    return f"{REPORT_FOLDER}/v{version}"


# on a phase's parent run: how many trials ran at once, on which a search's outcome depends (docs/science.md §7),
# per searched cell on the search parent run; "2, then 1" where the phase was resumed with another count
PARALLEL_TRIALS, THEN = "parallel_trials", ", then "


def parallel_tag(cell: str | None) -> str:
    """``parallel_trials/<cell>`` for a cell's search (on the search parent run), ``parallel_trials`` for the
    evaluation."""
    return PARALLEL_TRIALS if cell is None else f"{PARALLEL_TRIALS}/{cell}"


# on the search parent run: a chosen knob at the edge of its range (pipelines.tuning), per cell
EDGE_PREFIX = "edge/"


def edge_tag(cell: str, knob: str) -> str:
    return f"{EDGE_PREFIX}{cell}/{knob}"


# the tuning audit (pipelines.audit): one Optuna study per searched cell and execution, in an Optuna storage
# file beside the embedded MLflow store
AUDIT_FILE = "optuna.db"


def search_study_name(study: str, execution: int, arm: str, variant: str) -> str:
    """The Optuna study of the search of ``arm`` at grid point ``variant`` ('base' without a grid)."""
    return f"{study}-e{execution}-{arm}" + ("" if variant == "base" else f"-{variant}")


# bookkeeping metrics of a trial run
OBJECTIVE = "objective"  # the search objective of the trial (minimised; docs/science.md §7)
# keys of a trial's reports to Tune beside OBJECTIVE and keys.STEP: 1 in the trial's last report (its objective
# is final), 0 before; which pack of search seeds the report is from
OBJECTIVE_FINAL, SEED_INDEX = "objective_final", "seed_index"
TRIAL_STARTS = "trial/starts"  # one point per start of the trial (first, retry, resume)
RESUMED_FROM = "trial/resumed_from_step"  # the training step each start continued from

# parameter prefixes beside the flat run configuration
RESOLVED, SEARCHED, META, GIT_REVISION = "init.resolved.", "search.", "meta.", "git.revision"
# packed runs (sfli_core.pack): how many runs the trial trained at once, and how their step time was divided
PACK_SIZE, PACK_TIME = "pack.size", "pack.time_share"


@dataclass(frozen=True)
class TrialIdentity:
    """Who a trial run is. ``execution``: which start of the study (1, 2, … — a finished study run again is a
    new execution; its old runs are kept); ``variant``: the grid point's id ('base' without a grid);
    ``seeds``: the run's seed (evaluate) or search seeds (search); ``task``: the task's canonical,
    coefficient-encoding name; ``init_role``: the initialisation's :class:`InitRole`."""

    study: str
    execution: int
    phase: str
    arm: str
    variant: str
    trial_id: str
    seeds: tuple[int, ...]
    task: str
    init: str
    arch: str
    init_role: str

    def tags(self) -> dict[str, str]:
        tags = {k: str(v) for k, v in asdict(self).items() if k != "seeds"}
        tags["seed"] = ",".join(map(str, self.seeds))
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> TrialIdentity:
        fields = {k: tags.get(k, "") for k in cls.__dataclass_fields__ if k not in ("seeds", "execution")}
        seeds = tuple(int(s) for s in tags.get("seed", "").split(",") if s)
        return cls(seeds=seeds, execution=int(tags.get("execution", 1)), **fields)


def encode(value: Any) -> str:
    """A parameter value as MLflow text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def decode(text: str) -> Any:
    """Inverse of :func:`encode` (a string that is not JSON comes back as itself)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def decode_params(params: dict[str, str]) -> dict[str, Any]:
    return {k: decode(v) for k, v in params.items()}
