"""Mined reading comprehension (AdaptLLM, Cheng et al., 2024): each passage of a document followed by
tasks mined from it with patterns (no LLM): inference, cause and effect, paraphrase, definitions,
word-to-text and completion, introduced by the paper's lead-ins."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from synthcpt.run_folder import Chunk, Document
from synthcpt.s5_generate.base import Generator, round_robin
from synthcpt.s5_generate.mining import Templates, mine_passage, render
from synthcpt.s5_generate.records import make_record, record_id
from synthcpt.section import Section

MINED_TEMPLATES = "rc/mined.yaml"


class RcMinedSettings(Section):
    """Mined reading comprehension: passages followed by tasks mined with patterns, no LLM."""

    passage_tokens: int = Field(
        1536, ge=64, description="Passage size (consecutive chunks) that the tasks follow, leaving room for the "
                                 "tasks in a 2048-token training sequence.")
    max_per_kind: int = Field(2, ge=1, description="Examples per task kind per passage (AdaptLLM: 2).")
    min_sentence_chars: int = Field(
        50, ge=1, description="Characters each side of a connective (AdaptLLM: ~50).")


def passages(doc: Document, chunks: list[Chunk], max_tokens: int) -> list[tuple[int, str]]:
    """(index, text) of runs of consecutive chunks of at most `max_tokens` tokens (one chunk at least)."""
    found: list[tuple[int, str]] = []
    start, total = 0, 0
    for i, chunk in enumerate(chunks):
        if i > start and total + chunk.n_tokens > max_tokens:
            found.append((len(found), doc.text[chunks[start].char_start:chunks[i - 1].char_end]))
            start, total = i, 0
        total += chunk.n_tokens
    if chunks:
        found.append((len(found), doc.text[chunks[start].char_start:chunks[-1].char_end]))
    return found


class RcMined(Generator[RcMinedSettings]):
    name = "rc_mined"
    summary = "pattern-mined reading comprehension, no LLM"
    position = 3
    enabled_by_default = True

    @classmethod
    def prompts(cls, settings: RcMinedSettings) -> list[str]:
        return [MINED_TEMPLATES]

    def records(self) -> Iterator[dict[str, Any]]:
        s = self.settings
        prompt = self.prompt(MINED_TEMPLATES)
        templates = Templates.parse(prompt.text, prompt.name)
        chunks_by_doc = self.corpus.chunks_by_doc()
        per_doc = []
        for doc in self.corpus.documents:
            entities = self.corpus.entities.get(doc.doc_id, [])
            summary = self.corpus.summaries.get(doc.doc_id)
            items = []
            for index, text in passages(doc, chunks_by_doc.get(doc.doc_id, []), s.passage_tokens):
                rng = random.Random(f"{self.ctx.seed}:{self.name}:{doc.doc_id}:{index}")
                mined = mine_passage(text, doc.title, summary, entities, s.min_sentence_chars, s.max_per_kind,
                                     rng)
                if mined.count:
                    items.append(make_record(
                        id=record_id(self.name, doc.doc_id, index, prompt.hash),
                        text=f"{doc.header}\n\n{render(mined, templates, rng)}",
                        generator=self.name, style="+".join(sorted(mined.examples)), doc_id=doc.doc_id,
                        prompt_file=prompt.name, prompt_hash=prompt.hash))
            per_doc.append(items)
        yield from round_robin(per_doc)


PLUGIN = RcMined
