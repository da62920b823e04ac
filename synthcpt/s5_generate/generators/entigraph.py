"""EntiGraph (Yang et al., 2025), as in its reference code: the document summaries, the reference's
questions about each entity alone, then for sampled pairs and triples of a document's entities the
reference's "knowledge analyzer" request: the article
rephrased with respect to each entity, their interaction, and questions about them, under headings
`### Discussion of <title> in relation to <entity>`. The reference's system message holds the task
(one for single entities, one for pairs, one for triples), the user message the document and the entities, so requests share
the task and then the document as their prefix. A text cut off by max_tokens keeps its whole
sections only and is counted as truncated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from synthcpt.engine.types import Request, Result
from synthcpt.errors import SynthcptError
from synthcpt.s5_generate.base import Document, GenerationContext, Generator, GeneratorSettings, Rejected
from synthcpt.s5_generate.parsing import strip_preamble, trim_truncated
from synthcpt.s5_generate.records import make_record, record_id

SINGLES = "entigraph/singles.md"
PAIRS = "entigraph/pairs.md"
TRIPLES = "entigraph/triples.md"
DOCUMENT = "entigraph/document.md"
SECTION = re.compile(r"(?m)^(?=#{2,4} )")


def entity_list(entities: tuple[str, ...] | list[str]) -> str:
    """The entities as the reference lists them in the user message."""
    return "\n".join(f"- {e}" for e in entities)


def whole_sections(text: str) -> str:
    """A text cut off by max_tokens without its last, unfinished section; a text without sections is
    cut back to its last complete sentence ('' when nothing complete is left)."""
    sections = [part for part in SECTION.split(text) if part.strip()]
    if len(sections) > 1:
        return "".join(sections[:-1]).rstrip()
    return trim_truncated(text)


class EntiGraphSettings(GeneratorSettings):
    """EntiGraph: texts on how sampled pairs and triples of a document's entities relate."""

    summaries: bool = Field(True, description="Include the document summaries from the entities stage as records "
                                              "(the reference trains on them).")
    singles: bool = Field(True, description="The reference's entity-specific questions: a request per entity "
                                            "alone, beside the pairs and triples.")
    strategy: Literal["all", "cooccurring", "random", "degree"] = Field(
        "all", description="How entity pairs and triples are sampled from each document's graph: all (every pair, "
                           "as in the paper), cooccurring (co-occurring first), random, degree (hubs more often).")
    pairs_per_doc: int | None = Field(
        None, ge=0, description="Entity pairs per document (unset: all pairs, as in the paper).")
    triple_share: float = Field(
        0.25, ge=0, lt=1, description="Share of each document's relations that are triples, kept at every point of "
                                      "the order, so a budget cut keeps it (the reference wrote all pairs, then "
                                      "a random subset of triples: at scale, mostly pairs).")
    triples_per_doc: int | None = Field(
        None, ge=0, description="At most this many triples per document (unset: as many as triple_share asks).")
    max_relations: int | None = Field(None, ge=1, description="At most this many relations in all (unset: no cap).")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (paper: 1.0).")
    max_tokens: int = Field(
        2048, ge=1, description="Max tokens of one relation text (the reference sets no limit; its gpt-4-turbo "
                                "answers run to about a thousand tokens).")


class EntiGraph(Generator[EntiGraphSettings]):
    name = "entigraph"
    summary = "relations between the entities of each document"
    needs = ("graph",)  # the entity graph its relations are sampled from
    position = 1
    enabled_by_default = True
    model_written = True

    def __init__(self, ctx: GenerationContext) -> None:
        super().__init__(ctx)
        self._fitted: dict[str, str] = {}

    @classmethod
    def prompts(cls, settings: EntiGraphSettings) -> list[str]:
        return [SINGLES, PAIRS, TRIPLES, DOCUMENT] if settings.singles else [PAIRS, TRIPLES, DOCUMENT]

    @cached_property
    def template(self):
        return self.prompt(DOCUMENT)

    @cached_property
    def tasks(self):
        """The reference's system message for one entity, and for a relation of two and of three."""
        found = {2: self.prompt(PAIRS), 3: self.prompt(TRIPLES)}
        return {1: self.prompt(SINGLES), **found} if self.settings.singles else found

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.settings.summaries:
            return
        for doc in self.corpus.documents:
            summary = (self.corpus.summaries.get(doc.doc_id) or "").strip()
            if summary:
                yield make_record(id=record_id(self.name, "summary", doc.doc_id, summary),
                                  text=f"{doc.header}\n\n{summary}", generator=self.name, style="summary",
                                  doc_id=doc.doc_id, prompt_file="entities/summaries.parquet",
                                  model=self.ctx.model)

    def relations(self) -> list:
        from synthcpt.s5_generate.relations import sample_relations

        if self.corpus.graph_dir is None:
            raise SynthcptError("entigraph needs the graph stage's output (graph/)")
        s = self.settings
        return sample_relations(self.corpus.graph_dir, s.strategy, s.pairs_per_doc, s.triple_share,
                                s.triples_per_doc, self.ctx.seed, s.max_relations, singles=s.singles)

    def requests(self) -> Iterator[Request]:
        # Best relations first, documents taking turns: a budget cut keeps the best of every document.
        for relation in self.relations():
            doc = self.corpus.by_id[relation.doc_id]
            entities = tuple(relation.entities)
            content = self.template.render(header=doc.header, document=self.fitted(doc),
                                           entities=entity_list(entities))
            sampling = self.sampling(self.settings.temperature, self.settings.max_tokens)
            yield self.request(content, self.template, sampling, prefix_key=doc.doc_id,
                               system=self.tasks[len(entities)],
                               metadata={"doc_id": doc.doc_id, "entities": list(entities),
                                         "unit": "|".join((doc.doc_id, *entities))})

    def fitted(self, doc: Document) -> str:
        """The document, cut to leave room for the task and the answer in the model's context."""
        if doc.doc_id not in self._fitted:
            self._fitted[doc.doc_id] = self._fit(doc)
        return self._fitted[doc.doc_id]

    def _fit(self, doc: Document) -> str:
        frame = self.tasks[3].text + self.template.render(header=doc.header, document="",
                                                          entities=entity_list(("x" * 40,) * 3))
        return self.fit(doc, frame, self.settings.max_tokens, "max_tokens")

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        body = strip_preamble(whole_sections(result.text) if result.truncated else result.text)
        if not body:
            return Rejected("truncated" if result.truncated else "empty")
        meta = result.request.metadata
        doc = self.corpus.by_id[meta["doc_id"]]
        entities = meta["entities"]
        style = {1: "single", 2: "pair", 3: "triple"}[len(entities)]
        return [self.record(result, f"{doc.header}\n\n{body}", style, entities)]


PLUGIN = EntiGraph
