"""The entities stage's settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field, create_model

from synthcpt import plugins
from synthcpt.plugins import EXTRACTORS
from synthcpt.section import Section

# Flat keys of earlier versions, now in an extractor's section.
MOVED = {
    "spacy_model": "entities.spacy.model",
    **{key: f"entities.spacy.{key}" for key in
       ("ner_labels", "noun_phrases", "min_phrase_mentions", "batch_size", "n_process", "piece_chars")},
    **{f"llm_{key}": f"entities.llm.{key}" for key in
       ("window_tokens", "max_tokens", "max_entities", "summary_chars", "temperature")},
}


class EntitiesSettings(Section):
    """The salient entities of each document; one nested section per extractor."""

    extractor: str = Field("hybrid")
    max_entities_per_document: int = Field(
        150, ge=1, description="Cap per document, most salient kept: the LLM extractor's own bound "
                               "(entities.llm.max_entities), so it never cuts the reference's exhaustive list.")
    require_mention: bool = Field(
        False, description="Drop the LLM's entities whose name never occurs in the document's text (spaCy's "
                           "always are). Off as in the reference, which keeps the LLM's abstract concepts (themes, "
                           "ideas) that a document discusses without naming them.")

    def identity(self) -> dict[str, Any]:
        """The shared settings and the sections the selected extractor reads."""
        used = set(EXTRACTORS.get(self.extractor).sections)
        return self.model_dump(mode="json", exclude=set(EXTRACTORS.names()) - used)


@lru_cache(maxsize=4)
def _entities_settings(generation: int) -> type[EntitiesSettings]:
    described = "; ".join(f"'{p.name}': {p.summary}" for p in EXTRACTORS)
    model = create_model("EntitiesSettings", __base__=EntitiesSettings, __doc__=EntitiesSettings.__doc__,
                         extractor=(EXTRACTORS.choice(), Field("hybrid", description=(
                             f"Entity extractor: {described}. The CPU demo uses spacy; a capable generator "
                             "should give the LLM's entities (hybrid or llm)."))),
                         **EXTRACTORS.sections())
    model.moved = MOVED
    return model


def entities_settings() -> type[EntitiesSettings]:
    return _entities_settings(plugins.generation())
