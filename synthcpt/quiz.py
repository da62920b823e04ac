"""The quiz and the probe of a run of several rounds (`synthcpt.rounds`): the quiz's questions, drafted and
validated with the exam's writer or made as cloze questions from the passages' entities, and a round's
model scored on them with eval's log-likelihood method."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from synthcpt.atomic import write_records
from synthcpt.engine.types import Request
from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.questions import GENERATED, LETTERS, QAItem
from synthcpt.run_folder import Chunk, Document, ProbeAnswer
from synthcpt.s4_exam.exam import DRAFT_SCHEMA, ExamWriter, Slot, draft_and_check, planned_drafts
from synthcpt.s4_exam.validate import DuplicateFilter, ExamDraft
from synthcpt.sentences import sentence_spans
from synthcpt.stage import StageContext
from synthcpt.stats import ProbeStats, QuizStats

QUIZ_DRAFTS, QUIZ_CHECKS = "quiz: drafts", "quiz: self-check"
# A cloze question's sentence has at least this many words: a title or a heading is not a fact to recall.
CLOZE_MIN_WORDS = 6
# The quiz's drafts are other samples than the exam's: a request equal to one of the exam's would be
# answered from the engine's cache with the exam's own question.
QUIZ_SAMPLES = 1000


def quiz_slots(documents: list[Document], chunks: list[Chunk], min_tokens: int, drafts: int) -> list[Slot]:
    """`drafts` samples of every passage worth a question, passages of the documents interleaved."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in sorted(chunks, key=lambda c: c.index):
        if chunk.n_tokens >= min_tokens:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
    rows = [[Slot(doc, chunk, QUIZ_SAMPLES + sample) for chunk in by_doc.get(doc.doc_id, []) for sample in range(drafts)]
            for doc in documents]
    longest = max((len(row) for row in rows), default=0)
    return [row[i] for i in range(longest) for row in rows if i < len(row)]


def keep_quiz(validated_candidates: list[tuple[Slot, ExamDraft | None, QAItem]], verdicts: dict[str, str],
              exam: list[QAItem], per_passage: int, similarity: float) -> list[QAItem]:
    """The validated questions in slot order, none near an exam question or an earlier quiz question, at most
    `per_passage` a passage."""
    duplicates = DuplicateFilter(similarity, [item.question for item in exam])
    kept, per_chunk = [], Counter()
    for slot, _, item in validated_candidates:
        if item.question_id in verdicts:
            continue
        if per_chunk[slot.chunk.chunk_id] >= per_passage:
            verdicts[item.question_id] = "over_cap"
        elif duplicates.duplicate(item.question):
            verdicts[item.question_id] = "duplicate"
        else:
            per_chunk[slot.chunk.chunk_id] += 1
            kept.append(item)
    return kept


@dataclass(frozen=True)
class Blank:
    """An entity's mention in a sentence of a passage: what a cloze question blanks out."""

    sentence: str
    start: int
    end: int
    entity: str
    type: str


def blanks(chunk: Chunk, entities: list[dict]) -> list[Blank]:
    """Each sentence's first mention of one of its document's entities (longest form first), the sentences in
    order and each entity blanked at most once a passage."""
    found, used = [], set()
    for start, end in sentence_spans(chunk.text):
        sentence = " ".join(chunk.text[start:end].split())
        if len(sentence.split()) < CLOZE_MIN_WORDS:
            continue
        for row in entities:
            if row["entity"] in used:
                continue
            forms = sorted({row["entity"], *(row["aliases"] or [])}, key=len, reverse=True)
            match = next((m for form in forms for m in [re.search(rf"\b{re.escape(form)}\b", sentence)] if m), None)
            if match:
                used.add(row["entity"])
                found.append(Blank(sentence, match.start(), match.end(), row["entity"], row["type"]))
                break
    return found


def cloze_candidates(documents: list[Document], chunks: list[Chunk], entities: list[dict], min_tokens: int,
                     seed: int) -> list[tuple[Slot, None, QAItem]]:
    """A cloze question for each blank of every passage, passages of the documents interleaved: the sentence
    with the entity blanked out, the options the entity and three other entities of the same kind (of its
    document first, then of the corpus) that the sentence does not name."""
    by_doc: dict[str, list[dict]] = {}
    for row in sorted(entities, key=lambda r: -(r["salience"] or 0.0)):
        by_doc.setdefault(row["doc_id"], []).append(row)
    documents_by_id = {d.doc_id: d for d in documents}
    found = []
    for slot in quiz_slots(documents, chunks, min_tokens, drafts=1):
        doc, chunk = slot.document, slot.chunk
        for index, blank in enumerate(blanks(chunk, by_doc.get(doc.doc_id, []))):
            others = [r["entity"] for r in [*by_doc.get(doc.doc_id, []), *entities]
                      if r["type"] == blank.type and r["entity"] != blank.entity
                      and r["entity"].lower() not in blank.sentence.lower()]
            distractors = list(dict.fromkeys(others))[:3]
            if len(distractors) < 3:
                continue
            text = f"{blank.sentence[:blank.start]}____{blank.sentence[blank.end:]}"
            question = f"In {documents_by_id[doc.doc_id].header}: \"{text}\" What fills the blank?"
            answer = blank.sentence[blank.start:blank.end]
            question_id = f"{doc.doc_id}/c{chunk.index}-{index}"
            options = [answer, *distractors]
            order = list(range(len(options)))
            random.Random(f"{seed}:{question_id}").shuffle(order)
            item = QAItem(question_id, doc.doc_id, question, tuple(options[i] for i in order), (LETTERS[order.index(0)],),
                          GENERATED, title=doc.title, author=doc.author or "", year=doc.year or "", document=doc.text,
                          answer=answer, passage=chunk.text, origin=GENERATED, chunk_id=chunk.chunk_id)
            found.append((Slot(doc, chunk, index), None, item))
    return found


