"""The base of every registered entry's parameter model (tasks, architectures, initialisations).

An entry declares ``Params``, a pydantic model whose fields are its knobs with their defaults; a
configuration's ``params`` mapping is validated against it (unknown keys fail with the valid ones) and the
resolved values, defaults included, are what a run records.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For entries without knobs of their own."""


def params_of(entry: object) -> type[Params]:
    """The entry's declared ``Params`` model (``NoParams`` when it declares none)."""
    declared = getattr(entry, "Params", NoParams)
    if not (isinstance(declared, type) and issubclass(declared, BaseModel)):
        raise TypeError(f"its Params must be a pydantic model class, got {declared!r}")
    return declared


def describe_params(model: type[BaseModel]) -> str:
    """'a=4.0, c=0.1, …' (field = default), for listings."""
    fields = [f"{name}={info.default!r}" if not info.is_required() else f"{name} (required)"
              for name, info in model.model_fields.items()]
    return ", ".join(fields) or "-"
