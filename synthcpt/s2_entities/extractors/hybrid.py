"""Hybrid: the spaCy and the LLM extractors, merged: the LLM's summaries and concepts, spaCy's grounded
names; an entity both find ranks higher. Reads the `entities.spacy` and `entities.llm` sections."""

from __future__ import annotations

from typing import Any, ClassVar

from synthcpt.s2_entities.extractor import Extraction, ExtractionContext
from synthcpt.s2_entities.extractors.llm import Llm
from synthcpt.s2_entities.extractors.spacy import Spacy
from synthcpt.section import Section


class HybridSettings(Section):
    """hybrid extractor: spacy and llm together (their settings are entities.spacy and entities.llm)."""


class Hybrid:
    name: ClassVar[str] = "hybrid"
    summary: ClassVar[str] = "both, merged (the LLM's summaries and concepts, spaCy's grounded names)"
    Settings = HybridSettings
    sections: ClassVar[tuple[str, ...]] = ("spacy", "llm")

    def __init__(self, ctx: ExtractionContext):
        self.parts = (Spacy(ctx), Llm(ctx))

    @classmethod
    def prompts(cls, stage: Any) -> list[str]:
        return [*Spacy.prompts(stage), *Llm.prompts(stage)]

    def requests(self) -> dict[str, list]:
        return {step: found for part in self.parts for step, found in part.requests().items()}

    def extract(self) -> Extraction:
        merged = Extraction()
        for part in self.parts:
            merged.merge(part.extract())
        return merged


PLUGIN = Hybrid
