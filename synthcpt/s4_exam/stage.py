"""The exam stage's entry points."""

from __future__ import annotations

from collections.abc import Iterable

from synthcpt.engine.types import Request
from synthcpt.s4_exam.settings import ExamSettings
from synthcpt.stage import Config, Stage, StageContext, files_fingerprint
from synthcpt.stats import ExamStats

DRAFT_PROMPT = "exam/draft.md"
CHECK_PROMPT = "exam/check.md"


def run(ctx: StageContext) -> ExamStats:
    from synthcpt.s4_exam.exam import build_exam

    return build_exam(ctx)


def plan(ctx: StageContext) -> dict[str, Iterable[Request]]:
    from synthcpt.s4_exam.exam import planned_requests

    return planned_requests(ctx)


def show(ctx: StageContext) -> None:
    from synthcpt.s4_exam.exam import show_exam

    show_exam(ctx)


def external_inputs(config: Config) -> str:
    """The extra question files: paths, sizes and modification times."""
    return files_fingerprint(config.exam.qa_files)


def prompts(config: Config) -> list[str]:
    return [DRAFT_PROMPT, CHECK_PROMPT]


STAGE = Stage(
    name="exam",
    help="the held-out questions: the corpus's own, or questions written from it and validated",
    settings=ExamSettings,
    run=run,
    plan=plan,
    uses=("engine",),
    external_inputs=external_inputs,
    prompts=prompts,
    show=show,
)
