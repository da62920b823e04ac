"""LLM reading comprehension (Instruction Pre-Training, Cheng et al., 2024): the model writes
question/answer pairs about a chunk, held to a JSON list by structured output, appended to the chunk
after one of the mined tasks' lead-ins, so both kinds of reading-comprehension text read alike."""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from synthcpt.engine.structured import json_schema
from synthcpt.engine.types import Request, Result
from synthcpt.run_folder import Chunk
from synthcpt.s5_generate.base import Generator, GeneratorSettings, Rejected, selected_chunks
from synthcpt.s5_generate.generators.rc_mined import MINED_TEMPLATES
from synthcpt.s5_generate.mining import Templates
from synthcpt.s5_generate.parsing import complete_items, qa_pairs_from_json

LLM_PROMPT = "rc/llm.md"


class RcLlmSettings(GeneratorSettings):
    """LLM reading comprehension: question/answer pairs the model writes about each chunk."""

    questions: int = Field(3, ge=1, description="Question/answer pairs asked per chunk.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(384, ge=1, description="Max tokens of one answer.")


class QuestionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str


def answer_model(count: int) -> type[BaseModel]:
    """The JSON answer of one request: one to `count` question/answer pairs."""
    return create_model("QuestionsAnswers", __config__=ConfigDict(extra="forbid"),
                        questions=(list[QuestionAnswer], Field(min_length=1, max_length=count)))


class RcLlm(Generator[RcLlmSettings]):
    name = "rc_llm"
    summary = "LLM-written question/answer pairs"
    position = 4
    from_passages = True
    enabled_by_default = True

    @classmethod
    def prompts(cls, settings: RcLlmSettings) -> list[str]:
        return [LLM_PROMPT, MINED_TEMPLATES]

    @cached_property
    def schema(self) -> dict[str, Any]:
        return json_schema(answer_model(self.settings.questions))

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
        for chunk in selected_chunks(self.corpus.chunks_by_doc(), self.stage.min_chunk_tokens):
            doc = self.corpus.by_id[chunk.doc_id]
            content = template.render(header=doc.header, text=chunk.text.strip(), count=str(s.questions))
            sampling = self.sampling(s.temperature, s.max_tokens)
            yield self.request(content, template, sampling, json_schema=self.schema,
                               metadata={"doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id, "unit": chunk.chunk_id})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if result.truncated:  # an answer cut off by max_tokens keeps the pairs it completed
            pairs = qa_pairs_from_json(complete_items(result.text))
        else:
            pairs = qa_pairs_from_json(result.parsed[0]) if result.parsed else []
        if not pairs:
            return Rejected("truncated" if result.truncated else "no_qa_pairs")
        chunk = self.chunks[result.request.metadata["unit"]]
        lead_in = random.Random(f"{self.ctx.seed}:{self.name}:{chunk.chunk_id}").choice(self.lead_ins)
        tasks = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
        header = self.corpus.by_id[chunk.doc_id].header
        return [self.record(result, f"{header}\n\n{chunk.text.strip()}\n\n{lead_in}\n\n{tasks}", "qa")]


PLUGIN = RcLlm
