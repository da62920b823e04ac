"""Stage 2, entities: the salient entities of each document (EntiGraph's first step), found by an
extractor plugin (spaCy, the LLM, or both), then merged, grounded, ranked and capped."""
