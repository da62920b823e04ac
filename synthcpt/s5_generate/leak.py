"""Evaluation-leak guard: a record that carries the exam into the training data is dropped.

What leaks is the exam itself, not the facts it asks about: a record leaks when it reproduces a
question's stem (`question`), or two or more options of one question together, the choice list of the
exam (`options`). One option alone is usually a true statement of the document (the right answer, or
a phrase of it), which the corpus teaches anyway, so it does not count. An evaluation text that the
corpus itself contains is never guarded: the raw documents are trained on as they are, and their
rephrasings must be too (counted as `in_corpus`). A record written about a question (qa's pairs,
focal's rewrites) also leaks when that question is an exam question reworded (`same_question`:
rapidfuzz token-sort ratio at or above `question_similarity`), which the n-gram rule misses.

A text is reproduced when a record holds at least `threshold` of its word n-grams; texts shorter
than n words are matched as one whole phrase, down to MIN_PHRASE_WORDS words; shorter ones ("Yes",
"Mars") are too common to tell a leak from a mention and are not guarded (counted as `unguarded`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from synthcpt.questions import QAItem
from synthcpt.s5_generate.dedup import normalised

MIN_PHRASE_WORDS = 4
QUESTION, OPTION = "question", "option"
# Options of one question a record must reproduce together to hold the exam's choice list.
MIN_OPTIONS = 2


@dataclass(frozen=True)
class EvalText:
    question_id: str
    kind: str  # QUESTION or OPTION
    label: str  # e.g. "q3 option B"
    grams: int


@dataclass(frozen=True)
class Leak:
    reason: str  # "question" or "options"
    evaluation_text: str


def _grams(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


@dataclass
class LeakGuard:
    ngram: int
    threshold: float
    # gram -> ids of the evaluation texts that contain it
    index: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    texts: list[EvalText] = field(default_factory=list)
    gram_sizes: set[int] = field(default_factory=set)
    question_similarity: float = 100.0
    questions: dict[str, str] = field(default_factory=dict)  # label -> exam question, for `same_question`
    unguarded: int = 0
    in_corpus: int = 0

    @classmethod
    def from_questions(cls, questions: list[QAItem], documents: list[str], ngram: int, threshold: float,
                       question_similarity: float = 100.0) -> LeakGuard:
        """A guard of the exam's questions, given and generated alike."""
        guard = cls(ngram, threshold, question_similarity=question_similarity)
        corpus = [normalised(text) for text in documents]
        for question in questions:
            qid = question.question_id
            guard.questions[f"{qid} question"] = question.question
            guard.add(question.question, qid, QUESTION, f"{qid} question", corpus)
            for letter, option in zip(question.letters, question.options):
                guard.add(option, qid, OPTION, f"{qid} option {letter}", corpus)
        return guard

    def _size(self, words: list[str]) -> int:
        return min(self.ngram, len(words))

    def _in_corpus(self, grams: set[tuple[str, ...]], size: int, corpus: list[list[str]]) -> bool:
        return any(len(grams & _grams(words, size)) / len(grams) >= self.threshold for words in corpus)

    def add(self, text: str, question_id: str, kind: str, label: str, corpus: list[list[str]] = ()) -> None:
        words = normalised(text)
        if len(words) < MIN_PHRASE_WORDS:
            self.unguarded += 1
            return
        size = self._size(words)
        grams = _grams(words, size)
        if self._in_corpus(grams, size, corpus):
            self.in_corpus += 1
            return
        text_id = len(self.texts)
        for gram in grams:
            self.index[gram].add(text_id)
        self.texts.append(EvalText(question_id, kind, label, len(grams)))
        self.gram_sizes.add(size)

    def leaked(self, text: str) -> Leak | None:
        """What of the exam the record reproduces, or None."""
        if not self.texts:
            return None
        words = normalised(text)
        hits: dict[int, int] = defaultdict(int)
        for size in self.gram_sizes:
            for gram in _grams(words, size):
                for text_id in self.index.get(gram, ()):
                    hits[text_id] += 1
        matched = [self.texts[i] for i, count in sorted(hits.items()) if count / self.texts[i].grams >= self.threshold]
        for found in matched:
            if found.kind == QUESTION:
                return Leak("question", found.label)
        options: dict[str, list[EvalText]] = defaultdict(list)
        for found in matched:
            options[found.question_id].append(found)
        for found in options.values():
            if len(found) >= MIN_OPTIONS:
                return Leak("options", ", ".join(f.label for f in found))
        return None

    def same_question(self, question: str) -> Leak | None:
        """The exam question that `question` (a record's own, when it was written about one) rewords, or None."""
        if not question or not self.questions:
            return None
        from rapidfuzz import fuzz, process

        match = process.extractOne(question, self.questions, scorer=fuzz.token_sort_ratio, processor=str.lower,
                                   score_cutoff=self.question_similarity)
        return Leak("same_question", match[2]) if match is not None else None
