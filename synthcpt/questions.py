"""The exam's question record (`QAItem`) and the question files it is read from: L-Eval files, original
QuALITY files and a simple JSONL. The exam stage gathers the run's questions (the ones ingest kept aside,
these files, and the ones it generates) into `exam/questions.parquet`; every later stage reads them from
there (`RunFolder.exam()`).

The simple JSONL schema (one question per line) for users' own questions:

    {"question": "...", "options": ["...", "..."], "answer": "B", "doc_id": "my-doc",
     "id": "optional id", "answers": ["A", "C"] (instead of answer, for several correct options),
     "context": "optional line naming the document, e.g. From \\"Title\\" by Author (1956)",
     "title": "optional", "author": "optional", "year": "optional", "document": "optional text"}

Every question is linked to its document (`doc_id`) so that results break down per document.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthcpt.documents import derive_author, derive_title, document_id, normalise
from synthcpt.errors import SynthcptError
from synthcpt.leval import is_leval, parse_question

LETTERS = string.ascii_uppercase
GIVEN, GENERATED = "given", "generated"


@dataclass(frozen=True)
class QAItem:
    question_id: str
    doc_id: str
    question: str
    options: tuple[str, ...]
    answers: tuple[str, ...]
    # The question set it belongs to (a file, or the ingested source): scoring rules are per set.
    qa_set: str
    title: str = ""
    author: str = ""
    year: str = ""
    # An explicit line naming the document; replaces the one built from title, author and year.
    context: str = ""
    # The document text, for the open-book reference ("" when unknown).
    document: str = ""
    # A short reference answer for free-form grading; "" means the text of the correct option(s).
    answer: str = ""
    # The passage a generated question was written from ("" for given questions).
    passage: str = ""
    # "given" (the corpus's or a question file's) or "generated" (the exam stage's).
    origin: str = GIVEN
    # The chunk of `passage` ("" for given questions).
    chunk_id: str = ""

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    @property
    def reference(self) -> str:
        """The reference answer in words: the given short answer, else the correct option(s)."""
        return self.answer or "; ".join(self.options[LETTERS.index(a)] for a in self.answers)


def _check(item: QAItem, where: str) -> QAItem:
    if len(item.options) < 2:
        raise SynthcptError(f"{where}: a question needs at least two options")
    if len(item.options) > len(LETTERS):
        raise SynthcptError(f"{where}: at most {len(LETTERS)} options per question")
    if not item.answers or not set(item.answers) <= set(item.letters):
        raise SynthcptError(f"{where}: answers {list(item.answers)} are not among the option letters "
                            f"{item.letters}")
    if not item.question.strip():
        raise SynthcptError(f"{where}: empty question")
    return item


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SynthcptError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SynthcptError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SynthcptError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise SynthcptError(f"{path}:{number}: a line must be a JSON object")
        yield f"{path}:{number}", record


def _leval_items(where: str, record: dict[str, Any], qa_set: str) -> list[QAItem]:
    """An L-Eval line: the same document id, title and author as the ingest stage gives it."""
    text = normalise(str(record["input"]), "NFC")
    doc_id = document_id(None, text)
    title, author = derive_title(text), derive_author(text) or ""
    parsed = (parse_question(str(instruction), str(output))
              for instruction, output in zip(record["instructions"] or [], record["outputs"] or []))
    # Numbered as the ingest stage numbers them: unparseable questions are dropped first.
    questions = [q for q in parsed if q is not None]
    return [_check(QAItem(f"{doc_id}/q{i}", doc_id, q.question, tuple(q.options), tuple(q.answers), qa_set,
                          title=title, author=author, document=text), f"{where} question {i + 1}")
            for i, q in enumerate(questions)]


def _quality_items(where: str, record: dict[str, Any], qa_set: str) -> list[QAItem]:
    """An original QuALITY line (article, questions with 1-based `gold_label`); unlabelled ones are skipped."""
    items = []
    doc_id = str(record.get("article_id") or record.get("set_unique_id"))
    for i, q in enumerate(record.get("questions") or []):
        gold = q.get("gold_label")
        if not isinstance(gold, int):
            continue
        options = tuple(" ".join(str(o).split()) for o in q["options"])
        items.append(_check(QAItem(
            str(q.get("question_unique_id") or f"{doc_id}/q{i}"), doc_id, " ".join(q["question"].split()),
            options, (LETTERS[gold - 1],) if 1 <= gold <= len(options) else ("?",), qa_set,
            title=str(record.get("title") or ""), author=str(record.get("author") or ""),
            year=str(record.get("year") or ""), document=str(record.get("article") or "")),
            f"{where} question {i + 1}"))
    return items


def _simple_item(where: str, record: dict[str, Any], qa_set: str, index: int) -> QAItem:
    missing = [key for key in ("question", "options", "doc_id") if key not in record]
    if missing or not ("answer" in record or "answers" in record):
        missing += [] if ("answer" in record or "answers" in record) else ["answer"]
        raise SynthcptError(f"{where}: missing {', '.join(missing)} (fields: question, options, answer or "
                            f"answers, doc_id; optional id, context, title, author, year, document)")
    options = record["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise SynthcptError(f"{where}: options must be a list of strings")
    answers = record.get("answers", record.get("answer"))
    answers = list(answers) if isinstance(answers, (str, list)) else [str(answers)]
    doc_id = str(record["doc_id"])
    return _check(QAItem(
        str(record.get("id") or f"{doc_id}/q{index}"), doc_id, str(record["question"]).strip(),
        tuple(o.strip() for o in options), tuple(sorted({str(a).strip().upper() for a in answers})), qa_set,
        title=str(record.get("title") or ""), author=str(record.get("author") or ""),
        year=str(record.get("year") or ""), context=str(record.get("context") or ""),
        document=str(record.get("document") or "")), where)


def load_qa_file(path: Path) -> list[QAItem]:
    """Questions from an L-Eval, original QuALITY or simple JSONL file (told apart by their fields)."""

    path = Path(path)
    if not path.is_file():
        raise SynthcptError(f"question file not found: {path}")
    items: list[QAItem] = []
    qa_set = path.stem
    for where, record in _read_jsonl(path):
        if is_leval(record):
            items.extend(_leval_items(where, record, qa_set))
        elif "article" in record and "questions" in record:
            items.extend(_quality_items(where, record, qa_set))
        else:
            items.append(_simple_item(where, record, qa_set, len(items)))
    if not items:
        raise SynthcptError(f"{path}: no questions with answers found")
    ids = [item.question_id for item in items]
    if len(set(ids)) != len(ids):
        raise SynthcptError(f"{path}: question ids are not unique")
    return items


def multi_answer_sets(items: list[QAItem]) -> set[str]:
    """The sets in which some question has several correct options (Coursera): all their questions are
    scored as sets of letters, so the model is never told how many options are right."""
    return {item.qa_set for item in items if len(item.answers) > 1}
