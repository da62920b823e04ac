"""Stage 4, generate: synthetic text from the corpus (one plugin per generator: EntiGraph relations,
WRAP rephrasings, reading-comprehension text, Bonito-style instruction pairs...) and the training mix."""

from __future__ import annotations

from synthcpt.pipeline import Stage
from synthcpt.s4_generate.settings import generate_settings


def _prompt_files(config) -> list[str]:
    from synthcpt.s4_generate.run import prompt_files

    return prompt_files(config)


def _show(ctx) -> None:
    from synthcpt.s4_generate.show import show

    show(ctx.out)


STAGE = Stage(
    name="generate",
    help="generate synthetic text (EntiGraph, WRAP, reading comprehension, Bonito pairs) and build the mix",
    settings=generate_settings,
    run="synthcpt.s4_generate.run:generate",
    plan="synthcpt.s4_generate.run:planned_requests",
    uses=("engine",),
    prompts=_prompt_files,
    show=_show,
)
