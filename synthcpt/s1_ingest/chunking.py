"""Sentence-aware chunking into token windows.

Chunks are character spans that tile the document exactly (concatenated they give the text back),
each at most `max_tokens` tokens of the given tokenizer. Sentences are packed greedily; a sentence
longer than the window is cut at token boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from synthcpt.sentences import sentence_spans


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    n_tokens: int


def _count(tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _split_long(text: str, start: int, end: int, tokenizer, max_tokens: int) -> list[tuple[int, int]]:
    """Cut one over-long span at token boundaries into pieces of at most `max_tokens` tokens."""
    offsets = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cuts = [start] + [start + offsets[i][0] for i in range(max_tokens, len(offsets), max_tokens)] + [end]
    return list(pairwise(cuts))


def chunk_text(text: str, tokenizer, max_tokens: int) -> list[Span]:
    """Chunks of at most `max_tokens` tokens that tile `text`, cut between sentences where possible."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if not text:
        return []
    spans = sentence_spans(text)
    counts = _count(tokenizer, [text[a:b] for a, b in spans])
    pieces: list[tuple[int, int]] = []
    for (a, b), n in zip(spans, counts):
        pieces.extend(_split_long(text, a, b, tokenizer, max_tokens) if n > max_tokens else [(a, b)])
    piece_counts = _count(tokenizer, [text[a:b] for a, b in pieces])
    chunks: list[Span] = []
    i = 0
    while i < len(pieces):
        j, total = i + 1, piece_counts[i]
        while j < len(pieces) and total + piece_counts[j] <= max_tokens:
            total += piece_counts[j]
            j += 1
        # Token counts are not exactly additive across a join: measure and back off if needed.
        while True:
            start, end = pieces[i][0], pieces[j - 1][1]
            n_tokens = _count(tokenizer, [text[start:end]])[0]
            if n_tokens <= max_tokens or j == i + 1:
                break
            j -= 1
        if n_tokens > max_tokens:
            # A lone piece that re-tokenizes longer in context: cut it finer.
            sub = _split_long(text, start, end, tokenizer, max_tokens // 2 or 1)
            pieces[i:i + 1] = sub
            piece_counts[i:i + 1] = _count(tokenizer, [text[a:b] for a, b in sub])
            continue
        chunks.append(Span(start, end, n_tokens))
        i = j
    return chunks
