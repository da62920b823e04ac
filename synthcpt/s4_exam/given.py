"""The questions the corpus brings: the ones the ingest stage kept aside, and the `exam.qa_files`."""

from __future__ import annotations

from pathlib import Path

from synthcpt.progress import console
from synthcpt.questions import QAItem, load_qa_file
from synthcpt.run_folder import RunFolder


def ingested_questions(run: RunFolder) -> list[QAItem]:
    """The questions the ingest stage kept aside, with their documents' title, author and text."""
    documents = {doc.doc_id: doc for doc in run.documents()}
    items = []
    for row in run.questions():
        document = documents.get(row["doc_id"])
        items.append(QAItem(
            row["question_id"], row["doc_id"], row["question"], tuple(row["options"]), tuple(row["answers"]),
            Path(row["source"].split(":")[0]).stem, title=row["title"] or (document.title if document else ""),
            author=(document.author or "") if document else "", year=(document.year or "") if document else "",
            document=document.text if document else ""))
    return items


def given_questions(run: RunFolder, qa_files: list[Path]) -> list[QAItem]:
    """Ingested questions, then the files' ones; a question id seen twice is asked once (its last form)."""
    items = ingested_questions(run)
    for path in qa_files:
        items += load_qa_file(Path(path))
    unique = {item.question_id: item for item in reversed(items)}
    if len(unique) < len(items):
        console.print(f"[yellow]exam: {len(items) - len(unique)} questions appear twice; each is asked once")
        items = [item for item in items if unique.get(item.question_id) is item]
    return items
