"""Stage 3, graph: the EntiGraph knowledge graph of entities and their co-occurrences."""

from __future__ import annotations

from pydantic import Field

from synthcpt.pipeline import Stage
from synthcpt.section import Section


class GraphSettings(Section):
    window_sentences: int = Field(
        1, ge=1, description="Two entities are joined by an edge when they occur within this many consecutive "
                             "sentences (1: the same sentence); the edge's weight counts such windows.")


STAGE = Stage(
    name="graph",
    help="build the EntiGraph knowledge graph: entities joined by their co-occurrences, with stats",
    settings=GraphSettings,
    run="synthcpt.s3_graph.run:run",
    show="synthcpt.s3_graph.show:show",
)
