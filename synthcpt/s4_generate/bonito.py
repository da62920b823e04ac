"""Bonito-style instruction pairs (Nayak et al., 2024): for a chunk and a task type, an instruction
and its response. With the Bonito model, its raw format (task-type and context markers; the answer
is "instruction <|pipe|> response", the instruction holding a {{context}} placeholder); with any
instruct model, a prompt per task type whose answer is held to a JSON object with the two fields by
the engine's structured output, so the split never depends on the model following a text format.
Pairs that do not parse are dropped and counted."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import yaml

from synthcpt.engine.types import Request, Result
from synthcpt.errors import SynthcptError
from synthcpt.s4_generate.base import Chunk, Generator, Rejected
from synthcpt.s4_generate.wrap import selected_chunks

RAW_PROMPT = "bonito/raw.txt"
INSTRUCT_PROMPT = "bonito/instruct.md"
TASK_GUIDANCE = "bonito/task_types.yaml"
SEPARATOR = "<|pipe|>"
CONTEXT_SLOT = "{{context}}"
INSTRUCTION_PAIR_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string"}, "response": {"type": "string"}},
    "required": ["instruction", "response"],
    "additionalProperties": False,
}


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
    value = parsed[0] if parsed else None
    if not isinstance(value, dict):
        return None
    instruction, response = str(value.get("instruction", "")).strip(), str(value.get("response", "")).strip()
    return (instruction, response) if instruction and response else None


def with_context(instruction: str, context: str) -> str:
    """The instruction with the chunk in place of its {{context}} slot, or the chunk before it."""
    if CONTEXT_SLOT in instruction:
        return instruction.replace(CONTEXT_SLOT, context)
    return f"{context}\n\n{instruction}"


class Bonito(Generator):
    name = "bonito"

    @classmethod
    def prompt_files(cls, settings) -> list[str]:
        return [RAW_PROMPT] if settings.bonito_format == "bonito" else [RAW_PROMPT, INSTRUCT_PROMPT, TASK_GUIDANCE]

    @property
    def max_tokens(self) -> int:
        return self.settings.bonito_max_tokens

    @property
    def raw(self) -> bool:
        return uses_raw_format(self.settings.bonito_format, self.ctx.model)

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
        missing = [t for t in self.settings.bonito_task_types if not isinstance(guidance, dict) or t not in guidance]
        if missing:
            raise SynthcptError(f"prompt {prompt.name}: no guidance for task types {', '.join(missing)}")
        return guidance

    def requests(self) -> Iterator[Request]:
        s = self.settings
        template = self.prompt(RAW_PROMPT if self.raw else INSTRUCT_PROMPT)
        task_types = s.bonito_task_types
        chunks = selected_chunks(self.corpus.chunks_by_doc(), s.min_chunk_tokens)
        for sweep in range(s.bonito_tasks_per_chunk):
            for position, chunk in enumerate(chunks):
                task_type = task_types[(position * s.bonito_tasks_per_chunk + sweep) % len(task_types)]
                context = chunk.text.strip()
                content = template.render(task_type=task_type, context=context) if self.raw else \
                    template.render(task_type=task_type, context=context, guidance=self.guidance[task_type])
                sampling = self.sampling(s.bonito_temperature, s.bonito_max_tokens, top_p=s.bonito_top_p)
                yield self.request(content, template, sampling, raw=self.raw,
                                   json_schema=None if self.raw else INSTRUCTION_PAIR_SCHEMA, metadata={"doc_id": chunk.doc_id, "unit": chunk.chunk_id, "style": task_type})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if not result.texts:  # failed in the engine (a malformed JSON answer keeps its text)
            return Rejected("engine_error")
        if result.truncated:
            return Rejected("truncated")
        pair = parse_raw_pair(result.text) if self.raw else parse_structured_pair(result.parsed)
        if pair is None:
            return Rejected("unparseable")
        meta = result.request.metadata
        instruction = with_context(pair[0], self.chunks[meta["unit"]].text.strip())
        response = pair[1]
        record = self.record(result, f"{instruction}\n\n{response}", meta["style"],
                             pair={"instruction": instruction, "response": response, "task_type": meta["style"]})
        return [record]
