"""The report's exam section, right after the findings: where the exam came from (questions the corpus
brings, questions the engine wrote and how many of its drafts validation rejected, and why), and a few
of its questions with their options, reference answer and, for generated ones, the passage each was
written from, so that a reader can judge the exam the findings rest on."""

from __future__ import annotations

from itertools import zip_longest

from synthcpt.questions import GENERATED, QAItem
from synthcpt.run_folder import RunFolder
from synthcpt.s8_report.document import Fields, Heading, Paragraph, Preformatted, Section, Table
from synthcpt.s8_report.readers import exam_items, label, number, plural, titles
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.stats import ExamStats

# Questions shown as examples.
EXAMPLES = 4


def examples(items: list[QAItem], count: int = EXAMPLES) -> list[QAItem]:
    """Generated questions when the exam has some (they carry their passage), else given ones; taken from
    each document in turn, so the examples are not all from the first one."""
    chosen = [item for item in items if item.origin == GENERATED] or items
    by_doc: dict[str, list[QAItem]] = {}
    for item in chosen:
        by_doc.setdefault(item.doc_id, []).append(item)
    spread = [item for row in zip_longest(*by_doc.values()) for item in row if item is not None]
    return spread[:count]


def _origin(stats: ExamStats | None, items: list[QAItem], names: dict[str, str]) -> list:
    if stats is None:
        generated = sum(item.origin == GENERATED for item in items)
        return [Paragraph(
            f"The exam holds {plural(len(items), 'question')} on "
            f"{plural(len({item.doc_id for item in items}), 'document')}: {number(len(items) - generated)} given "
            f"by the corpus or a question file, {number(generated)} generated from the corpus.", lead=True)]
    text = (f"The exam holds {plural(stats.questions, 'question')} on {plural(stats.documents, 'document')}: "
            f"{number(stats.given)} given by the corpus or a question file and {number(stats.generated)} generated "
            f"by the engine from the corpus's passages (exam.source: {stats.source}).")
    if stats.drafts:
        rejected = sum(stats.rejected.values())
        text += f" The engine wrote {plural(stats.drafts, 'draft')}; validation rejected {number(rejected)}"
        text += (": " + ", ".join(f"{label(reason)} {number(n)}" for reason, n in stats.rejected.items()) + "."
                 if rejected else ".")
    if stats.documents_without_questions:
        missing = [names.get(d, d) for d in stats.documents_without_questions]
        text += (f" {plural(len(missing), 'document')} without a question: " + ", ".join(missing[:10])
                 + (f" and {number(len(missing) - 10)} more" if len(missing) > 10 else "") + ".")
    blocks: list = [Paragraph(text, lead=True)]
    if stats.rejected:
        blocks.append(Table(["reason", "drafts rejected"],
                            [[label(reason), number(n)] for reason, n in stats.rejected.items()],
                            id="exam-rejections-table", caption="Drafts rejected by validation, by reason"))
    return blocks


def _example(number_: int, item: QAItem, names: dict[str, str]) -> list:
    options = "; ".join(f"{letter}. {option}" for letter, option in zip(item.letters, item.options))
    blocks: list = [Heading(f"Question {number_}"), Fields([
        ("document", item.title or names.get(item.doc_id, item.doc_id)),
        ("origin", item.origin),
        ("question", item.question),
        ("options", options),
        ("reference answer", f"{', '.join(item.answers)}: {item.reference}"),
    ])]
    if item.passage:
        blocks += [Paragraph("The passage it was written from:"), Preformatted(item.passage)]
    return blocks


def exam(run: RunFolder, settings: ReportSettings) -> Section | None:
    stats = run.exam_stats()
    items = exam_items(run)
    if stats is None and not items:
        return None
    names = titles(run)
    blocks = _origin(stats, items, names)
    shown = examples(items)
    if shown:
        generated = shown[0].origin == GENERATED
        blocks += [Heading("Example questions"), Paragraph(
            f"{plural(len(shown), 'question')} of the exam"
            + (" with the passage each was written from: is its answer in the passage, and are the other options "
               "wrong?" if generated else ", given by the corpus or a question file (no source passage)."))]
        for i, item in enumerate(shown, start=1):
            blocks += _example(i, item, names)
    return Section("The exam", "exam", blocks)
