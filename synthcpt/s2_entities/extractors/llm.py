"""The LLM extractor (EntiGraph's first step): per document a summary and an exhaustive list of its
salient entities, concepts included, as JSON held to a schema by the engine's structured output."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from synthcpt.engine.structured import json_schema
from synthcpt.engine.types import Request
from synthcpt.prompts import load_prompt
from synthcpt.s2_entities.extractor import Extraction, ExtractionContext
from synthcpt.section import Section

PROMPT = "entities/entigraph.md"
STEP = "entities: LLM extraction"
ENTITY_MAX_CHARS = 80


class LlmSettings(Section):
    """llm extractor: the EntiGraph request (summary + exhaustive entity list as JSON) through the engine."""

    window_tokens: int = Field(
        6000, ge=256, description="Documents longer than this many tokens are sent as windows of this size.")
    max_tokens: int = Field(1024, ge=16, description="Max tokens of the JSON reply.")
    max_entities: int = Field(
        150, ge=1, description="Most entities in one reply (the JSON schema bounds the list, so a model that "
                               "repeats itself has to stop).")
    summary_chars: int = Field(1500, ge=50, description="Longest summary, in characters (schema bound).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy, a stable list).")


def extraction_model(max_entities: int, summary_chars: int) -> type[BaseModel]:
    """The reply, bounded, so a model caught in a repetition loop must close the object instead of running
    on to max_tokens."""
    entity = Annotated[str, StringConstraints(max_length=ENTITY_MAX_CHARS)]
    return create_model("EntityExtraction", __config__=ConfigDict(extra="forbid"),
                        summary=(str, Field(max_length=summary_chars)),
                        entities=(list[entity], Field(max_length=max_entities)))


class Llm:
    name: ClassVar[str] = "llm"
    summary: ClassVar[str] = ("the EntiGraph request through the engine; its summaries become EntiGraph data "
                              "(use with a capable generator)")
    Settings = LlmSettings
    sections: ClassVar[tuple[str, ...]] = ("llm",)

    def __init__(self, ctx: ExtractionContext):
        self.ctx = ctx
        self.settings: LlmSettings = ctx.stage.llm

    @classmethod
    def prompts(cls, stage: Any) -> list[str]:
        return [PROMPT]

    def _requests(self) -> tuple[list[Request], dict[str, int]]:
        from synthcpt.s2_entities.llm_extractor import llm_requests

        s = self.settings
        schema = json_schema(extraction_model(s.max_entities, s.summary_chars))
        template = load_prompt(PROMPT, self.ctx.prompts_dir)
        return llm_requests(self.ctx.documents, self.ctx.chunks_by_doc, s, template, schema, self.ctx.seed)

    def requests(self) -> dict[str, list[Request]]:
        return {STEP: self._requests()[0]}

    def extract(self) -> Extraction:
        from synthcpt.engine import open_engine
        from synthcpt.s2_entities.llm_extractor import collect

        requests, n_windows = self._requests()
        with open_engine(self.ctx.engine_settings, self.ctx.run_dir) as engine:
            return collect(engine.generate(requests, description=STEP), n_windows)


PLUGIN = Llm
