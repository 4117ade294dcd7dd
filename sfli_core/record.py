"""The record a trial leaves in the tracking store: one contract that ``pipelines`` writes and ``analysis``
reads (metric keys themselves are spelled in :mod:`sfli_core.keys`).

  * **Tags** identify a run (:class:`TrialIdentity`, plus ``role`` and the sfli ``status``); a phase's parent
    run carries ``study``, ``phase`` and ``role = parent``.
  * **Parameters** are the run configuration's flat dotted keys (``train.lr``, ``task.params.a`` …), then
    ``init.resolved.<knob>`` (what the initialisation computed, e.g. SFLI's γ), ``search.<path>`` (the knobs a
    search trial sampled), ``meta.<name>`` (versions, device, precision, hidden layers; see
    :func:`sfli_core.provenance.run_metadata`) and ``git.revision``. MLflow stores parameters as text: every
    value is written by :func:`encode` (strings as they are, everything else as JSON) and read back by
    :func:`decode`, so that lists, numbers, booleans and None survive the round trip.
  * **Statuses**: :class:`Status`; a run is *complete* when it finished or diverged (both are outcomes);
    failed and stopped runs are retried or resumed.
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


COMPLETE = (Status.FINISHED, Status.DIVERGED)

# tags
ROLE, STATUS, PARENT_RUN, EXECUTION = "role", "status", "mlflow.parentRunId", "execution"
ROLE_PARENT, ROLE_TRIAL = "parent", "trial"

# a study's reports, recorded on its evaluate parent run as versions: files under ``report/v<N>``; the tag
# ``report/v<N>`` says whether version N was recorded completely, ``report_version`` names the latest complete one
REPORT_FOLDER, REPORT_VERSION = "report", "report_version"


class ReportState(StrEnum):
    INCOMPLETE = "incomplete"  # being recorded, or its recording was cut off: not a report to read
    COMPLETE = "complete"


def report_tag(version: int) -> str:
    return f"{REPORT_FOLDER}/v{version}"


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
    coefficient-encoding name; ``comparison``: the initialisation's role, ``baseline`` or ``treatment``."""

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
    comparison: str

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
