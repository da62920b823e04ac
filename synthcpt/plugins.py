"""Plugins: a generator, an engine backend, an evaluation method or an entity extractor is one module.

Every plugin is a class derived from its kind's base (`Generator`, `Backend`, `Method`, `Extractor`),
each derived from `Plugin`, and its module names it `PLUGIN`. A plugin declares
- `name`: how the config selects it (`generate.generators: [wrap]`, `engine.backend: openai`);
- `summary`: a few words for the config's description of that choice;
- `Settings`: its own section (a `Section`), nested in the config under its name (`generate.wrap.temperature`);
  given as the base's type argument (`class Wrap(Generator[WrapSettings])`) or as `Settings = ...`;
- `prompts(settings) -> list[str]`: the prompt files it reads with its settings, which the stage's
  fingerprint hashes;
- its capabilities, which the stage code asks instead of naming plugins: `needs` (the earlier stages
  whose outputs it reads, e.g. `("graph",)`; `StageContext.require` checks them) and the kind's own (a
  generator's first step, by deriving from `TwoStepGenerator`; a backend's `single_wave`,
  `batch_prices`, `local_model`...).
An instance reads its own section as `self.settings`, typed by its `Settings`.

A `Registry` finds the plugins of one kind by importing every module of its package, so adding one is
adding a module: the config's choices, defaults, nested sections, `synthcpt init` comments and the plan
all come from the registry (`plugin_section`). Plugin modules keep heavy imports (torch, vLLM, spaCy)
inside functions: the CLI imports every plugin to build the config.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import Field, create_model

from synthcpt.errors import SynthcptError
from synthcpt.section import Section

S = TypeVar("S", bound=Section)
P = TypeVar("P", bound="Plugin")
T = TypeVar("T", bound=Section)

# Bumped whenever a plugin is registered by hand, so models built from the registries are rebuilt.
_generation = 0


def generation() -> int:
    return _generation


class Plugin(Generic[S]):
    """The base of every plugin kind; see the module's docstring."""

    kind: ClassVar[str] = "plugin"  # set by each kind's base; its registry takes only plugins of its kind
    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Settings: ClassVar[type[Section]]
    # The earlier stages whose outputs it reads (the stage makes sure they are complete).
    needs: ClassVar[tuple[str, ...]] = ()

    settings: S  # its own section

    def __init__(self, section: Any):
        """`section`: the section its kind's plugins nest in (`generate`, `engine`...); its own is `section.<name>`."""
        self.section = section
        self.settings = getattr(section, self.name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Settings" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            found = [a for a in get_args(base) if isinstance(a, type) and issubclass(a, Section)]
            if found:
                cls.Settings = found[0]
                return

    @classmethod
    def prompts(cls, settings: Any) -> list[str]:
        """The prompt files it reads with its settings `settings` (hashed into the stage's fingerprint)."""
        return []

    @classmethod
    def prompt_files(cls, section: Any) -> list[str]:
        """`prompts` of its own section within `section` (the section its kind nests in)."""
        return cls.prompts(getattr(section, cls.name))


class Registry(Generic[P]):
    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._plugins: dict[str, type[P]] | None = None

    def _discover(self) -> dict[str, type[P]]:
        found: dict[str, type[P]] = {}
        package = importlib.import_module(self.package)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            plugin = getattr(importlib.import_module(f"{self.package}.{module.name}"), "PLUGIN", None)
            if plugin is not None:
                self._add(found, plugin)
        return found

    def _add(self, found: dict[str, type[P]], plugin: Any) -> None:
        if not (isinstance(plugin, type) and issubclass(plugin, Plugin) and plugin.kind == self.kind):
            raise TypeError(f"{self.kind} plugin {plugin!r} must derive from the {self.kind} base class")
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{self.kind} plugin {plugin!r} needs a `name` that is an identifier")
        if not isinstance(getattr(plugin, "Settings", None), type) or not issubclass(plugin.Settings, Section):
            raise TypeError(f"{self.kind} plugin {name} needs a `Settings` class derived from Section")
        if name in found and found[name] is not plugin:
            raise RuntimeError(f"two {self.kind} plugins are named {name!r}")
        found[name] = plugin

    @property
    def plugins(self) -> dict[str, type[P]]:
        if self._plugins is None:
            self._plugins = self._discover()
        return self._plugins

    def register(self, plugin: type[P]) -> type[P]:
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

    def __iter__(self) -> Iterator[type[P]]:
        return iter(self.plugins.values())

    def __contains__(self, name: object) -> bool:
        return name in self.plugins

    def get(self, name: str) -> type[P]:
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

    def described(self) -> str:
        """`'name': summary` of every plugin, for the description of the setting that selects them."""
        return "; ".join(f"'{p.name}': {p.summary}" for p in self)


_SECTIONS: dict[tuple[type, str, int], type] = {}


def plugin_section(base: type[T], registry: Registry, selects: str) -> type[T]:
    """`base` (a section class) with one nested section per plugin of `registry`, and its field `selects`
    (a plugin name, or a list of them) typed to the registered names, its description's `{plugins}` the
    plugins' summaries. Rebuilt when a plugin is registered; the same class until then."""
    key = (base, selects, _generation)
    if key not in _SECTIONS:
        field = copy.copy(base.model_fields[selects])
        choice = registry.choice()
        annotation = list[choice] if get_origin(field.annotation) is list else choice
        field.description = (field.description or "").replace("{plugins}", registry.described())
        _SECTIONS[key] = create_model(base.__name__, __base__=base, __doc__=base.__doc__, __module__=base.__module__,
                                      **{selects: (annotation, field)}, **registry.sections())
    return _SECTIONS[key]


# The kinds of plugin, each discovered in its package.
BACKENDS: Registry = Registry("engine backend", "synthcpt.engine.backends")
GENERATORS: Registry = Registry("generator", "synthcpt.s5_generate.generators")
EVAL_METHODS: Registry = Registry("eval method", "synthcpt.s7_eval.methods")
EXTRACTORS: Registry = Registry("entity extractor", "synthcpt.s2_entities.extractors")
