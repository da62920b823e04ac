"""The registry of generators: adding one is a module with a `Generator` subclass and its prompts."""

from __future__ import annotations

from synthcpt.s4_generate.base import Generator
from synthcpt.s4_generate.bonito import Bonito
from synthcpt.s4_generate.entigraph import EntiGraph
from synthcpt.s4_generate.rc import RcLlm, RcMined
from synthcpt.s4_generate.wrap import Wrap

GENERATOR_CLASSES: dict[str, type[Generator]] = {
    cls.name: cls for cls in (EntiGraph, Wrap, RcMined, RcLlm, Bonito)
}


def prompt_files(settings) -> list[str]:
    return sorted({name for g in settings.generators for name in GENERATOR_CLASSES[g].prompt_files(settings)})
