"""The ingest stage's entry points."""

from __future__ import annotations

from synthcpt.s1_ingest.settings import IngestSettings
from synthcpt.stage import Config, Stage, StageContext, files_fingerprint
from synthcpt.stats import IngestStats


def run(ctx: StageContext) -> IngestStats:
    from synthcpt.s1_ingest.ingest import ingest

    return ingest(ctx)


def external_inputs(config: Config) -> str:
    """The tokenizer that counts and chunks, and the paths, sizes and modification times of every input file."""
    return files_fingerprint(config.ingest.inputs, salt=config.engine.tokenizer or config.engine.model)


STAGE = Stage(
    name="ingest",
    help="read the corpus: normalise, deduplicate, count tokens, chunk; keep evaluation questions aside",
    settings=IngestSettings,
    run=run,
    external_inputs=external_inputs,
)
