"""Evaluation-leak guard: a record that reproduces an evaluation question or option is dropped.

Each question and each option is an evaluation text; a record leaks when it contains at least
`threshold` of the word n-grams of any evaluation text. Texts shorter than n words are matched as
one whole phrase, down to MIN_PHRASE_WORDS words; shorter ones ("Yes", "Mars") are too common to
tell a leak from a mention and are not guarded (counted as `unguarded`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from synthcpt.s4_generate.dedup import normalised

MIN_PHRASE_WORDS = 4


@dataclass
class LeakGuard:
    ngram: int
    threshold: float
    # gram -> ids of the evaluation texts that contain it
    index: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    sizes: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    gram_sizes: set[int] = field(default_factory=set)
    unguarded: int = 0

    @classmethod
    def from_questions(cls, questions: list[dict], ngram: int, threshold: float) -> LeakGuard:
        guard = cls(ngram, threshold)
        for question in questions:
            qid = question.get("question_id", "")
            guard.add(question["question"], f"{qid} question")
            for i, option in enumerate(question.get("options") or []):
                guard.add(option, f"{qid} option {chr(65 + i)}")
        return guard

    def add(self, text: str, label: str) -> None:
        words = normalised(text)
        if len(words) < MIN_PHRASE_WORDS:
            self.unguarded += 1
            return
        size = min(self.ngram, len(words))
        grams = {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}
        text_id = len(self.sizes)
        for gram in grams:
            self.index[gram].add(text_id)
        self.sizes.append(len(grams))
        self.labels.append(label)
        self.gram_sizes.add(size)

    def leaked(self, text: str) -> str | None:
        """The label of an evaluation text the record reproduces, or None."""
        if not self.sizes:
            return None
        words = normalised(text)
        hits: dict[int, int] = defaultdict(int)
        for size in self.gram_sizes:
            for gram in {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}:
                for text_id in self.index.get(gram, ()):
                    hits[text_id] += 1
        for text_id, count in hits.items():
            if count / self.sizes[text_id] >= self.threshold:
                return self.labels[text_id]
        return None
