"""Rounds: learn, quiz, regenerate. A run of several rounds (`run.rounds`) spends each round's generation
budget on the passages the model has not learned yet.

Round 1 generates and trains as a run of one round does. Then the **quiz** (probe questions written from
every passage the way the exam's are, validated the same way, and never one of the exam's) is put to the
round's model closed-book: the **probe** step. The passages of its wrong answers are what round 2's
generators write about (only generators that write from a passage run in later rounds), and round 2
trains on from round 1's model on its new text with replay of the old rounds' text. The exam is never
used to choose what to generate: it is scored by the eval stage, after the last round, on every round's
model.

The quiz and the probe combine the exam's question writer with eval's scorer, so they live here, in the
top layer beside the pipeline that repeats them, not in a stage package (a stage never imports another).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field

from synthcpt.engine.types import Request
from synthcpt.progress import console
from synthcpt.s4_exam.stage import CHECK_PROMPT, DRAFT_PROMPT
from synthcpt.section import Section
from synthcpt.stage import Stage, StageContext
from synthcpt.stats import ProbeStats, QuizStats


class QuizSettings(Section):
    """The quiz of a run of several rounds: probe questions from every passage, none of them near an exam
    question: written by the engine and validated as the exam's are (the exam section's draft settings),
    or cloze questions made from the passages without a model."""

    source: Literal["written", "cloze"] = Field(
        "written", description="written: drafted by the engine and validated like the exam's; cloze: a sentence of "
                               "the passage with one of its entities blanked out, the options other entities of "
                               "the same kind (no model calls: for a generator too small to write questions).")
    questions_per_passage: int = Field(
        2, ge=1, description="At most this many validated questions per passage: a passage counts as missed "
                             "when the round's model answers one of them wrongly.")
    drafts_per_question: float = Field(
        2.0, ge=1, description="Questions drafted per question kept (validation rejects some).")


class ProbeSettings(Section):
    """The probe: after each round's training, its model answers the quiz closed-book by log-likelihood (the
    eval section's loglik method and batch settings); its wrong answers name the passages the next round
    generates for."""


def build_quiz(ctx: StageContext) -> QuizStats:
    from synthcpt.quiz import write_quiz

    return write_quiz(ctx)


def planned_quiz(ctx: StageContext) -> dict[str, Iterable[Request]]:
    from synthcpt.quiz import planned_quiz_requests

    return planned_quiz_requests(ctx)


def probe(ctx: StageContext) -> ProbeStats:
    from synthcpt.quiz import probe_round

    return probe_round(ctx)


def show_probe(ctx: StageContext) -> None:
    stats = ctx.run.probe_stats()
    if stats is not None:
        console.print(f"round {stats.round}: quiz {stats.correct}/{stats.questions} ({stats.accuracy:.3f}), "
                      f"{stats.passages_missed} of {stats.passages} passages missed")


QUIZ = Stage(
    name="quiz",
    help="the probe questions of a run of several rounds: written from every passage like the exam's, "
         "never the exam's",
    settings=QuizSettings,
    run=build_quiz,
    plan=planned_quiz,
    uses=("engine", "exam"),
    prompts=lambda config: [DRAFT_PROMPT, CHECK_PROMPT] if config.quiz.source == "written" else [],
)

PROBE = Stage(
    name="probe",
    help="the round's model answers the quiz closed-book: the passages it missed are the next round's",
    settings=ProbeSettings,
    run=probe,
    uses=("quiz",),
    show=show_probe,
)
