"""Typed, validated run configuration (task, model, initialisation, training, ε-rank, targets, seed).

Every section forbids unknown keys; names (task, activation, initialisation, …) are checked against their
registries and errors list the valid choices. ``RunConfig.flat()`` is the dotted-key form recorded with
every run (``train.lr``, ``init.scale`` …); the same dotted keys are what ``--set key=value`` accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

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

from .activations import ACTIVATIONS
from .init import INITS
from .rank import DEFAULT_EPS, HEADLINE_EPS
from .tasks import FAMILIES, PRESETS, resolve_task


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads 1e-3 as a number (YAML 1.1 wants 1.0e-3)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789"),
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(Strict):
    name: str = "fit1d_multiscale"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        try:
            cls, typed = resolve_task(self.name, self.params)
        except ValidationError as err:
            family = PRESETS.get(self.name, (self.name,))[0]
            valid = ", ".join(FAMILIES[family].Params.model_fields)
            raise ValueError("; ".join(
                f"params.{'.'.join(map(str, e['loc']))}: "
                + (f"unknown key; valid keys: {valid}" if e["type"] == "extra_forbidden" else e["msg"])
                for e in err.errors())) from None
        # record every parameter actually used, defaults included
        self.__dict__["params"] = typed.model_dump(mode="json")
        return self


class ModelConfig(Strict):
    arch: Literal["mlp", "modified_mlp", "pirate"] = "mlp"
    width: PositiveInt = 100
    depth: PositiveInt = 3
    activation: str | list[str] = "tanh"
    residual: bool = False
    fourier_features: bool = False
    fourier_scale: PositiveFloat = 1.0
    rwf: bool = False
    rwf_mean: float = 1.0
    rwf_std: float = Field(0.1, ge=0)

    @field_validator("activation")
    @classmethod
    def _activation(cls, v):
        for name in [v] if isinstance(v, str) else v:
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation '{name}'; valid: {', '.join(ACTIVATIONS)}")
        return v

    @model_validator(mode="after")
    def _combination(self):
        if self.residual and self.arch != "mlp":
            raise ValueError("residual connections are an option of arch 'mlp' only")
        if (self.fourier_features or self.rwf) and self.arch != "pirate":
            raise ValueError("fourier_features and rwf are options of arch 'pirate' only")
        if not isinstance(self.activation, str) and (self.arch != "mlp" or len(self.activation) != self.depth):
            raise ValueError("a list of activations needs arch 'mlp' and one name per hidden layer (depth)")
        return self


class InitConfig(Strict):
    """``scale``: Xavier/Kaiming gain, small_gaussian prefactor, SFLI κ. ``exponent``: small_gaussian
    σ = scale·width^(−exponent), default 1.5 (the condensation paper's N(0, 1/m³)); set exponent 0 and
    scale 0.005 for its fixed-variance experiments. ``omega_max``: SFLI frequency for sin features
    (None: κπ m^{1/d}/(2R))."""

    name: str = "xavier_normal"
    scale: PositiveFloat = 1.0
    exponent: float = 1.5
    omega_max: PositiveFloat | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v not in INITS:
            raise ValueError(f"unknown initialisation '{v}'; valid: {', '.join(INITS)}")
        return v


class TrainConfig(Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: PositiveFloat = 1e-8
    momentum: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["constant", "exponential", "cosine"] = "constant"
    decay_rate: float = Field(0.9, gt=0, le=1)
    decay_steps: PositiveInt = 1000
    steps: NonNegativeInt = 2000
    log_every: PositiveInt = 50
    n_train: PositiveInt | None = None
    resample_every: NonNegativeInt = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "auto"  # CUDA when this process sees a GPU (Ray hides GPUs from trials that asked for none)

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


class TargetConfig(Strict):
    metric: Literal["train/loss", "eval/rel_l2"] = "train/loss"
    thresholds: list[PositiveFloat] = Field(default_factory=lambda: [1e-2, 1e-3])


class RunConfig(Strict):
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    init: InitConfig = Field(default_factory=InitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    rank: RankConfig = Field(default_factory=RankConfig)
    targets: TargetConfig = Field(default_factory=TargetConfig)
    seed: NonNegativeInt = 0

    def flat(self) -> dict[str, Any]:
        """Dotted-key form for recording: {'task.name': …, 'task.params.a': …, 'train.lr': …, 'seed': …}."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
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
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{part}' is not a section")
    node[path[-1]] = value


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(), Loader=YamlLoader) or {}
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


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a run-configuration YAML file, apply ``key=value`` overrides, validate."""
    data = load_yaml(path)
    for text in overrides:
        set_path(data, *parse_override(text))
    return validate(RunConfig, data, str(path))
