"""Stage 4, generate: synthetic text from the corpus (EntiGraph relations, WRAP rephrasings,
reading-comprehension text, Bonito-style instruction pairs) and the training mix, in `synthetic/`."""

from __future__ import annotations

from synthcpt.pipeline import Stage
from synthcpt.s4_generate.settings import GenerateSettings


def _prompts_fingerprint(config) -> str:
    from synthcpt.s4_generate.generators import prompt_files
    from synthcpt.s4_generate.prompts import prompts_fingerprint

    return prompts_fingerprint(prompt_files(config.generate), config.generate.prompts_dir)


def _show(ctx) -> None:
    from synthcpt.s4_generate.show import show

    show(ctx.run.dir / STAGE.output_folder)


STAGE = Stage(
    name="generate",
    help="generate synthetic text (EntiGraph, WRAP, reading comprehension, Bonito pairs) and build the mix",
    settings=GenerateSettings,
    run="synthcpt.s4_generate.run:generate",
    plan="synthcpt.s4_generate.run:planned_requests",
    uses=("engine",),
    external_inputs=_prompts_fingerprint,
    show=_show,
)
