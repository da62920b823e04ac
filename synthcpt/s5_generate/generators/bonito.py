"""Bonito-style instruction pairs (Nayak et al., 2024): for a chunk and a task type, an instruction
and its response. With the Bonito model, its raw format (task-type and context markers; the answer
is "instruction <|pipe|> response", the instruction holding a {{context}} placeholder); with any
instruct model, a prompt per task type whose answer is held to a JSON object with the two fields by
the engine's structured output, so the split never depends on the model following a text format.
Pairs that do not parse are dropped and counted."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthcpt.engine.structured import json_schema, validated
from synthcpt.engine.types import Request, Result
from synthcpt.errors import SynthcptError
from synthcpt.s5_generate.base import Chunk, Generator, GeneratorSettings, Rejected, selected_chunks

RAW_PROMPT = "bonito/raw.txt"
INSTRUCT_PROMPT = "bonito/instruct.md"
TASK_GUIDANCE = "bonito/task_types.yaml"
SEPARATOR = "<|pipe|>"
CONTEXT_SLOT = "{{context}}"
TASK_TYPES: tuple[str, ...] = (
    "extractive question answering", "multiple-choice question answering", "question generation",
    "question answering without choices", "yes-no question answering", "coreference resolution",
    "paraphrase generation", "paraphrase identification", "sentence completion", "sentiment", "summarization",
    "text generation", "topic classification", "word sense disambiguation", "textual entailment",
    "natural language inference",
)


class BonitoSettings(GeneratorSettings):
    """Bonito: instruction/response pairs per chunk and task type (paper: temperature 0.5, top-p 0.95, 256 tokens)."""

    format: Literal["auto", "instruct", "bonito"] = Field(
        "auto", description="'bonito' is the Bonito model's raw task-type/context format, 'instruct' a chat prompt "
                            "per task type for any instruct model; 'auto' picks 'bonito' when the engine model's "
                            "name contains 'bonito'.")
    task_types: list[str] = Field(list(TASK_TYPES), description="Task types to generate, rotated over the chunks.")
    tasks_per_chunk: int = Field(1, ge=1, description="Task types (pairs) generated per chunk.")
    temperature: float = Field(0.5, ge=0, description="Sampling temperature (paper: 0.5).")
    top_p: float = Field(0.95, gt=0, le=1, description="Top-p (paper: 0.95).")
    max_tokens: int = Field(256, ge=1, description="Max tokens of one pair (paper: 256).")

    @field_validator("task_types")
    @classmethod
    def _known_task_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(TASK_TYPES))
        if unknown:
            raise ValueError(f"unknown Bonito task types {unknown}; known: {', '.join(TASK_TYPES)}")
        if not value:
            raise ValueError("name at least one task type")
        return value


# An instruct model's answer, held to this form by structured output (no docstring: it would enter the
# schema as a description, and so the cache key).
class InstructionPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instruction: str
    response: str


INSTRUCTION_PAIR_SCHEMA = json_schema(InstructionPair)


def uses_raw_format(setting: str, model: str) -> bool:
    return setting == "bonito" or (setting == "auto" and "bonito" in model.lower())


def parse_raw_pair(text: str) -> tuple[str, str] | None:
    """Bonito's own output: exactly one separator between a non-empty instruction and response."""
    parts = text.split(SEPARATOR)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return None
    return parts[0].strip(), parts[1].strip()


def parse_structured_pair(parsed: list | None) -> tuple[str, str] | None:
    """An instruct model's JSON answer: both fields non-empty (None when the JSON did not parse)."""
    pair = validated(InstructionPair, parsed)
    if pair is None:
        return None
    instruction, response = pair.instruction.strip(), pair.response.strip()
    return (instruction, response) if instruction and response else None


def with_context(instruction: str, context: str) -> str:
    """The instruction with the chunk in place of its {{context}} slot, or the chunk before it."""
    if CONTEXT_SLOT in instruction:
        return instruction.replace(CONTEXT_SLOT, context)
    return f"{context}\n\n{instruction}"


class Bonito(Generator[BonitoSettings]):
    name = "bonito"
    summary = "instruction/response pairs"
    position = 5
    from_passages = True
    enabled_by_default = True

    @classmethod
    def prompts(cls, settings: BonitoSettings) -> list[str]:
        return [RAW_PROMPT] if settings.format == "bonito" else [RAW_PROMPT, INSTRUCT_PROMPT, TASK_GUIDANCE]

    @property
    def raw(self) -> bool:
        return uses_raw_format(self.settings.format, self.ctx.model)

    @cached_property
    def chunks(self) -> dict[str, Chunk]:
        return {c.chunk_id: c for c in self.corpus.chunks}

    @cached_property
    def guidance(self) -> dict[str, str]:
        prompt = self.prompt(TASK_GUIDANCE)
        try:
            guidance = yaml.safe_load(prompt.text)
        except yaml.YAMLError as e:
            raise SynthcptError(f"prompt {prompt.name}: not valid YAML ({str(e).splitlines()[0]})") from None
        missing = [t for t in self.settings.task_types if not isinstance(guidance, dict) or t not in guidance]
        if missing:
            raise SynthcptError(f"prompt {prompt.name}: no guidance for task types {', '.join(missing)}")
        return guidance

    def requests(self) -> Iterator[Request]:
        s = self.settings
        template = self.prompt(RAW_PROMPT if self.raw else INSTRUCT_PROMPT)
        task_types = s.task_types
        chunks = selected_chunks(self.corpus.chunks_by_doc(), self.stage.min_chunk_tokens)
        for sweep in range(s.tasks_per_chunk):
            for position, chunk in enumerate(chunks):
                task_type = task_types[(position * s.tasks_per_chunk + sweep) % len(task_types)]
                context = chunk.text.strip()
                header = self.corpus.by_id[chunk.doc_id].header
                content = template.render(task_type=task_type, context=context) if self.raw else \
                    template.render(task_type=task_type, context=context, header=header,
                                    guidance=self.guidance[task_type])
                sampling = self.sampling(s.temperature, s.max_tokens, top_p=s.top_p)
                yield self.request(content, template, sampling, raw=self.raw,
                                   json_schema=None if self.raw else INSTRUCTION_PAIR_SCHEMA,
                                   metadata={"doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id, "unit": chunk.chunk_id, "style": task_type})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if result.truncated:
            return Rejected("truncated")
        pair = parse_raw_pair(result.text) if self.raw else parse_structured_pair(result.parsed)
        if pair is None:
            return Rejected("unparseable")
        meta = result.request.metadata
        chunk = self.chunks[meta["unit"]]
        # The passage goes in under its document's header line, so the pair names the document it is about.
        context = f"{self.corpus.by_id[chunk.doc_id].header}\n\n{chunk.text.strip()}"
        instruction = with_context(pair[0], context)
        response = pair[1]
        record = self.record(result, f"{instruction}\n\n{response}", meta["style"],
                             pair={"instruction": instruction, "response": response, "task_type": meta["style"]})
        return [record]


PLUGIN = Bonito
