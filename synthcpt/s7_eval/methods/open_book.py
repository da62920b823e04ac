"""Open book: the log-likelihood method with the document before the question (when it fits the
context window), the reference a closed-book score is compared to."""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from synthcpt.progress import console
from synthcpt.questions import QAItem, multi_answer_sets
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.methods.loglik import choice_requests
from synthcpt.s7_eval.prompts import CLOSED_BOOK, OPEN_BOOK, SOURCE
from synthcpt.s7_eval.records import choice_records
from synthcpt.section import Section


class OpenBookSettings(Section):
    """open_book: log-likelihood with the document in the prompt (minutes per model on a CPU)."""


class OpenBook(Method[OpenBookSettings]):
    name: ClassVar[str] = "open_book"
    summary: ClassVar[str] = "the same with the document in the prompt, the reference to compare to"

    @classmethod
    def prompts(cls, settings: OpenBookSettings) -> list[str]:
        return [OPEN_BOOK, CLOSED_BOOK, SOURCE]

    def score(self, ctx: MethodContext) -> list[dict]:
        """Questions grouped by document; each document is run once and its KV cache shared by its
        questions. Questions whose document is unknown or does not fit the context window are left out."""
        by_document: dict[str, list[QAItem]] = defaultdict(list)
        for item in ctx.items:
            if item.document:
                by_document[item.doc_id].append(item)
        name, scorer, multi_sets = ctx.candidate.name, ctx.scorer(), multi_answer_sets(ctx.items)
        records = []
        for doc_items in by_document.values():
            prefix = ctx.prompts.open_book_prefix(doc_items[0])
            requests = choice_requests(doc_items, ctx.prompts, ctx.stage.source_line)
            fitting = [(i, r) for i, r in zip(doc_items, requests) if scorer.fits(r, prefix)]
            if not fitting:
                continue
            scores = scorer.score([r for _, r in fitting], f"{name}: open book", prefix=prefix)
            records += choice_records(name, "open_book", [i for i, _ in fitting], scores, multi_sets)
        left_out = len(ctx.items) - len(records)
        if left_out:
            console.print(f"[yellow]{name}: open book left out {left_out} questions whose document is unknown or "
                          f"longer than the model's context window")
        return records


PLUGIN = OpenBook
