"""Closed-book log-likelihood (lm-eval-harness style): each option scored by its log-likelihood after
the question; `acc` picks the most likely option, `acc_norm` the most likely per character."""

from __future__ import annotations

from typing import ClassVar

from synthcpt.questions import QAItem, multi_answer_sets
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.prompts import CLOSED_BOOK, SOURCE, EvalPrompts
from synthcpt.s7_eval.records import choice_records
from synthcpt.section import Section


class LoglikSettings(Section):
    """loglik: options scored by log-likelihood (acc, acc_norm); seconds per model on a CPU."""


def choice_requests(items: list[QAItem], prompts: EvalPrompts, with_source: bool):
    from synthcpt.s7_eval.loglik import ChoiceRequest

    return [ChoiceRequest(prompts.closed_book(item, with_source), tuple(" " + o for o in item.options))
            for item in items]


class Loglik(Method[LoglikSettings]):
    name: ClassVar[str] = "loglik"
    summary: ClassVar[str] = "options scored by log-likelihood (acc, acc_norm)"

    @classmethod
    def prompts(cls, settings: LoglikSettings) -> list[str]:
        return [CLOSED_BOOK, SOURCE]

    def score(self, ctx: MethodContext) -> list[dict]:
        name = ctx.candidate.name
        requests = choice_requests(ctx.items, ctx.prompts, ctx.stage.source_line)
        scores = ctx.scorer().score(requests, description=f"{name}: log-likelihood")
        return choice_records(name, "loglik", ctx.items, scores, multi_answer_sets(ctx.items))


PLUGIN = Loglik
