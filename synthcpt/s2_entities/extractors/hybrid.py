"""Hybrid: the spaCy and the LLM extractors, merged: the LLM's summaries and concepts, spaCy's grounded
names; an entity both find ranks higher. Reads the `entities.spacy` and `entities.llm` sections."""

from __future__ import annotations

from typing import Any, ClassVar

from synthcpt.s2_entities.extractor import Extraction, ExtractionContext, Extractor
from synthcpt.s2_entities.extractors.llm import Llm
from synthcpt.s2_entities.extractors.spacy import Spacy
from synthcpt.section import Section


class HybridSettings(Section):
    """hybrid extractor: spacy and llm together (their settings are entities.spacy and entities.llm)."""


class Hybrid(Extractor[HybridSettings]):
    name: ClassVar[str] = "hybrid"
    summary: ClassVar[str] = "both, merged (the LLM's summaries and concepts, spaCy's grounded names)"
    sections: ClassVar[tuple[str, ...]] = ("spacy", "llm")
    PARTS = (Spacy, Llm)

    def __init__(self, ctx: ExtractionContext):
        super().__init__(ctx)
        self.parts = [part(ctx) for part in self.PARTS]

    @classmethod
    def prompt_files(cls, section: Any) -> list[str]:
        return [name for part in cls.PARTS for name in part.prompt_files(section)]

    def requests(self) -> dict[str, list]:
        return {step: found for part in self.parts for step, found in part.requests().items()}

    def extract(self) -> Extraction:
        merged = Extraction()
        for part in self.parts:
            merged.merge(part.extract())
        return merged


PLUGIN = Hybrid
