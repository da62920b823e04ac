"""Stage 3, graph: the EntiGraph knowledge graph of entities and their co-occurrences."""
