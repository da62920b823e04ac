"""Sentence boundaries of a text (paragraphs first, then spaCy's rule-based sentencizer): what chunking
and the mined reading-comprehension tasks both cut text at."""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10**8
    return nlp


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of sentences that tile `text`: paragraphs first, then spaCy's sentencizer inside them."""
    bounds = {0, len(text)}
    for match in PARAGRAPH_BREAK.finditer(text):
        bounds.add(match.end())
    paragraphs = sorted(bounds)
    nlp = _sentencizer()
    for (start, end), doc in zip(pairwise(paragraphs), nlp.pipe(text[a:b] for a, b in pairwise(paragraphs))):
        for sentence in list(doc.sents)[1:]:
            bounds.add(start + sentence.start_char)
    ordered = sorted(bounds)
    return list(pairwise(ordered))
