"""Task registry: the built-in families, the coefficient-encoding presets, and any user task.

``build_task(name, params)`` accepts a family name (``helmholtz2d``) with its parameters, a preset name
(``helmholtz2d_a1-4_k1``) whose coefficients are fixed by the name, an import path to a user's task class
(``my_pkg.pdes:Burgers1D``), or a name published under the entry-point group ``sfli.tasks``. A registry
entry is a :class:`Task` subclass or a :class:`Preset`. The built task's ``name`` encodes the coefficients
actually used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..params import Params, params_of
from ..registry import Registry
from .base import FitTask, PDETask, Task
from .elliptic import Helmholtz2D, Poisson1D, Poisson2D
from .evolution import Advection1D, AllenCahn
from .fitting import Fit1DMultiscale, Fit2DMultiscale, SineSum


@dataclass(frozen=True)
class Preset:
    """A task family with some parameters fixed by the preset's name."""

    family: type[Task]
    fixed: dict[str, Any] = field(default_factory=dict)


def _adapt(obj: object) -> type[Task] | Preset:
    if isinstance(obj, Preset):
        return obj
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TypeError(f"expected a subclass of sfli_core.tasks.Task (or a Preset), got {obj!r}")
    params_of(obj)
    return obj


TASKS: Registry[type[Task] | Preset] = Registry("task", "sfli.tasks", _adapt)
for _cls in (Fit1DMultiscale, Fit2DMultiscale, Poisson1D, Poisson2D, Helmholtz2D, AllenCahn, Advection1D, SineSum):
    TASKS.register(_cls.family, _cls)
TASKS.register("helmholtz2d_a1-4_k1", Preset(Helmholtz2D, {"a1": 1.0, "a2": 4.0, "k": 1.0}))
TASKS.register("allen_cahn_d1e-4", Preset(AllenCahn, {"diffusion": 1e-4}))
TASKS.register("advection1d_c30", Preset(Advection1D, {"speed": 30.0}))


def task_class(name: str, params: dict[str, Any] | None = None) -> tuple[type[Task], dict[str, Any]]:
    """The task class a name stands for and its parameters with a preset's fixed ones merged in; unknown names
    and contradictions of a preset fail with what is valid."""
    params = dict(params or {})
    entry = TASKS.get(name)
    if isinstance(entry, Preset):
        for key, value in entry.fixed.items():
            if key in params and params[key] != value:
                raise ValueError(f"task.params.{key}={params[key]!r} contradicts the preset '{name}' "
                                 f"({key}={value!r}); use task.name '{entry.family.family}' to set it")
        return entry.family, {**params, **entry.fixed}
    return entry, params


def resolve_task(name: str, params: dict[str, Any] | None = None) -> tuple[type[Task], Params]:
    """Validate (name, params) into a task class and its typed parameters."""
    cls, merged = task_class(name, params)
    return cls, params_of(cls).model_validate(merged)


def build_task(name: str, params: dict[str, Any] | None = None) -> Task:
    cls, typed = resolve_task(name, params)
    return cls(typed)


__all__ = ["TASKS", "FitTask", "PDETask", "Preset", "Task", "build_task", "resolve_task", "task_class"]
