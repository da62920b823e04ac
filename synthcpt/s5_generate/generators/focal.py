"""Focal Rewriting (Han, Kim, Park et al., 2026, "Synthetic Mixed Training"): synthetic documents, each a
rewrite of its source conditioned on one question about it. A question makes each rewrite dwell on
other facts of the same document, so the documents are more diverse than unconditioned rewrites and
their scaling curve is steeper; mixed with the `qa` generator's pairs, they are the paper's recipe.

Two steps, both through the engine (cached and resumable, like Active Reading's): the questions
(the `qa` generator's requests for each passage: with the same `questions` settings, the two share
the cached answers), then one rewrite per question.

Followed from the paper: the rewrite instruction is its unconditioned baseline's ("Rewrite the
document to help understand better") with its focus condition ("with focus on the question"); the
whole document is rewritten (`source: document`); sampling at temperature 0.7, top-p 0.95, up to
4,096 tokens. Decided here, where the paper is silent or its setting does not fit:
- The questions are the QA lists of `question_lists` sweeps over the passages (one sweep: one list a
  passage, the kinds of question rotated), usable and distinct as `qa` keeps them; their order is the
  lists' order, so the rewrites of a budget cut focus on questions spread over every passage.
- Rewrites in budget order: every document's first question, then every document's second, and so on.
- The document comes before the question in the prompt, so a document's rewrites share it as their
  prefix in the engine's cache; documents longer than the model's context are cut to fit.
- Each record is the document's header and the rewrite; the question it focused on is kept in the
  record's `question` (and guarded against the exam in the mix), not in its text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from synthcpt.engine.types import Request, Result
from synthcpt.s5_generate.base import (
    Document,
    GenerationContext,
    GeneratorSettings,
    Rejected,
    TwoStepGenerator,
    round_robin,
)
from synthcpt.s5_generate.generators.qa import (
    PAIRS_PROMPT,
    Question,
    QuestionSettings,
    QuestionWriter,
    SeenQuestions,
)
from synthcpt.s5_generate.parsing import strip_preamble, trim_truncated

REWRITE_PROMPT = "focal/rewrite.md"
# The longest question the rewrite prompt may carry (QAPair's bound), for fitting the document.
QUESTION_CHARS = 400


class FocalSettings(GeneratorSettings):
    """Focal Rewriting: a rewrite of the document for each question about it."""

    questions: QuestionSettings = Field(default_factory=QuestionSettings,
                                        description="The questions' lists (as the qa generator's).")
    question_lists: int = Field(1, ge=1, description="Sweeps of question lists over the passages (each: one list "
                                                     "a passage); more for budgets their questions cannot fill.")
    source: Literal["document", "passage"] = Field(
        "document", description="What is rewritten: the whole document (the paper) or the question's passage.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature of a rewrite (the paper: 0.7).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling of a rewrite (the paper: 0.95).")
    max_tokens: int = Field(4096, ge=1, description="Max tokens of one rewrite (the paper: 4,096).")


class FocalRewriting(TwoStepGenerator[FocalSettings]):
    name = "focal"
    summary = "rewrites of each document, each focused on one question about it (Focal Rewriting)"
    position = 8
    from_passages = True
    enabled_by_default = False  # new: opt in with generate.generators, or the smt preset
    model_written = True
    first_step_name = "questions"

    def __init__(self, ctx: GenerationContext) -> None:
        super().__init__(ctx)
        self._fitted: dict[str, str] = {}
        self._questions: list[Question] | None = None  # from `prepare`

    @classmethod
    def prompts(cls, settings: FocalSettings) -> list[str]:
        return [PAIRS_PROMPT, REWRITE_PROMPT]

    @cached_property
    def writer(self) -> QuestionWriter:
        return QuestionWriter(self, self.settings.questions)

    @cached_property
    def template(self):
        return self.prompt(REWRITE_PROMPT)

    def first_step(self) -> Iterator[Request]:
        return self.writer.requests(range(self.settings.question_lists))

    def prepare(self, results: Iterable[Result], planning: bool = False) -> Counter:
        by_unit = {result.request.metadata["unit"]: result for result in results}
        rejected: Counter = Counter()
        found: list[Question] = []
        for request in self.first_step():
            result = by_unit.get(request.metadata["unit"])
            if result is None and planning:  # a list not generated yet is assumed full
                found.extend(self.writer.stand_ins(request))
                continue
            questions = self.writer.questions(result) if result is not None and result.texts else []
            rejected["no_questions"] += not questions
            found.extend(questions)
        seen = SeenQuestions(self.settings.questions.duplicate_similarity)
        # Stand-ins (no answer) are alike by construction: only real questions are compared.
        self._questions = [q for q in found if not q.answer or not seen.repeats(q.doc_id, q.question)]
        rejected["duplicate_question"] += len(found) - len(self._questions)
        return +rejected

    def requests(self) -> Iterator[Request]:
        if self._questions is None:
            raise RuntimeError("focal: prepare() takes the questions before requests()")
        s = self.settings
        per_doc: dict[str, list[Question]] = {doc.doc_id: [] for doc in self.corpus.documents}
        for question in self._questions:
            per_doc[question.doc_id].append(question)
        chunks = {chunk.chunk_id: chunk for chunk in self.corpus.chunks}
        for question in round_robin(per_doc.values()):
            doc = self.corpus.by_id[question.doc_id]
            source = self.fitted(doc) if s.source == "document" else chunks[question.chunk_id].text.strip()
            content = self.template.render(header=doc.header, title=doc.title, document=source,
                                           question=question.question)
            yield self.request(content, self.template, self.sampling(s.temperature, s.max_tokens, s.top_p),
                               prefix_key=doc.doc_id if s.source == "document" else question.chunk_id,
                               metadata={"doc_id": doc.doc_id, "chunk_id": question.chunk_id,
                                         "unit": question.unit, "kind": question.kind,
                                         "question": question.question,
                                         "upstream_prompt_hash": self.writer.template.hash})

    def fitted(self, doc: Document) -> str:
        """The document, cut so that the rewrite prompt and its answer fit the model's context."""
        if doc.doc_id not in self._fitted:
            frame = self.template.render(header=doc.header, title=doc.title, document="",
                                         question="x " * (QUESTION_CHARS // 2))
            self._fitted[doc.doc_id] = self.fit(doc, frame, self.settings.max_tokens, "max_tokens")
        return self._fitted[doc.doc_id]

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        body = strip_preamble(trim_truncated(result.text) if result.truncated else result.text)
        if not body:
            return Rejected("empty")
        meta = result.request.metadata
        header = self.corpus.by_id[meta["doc_id"]].header
        return [self.record(result, f"{header}\n\n{body}", meta["kind"], question=meta["question"])]


PLUGIN = FocalRewriting
