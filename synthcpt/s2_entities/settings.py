"""The entities stage's settings."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthcpt import plugins
from synthcpt.plugins import EXTRACTORS
from synthcpt.section import Section


class EntitiesSettings(Section):
    """The salient entities of each document; one nested section per extractor."""

    extractor: str = Field("hybrid", description=(
        "Entity extractor: {plugins}. The CPU demo uses spacy; a capable generator should give the LLM's "
        "entities (hybrid or llm)."))
    max_entities_per_document: int = Field(
        150, ge=1, description="Cap per document, most salient kept: the LLM extractor's own bound "
                               "(entities.llm.max_entities), so it never cuts the reference's exhaustive list.")
    require_mention: bool = Field(
        False, description="Drop the LLM's entities whose name never occurs in the document's text (spaCy's "
                           "always are). Off as in the reference, which keeps the LLM's abstract concepts (themes, "
                           "ideas) that a document discusses without naming them.")

    def identity(self) -> dict[str, Any]:
        """The shared settings and the sections the selected extractor reads."""
        plugin = EXTRACTORS.get(self.extractor)
        used = set(plugin.sections or (plugin.name,))
        return self.model_dump(mode="json", exclude=set(EXTRACTORS.names()) - used)


def entities_settings() -> type[EntitiesSettings]:
    return plugins.plugin_section(EntitiesSettings, EXTRACTORS, "extractor")
