"""The exam stage: the run's held-out questions, written to `exam/questions.parquet`.

The exam holds the questions the corpus brings (`given.py`) and, when it brings none or when
`exam.source` asks for them, questions the engine writes from the corpus: drafts spread over each
document's chunks, one structured request each (question, short answer, three distractors), then
validated (`validate.py`). Both steps go through the engine, so their responses are cached: a rerun or
a killed run resumes without sending a request twice, and `synthcpt plan exam` prices them.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import zip_longest

from rich.table import Table

from synthcpt.atomic import write_records
from synthcpt.engine.structured import json_schema, validated
from synthcpt.engine.types import Request, Result, Sampling
from synthcpt.progress import console
from synthcpt.prompts import Prompt, load_prompt
from synthcpt.questions import GENERATED, LETTERS, QAItem
from synthcpt.run_folder import DRAFTS_FILE, Chunk, Document
from synthcpt.s4_exam.given import given_questions
from synthcpt.s4_exam.settings import ExamSettings
from synthcpt.s4_exam.stage import CHECK_PROMPT, DRAFT_PROMPT
from synthcpt.s4_exam.validate import (
    DuplicateFilter,
    ExamDraft,
    SelfCheck,
    text_rejection,
)
from synthcpt.stage import StageContext
from synthcpt.stats import ExamStats

DRAFT_STEP, CHECK_STEP = "exam: drafts", "exam: self-check"
DRAFT_SCHEMA = {"question_id": "string", "doc_id": "string", "chunk_id": "string", "question": "string",
                "answer": "string", "distractors": ["string"], "rejected": "string"}
# The self-check answers with one letter inside a short JSON object.
CHECK_MAX_TOKENS = 16
ORDERS = ("exam", "reversed")


@dataclass(frozen=True)
class Slot:
    """Where one draft comes from: a chunk of a document, and which sample of it."""

    document: Document
    chunk: Chunk
    sample: int

    @property
    def question_id(self) -> str:
        return f"{self.document.doc_id}/x{self.chunk.index}-{self.sample}"


def resolved_source(source: str, given: list[QAItem]) -> str:
    if source == "auto":
        return "given" if given else "generated"
    return source


def draft_slots(documents: list[Document], chunks: list[Chunk], settings: ExamSettings) -> list[Slot]:
    """Each document's drafts, spread evenly over its chunks (several samples of each chunk when it has
    fewer chunks than drafts); documents interleaved, so the drafts of one are never all at the end."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in sorted(chunks, key=lambda c: c.index):
        if chunk.n_tokens >= settings.min_chunk_tokens:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
    drafts = math.ceil(settings.questions_per_document * settings.drafts_per_question)
    per_document = []
    for doc in documents:
        usable = by_doc.get(doc.doc_id, [])
        spread = drafts <= len(usable)
        per_document.append([Slot(doc, usable[i * len(usable) // drafts], 0) if spread
                             else Slot(doc, usable[i % len(usable)], i // len(usable)) for i in range(drafts)]
                            if usable else [])
    return [slot for row in zip_longest(*per_document) for slot in row if slot is not None]


class ExamWriter:
    """The requests of both steps and what their answers make of each draft."""

    def __init__(self, settings: ExamSettings, seed: int, prompts_dir=None):
        self.settings, self.seed = settings, seed
        self.draft_prompt: Prompt = load_prompt(DRAFT_PROMPT, prompts_dir)
        self.check_prompt: Prompt = load_prompt(CHECK_PROMPT, prompts_dir)
        self.draft_schema, self.check_schema = json_schema(ExamDraft), json_schema(SelfCheck)

    def draft_request(self, slot: Slot) -> Request:
        content = self.draft_prompt.render(source=slot.document.header or "a document", passage=slot.chunk.text)
        # No per-request seed: the cache makes reruns exact; the sample index keeps samples apart.
        return Request(messages=[{"role": "user", "content": content.strip()}],
                       sampling=Sampling(temperature=self.settings.temperature, top_p=0.95,
                                         max_tokens=self.settings.max_tokens),
                       json_schema=self.draft_schema, sample=slot.sample, metadata={"question_id": slot.question_id})

    def item(self, slot: Slot, draft: ExamDraft) -> QAItem:
        """The draft as an exam question: its options shuffled by a seed of its own, so the answer's
        letter is spread evenly and the same on every rerun."""
        options = [draft.answer.strip(), *(d.strip() for d in draft.distractors)]
        order = list(range(len(options)))
        random.Random(f"{self.seed}:{slot.question_id}").shuffle(order)
        doc = slot.document
        return QAItem(slot.question_id, doc.doc_id, draft.question.strip(), tuple(options[i] for i in order),
                      (LETTERS[order.index(0)],), GENERATED, title=doc.title, author=doc.author or "",
                      year=doc.year or "", document=doc.text, answer=draft.answer.strip(), passage=slot.chunk.text,
                      origin=GENERATED, chunk_id=slot.chunk.chunk_id)

    def check_requests(self, item: QAItem) -> list[Request]:
        """The open-book self-check in the exam's order of the options and in the reverse order."""
        return [self._check_request(item, order) for order in ORDERS]

    def _check_request(self, item: QAItem, order: str) -> Request:
        options = item.options if order == "exam" else item.options[::-1]
        listed = "\n".join(f"{letter}. {option}" for letter, option in zip(item.letters, options))
        content = self.check_prompt.render(passage=item.passage, question=item.question, options=listed)
        right = item.answers[0] if order == "exam" else item.letters[::-1][item.letters.index(item.answers[0])]
        return Request(messages=[{"role": "user", "content": content.strip()}],
                       sampling=Sampling(temperature=0.0, max_tokens=CHECK_MAX_TOKENS),
                       json_schema=self.check_schema,
                       metadata={"question_id": item.question_id, "order": order, "right": right})


def check_verdict(result: Result) -> str | None:
    """None when the engine picked the right option, else why not."""
    answer = validated(SelfCheck, result.parsed) if result.ok else None
    if answer is None:
        return "self_check_unparseable"
    return None if answer.answer == result.request.metadata["right"] else "self_check_wrong"


@dataclass
class Generated:
    items: list[QAItem]
    drafts: list[dict]
    rejected: Counter


@dataclass
class Validated:
    """The drafts of some slots and what validation made of them: the candidates that passed every check
    so far, and why each other draft failed."""

    slots: list[Slot]
    drafts: dict[str, ExamDraft]
    candidates: list[tuple[Slot, ExamDraft, QAItem]]
    verdicts: dict[str, str]

    def rows(self) -> list[dict]:
        """Every draft with its reason, as `DRAFT_SCHEMA` rows."""
        drafts = self.drafts
        return [{"question_id": s.question_id, "doc_id": s.document.doc_id, "chunk_id": s.chunk.chunk_id,
                 "question": drafts[s.question_id].question if s.question_id in drafts else "",
                 "answer": drafts[s.question_id].answer if s.question_id in drafts else "",
                 "distractors": drafts[s.question_id].distractors if s.question_id in drafts else [],
                 "rejected": self.verdicts.get(s.question_id, "")} for s in self.slots]


def generate_questions(ctx: StageContext, given: list[QAItem]) -> Generated:
    settings: ExamSettings = ctx.settings
    writer = ExamWriter(settings, ctx.config.run.seed, ctx.config.run.prompts_dir)
    slots = draft_slots(ctx.run.documents(), ctx.run.chunks(), settings)
    found = draft_and_check(ctx, writer, slots, (DRAFT_STEP, CHECK_STEP))
    kept = keep(slots, found.candidates, found.verdicts, given, settings)
    return Generated(kept, found.rows(), Counter(found.verdicts.values()))


def draft_and_check(ctx: StageContext, writer: ExamWriter, slots: list[Slot], steps: tuple[str, str]) -> Validated:
    """Draft a question for each slot, then validate it (text checks, then the engine's self-check); both
    steps through the engine under the `steps` names (drafts, self-checks)."""
    from synthcpt.engine import open_engine

    settings = writer.settings
    verdicts: dict[str, str] = {}
    candidates: list[tuple[Slot, ExamDraft, QAItem]] = []
    drafts: dict[str, ExamDraft] = {}
    with open_engine(ctx.config.engine, ctx.run.dir) as engine:
        by_id = {slot.question_id: slot for slot in slots}
        for result in engine.generate([writer.draft_request(s) for s in slots], description=steps[0]):
            slot = by_id[result.request.metadata["question_id"]]
            draft = validated(ExamDraft, result.parsed) if result.ok else None
            if draft is None:
                verdicts[slot.question_id] = "unparseable" if result.ok else "engine_error"
                continue
            drafts[slot.question_id] = draft
            reason = text_rejection(draft, slot.chunk.text, settings)
            if reason:
                verdicts[slot.question_id] = reason
            else:
                candidates.append((slot, draft, writer.item(slot, draft)))
        if settings.self_check and candidates:
            requests = [request for _, _, item in candidates for request in writer.check_requests(item)]
            checks: dict[tuple[str, str], str | None] = {}
            for result in engine.generate(requests, description=steps[1]):
                checks[result.request.metadata["question_id"], result.request.metadata["order"]] = check_verdict(result)
            for _, _, item in candidates:
                # The reason of the first order that fails, whatever order the results came back in.
                reason = next((checks[item.question_id, o] for o in ORDERS if checks[item.question_id, o]), None)
                if reason:
                    verdicts[item.question_id] = reason
    return Validated(slots, drafts, candidates, verdicts)


def keep(slots: list[Slot], candidates: list[tuple[Slot, ExamDraft, QAItem]], verdicts: dict[str, str],
         given: list[QAItem], settings: ExamSettings) -> list[QAItem]:
    """The validated questions in document and chunk order, near-duplicates dropped (of the given
    questions too), at most `questions_per_document` a document, spread over its chunks."""
    duplicates = DuplicateFilter(settings.duplicate_similarity, [item.question for item in given])
    passed: dict[str, list[QAItem]] = {}
    order = {slot.question_id: (slot.document.doc_id, slot.chunk.index, slot.sample) for slot in slots}
    for _, _, item in sorted(candidates, key=lambda c: order[c[2].question_id]):
        if item.question_id in verdicts:
            continue
        if duplicates.duplicate(item.question):
            verdicts[item.question_id] = "duplicate"
            continue
        passed.setdefault(item.doc_id, []).append(item)
    kept = []
    for doc_items in passed.values():
        cap = settings.questions_per_document
        chosen = {i * len(doc_items) // cap for i in range(cap)} if len(doc_items) > cap else range(len(doc_items))
        for index, item in enumerate(doc_items):
            if index in chosen:
                kept.append(item)
            else:
                verdicts[item.question_id] = "over_cap"
    return kept


def build_exam(ctx: StageContext) -> ExamStats:
    ctx.input("ingest")
    settings: ExamSettings = ctx.settings
    given = given_questions(ctx.run, settings.qa_files)
    source = resolved_source(settings.source, given)
    items = list(given) if source in ("given", "both") else []
    generated = Generated([], [], Counter())
    if source in ("generated", "both"):
        generated = generate_questions(ctx, items)
        write_records(ctx.out / DRAFTS_FILE, generated.drafts, DRAFT_SCHEMA)
    items += generated.items
    ctx.run.write_exam(items)
    documents = ctx.run.documents()
    asked = {item.doc_id for item in items}
    stats = ExamStats(questions=len(items), given=len(items) - len(generated.items), generated=len(generated.items),
                      drafts=len(generated.drafts), rejected=dict(sorted(generated.rejected.items())),
                      documents=len(asked), documents_without_questions=[d.doc_id for d in documents
                                                                         if d.doc_id not in asked],
                      source=source)
    ctx.run.write_stats("exam", stats)
    if generated.drafts:
        console.print(f"exam: {len(generated.items)} of {len(generated.drafts)} drafted questions passed validation"
                      + (f" (rejected: {_reasons(generated.rejected)})" if generated.rejected else ""))
    return stats


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counts.most_common())


def planned_requests(ctx: StageContext) -> dict[str, Iterable[Request]]:
    """The drafts, and at most two self-checks a draft (the plan cannot know how many pass the text
    checks, so it counts them all, each with a question and options of a typical length)."""
    ctx.input("ingest")
    settings: ExamSettings = ctx.settings
    if resolved_source(settings.source, given_questions(ctx.run, settings.qa_files)) == "given":
        return {}
    writer = ExamWriter(settings, ctx.config.run.seed, ctx.config.run.prompts_dir)
    return planned_drafts(writer, draft_slots(ctx.run.documents(), ctx.run.chunks(), settings), (DRAFT_STEP, CHECK_STEP))


def planned_drafts(writer: ExamWriter, slots: list[Slot], steps: tuple[str, str]) -> dict[str, Iterable[Request]]:
    """The drafts of `slots` and, with the self-check, two checks a draft, each of a question and options of a
    typical length, under the `steps` names (the exam's plan and the quiz's)."""
    typical = ExamDraft(question="Which of these did the person named in the document do, and where did it "
                                 "happen?", answer="a short answer of a few words",
                        distractors=["a wrong answer of a few words"] * 3)
    planned = {steps[0]: [writer.draft_request(slot) for slot in slots]}
    if writer.settings.self_check:
        planned[steps[1]] = [request for slot in slots for request in writer.check_requests(writer.item(slot, typical))]
    return planned


def show_exam(ctx: StageContext) -> None:
    stats = ctx.run.exam_stats()
    if stats is None:
        return
    table = Table("held-out questions", "count", title=f"exam ({stats.source})")
    table.columns[1].justify = "right"
    for label, count in [("given", stats.given), ("generated", stats.generated), ("drafted", stats.drafts),
                         *((f"rejected: {r}", n) for r, n in stats.rejected.items())]:
        table.add_row(label, str(count))
    console.print(table)
    for item in [i for i in ctx.run.exam() if i.origin == GENERATED][:3]:
        console.print(f"[bold]{item.question}[/bold]  ({item.reference})")
