"""The generate stage's entry points."""

from __future__ import annotations

from collections.abc import Iterable

from synthcpt.engine.types import Request
from synthcpt.s5_generate.settings import generate_settings
from synthcpt.stage import Config, Stage, StageContext
from synthcpt.stats import GenerateStats


def run(ctx: StageContext) -> GenerateStats:
    from synthcpt.s5_generate.run import generate

    return generate(ctx)


def plan(ctx: StageContext) -> dict[str, Iterable[Request]]:
    from synthcpt.s5_generate.run import planned_requests

    return planned_requests(ctx)


def prompts(config: Config) -> list[str]:
    from synthcpt.s5_generate.run import prompt_files

    return prompt_files(config)


def show(ctx: StageContext) -> None:
    from synthcpt.s5_generate.show import show_generated

    stats = ctx.run.generate_stats()
    if stats is not None:
        show_generated(stats)


STAGE = Stage(
    name="generate",
    help="generate synthetic text (EntiGraph, WRAP, reading comprehension, Bonito, Active Reading, QA pairs, Focal Rewriting) and build the mix",
    settings=generate_settings,
    run=run,
    plan=plan,
    uses=("engine",),
    prompts=prompts,
    show=show,
)
