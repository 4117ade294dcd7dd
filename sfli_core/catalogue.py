"""What is registered, as text for ``sfli list`` (120 columns): tasks with their parameters, architectures
with theirs, initialisations with their role and knobs, activations with their multiplicity and SFLI shape."""

from __future__ import annotations

import textwrap

from .activations import ACTIVATIONS
from .init import INITS
from .models import MODELS
from .params import describe_params, params_of
from .tasks import TASKS, Preset
from .text import WIDTH

NAME = 22


def _entry(name: str, text: str, params: str | None = None) -> list[str]:
    indent = " " * (NAME + 4)
    out = textwrap.wrap(text, WIDTH, initial_indent=f"  {name:<{NAME}}  ", subsequent_indent=indent)
    if params is not None:
        out += textwrap.wrap(f"params: {params}", WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")
    return out


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def catalogue() -> str:
    lines = ["Tasks (task.name, task.params):"]
    for name, entry in TASKS.items():
        if isinstance(entry, Preset):
            fixed = ", ".join(f"{k}={v!r}" for k, v in entry.fixed.items())
            lines += _entry(name, f"preset of {entry.family.family}: {fixed}")
        else:
            lines += _entry(name, _first_line(entry.__doc__), describe_params(params_of(entry)))
    lines += ["", "Architectures (model.arch, model.params):"]
    for name, arch in MODELS.items():
        lines += _entry(name, _first_line(arch.__doc__), describe_params(params_of(arch)))
    lines += ["", "Initialisations (init.name, init.scale, init.params):"]
    for name, scheme in INITS.items():
        lines += _entry(name, f"[{scheme.role}] {scheme.summary}", describe_params(scheme.Params))
    lines += ["", "Activations (model.activation): multiplicity p at 0; how SFLI builds a layer for it"]
    for name, act in ACTIVATIONS.items():
        p = act.multiplicity if act.multiplicity is not None else "-"
        lines += _entry(name, f"p={p}  sfli={act.sfli_shape or 'not served'}")
    lines += ["", "Any of them can also be named by import path, package.module:Name (see docs/extending.md)."]
    return "\n".join(lines)
