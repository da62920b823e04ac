"""Scores of one question and their aggregates: accuracy, set match, per-option F1, token F1 of a free-form
answer, bootstrap intervals."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

# "the answer is (B)", "Answer: C", "the answers are (A) and (C)", "answer is A, D": the letters after it.
ANSWER = re.compile(r"(?i:\banswers?\b(?:\s+(?:is|are))?\s*[:\-]?\s*)"
                    r"((?:\(?[A-Z]\)?(?![A-Za-z])(?:\s*(?:,|;|/|&|\band\b|\bor\b)?\s*)?)+)")


def parse_answer(text: str, letters: str) -> tuple[str, ...] | None:
    """The letters of the last answer statement in a generated text, or None when there is none
    or it names a letter that is not an option."""
    matches = ANSWER.findall(text)
    if not matches:
        return None
    found = tuple(sorted(set(re.findall(r"[A-Z]", re.sub(r"\b(?:and|or)\b", " ", matches[-1])))))
    if not found or not set(found) <= set(letters):
        return None
    return found


def set_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """F1 of the predicted option letters against the gold ones (1.0 for an exact match)."""
    hits = len(set(predicted) & set(gold))
    if not hits:
        return 0.0
    precision, recall = hits / len(set(predicted)), hits / len(set(gold))
    return 2 * precision * recall / (precision + recall)


ARTICLES = re.compile(r"\b(a|an|the)\b")
PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lower case, no punctuation, no articles (a, an, the), single
    spaces; so "The Amber Bell." and "amber bell" are the same answer."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def token_f1(predicted: str, reference: str) -> float:
    """SQuAD's bag-of-tokens F1 of a free-form answer against the reference, after `normalize_answer`.
    When either side has no tokens left, 1.0 if both are empty, else 0.0 (as SQuAD v2 scores it)."""
    predicted_tokens, reference_tokens = normalize_answer(predicted).split(), normalize_answer(reference).split()
    if not predicted_tokens or not reference_tokens:
        return float(predicted_tokens == reference_tokens)
    same = sum((Counter(predicted_tokens) & Counter(reference_tokens)).values())
    if not same:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def choose(scores: Sequence[float], letters: str, multi: bool) -> tuple[str, ...]:
    """The options chosen from their log-likelihoods: the best one; in a multi-answer set every
    option at least as likely as a uniform guess (probability over the options >= 1/k)."""
    if not multi:
        return (letters[int(np.argmax(scores))],)
    values = np.asarray(scores, dtype=float)
    probabilities = np.exp(values - values.max())
    probabilities /= probabilities.sum()
    return tuple(letter for letter, p in zip(letters, probabilities) if p >= 1 / len(scores) - 1e-12)


def bootstrap_interval(values: Sequence[float], resamples: int, confidence: float, seed: int) -> list[float]:
    """Percentile bootstrap interval of the mean over questions."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def paired_difference(values: Sequence[float], baseline: Sequence[float], resamples: int, confidence: float,
                      seed: int) -> tuple[float, list[float]]:
    """Mean of `values - baseline` over the same questions, with its paired bootstrap interval."""
    difference = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    mean = float(difference.mean()) if difference.size else math.nan
    return mean, bootstrap_interval(difference, resamples, confidence, seed)