def _writer_and_slots(ctx: StageContext) -> tuple[ExamWriter, list[Slot]]:
    exam, quiz = ctx.config.exam, ctx.settings
    writer = ExamWriter(exam, ctx.config.run.seed, ctx.config.run.prompts_dir)
    slots = quiz_slots(ctx.run.documents(), ctx.run.chunks(), exam.min_chunk_tokens,
                       math.ceil(quiz.questions_per_passage * quiz.drafts_per_question))
    return writer, slots


def write_quiz(ctx: StageContext) -> QuizStats:
    ctx.input("ingest")
    exam = ctx.run.exam() if ctx.run.is_done("exam") else []
    settings = ctx.settings
    if settings.source == "cloze":
        ctx.input("entities")
        verdicts: dict[str, str] = {}
        candidates = cloze_candidates(ctx.run.documents(), ctx.run.chunks(), ctx.run.entities(),
                                      ctx.config.exam.min_chunk_tokens, ctx.config.run.seed)
        drafts = len(candidates)
        items = keep_quiz(candidates, verdicts, exam, settings.questions_per_passage,
                          ctx.config.exam.duplicate_similarity)
    else:
        writer, slots = _writer_and_slots(ctx)
        found = draft_and_check(ctx, writer, slots, (QUIZ_DRAFTS, QUIZ_CHECKS))
        order = {slot.question_id: i for i, slot in enumerate(slots)}
        candidates = sorted(found.candidates, key=lambda c: order[c[0].question_id])
        items = keep_quiz(candidates, found.verdicts, exam, settings.questions_per_passage,
                          ctx.config.exam.duplicate_similarity)
        write_records(ctx.run.quiz_drafts_path(), found.rows(), DRAFT_SCHEMA)
        verdicts, drafts = found.verdicts, len(slots)
    if not items:
        why = ("no draft passed validation, see quiz/drafts.parquet; a model too small to write questions can "
               "be quizzed with quiz.source=cloze" if settings.source == "written"
               else "no passage has a sentence naming one of the entities stage's entities")
        raise SynthcptError(f"the quiz holds no question ({why}): a run of several rounds needs one to find what "
                            "the model missed")
    ctx.run.write_quiz(items)
    stats = QuizStats(questions=len(items), passages=len({i.chunk_id for i in items}), drafts=drafts,
                      rejected=dict(sorted(Counter(verdicts.values()).items())))
    ctx.run.write_stats("quiz", stats)
    console.print(f"quiz: {stats.questions} questions on {stats.passages} passages, from {stats.drafts} drafts")
    return stats


def planned_quiz_requests(ctx: StageContext) -> dict[str, Iterable[Request]]:
    """The drafts and at most two self-checks each (as the exam's plan counts them); none for cloze."""
    ctx.input("ingest")
    if ctx.settings.source == "cloze":
        return {}
    writer, slots = _writer_and_slots(ctx)
    return planned_drafts(writer, slots, (QUIZ_DRAFTS, QUIZ_CHECKS))


def probe_round(ctx: StageContext) -> ProbeStats:
    """The round's model on the quiz, closed-book: which passages it missed."""
    from synthcpt.s7_eval.evaluate import evaluate_models
    from synthcpt.s7_eval.records import Candidate

    ctx.input("train")
    model = ctx.run.trained_model
    if not (model / "config.json").is_file():
        raise SynthcptError(f"round {ctx.run.round}: no trained model in {model} to quiz")
    items = ctx.run.quiz()
    loglik = ctx.config.eval.model_copy(update={"methods": ["loglik"]})
    records, _ = evaluate_models([Candidate(f"round {ctx.run.round}", str(model))], items, loglik, ctx.config.engine,
                                 ctx.out, ctx.config.run.seed, prompts_dir=ctx.config.run.prompts_dir)
    correct = {record["question_id"]: bool(record["acc"]) for record in records}
    answers = [ProbeAnswer(i.question_id, i.doc_id, i.chunk_id, correct[i.question_id]) for i in items]
    ctx.run.write_probe(answers)
    right = sum(a.correct for a in answers)
    stats = ProbeStats(round=ctx.run.round, model=str(model), questions=len(answers), correct=right,
                       accuracy=right / len(answers), passages=len({a.chunk_id for a in answers}),
                       passages_missed=len(ctx.run.missed_chunks()))
    ctx.run.write_stats("probe", stats)
    console.print(f"probe: round {stats.round}'s model answered {stats.correct} of {stats.questions} quiz questions; "
                  f"{stats.passages_missed} of {stats.passages} passages missed")
    return stats
