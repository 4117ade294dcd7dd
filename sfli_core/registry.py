"""Registries: the one place that lists the tasks, architectures, initialisations and activations sfli knows.

A configuration names an entry in one of three ways, tried in this order:

  * a registered short name (``poisson2d``, ``mlp``, ``sfli``, ``tanh``): the built-ins register themselves
    with :meth:`Registry.register`, exactly as user code can;
  * an import path ``package.module:Name`` (``my_pkg.pdes:Burgers1D``): the object is imported on first use,
    so a user's own task, model or initialisation needs no registration at all;
  * a name published by an installed distribution under the registry's entry-point group (``sfli.tasks``,
    ``sfli.models``, ``sfli.inits``, ``sfli.activations``), loaded lazily.

An unknown name fails with the list of every valid name (built-ins and entry points) before anything runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")

IMPORT_PATH_HINT = "or an import path 'package.module:Name'"


class RegistryError(ValueError):
    """An unknown name, an import path that does not import, or an object of the wrong kind."""


def is_import_path(name: str) -> bool:
    return ":" in name


def import_object(path: str, kind: str):
    """``package.module:Attr.attr`` → the object; errors name the kind, the path and what failed."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"{kind} '{path}': an import path looks like 'package.module:Name'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise RegistryError(f"{kind} '{path}': cannot import module '{module_name}' ({err}); is it installed, "
                            "or on the study's python_path?") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"{kind} '{path}': module '{module_name}' has no attribute '{attr}'") from None
    return obj


class Registry(Generic[T]):
    """Names → entries of one kind.

    ``adapt`` turns whatever a name resolves to into the registry's entry type and checks it (raising
    ``TypeError`` with a readable reason when the object cannot serve); built-ins go through it too.
    """

    def __init__(self, kind: str, group: str, adapt: Callable[[object], T]):
        self.kind, self.group, self._adapt = kind, group, adapt
        self._entries: dict[str, T] = {}
        self._loaded: dict[str, T] = {}  # import paths and entry points resolved so far
        self._plugins: dict[str, EntryPoint] | None = None

    def register(self, name: str, obj: object | None = None):
        """``registry.register("name", obj)``, or as a decorator ``@registry.register("name")``."""

        def add(o):
            if name in self._entries:
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = self._checked(name, o)
            return o

        return add(obj) if obj is not None else add

    def names(self) -> list[str]:
        """Registered names, then entry-point names not shadowed by them."""
        return list(self._entries) + [n for n in self._entry_points() if n not in self._entries]

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        if name in self._loaded:
            return self._loaded[name]
        if is_import_path(name):
            self._loaded[name] = self._checked(name, import_object(name, self.kind))
            return self._loaded[name]
        plugin = self._entry_points().get(name)
        if plugin is None:
            raise RegistryError(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())} ({IMPORT_PATH_HINT})")
        try:
            loaded = plugin.load()
        except Exception as err:  # a broken plug-in must not read as "unknown name"
            raise RegistryError(f"{self.kind} '{name}' (entry point {plugin.value} of group '{self.group}'): "
                                f"cannot load: {err}") from None
        self._loaded[name] = self._checked(name, loaded)
        return self._loaded[name]

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _checked(self, name: str, obj: object) -> T:
        try:
            return self._adapt(obj)
        except TypeError as err:
            raise RegistryError(f"{self.kind} '{name}': {err}") from None

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._plugins is None:
            self._plugins = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._plugins

    def refresh(self) -> None:
        """Forget the entry points and import paths resolved so far (e.g. after installing a plug-in in a
        running process); registered entries stay."""
        self._plugins = None
        self._loaded.clear()
