"""The graph stage's settings."""

from __future__ import annotations

from pydantic import Field

from synthcpt.section import Section


class GraphSettings(Section):
    window_sentences: int = Field(
        1, ge=1, description="Two entities are joined by an edge when they occur within this many consecutive "
                             "sentences (1: the same sentence); the edge's weight counts such windows.")
