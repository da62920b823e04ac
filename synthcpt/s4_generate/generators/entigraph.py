"""EntiGraph (Yang et al., 2025): the document summaries, then for sampled pairs and triples of a
document's entities, a text on how they relate in the context of that document: one part per
entity and one on their interaction. Requests share the document as their prefix."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from synthcpt.engine.types import Request, Result
from synthcpt.errors import SynthcptError
from synthcpt.s4_generate.base import Document, Generator, Rejected
from synthcpt.s4_generate.parsing import strip_preamble, trim_truncated
from synthcpt.s4_generate.records import make_record, record_id
from synthcpt.section import Section

PROMPT = "entigraph/relation.md"


def entity_list(entities: tuple[str, ...] | list[str]) -> str:
    quoted = [f'"{e}"' for e in entities]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


class EntiGraphSettings(Section):
    """EntiGraph: texts on how sampled pairs and triples of a document's entities relate."""

    summaries: bool = Field(True, description="Include the document summaries from the entities stage as records.")
    strategy: Literal["all", "cooccurring", "random", "degree"] = Field(
        "all", description="How entity pairs and triples are sampled from each document's graph: all (every pair, "
                           "as in the paper), cooccurring (co-occurring first), random, degree (hubs more often).")
    pairs_per_doc: int | None = Field(
        None, ge=0, description="Entity pairs per document (unset: all pairs, as in the paper).")
    triples_per_doc: int = Field(
        10, ge=0, description="Entity triples per document (the paper used a subset of triples).")
    max_relations: int | None = Field(None, ge=1, description="At most this many relations in all (unset: no cap).")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (paper: 1.0).")
    max_tokens: int = Field(1024, ge=1, description="Max tokens of one relation text.")


class EntiGraph(Generator):
    name = "entigraph"
    summary = "relations between the entities of each document"
    Settings = EntiGraphSettings
    position = 1
    enabled_by_default = True
    model_written = True

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._fitted: dict[str, str] = {}

    @classmethod
    def prompts(cls, settings: EntiGraphSettings) -> list[str]:
        return [PROMPT]

    @property
    def max_tokens(self) -> int:
        return self.settings.max_tokens

    @cached_property
    def template(self):
        return self.prompt(PROMPT)

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
        from synthcpt.s4_generate.relations import sample_relations

        if self.corpus.graph_dir is None:
            raise SynthcptError("entigraph needs the graph stage's output (graphs/)")
        s = self.settings
        return sample_relations(self.corpus.graph_dir, s.strategy, s.pairs_per_doc, s.triples_per_doc,
                                self.ctx.seed, s.max_relations)

    def requests(self) -> Iterator[Request]:
        # Best relations first, documents taking turns: a budget cut keeps the best of every document.
        for relation in self.relations():
            doc = self.corpus.by_id[relation.doc_id]
            entities = tuple(relation.entities)
            content = self.template.render(header=doc.header, title=doc.title, document=self.fitted(doc),
                                           entities=entity_list(entities))
            sampling = self.sampling(self.settings.temperature, self.settings.max_tokens)
            yield self.request(content, self.template, sampling, prefix_key=doc.doc_id,
                               metadata={"doc_id": doc.doc_id, "entities": list(entities),
                                         "unit": "|".join((doc.doc_id, *entities))})

    def fitted(self, doc: Document) -> str:
        """The document, cut to leave room for the task and the answer in the model's context."""
        if doc.doc_id not in self._fitted:
            self._fitted[doc.doc_id] = self._fit(doc)
        return self._fitted[doc.doc_id]

    def _fit(self, doc: Document) -> str:
        frame = self.template.render(header=doc.header, title=doc.title, document="", entities=entity_list(
            ("x" * 40,) * 3))
        return self.fit(doc, frame, self.settings.max_tokens, "max_tokens")

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if not result.ok or not result.texts:
            return Rejected("engine_error")
        text = result.text
        if result.truncated:
            text = trim_truncated(text)
        body = strip_preamble(text)
        if not body:
            return Rejected("empty")
        meta = result.request.metadata
        doc = self.corpus.by_id[meta["doc_id"]]
        entities = meta["entities"]
        heading = f"{doc.header}: {' and '.join(entities)}"
        return [self.record(result, f"{heading}\n\n{body}", "pair" if len(entities) == 2 else "triple", entities)]


PLUGIN = EntiGraph
