"""The evaluation prompts, read from `prompts/eval/*.md` and filled in with `str.format`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from synthcpt.errors import SynthcptError
from synthcpt.s6_eval.qa import LETTERS, QAItem

PROMPTS = Path(__file__).resolve().parents[2] / "prompts" / "eval"
EXAMPLE_SEPARATOR = "\n---\n"


@cache
def template(name: str) -> str:
    path = PROMPTS / f"{name}.md"
    if not path.is_file():
        raise SynthcptError(f"prompt file missing: {path}")
    return path.read_text(encoding="utf-8").removesuffix("\n")


def source_line(item: QAItem) -> str:
    """The line naming the question's document (EntiGraph: title, author and year), or ""."""
    if item.context:
        return item.context.strip() + "\n"
    if not item.title:
        return ""
    source = f'"{item.title}"' + (f" by {item.author}" if item.author else "") + (f" ({item.year})" if item.year else "")
    return template("article").format(source=source) + "\n"


def closed_book(item: QAItem, with_source: bool) -> str:
    """The context whose continuations are the options, for log-likelihood scoring."""
    return template("closed_book").format(article=source_line(item) if with_source else "", question=item.question)


def open_book_prefix(item: QAItem) -> str:
    """The document part of the open-book prompt; the closed-book prompt follows it."""
    before, _, _ = template("open_book").partition("{prompt}")
    return before.format(document=item.document)


def options_block(item: QAItem) -> str:
    return "\n".join(f"({letter}) {option}" for letter, option in zip(LETTERS, item.options))


def chain_of_thought(item: QAItem, shots: int, multi: bool, with_source: bool) -> str:
    """The few-shot chain-of-thought prompt: instructions, `shots` worked examples, the question."""
    examples = template("cot_examples").split(EXAMPLE_SEPARATOR)
    if shots > len(examples):
        raise SynthcptError(f"eval.cot_shots={shots} but prompts/eval/cot_examples.md has {len(examples)} examples")
    question = template("cot_question").format(article=source_line(item) if with_source else "",
                                                question=item.question, options=options_block(item))
    header = template("cot_header_multi" if multi else "cot_header")
    return "\n\n".join([header, *[e.strip() for e in examples[:shots]], question])
