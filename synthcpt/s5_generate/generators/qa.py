"""Synthetic QA pairs, the QA half of Synthetic Mixed Training (Han, Kim, Park et al., 2026, "Synthetic
Mixed Training: Scaling Parametric Knowledge Acquisition Beyond RAG"): many question-answer pairs
about each passage of the corpus, each one record of training text. Mixed 1:1 with synthetic
documents (`generate.mix.qa_share`), QAs teach the model to retrieve what it knows; the documents
carry the facts.

Followed from the paper: open-ended questions (no options to write), each answer with an explanation
(the paper's QAs carry one, a signal of how the knowledge is used, not only what it is); sampling at
temperature 1.0, top-p 1.0, up to 2,048 tokens an answer. Decided here, where the paper is silent
(its prompts were not read):
- One request asks for `pairs` questions about one passage (a chunk of ~300 tokens, so that the
  questions spread over the whole document) and one kind of question (`kinds`: facts, relations,
  reasons, numbers, sequences), the kind rotated from passage to passage: each sweep over the corpus
  covers every passage in a mix of kinds, and later sweeps fill in the other kinds, then further lists.
  Requests in that order, so a token budget cut anywhere covers the whole corpus.
- The answer is a JSON object held to a pydantic model by structured output; a list cut off by
  max_tokens keeps its complete pairs.
- A pair is dropped when its question is no question, points at "the passage", or repeats an earlier
  question of its document (rapidfuzz token-sort ratio >= `duplicate_similarity`, in budget order).
- Each pair is one record: the document's header, then "Question: ..." and "Answer: ..." (the answer
  and its explanation), so what it teaches is tied to the title a question names.

The first step of Focal Rewriting (`focal`) sends the same requests: with the same settings, the two
generators share the engine's cached answers."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from synthcpt.engine.structured import json_schema, validated
from synthcpt.engine.types import Request, Result
from synthcpt.prompts import Prompt
from synthcpt.s5_generate.base import QA, Generator, GeneratorSettings, Rejected, selected_chunks
from synthcpt.s5_generate.parsing import complete_items
from synthcpt.section import Section

PAIRS_PROMPT = "qa/pairs.md"
QuestionKind = Literal["fact", "relation", "reason", "number", "sequence"]
# What each kind of question asks about, as the prompt's `focus`.
FOCUS: dict[str, str] = {
    "fact": "the facts it states: who did what, where and when",
    "relation": "how the people, places and things it names are related to each other",
    "reason": "why things happen or are done, as it explains them",
    "number": "the numbers, dates, amounts and durations it gives",
    "sequence": "the order in which things happen: what comes before or after what",
}
# A question that points at its source cannot be asked closed-book.
POINTS_AT_SOURCE = re.compile(r"\b(the|this) (passage|text|excerpt|document|author|story)\b", re.IGNORECASE)


class QuestionSettings(Section):
    """The question-answer lists asked of each passage (qa's records; focal's first step)."""

    pairs: int = Field(5, ge=1, le=30, description="Question-answer pairs asked in one request (one passage, one "
                                                   "kind of question).")
    kinds: list[QuestionKind] = Field(
        ["fact", "relation", "reason", "number", "sequence"], min_length=1,
        description="Kinds of question, rotated over the passages: fact, relation, reason, number, sequence.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (Synthetic Mixed Training: 1.0).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (Synthetic Mixed Training: 1.0).")
    max_tokens: int = Field(2048, ge=1, description="Max tokens of one list (Synthetic Mixed Training: 2,048).")
    duplicate_similarity: float = Field(
        85, ge=0, le=100, description="A question this similar to an earlier one of its document is dropped "
                                      "(rapidfuzz token-sort ratio, 0-100).")


class QASettings(QuestionSettings, GeneratorSettings):
    """Synthetic QA pairs: questions about each passage, each answered and explained."""

    lists: int = Field(1, ge=1, description="Lists per passage and kind of question, for budgets one sweep of "
                                            "every kind cannot fill.")


class QAPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=8, max_length=400)
    answer: str = Field(min_length=1, max_length=400)
    explanation: str = Field(max_length=1200)


def pairs_model(count: int) -> type[BaseModel]:
    """The JSON answer of one request: one to `count` pairs."""
    return create_model("QuestionAnswerPairs", __config__=ConfigDict(extra="forbid"),
                        pairs=(list[QAPair], Field(min_length=1, max_length=count)))


@dataclass(frozen=True)
class Question:
    """A usable pair of one answer, with where it came from."""

    question: str
    answer: str
    kind: str
    doc_id: str
    chunk_id: str
    unit: str  # chunk|sample|kind|index: stable across reruns

    def as_text(self, header: str) -> str:
        return f"{header}\nQuestion: {self.question}\nAnswer: {self.answer}"


def answer_text(pair: QAPair) -> str:
    """The answer and its explanation, as one answer."""
    answer, explanation = " ".join(pair.answer.split()), " ".join(pair.explanation.split())
    if not explanation:
        return answer
    return f"{answer.rstrip('.')}. {explanation}" if not answer.endswith((".", "!", "?")) else f"{answer} {explanation}"


def usable(pair: QAPair) -> bool:
    question = pair.question.strip()
    return question.endswith("?") and not POINTS_AT_SOURCE.search(question) and bool(pair.answer.strip())


def parse_pairs(result: Result, model: type[BaseModel]) -> list[QAPair]:
    """The usable pairs of a result; a list cut off by max_tokens keeps those it completed."""
    if result.truncated:
        items = [validated(QAPair, [item]) for item in complete_items(result.text)]
        pairs = [item for item in items if item is not None]
    else:
        answer = validated(model, result.parsed)
        pairs = list(answer.pairs) if answer is not None else []
    return [pair for pair in pairs if usable(pair)]


def questions_of(result: Result, model: type[BaseModel]) -> list[Question]:
    meta = result.request.metadata
    return [Question(" ".join(p.question.split()), answer_text(p), meta["kind"], meta["doc_id"], meta["chunk_id"],
                     f"{meta['unit']}|{index}")
            for index, p in enumerate(parse_pairs(result, model))]


class QuestionWriter:
    """The requests of the question-answer lists, in budget order, and the parsing of their answers."""

    def __init__(self, generator: Generator, settings: QuestionSettings):
        self.generator, self.settings = generator, settings
        self.template: Prompt = generator.prompt(PAIRS_PROMPT)
        self.model = pairs_model(settings.pairs)

    def requests(self, sweeps: Iterable[int]) -> Iterator[Request]:
        """Sweep by sweep: every passage once, the kind rotated from passage to passage."""
        g, s = self.generator, self.settings
        chunks = selected_chunks(g.corpus.chunks_by_doc(), g.stage.min_chunk_tokens)
        schema = json_schema(self.model)
        for sweep in sweeps:
            sample = sweep // len(s.kinds)
            for position, chunk in enumerate(chunks):
                kind = s.kinds[(position + sweep) % len(s.kinds)]
                content = self.template.render(header=g.corpus.by_id[chunk.doc_id].header, passage=chunk.text.strip(),
                                               count=str(s.pairs), focus=FOCUS[kind])
                yield g.request(content, self.template, g.sampling(s.temperature, s.max_tokens, s.top_p),
                                sample=sample, json_schema=schema,
                                metadata={"doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id, "kind": kind,
                                          "unit": f"{chunk.chunk_id}|{sample}|{kind}"})

    def sweeps(self, lists: int) -> range:
        """The sweeps of `lists` lists per passage and kind."""
        return range(len(self.settings.kinds) * lists)

    def questions(self, result: Result) -> list[Question]:
        return questions_of(result, self.model)

    def stand_ins(self, request: Request) -> list[Question]:
        """The questions assumed for a list not generated yet (the plan): a full list."""
        meta = request.metadata
        return [Question(f"stand-in question {index + 1}?", "", meta["kind"], meta["doc_id"], meta["chunk_id"],
                         f"{meta['unit']}|{index}") for index in range(self.settings.pairs)]


class SeenQuestions:
    """The questions kept so far, per document: `repeats` says whether a question is too like one of
    them (rapidfuzz token-sort ratio >= `similarity`), and remembers it when it is not."""

    def __init__(self, similarity: float):
        self.similarity = similarity
        self.kept: dict[str, list[str]] = {}

    def repeats(self, doc_id: str, question: str) -> bool:
        from rapidfuzz import fuzz, process

        earlier = self.kept.setdefault(doc_id, [])
        if process.extractOne(question, earlier, scorer=fuzz.token_sort_ratio, processor=str.lower,
                              score_cutoff=self.similarity) is not None:
            return True
        earlier.append(question)
        return False


class SyntheticQA(Generator[QASettings]):
    name = "qa"
    summary = "question-answer pairs about every passage (Synthetic Mixed Training)"
    position = 7
    from_passages = True
    enabled_by_default = False  # new: opt in with generate.generators, or the smt preset
    model_written = True
    text_kind = QA

    @classmethod
    def prompts(cls, settings: QASettings) -> list[str]:
        return [PAIRS_PROMPT]

    @cached_property
    def writer(self) -> QuestionWriter:
        return QuestionWriter(self, self.settings)

    def requests(self) -> Iterator[Request]:
        return self.writer.requests(self.writer.sweeps(self.settings.lists))

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        questions = self.writer.questions(result)
        if not questions:
            return Rejected("no_pairs")
        header = self.corpus.by_id[result.request.metadata["doc_id"]].header
        return [self.record(result, q.as_text(header), q.kind, part=index, question=q.question)
                for index, q in enumerate(questions)]

    def select(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter]:
        seen = SeenQuestions(self.settings.duplicate_similarity)
        kept = [record for record in records if not seen.repeats(record["doc_id"], record["question"])]
        return kept, Counter({"duplicate_question": len(records) - len(kept)} if len(kept) < len(records) else {})


PLUGIN = SyntheticQA
