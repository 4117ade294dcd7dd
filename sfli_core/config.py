"""Typed, validated run configuration (task, model, initialisation, training, ε-rank, targets, seed).

Every section forbids unknown keys; names (task, activation, initialisation, …) are checked against their
registries and errors list the valid choices. ``RunConfig.flat()`` is the dotted-key form recorded with
every run (``train.lr``, ``init.scale`` …); the same dotted keys are what ``--set key=value`` accepts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from . import keys
from .activations import ACTIVATIONS
from .init import INITS
from .models import MODELS
from .params import params_of
from .rank import DEFAULT_EPS, HEADLINE_EPS
from .tasks import task_class


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"line {line}: duplicate key '{key}'")
        self.text = f"line {line}: duplicate key '{key}'"


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads 1e-3 as a number (YAML 1.1 wants 1.0e-3) and refuses a key given twice
    in one mapping (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789"),
)


class Strict(BaseModel):
    """Unknown keys refused; numbers finite (an ``.inf`` learning rate is a typo, not a setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# A seed seeds torch, NumPy and Python's random alike; NumPy's legacy seeding takes at most 32 bits.
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def resolved_params(declared: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` validated against an entry's ``Params`` model, in JSON form with the defaults (what a run
    records); a validation error becomes one message naming each ``params.<key>`` and, for an unknown key,
    the valid ones."""
    try:
        return declared.model_validate(given).model_dump(mode="json")
    except ValidationError as err:
        valid = ", ".join(declared.model_fields) or "none"
        raise ValueError("; ".join(
            f"params.{'.'.join(map(str, e['loc']))}: "
            + (f"unknown key; valid keys: {valid}" if e["type"] == "extra_forbidden" else e["msg"])
            for e in err.errors())) from None


class TaskConfig(Strict):
    """``name``: a registered task or preset, or an import path ``package.module:Class``."""

    name: str = "fit1d_multiscale"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        cls, params = task_class(self.name, self.params)  # unknown names fail here, with the valid list
        self.__dict__["params"] = resolved_params(params_of(cls), params)
        return self


class ModelConfig(Strict):
    """``arch``: a registered architecture or an import path; ``params``: the architecture's own knobs
    (``mlp``: residual; ``pirate``: fourier_features, fourier_scale, rwf, rwf_mean, rwf_std)."""

    arch: str = "mlp"
    width: PositiveInt = 100
    depth: PositiveInt = 3
    activation: str | list[str] = "tanh"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arch")
    @classmethod
    def _arch(cls, v):
        MODELS.get(v)
        return v

    @field_validator("activation")
    @classmethod
    def _activation(cls, v):
        for name in [v] if isinstance(v, str) else v:
            ACTIVATIONS.get(name)
        return v

    @model_validator(mode="after")
    def _params(self):
        arch = MODELS.get(self.arch)
        per_layer = getattr(arch, "per_layer_activation", False)
        if not isinstance(self.activation, str) and (not per_layer or len(self.activation) != self.depth):
            raise ValueError(f"a list of activations needs an architecture that takes one per layer (arch "
                             f"'{self.arch}' does{'' if per_layer else ' not'}) and one name per hidden layer "
                             f"(depth {self.depth})")
        self.__dict__["params"] = resolved_params(params_of(arch), self.params)
        return self


class InitConfig(Strict):
    """``name``: a registered initialisation or an import path. ``scale``: Xavier/Kaiming gain,
    small_gaussian prefactor, SFLI κ. ``params``: the initialisation's own knobs (``small_gaussian``:
    exponent, σ = scale·width^(−exponent), default 1.5, the condensation paper's N(0, 1/m³); ``sfli``:
    omega_max, the frequency of sin features, None for κπ m^{1/d}/(2R))."""

    name: str = "xavier_normal"
    scale: PositiveFloat = 1.0
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        INITS.get(v)
        return v

    @model_validator(mode="after")
    def _params(self):
        self.__dict__["params"] = resolved_params(INITS.get(self.name).Params, self.params)
        return self


class TrainConfig(Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: PositiveFloat = 1e-8
    momentum: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["constant", "exponential", "cosine"] = "constant"
    decay_rate: float = Field(0.9, gt=0, le=1)
    decay_steps: PositiveInt = 1000
    warmup_steps: NonNegativeInt = 0
    steps: NonNegativeInt = 2000
    lbfgs_steps: NonNegativeInt = 0  # L-BFGS iterations after the `steps` of the optimiser (DeepXDE's recipe)
    lbfgs_lr: PositiveFloat = 1.0
    lbfgs_history: PositiveInt = 50
    log_every: PositiveInt = 50
    n_train: PositiveInt | None = None
    resample_every: NonNegativeInt = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "auto"  # CUDA when this process sees a GPU (Ray hides GPUs from trials that asked for none)
    # PDE derivatives: Taylor mode where it serves the architecture, else nested reverse mode (sfli_core.fields)
    derivatives: Literal["taylor", "autograd"] = "taylor"
    compile: Literal["auto", "on", "off"] = "auto"  # auto: Taylor-mode runs of ≥ 1000 steps are compiled

    @property
    def total_steps(self) -> int:
        """The step budget: optimiser steps, then L-BFGS iterations."""
        return self.steps + self.lbfgs_steps

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        if v not in ("cpu", "auto") and not v.startswith("cuda"):
            raise ValueError(f"unknown device '{v}'; valid: cpu, cuda, cuda:N, auto")
        return v


class RankConfig(Strict):
    enabled: bool = True
    eps: list[PositiveFloat] = Field(default_factory=lambda: list(DEFAULT_EPS), min_length=1)
    headline: PositiveFloat = HEADLINE_EPS
    every: PositiveInt = 1
    n_points: PositiveInt | None = None

    @model_validator(mode="after")
    def _headline(self):
        if self.headline not in self.eps:
            raise ValueError(f"headline ε {self.headline} must be one of eps {self.eps}")
        return self


class CondensationConfig(Strict):
    """``track``: at every logging step, count the condensed orientations and lines of every condensation layer
    (``condensation/layer<l>/…``) and keep the first such layer's input weights, so the condensation can be
    read at any time of the run (the paper's "initial stage"), not only at its end."""

    track: bool = False


class TargetConfig(Strict):
    metric: Literal[keys.TRAIN_LOSS, keys.EVAL_REL_L2] = keys.TRAIN_LOSS
    thresholds: list[PositiveFloat] = Field(default_factory=lambda: [1e-2, 1e-3])


class RunConfig(Strict):
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    init: InitConfig = Field(default_factory=InitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    rank: RankConfig = Field(default_factory=RankConfig)
    targets: TargetConfig = Field(default_factory=TargetConfig)
    condensation: CondensationConfig = Field(default_factory=CondensationConfig)
    seed: Seed = 0

    def flat(self) -> dict[str, Any]:
        """Dotted-key form for recording: {'task.name': …, 'task.params.a': …, 'train.lr': …, 'seed': …}."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):  # an empty section (an entry without params) records nothing
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


class ConfigError(ValueError):
    """Invalid configuration; the message names the source, the field path and what was expected."""


def format_validation_error(err: ValidationError, source: str, root: type[BaseModel]) -> str:
    """One line per problem: ``source: field.path: message`` with the valid keys for an unknown key."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            valid = _fields_at(root, e["loc"][:-1])
            msg = f"unknown key; valid keys: {', '.join(valid)}" if valid else "unknown key"
        lines.append(f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model found at ``loc`` (through nested models and dict[str, Model] values)."""
    node: Any = model
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            node = getattr(field, "annotation", None)
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return []
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=1e-3' → (['train', 'lr'], 0.001); the value is parsed as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.lr=1e-3")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.load(raw, Loader=YamlLoader) if raw.strip() else None


def set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``tree[path]``; a mapping given for an existing section is merged into it (so that
    ``init: {scale: 2}`` changes the scale and keeps the name), anything else replaces. Where the rest of the
    path is itself a key of the section reached — the sections keyed by dotted paths: a study's ``grid``, an
    arm's ``set`` and ``search`` — it names that key: ``grid.task.name=[…]`` sets the grid's ``task.name`` axis."""
    node, key = tree, path[-1]
    for i, part in enumerate(path[:-1]):
        if ".".join(path[i:]) in node:
            key = ".".join(path[i:])
            break
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{part}' is not a section")
    old = node.get(key)
    node[key] = deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in, section by section."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected YAML in UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
    except DuplicateKey as err:
        raise ConfigError(f"{path}: {err.text}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def validate(model: type[BaseModel], data: dict[str, Any], source: str):
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, model)) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` texts (dotted keys, YAML values) to a nested mapping, in order; returns it."""
    for text in overrides:
        set_path(data, *parse_override(text))
    return data


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a run-configuration YAML file, apply ``key=value`` overrides, validate."""
    return validate(RunConfig, apply_overrides(load_yaml(path), overrides), str(path))
