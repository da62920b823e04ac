"""What a drafted exam question must pass before it enters the exam, each check a reason counted in the
stage's stats. The cheap text checks run first, so the engine's open-book self-check is asked only of
drafts that could still be kept.

- `not_a_question`: the stem is not one question (it must end with its only question mark);
- `malformed`: a one-word stem, an answer longer than `max_answer_words`, distractors that
  are empty or repeat each other or the answer;
- `refers_to_passage`: the stem speaks of "the passage" or "the text", which closed-book has no meaning;
- `not_grounded`: the answer is not found in the passage (rapidfuzz partial ratio below `grounding`): a
  question whose answer the document does not state tests the generator, not the document;
- `answer_in_question`: every content word of the answer is in the stem, which gives it away;
- `unanchored`: the stem names nothing of its passage besides the answer ("What is the answer to this
  question?"): closed-book, a question must say what it asks about;
- `duplicate`: a question near one already in the exam (token-sort ratio at least `duplicate_similarity`);
- `self_check_wrong` / `self_check_unparseable`: the engine, given the passage, does not pick the answer
  among the four options, in both of two orders of the options (SimpleQA kept a question only when a second
  trainer answered it alike; two orders make a lucky guess 1 in 16, not 1 in 4).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from rapidfuzz import fuzz
from spacy.lang.en.stop_words import STOP_WORDS

from synthcpt.s4_exam.settings import ExamSettings

PUNCTUATION = re.compile(r"[^\w\s]")
PASSAGE_WORDS = re.compile(r"\b(passage|excerpt|paragraph|the text|this text|the author)\b", re.IGNORECASE)
# Bounds held by structured output, so a model caught in a loop must close the object: a question is a
# sentence, an answer a few words (a longer one fails `max_answer_words` anyway).
MAX_QUESTION_CHARS, MAX_ANSWER_CHARS = 200, 80
# A choice starts with a letter or digit: small models fill lists with "..." or quotes.
CHOICE = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ANSWER_CHARS, pattern=r"^[A-Za-z0-9]")]


class ExamDraft(BaseModel):
    """The engine's draft of one exam question, held to this shape by structured output."""

    question: str = Field(min_length=8, max_length=MAX_QUESTION_CHARS)
    answer: CHOICE
    distractors: list[CHOICE] = Field(min_length=3, max_length=3)


class SelfCheck(BaseModel):
    """The engine's open-book answer to a draft, as the letter of an option."""

    answer: str = Field(pattern="^[A-D]$")


def normalised(text: str) -> str:
    return " ".join(PUNCTUATION.sub(" ", text.lower()).split())


def content_words(text: str) -> set[str]:
    return {w for w in normalised(text).split() if w not in STOP_WORDS}


def text_rejection(draft: ExamDraft, passage: str, settings: ExamSettings) -> str | None:
    """Why a draft fails the text checks, or None."""
    question, answer = normalised(draft.question), normalised(draft.answer)
    choices = [answer, *(normalised(d) for d in draft.distractors)]
    if not draft.question.strip().endswith("?") or draft.question.count("?") > 1:
        return "not_a_question"
    if (len(question.split()) < 2 or not answer or len(answer.split()) > settings.max_answer_words
            or not all(choices) or len(set(choices)) < len(choices)):
        return "malformed"
    if PASSAGE_WORDS.search(draft.question):
        return "refers_to_passage"
    if fuzz.partial_ratio(answer, normalised(passage)) < settings.grounding:
        return "not_grounded"
    words, stem = content_words(draft.answer), content_words(draft.question)
    if words and words <= stem:
        return "answer_in_question"
    if not (stem - words) & content_words(passage):
        return "unanchored"
    return None


class DuplicateFilter:
    """Questions seen so far (given and kept); a new one too near any of them is a duplicate."""

    def __init__(self, threshold: float, questions: list[str] = ()):
        self.threshold = threshold
        self.seen = [normalised(q) for q in questions]

    def duplicate(self, question: str) -> bool:
        text = normalised(question)
        if any(fuzz.token_sort_ratio(text, seen) >= self.threshold for seen in self.seen):
            return True
        self.seen.append(text)
        return False
