"""The entities stage's entry points."""

from __future__ import annotations

from synthcpt.engine.types import Request
from synthcpt.plugins import EXTRACTORS
from synthcpt.s2_entities.settings import entities_settings
from synthcpt.stage import Config, Stage, StageContext
from synthcpt.stats import EntitiesStats


def run(ctx: StageContext) -> EntitiesStats:
    from synthcpt.s2_entities.extract import extract

    return extract(ctx)


def plan(ctx: StageContext) -> dict[str, list[Request]]:
    from synthcpt.s2_entities.extract import planned_requests

    return planned_requests(ctx)


def prompts(config: Config) -> list[str]:
    return EXTRACTORS.get(config.entities.extractor).prompt_files(config.entities)


STAGE = Stage(
    name="entities",
    help="find the salient entities of each document (and the LLM's summary) for the EntiGraph graph",
    settings=entities_settings,
    run=run,
    plan=plan,
    uses=("engine",),
    prompts=prompts,
)
