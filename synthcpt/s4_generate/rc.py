"""Reading-comprehension text: a passage followed by tasks about it.

`rc_mined` (AdaptLLM) mines the tasks with patterns, no LLM; `rc_llm` (TransformLLM / Instruction
Pre-Training) has the model write question/answer pairs about a chunk, appended to the chunk.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cached_property
from typing import Any

from synthcpt.engine.types import Request, Result
from synthcpt.s4_generate.base import Chunk, Document, Generator, Rejected, round_robin
from synthcpt.s4_generate.mining import Templates, mine_passage, render
from synthcpt.s4_generate.parsing import complete_items, qa_pairs_from_json
from synthcpt.s4_generate.records import make_record, record_id
from synthcpt.s4_generate.wrap import selected_chunks

MINED_TEMPLATES = "rc/mined.yaml"
LLM_PROMPT = "rc/llm.md"


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


def qa_schema(count: int) -> dict[str, Any]:
    """The JSON answer of an LLM reading-comprehension request: one to `count` question/answer pairs."""
    pair = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["question", "answer"], "additionalProperties": False}
    return {"type": "object",
            "properties": {"questions": {"type": "array", "items": pair, "minItems": 1, "maxItems": count}},
            "required": ["questions"], "additionalProperties": False}


class RcMined(Generator):
    name = "rc_mined"

    @classmethod
    def prompt_files(cls, settings) -> list[str]:
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
            for index, text in passages(doc, chunks_by_doc.get(doc.doc_id, []), s.rc_passage_tokens):
                rng = random.Random(f"{self.ctx.seed}:{self.name}:{doc.doc_id}:{index}")
                mined = mine_passage(text, doc.title, summary, entities, s.rc_min_sentence_chars,
                                     s.rc_max_per_kind, rng)
                if mined.count:
                    items.append(make_record(
                        id=record_id(self.name, doc.doc_id, index, prompt.hash), text=render(mined, templates, rng),
                        generator=self.name, style="+".join(sorted(mined.examples)), doc_id=doc.doc_id,
                        prompt_file=prompt.name, prompt_hash=prompt.hash))
            per_doc.append(items)
        yield from round_robin(per_doc)


class RcLlm(Generator):
    name = "rc_llm"

    @classmethod
    def prompt_files(cls, settings) -> list[str]:
        return [LLM_PROMPT, MINED_TEMPLATES]

    @property
    def max_tokens(self) -> int:
        return self.settings.rc_max_tokens

    @cached_property
    def chunks(self) -> dict[str, Chunk]:
        return {c.chunk_id: c for c in self.corpus.chunks}

    @cached_property
    def lead_ins(self) -> list[str]:
        """The lead-ins of the mined tasks, so both kinds of reading-comprehension text read alike."""
        prompt = self.prompt(MINED_TEMPLATES)
        return Templates.parse(prompt.text, prompt.name).lead_ins

    def requests(self) -> Iterator[Request]:
        s = self.settings
        template = self.prompt(LLM_PROMPT)
        for chunk in selected_chunks(self.corpus.chunks_by_doc(), s.min_chunk_tokens):
            doc = self.corpus.by_id[chunk.doc_id]
            content = template.render(header=doc.header, text=chunk.text.strip(), count=str(s.rc_questions))
            sampling = self.sampling(s.rc_temperature, s.rc_max_tokens)
            yield self.request(content, template, sampling, json_schema=qa_schema(s.rc_questions),
                               metadata={"doc_id": chunk.doc_id, "unit": chunk.chunk_id})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if not result.texts:  # failed in the engine (a malformed JSON answer keeps its text)
            return Rejected("engine_error")
        if result.truncated:  # an answer cut off by max_tokens keeps the pairs it completed
            pairs = qa_pairs_from_json(complete_items(result.text))
        else:
            pairs = qa_pairs_from_json(result.parsed[0]) if result.parsed else []
        if not pairs:
            return Rejected("truncated" if result.truncated else "no_qa_pairs")
        chunk = self.chunks[result.request.metadata["unit"]]
        lead_in = random.Random(f"{self.ctx.seed}:{self.name}:{chunk.chunk_id}").choice(self.lead_ins)
        tasks = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
        return [self.record(result, f"{chunk.text.strip()}\n\n{lead_in}\n\n{tasks}", "qa")]
