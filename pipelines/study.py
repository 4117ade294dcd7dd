"""Study files (studies/*.yaml): one validated shape for every study.

A study is a ``base`` run configuration shared by all arms (task, model, training, ε-rank, targets),
an optional ``grid`` of dotted config paths → values whose product gives the study's variants (several
tasks × architectures × widths), a set of ``arms`` that override it (at least the initialisation) and may
declare a search space over dotted config paths, a ``search`` block (objective, trials, Optuna sampler and
seed, search seeds, optional ASHA), fresh ``evaluate`` seeds, per-trial ``resources``, ``retries`` and a
``smoke`` profile: a partial study deep-merged over the file by ``--smoke`` (tiny budgets, same shape), and
a ``python_path``: folders (relative to the study file) that hold the user's own tasks, architectures and
initialisations named by import path (``my_pkg.pdes:Burgers1D``).

The unit of work is a :class:`Cell`: one arm at one grid point. A search tunes a cell's knobs; the evaluation
runs every cell on every evaluation seed, paired by seed. The search objective is :mod:`pipelines.objective`.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from sfli_core import keys
from sfli_core.config import (
    ConfigError,
    RunConfig,
    Seed,
    Strict,
    apply_overrides,
    deep_merge,
    format_validation_error,
    load_yaml,
    set_path,
)
from sfli_core.pack import packable
from sfli_core.record import Phase
from sfli_core.registry import is_import_path

from .objective import OBJECTIVE_PATTERN

# Study and arm names become folder, Tune experiment and MLflow names: a safe character set and a length that
# keeps every path component they make (study-e<N>-search-<arm>-<grid point>_<trial>) well under 255 bytes.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
NAME_RULE = "letters, digits, _ and -, starting with a letter or digit"
MAX_NAME, MAX_ARM, MAX_VARIANT = 64, 40, 80
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _unique(values: list) -> list:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{repeated} given more than once; each seed makes one run per cell, and a repeated seed "
                         "would be paired with itself")
    return values


class Distribution(Strict):
    """One searchable knob: log_uniform / uniform over [low, high], int_uniform, or choice among values."""

    type: Literal["log_uniform", "uniform", "int_uniform", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self):
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs a non-empty 'values' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs low < high")
        elif self.type == "log_uniform" and self.low <= 0:
            raise ValueError("log_uniform needs low > 0")
        return self


class Arm(Strict):
    """``set``: overrides of the base run configuration (dotted or nested keys); ``search``: knobs to tune."""

    set: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, Distribution] | None = None

    @model_validator(mode="after")
    def _search(self):
        if self.search is not None and not self.search:
            raise ValueError("search: empty search space; give at least one knob or leave 'search' out")
        return self


class Asha(Strict):
    """Successive halving (Ray Tune's ASHA) on the search objective's running value: a trial is stopped at a
    rung (``grace_period`` logging steps, then × ``reduction_factor``) unless it is in the best 1/factor of the
    trials that reached that rung."""

    enabled: bool = False
    grace_period: PositiveInt = 4  # logging steps
    reduction_factor: float = Field(3.0, gt=1)


class SearchConfig(Strict):
    objective: str = keys.steps_to(1e-3)
    trials: PositiveInt = 16
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: Seed = 0
    # TPE's random start-up, as a fraction of the trials (Optuna's default of 10 trials would leave a search of
    # fewer than 10 trials random from first to last)
    startup_fraction: float = Field(0.25, gt=0, le=1)
    seeds: list[Seed] = Field(default_factory=lambda: [1000], min_length=1)
    asha: Asha = Field(default_factory=Asha)

    _distinct_seeds = field_validator("seeds")(_unique)

    @model_validator(mode="after")
    def _objective(self):
        if not OBJECTIVE_PATTERN.match(self.objective):
            raise ValueError(f"unknown objective '{self.objective}'; valid: target/steps_to_<τ> (a target "
                             "threshold of the study), final/train/loss, final/eval/rel_l2")
        return self


class EvaluateConfig(Strict):
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)

    _distinct_seeds = field_validator("seeds")(_unique)


class Resources(Strict):
    """Per trial: ``cpus`` / ``gpus`` (Ray's bookkeeping; the trial uses int(cpus) torch threads) and ``pack``,
    how many runs one trial trains as one batched model (sfli_core.pack): 1 = one run per trial; N = up to N
    runs that share task, model and training settings; ``auto`` = the size that measures fastest on a trial's
    resources (sfli_core.pack_size), 1 unless packing gains."""

    cpus: PositiveFloat = 1.0
    gpus: float = Field(0.0, ge=0)
    pack: Literal["auto"] | PositiveInt = 1


class Study(Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    arms: dict[str, Arm] = Field(min_length=1)
    search: SearchConfig = Field(default_factory=SearchConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    resources: Resources = Field(default_factory=Resources)
    retries: NonNegativeInt = 2
    checkpoint_every: PositiveInt = 5  # logging steps between trial checkpoints
    python_path: list[str] = Field(default_factory=list)  # absolute once loaded (see load_study)
    smoke: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _arms_resolve(self):
        for arm_name in self.arms:
            if not re.match(NAME_PATTERN, arm_name) or len(arm_name) > MAX_ARM:
                raise ValueError(f"arms: invalid arm name {arm_name!r}; an arm name is {NAME_RULE}, at most "
                                 f"{MAX_ARM} characters (it names folders and runs)")
        for path, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{path}: empty list of values")
        ids = [self.variant_id(v) for v in self.grid_points()]
        for vid in ids:
            if ids.count(vid) > 1:
                raise ValueError(f"grid: two grid points are both named '{vid}' (a value given twice, or values "
                                 "that differ only in characters unsafe in names); give distinct values")
            if len(vid) > MAX_VARIANT:
                raise ValueError(f"grid: the grid point '{vid[:40]}…' makes a name longer than {MAX_VARIANT} "
                                 "characters; use shorter values (e.g. a registered preset's name)")
        for arm_name in self.arms:
            for grid_point in self.grid_points():
                cfg = self.run_config(arm_name, grid_point=grid_point)  # raises with the field path
                if cfg.train.total_steps < 1:  # a run of the initial state alone is the library's, not a study's
                    raise ValueError(f"{self._steps_blame(arm_name, grid_point)}: train.steps: a study's runs need "
                                     "at least one step (train.steps + train.lbfgs_steps ≥ 1)")
            for path, dist in (self.arms[arm_name].search or {}).items():
                probe = dist.values[0] if dist.type == "choice" else (dist.low + dist.high) / 2
                if dist.type == "int_uniform":
                    probe = int(probe)
                self.run_config(arm_name, {path: probe}, where=f"arms.{arm_name}.search.{path}")
        if self.has_search and self.search.objective.startswith(keys.TARGET):
            thresholds = [keys.steps_to(t) for t in RunConfig.model_validate(self.base).targets.thresholds]
            if self.search.objective not in thresholds:
                raise ValueError(f"search.objective '{self.search.objective}' is not one of the study's targets: "
                                 f"{', '.join(thresholds)}")
        if isinstance(self.resources.pack, int) and self.resources.pack > 1:
            for cell in self.cells():
                reason = packable(self.run_config(cell.arm, grid_point=self.grid_points()[cell.point]))
                if reason:
                    raise ValueError(f"resources.pack: {self.resources.pack} but {cell.key} cannot be packed: "
                                     f"{reason}; use pack: 1 or auto")
        overlap = set(self.search.seeds) & set(self.evaluate.seeds)
        if overlap and self.has_search:
            raise ValueError(f"evaluate.seeds must be fresh, not the search seeds: {sorted(overlap)}")
        return self

    @property
    def startup_trials(self) -> int:
        return max(1, math.ceil(self.search.trials * self.search.startup_fraction))

    @property
    def has_search(self) -> bool:
        return any(arm.search for arm in self.arms.values())

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the grid ({} when there is none), in a fixed order."""
        points: list[dict[str, Any]] = [{}]
        for path, values in self.grid.items():
            points = [{**p, path: v} for p in points for v in values]
        return points

    @staticmethod
    def variant_id(grid_point: dict[str, Any]) -> str:
        """A short readable name of a grid point: its values joined, e.g. 'poisson2d-mlp-64' ('base' if none);
        characters unsafe in file and run names (``/``, ``:``, spaces …) become ``_``."""
        return "-".join(UNSAFE.sub("_", str(v)) for v in grid_point.values()) or "base"

    def cell(self, arm: str, point: int) -> Cell:
        return Cell(arm, point, self.variant_id(self.grid_points()[point]))

    def cells(self, searched: bool | None = None) -> list[Cell]:
        """Every (arm, grid point), arms in file order, grid points in grid order; ``searched`` selects the
        arms with (True) or without (False) a search space."""
        return [self.cell(arm, i) for arm, a in self.arms.items() if searched is None or bool(a.search) == searched
                for i in range(len(self.grid_points()))]

    def expected_trials(self, phase: Phase) -> int:
        """Runs of a phase: ``search.trials`` per searched cell; one per cell and evaluation seed (an evaluate
        trial trains one or more of them, pipelines.packing)."""
        if phase == Phase.SEARCH:
            return self.search.trials * len(self.cells(searched=True))
        return len(self.cells()) * len(self.evaluate.seeds)

    def import_paths(self) -> list[str]:
        """Every ``package.module:Name`` the study names (task, architecture, initialisation, activations),
        in the base, the grid, the arms and the search choices."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, str) and is_import_path(value):
                found.add(value)
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk([self.base, self.grid, {k: a.model_dump() for k, a in self.arms.items()}])
        return sorted(found)

    def run_config(self, arm: str, knobs: dict[str, Any] | None = None, seed: int | None = None,
                   where: str | None = None, grid_point: dict[str, Any] | None = None,
                   arm_set: bool = True) -> RunConfig:
        """The resolved RunConfig of ``arm`` at grid point ``grid_point`` with searched ``knobs`` and ``seed``.
        Precedence: base < grid_point < arm's ``set`` (without it: ``arm_set=False``) < searched knobs."""
        data = copy.deepcopy(self.base)
        for path, value in {**(grid_point or {}), **(self.arms[arm].set if arm_set else {}), **(knobs or {})}.items():
            set_path(data, path.split("."), value)
        if seed is not None:
            data["seed"] = seed
        try:
            return RunConfig.model_validate(data)
        except ValidationError as err:
            at = where or self._blame(arm, grid_point)
            raise ValueError(format_validation_error(err, at, RunConfig)) from None

    def _steps_blame(self, arm: str, grid_point: dict[str, Any]) -> str:
        """'base' when the base (at the grid point) has no steps already, else the arm that took them away."""
        try:
            base = self.run_config(arm, grid_point=grid_point, arm_set=False)
        except ValueError:
            return f"arms.{arm}"
        return "base" if base.train.total_steps < 1 else f"arms.{arm}"

    def _blame(self, arm: str, grid_point: dict[str, Any] | None) -> str:
        """Where an invalid run configuration comes from: the base (with the grid point) when it is invalid
        without any arm, else the arm."""
        data = copy.deepcopy(self.base)
        for path, value in (grid_point or {}).items():
            set_path(data, path.split("."), value)
        point = f" at grid point {self.variant_id(grid_point)}" if grid_point else ""
        try:
            RunConfig.model_validate(data)
        except ValidationError:
            return f"base{point}"
        return f"arms.{arm}{point}"


def load_study(path: str | Path, smoke: bool = False, overrides: list[str] = ()) -> Study:
    """Read, apply the smoke profile and ``key=value`` overrides, validate. Errors → ConfigError naming the
    file and the field path."""
    data = load_yaml(path)
    profile = data.get("smoke")
    if smoke and (not isinstance(profile, dict) or not profile):
        raise ConfigError(f"{path}: smoke: the study has no smoke profile")
    folders = data.get("python_path", [])
    if isinstance(folders, list) and all(isinstance(f, str) for f in folders):
        data["python_path"] = [str((Path(path).parent / f).resolve()) for f in folders]
        for folder in data["python_path"]:
            if not Path(folder).is_dir():
                raise ConfigError(f"{path}: python_path: no such folder {folder}")
        extend_python_path(data["python_path"])  # user modules must import before names are resolved
    # both profiles are checked whichever is asked for: a smoke run must not hide a broken full profile,
    # nor a full-profile check a broken smoke profile
    full = _validated(apply_overrides(copy.deepcopy(data), overrides), str(path))
    if isinstance(profile, dict) and profile:
        quick = _validated(apply_overrides(deep_merge(data, profile), overrides), f"{path}: smoke profile")
        return quick if smoke else full
    return full


def _validated(data: dict[str, Any], source: str) -> Study:
    try:
        return Study.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, Study)) from None


def extend_python_path(folders: list[str]) -> None:
    """Put the study's folders first on ``sys.path`` (in this process: the driver, or a trial on a worker)."""
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)


@dataclass(frozen=True)
class Cell:
    """One arm at one grid point (``point`` its index in :meth:`Study.grid_points`, ``variant`` its id, 'base'
    without a grid: the ``variant`` tag and column)."""

    arm: str
    point: int
    variant: str

    @property
    def key(self) -> str:
        """Where the cell's chosen knobs are kept ('sfli' or 'sfli/poisson2d-mlp'); also part of MLflow parameter
        names, which allow letters, digits, _ - . space : and /."""
        return self.arm if self.variant == "base" else f"{self.arm}/{self.variant}"

    @property
    def slug(self) -> str:
        """The cell in file and trial names ('sfli' or 'sfli-poisson2d-mlp')."""
        return self.arm if self.variant == "base" else f"{self.arm}-{self.variant}"
