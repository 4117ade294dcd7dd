"""Task registry: family names and the coefficient-encoding preset names of science.md §5.

``build_task(name, params)`` accepts a family name (``helmholtz2d``) with its parameters, or a preset name
(``helmholtz2d_a1-4_k1``) whose coefficients are fixed by the name; the built task's ``name`` always encodes
the coefficients actually used.
"""

from __future__ import annotations

from typing import Any

from .base import FitTask, PDETask, Task, TaskParams
from .elliptic import Helmholtz2D, Poisson1D, Poisson2D
from .evolution import Advection1D, AllenCahn
from .fitting import Fit1DMultiscale, Fit2DMultiscale, SineSum

FAMILIES: dict[str, type[Task]] = {
    cls.family: cls for cls in (Fit1DMultiscale, Fit2DMultiscale, Poisson1D, Poisson2D, Helmholtz2D, AllenCahn,
                                Advection1D, SineSum)
}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "helmholtz2d_a1-4_k1": ("helmholtz2d", {"a1": 1.0, "a2": 4.0, "k": 1.0}),
    "allen_cahn_d1e-4": ("allen_cahn", {"diffusion": 1e-4}),
    "advection1d_c30": ("advection1d", {"speed": 30.0}),
}
TASK_NAMES = tuple(FAMILIES) + tuple(PRESETS)


def resolve_task(name: str, params: dict[str, Any] | None = None) -> tuple[type[Task], TaskParams]:
    """Validate (name, params) into a task class and its typed parameters; errors name the valid choices."""
    params = dict(params or {})
    if name in PRESETS:
        family, fixed = PRESETS[name]
        for key, value in fixed.items():
            if key in params and params[key] != value:
                raise ValueError(f"task.params.{key}={params[key]!r} contradicts the preset '{name}' "
                                 f"({key}={value!r}); use task.name '{family}' to set it")
        params.update(fixed)
    elif name in FAMILIES:
        family = name
    else:
        raise ValueError(f"unknown task '{name}'; valid: {', '.join(TASK_NAMES)}")
    cls = FAMILIES[family]
    return cls, cls.Params(**params)


def build_task(name: str, params: dict[str, Any] | None = None) -> Task:
    cls, typed = resolve_task(name, params)
    return cls(typed)


__all__ = ["FAMILIES", "PRESETS", "TASK_NAMES", "FitTask", "PDETask", "Task", "TaskParams", "build_task",
           "resolve_task"]
