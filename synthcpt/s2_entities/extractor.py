"""What an entity extractor plugin gets and gives.

An extractor is a plugin (`synthcpt.plugins`): a module of `synthcpt/s2_entities/extractors/` whose
`PLUGIN` is an `Extractor` subclass with `name`, `summary`, its settings (nested as `entities.<name>`),
`prompts(settings)`, `sections` (the extractors' sections it reads, when not just its own), and, built on
an `ExtractionContext`:
- `requests()`: the model requests it sends, by engine step (for `synthcpt plan`; {} without a model);
- `extract()`: an `Extraction`, the candidates of every document (and the LLM's summaries).
The stage then merges, grounds, ranks and caps the candidates the same way for every extractor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from synthcpt.engine.types import Request
from synthcpt.plugins import Plugin, S
from synthcpt.run_folder import Chunk, Document
from synthcpt.s2_entities.normalize import Candidate


@dataclass
class ExtractionContext:
    documents: list[Document]
    chunks_by_doc: dict[str, list[Chunk]]
    stage: Any  # the entities section; an extractor's own is `stage.<name>`
    engine_settings: Any
    run_dir: Path
    work: Path  # scratch an interrupted run resumes from, removed once the stage's outputs are written
    seed: int
    prompts_dir: Path | None = None


@dataclass
class Extraction:
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)  # the LLM's parse outcomes, reported as such

    def merge(self, other: Extraction) -> Extraction:
        for doc_id, found in other.candidates.items():
            self.candidates.setdefault(doc_id, []).extend(found)
        self.summaries.update(other.summaries)
        self.counts.update(other.counts)
        return self


class Extractor(Plugin[S]):
    """Base of every entity extractor. `self.settings` is its own section, `self.section` the entities one."""

    kind: ClassVar[str] = "entity extractor"
    # The extractors' sections it reads, which the stage's fingerprint holds (unset: its own; a
    # combination of extractors names theirs).
    sections: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ExtractionContext):
        super().__init__(ctx.stage)
        self.ctx = ctx

    def requests(self) -> dict[str, list[Request]]:
        """The model requests it sends, by engine step (for `synthcpt plan`); none without a model."""
        return {}

    def extract(self) -> Extraction:
        raise NotImplementedError
