"""Plugins: a generator, an engine backend, an evaluation method or an entity extractor is one module.

Such a module defines `PLUGIN`, an object (usually a class) with
- `name`: how the config selects it (`generate.generators: [wrap]`, `engine.backend: openai`);
- `Settings`: its own pydantic section, nested in the config under its name (`generate.wrap.temperature`);
- `prompts(settings) -> list[str]`: the prompt files it uses, which the stage's fingerprint hashes.

A `Registry` finds the plugins of one kind by importing every module of its package, so adding one is
adding a module: the config's choices, defaults, nested sections, `synthcpt init` comments and the plan
all come from the registry. Plugin modules keep heavy imports (torch, vLLM, spaCy) inside functions:
the CLI imports every plugin to build the config.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field

from synthcpt.errors import SynthcptError
from synthcpt.section import Section

P = TypeVar("P")

# Bumped whenever a plugin is registered by hand, so models built from the registries are rebuilt.
_generation = 0


def generation() -> int:
    return _generation


class Registry(Generic[P]):
    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._plugins: dict[str, P] | None = None

    def _discover(self) -> dict[str, P]:
        found: dict[str, P] = {}
        package = importlib.import_module(self.package)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            plugin = getattr(importlib.import_module(f"{self.package}.{module.name}"), "PLUGIN", None)
            if plugin is not None:
                self._add(found, plugin)
        return found

    def _add(self, found: dict[str, P], plugin: P) -> None:
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{self.kind} plugin {plugin!r} needs a `name` that is an identifier")
        if not isinstance(getattr(plugin, "Settings", None), type) or not issubclass(plugin.Settings, Section):
            raise TypeError(f"{self.kind} plugin {name} needs a `Settings` class derived from Section")
        if name in found and found[name] is not plugin:
            raise RuntimeError(f"two {self.kind} plugins are named {name!r}")
        found[name] = plugin

    @property
    def plugins(self) -> dict[str, P]:
        if self._plugins is None:
            self._plugins = self._discover()
        return self._plugins

    def register(self, plugin: P) -> P:
        """Add a plugin defined outside the package (a user's module, a test); usable as a decorator."""
        global _generation
        self._add(self.plugins, plugin)
        _generation += 1
        return plugin

    def unregister(self, name: str) -> None:
        global _generation
        self.plugins.pop(name, None)
        _generation += 1

    def names(self) -> list[str]:
        return list(self.plugins)

    def __iter__(self) -> Iterator[P]:
        return iter(self.plugins.values())

    def __contains__(self, name: object) -> bool:
        return name in self.plugins

    def get(self, name: str) -> P:
        try:
            return self.plugins[name]
        except KeyError:
            raise SynthcptError(f"unknown {self.kind} '{name}' ({self.kind}s: {', '.join(self.names())})") from None

    def choice(self) -> Any:
        """The type of a setting that names one of these plugins: its errors list the choices."""
        return Literal[tuple(self.names())]

    def sections(self) -> dict[str, Any]:
        """One nested settings field per plugin, for `create_model`: `name=(Settings, default)`."""
        return {name: (plugin.Settings, Field(default_factory=plugin.Settings,
                                              description=(plugin.Settings.__doc__ or name).strip()))
                for name, plugin in self.plugins.items()}


# The kinds of plugin, each discovered in its package.
BACKENDS: Registry = Registry("engine backend", "synthcpt.engine.backends")
GENERATORS: Registry = Registry("generator", "synthcpt.s4_generate.generators")
EVAL_METHODS: Registry = Registry("eval method", "synthcpt.s6_eval.methods")
EXTRACTORS: Registry = Registry("entity extractor", "synthcpt.s2_entities.extractors")
