"""Answer parsing of generated chain-of-thought text and the bootstrap intervals."""

from __future__ import annotations

import pytest

from synthcpt.s7_eval.metrics import bootstrap_interval, paired_difference, parse_answer


@pytest.mark.parametrize("text, expected", [
    ("Let's think. Della sells her hair. Therefore, the answer is (B).", ("B",)),
    ("the answer is C because the ship left", ("C",)),
    ("Answer: D", ("D",)),
    ("Therefore, the answers are (A) and (C).", ("A", "C")),
    ("Therefore, the answer is (A)(C).", ("A", "C")),
    ("The answer is A, D.", ("A", "D")),
    ("The answer is (A). On reflection, the answer is (C).", ("C",)),
])
def test_answer_letters_are_parsed(text, expected):
    assert parse_answer(text, "ABCD") == expected


@pytest.mark.parametrize("text", [
    "I am not sure what happened in the story.",
    "Therefore, the answer is (E).",  # not an option
    "the answer is a mystery",  # a lower-case word, not a letter
    "",
])
def test_unparseable_answers_are_none(text):
    assert parse_answer(text, "ABCD") is None


def test_bootstrap_interval_is_seeded_and_contains_the_mean():
    values = [1.0] * 30 + [0.0] * 70
    first = bootstrap_interval(values, resamples=500, confidence=0.95, seed=3)
    assert first == bootstrap_interval(values, resamples=500, confidence=0.95, seed=3)
    assert first[0] < 0.3 < first[1]
    assert 0.1 < first[1] - first[0] < 0.3


def test_paired_difference_of_a_consistent_gain_excludes_zero():
    baseline = [0.0, 1.0] * 50
    better = [1.0] * 100
    difference, interval = paired_difference(better, baseline, resamples=500, confidence=0.95, seed=0)
    assert difference == 0.5
    assert 0 < interval[0] <= 0.5 <= interval[1]
