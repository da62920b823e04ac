"""Quality rules for synthetic records: empty, too short, degenerate repetition, refused answers."""

from __future__ import annotations

import re
from collections import Counter

REPETITION_NGRAM = 5
# Assistant refusals and non-answers, in the text or after an "Answer:"/"Response:" marker.
REFUSAL = re.compile(
    r"\b(?:as an ai(?: language model)?|i(?:'m| am) (?:sorry,? but i|unable to|not able to)|"
    r"i (?:cannot|can't|can not) (?:help|assist|provide|answer|fulfil|comply|create|generate|rephrase)|"
    r"i apologi[sz]e,? but|"
    r"(?:the )?(?:passage|text|document|context) (?:does not|doesn't) (?:say|mention|provide|specify|contain)|"
    r"(?:not|cannot be) (?:possible|able) to (?:answer|determine|tell) (?:from|based on))", re.IGNORECASE)
EMPTY_ANSWER = re.compile(r"^\W*(?:answer|response)\s*:\s*$", re.IGNORECASE | re.MULTILINE)


def duplicated_ngram_share(text: str, n: int = REPETITION_NGRAM) -> float:
    """Share of the characters of `text`'s words that lie inside word n-grams occurring more than once
    (Gopher's duplicate n-gram rule)."""
    words = text.split()
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i:i + n] = [True] * n
    total = sum(len(w) for w in words)
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def quality_rejection(text: str, n_tokens: int, min_tokens: int, max_repetition: float) -> str | None:
    """The first quality rule a record breaks, or None."""
    if not text.strip():
        return "empty"
    if n_tokens < min_tokens:
        return "too_short"
    if REFUSAL.search(text) or EMPTY_ANSWER.search(text):
        return "refusal"
    if duplicated_ngram_share(text) > max_repetition:
        return "repetition"
    return None
