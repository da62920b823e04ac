"""The evaluation prompts (`prompts/eval/*.md`, or the user's overrides in run.prompts_dir), read through
the one prompt loader. A leading `<!-- ... -->` comment (an attribution) is for readers and never sent."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from synthcpt.errors import SynthcptError
from synthcpt.prompts import Prompt, load_prompt
from synthcpt.questions import LETTERS, QAItem

EXAMPLE_SEPARATOR = "\n---\n"
SOURCE = "eval/article.md"
CLOSED_BOOK = "eval/closed_book.md"
OPEN_BOOK = "eval/open_book.md"
COT_EXAMPLES = "eval/cot_examples.md"
COT_HEADER = "eval/cot_header.md"
COT_HEADER_MULTI = "eval/cot_header_multi.md"
COT_QUESTION = "eval/cot_question.md"
FREEFORM = "eval/freeform.md"
SIMPLEQA_GRADER = "eval/simpleqa_grader.md"
RAG = "eval/rag.md"
# An HTML comment opening a prompt file: a note for its readers (e.g. where a verbatim prompt comes from).
LEADING_COMMENT = re.compile(r"\A<!--.*?-->[ \t]*\n?", re.DOTALL)


class EvalPrompts:
    def __init__(self, prompts_dir: Path | None = None):
        self.prompts_dir = prompts_dir
        self._loaded: dict[str, Prompt] = {}

    def _prompt(self, name: str) -> Prompt:
        if name not in self._loaded:
            prompt = load_prompt(name, self.prompts_dir)
            self._loaded[name] = Prompt(prompt.name, LEADING_COMMENT.sub("", prompt.text).removesuffix("\n"))
        return self._loaded[name]

    def source_line(self, item: QAItem) -> str:
        """The line naming the question's document (EntiGraph: title, author and year), or ""."""
        if item.context:
            return item.context.strip() + "\n"
        if not item.title:
            return ""
        source = (f'"{item.title}"' + (f" by {item.author}" if item.author else "")
                  + (f" ({item.year})" if item.year else ""))
        return self._prompt(SOURCE).render(source=source) + "\n"

    def closed_book(self, item: QAItem, with_source: bool) -> str:
        """The context whose continuations are the options, for log-likelihood scoring."""
        return self._prompt(CLOSED_BOOK).render(article=self.source_line(item) if with_source else "",
                                                question=item.question)

    def open_book_prefix(self, item: QAItem) -> str:
        """The document part of the open-book prompt; the closed-book prompt follows it."""
        before, _, _ = self._prompt(OPEN_BOOK).text.partition("{{prompt}}")
        return Prompt(OPEN_BOOK, before).render(document=item.document)

    def rag_prefix(self, passages: list[str]) -> str:
        """The retrieved passages part of the RAG prompt, numbered best first; the closed-book prompt follows it."""
        before, _, _ = self._prompt(RAG).text.partition("{{prompt}}")
        numbered = "\n\n".join(f"[{number}] {text.strip()}" for number, text in enumerate(passages, start=1))
        return Prompt(RAG, before).render(passages=numbered)

    def freeform(self, item: QAItem, with_source: bool) -> str:
        """The closed-book question without its options, asking for a short answer."""
        return self._prompt(FREEFORM).render(article=self.source_line(item) if with_source else "",
                                             question=item.question)

    def simpleqa_grader(self, question: str, target: str, predicted_answer: str) -> str:
        """The SimpleQA grader's prompt for one answer (its reply: A correct, B incorrect, C not attempted)."""
        return self._prompt(SIMPLEQA_GRADER).render(question=question, target=target,
                                                    predicted_answer=predicted_answer)

    @cached_property
    def examples(self) -> list[str]:
        return [e.strip() for e in self._prompt(COT_EXAMPLES).text.split(EXAMPLE_SEPARATOR)]

    def chain_of_thought(self, item: QAItem, shots: int, multi: bool, with_source: bool) -> str:
        """The few-shot chain-of-thought prompt: instructions, `shots` worked examples, the question."""
        if shots > len(self.examples):
            raise SynthcptError(f"{shots} chain-of-thought shots asked but {COT_EXAMPLES} has "
                                f"{len(self.examples)} examples")
        question = self._prompt(COT_QUESTION).render(
            article=self.source_line(item) if with_source else "", question=item.question,
            options=options_block(item))
        header = self._prompt(COT_HEADER_MULTI if multi else COT_HEADER).text
        return "\n\n".join([header, *self.examples[:shots], question])


def options_block(item: QAItem) -> str:
    return "\n".join(f"({letter}) {option}" for letter, option in zip(LETTERS, item.options))
