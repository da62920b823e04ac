"""The exam stage's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from synthcpt.section import Section


class ExamSettings(Section):
    """The run's held-out questions: the ones the corpus brings and, when it brings none (or when asked),
    questions the engine writes from the corpus, each validated before it enters the exam."""

    source: Literal["auto", "given", "generated", "both"] = Field(
        "auto", description="What the exam holds: auto (the given questions when the corpus or qa_files bring "
                            "some, else generated ones), given, generated, or both.")
    qa_files: list[Path] = Field(
        default_factory=list,
        description="More question files (L-Eval, original QuALITY or simple JSONL: question, options, answer or "
                    "answers, doc_id), added to the questions the ingest stage kept aside.")
    questions_per_document: int = Field(
        12, ge=1, description="Generated: at most this many validated questions per document (a few dozen "
                              "over a corpus keeps intervals near +-10 points; more narrow them).")
    drafts_per_question: float = Field(
        2.0, ge=1, description="Generated: questions drafted per question kept, spread over each document's "
                               "chunks (validation rejects some).")
    min_chunk_tokens: int = Field(48, ge=1, description="Generated: chunks shorter than this are not drafted "
                                                        "from (headers, scraps).")
    temperature: float = Field(0.7, ge=0, description="Generated: sampling temperature of the drafts.")
    max_tokens: int = Field(256, gt=0, description="Generated: tokens of one draft (question, answer, three "
                                                   "distractors, evidence).")
    max_answer_words: int = Field(12, ge=1, description="Generated: a reference answer longer than this is "
                                                        "rejected (free-form grading wants a short answer).")
    grounding: float = Field(
        90.0, ge=0, le=100, description="Generated: the answer must match a span of its passage at least this "
                                        "well (rapidfuzz partial ratio, 0-100).")
    duplicate_similarity: float = Field(
        85.0, ge=0, le=100, description="Generated: a question this similar to one already in the exam is "
                                        "dropped (rapidfuzz token-sort ratio, 0-100).")
    self_check: bool = Field(True, description="Generated: keep a question only when the engine, given its "
                                                "passage, picks its answer among the four options.")
