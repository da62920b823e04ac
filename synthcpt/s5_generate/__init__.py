"""Stage 4, generate: synthetic text from the corpus (one plugin per generator: EntiGraph relations,
WRAP rephrasings, reading-comprehension text, Bonito-style instruction pairs...) and the training mix."""
