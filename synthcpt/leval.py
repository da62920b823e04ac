"""The L-Eval closed-ended format: one document per line with its exam questions.

`input` is the document; `instructions` the questions with their options; `outputs` the gold
answers (QuALITY: the full gold option, "(B) ..."; Coursera: letters, "AC"). The questions are
kept aside for evaluation and never enter the corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEVAL_KEYS = frozenset({"input", "instructions", "outputs"})
OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])\s+(.*)$")
QUESTION_NUMBER = re.compile(r"^\s*Question\s+\d+\s*[.:]\s*", re.IGNORECASE)
ANSWER_LETTERS = re.compile(r"^\s*\(?([A-Z]+)\)?(?:\s|$)")


@dataclass(frozen=True)
class Question:
    question: str
    options: list[str]
    answers: list[str]


def is_leval(record: dict) -> bool:
    return LEVAL_KEYS <= record.keys()


def parse_question(instruction: str, output: str) -> Question | None:
    """Split an L-Eval instruction into question and lettered options; None when it has no options."""
    question_lines: list[str] = []
    options: list[tuple[str, str]] = []
    for line in instruction.splitlines():
        match = OPTION_LINE.match(line)
        expected = chr(ord("A") + len(options))
        letter = match and (match.group(1) or match.group(2))
        if match and letter == expected:
            options.append((letter, match.group(3).strip()))
        elif options:
            # A wrapped option continues on the next line.
            if line.strip():
                options[-1] = (options[-1][0], f"{options[-1][1]} {line.strip()}")
        else:
            question_lines.append(line)
    question = QUESTION_NUMBER.sub("", " ".join(" ".join(question_lines).split()))
    answer = ANSWER_LETTERS.match(output)
    if len(options) < 2 or not question or not answer:
        return None
    letters = [option[0] for option in options]
    answers = sorted(set(answer.group(1)))
    if not set(answers) <= set(letters):
        return None
    return Question(question, [" ".join(text.split()) for _, text in options], answers)
