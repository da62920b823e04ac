"""Settings of the generate stage: which generators run, their budgets and sampling, and the mix.

Defaults follow the published methods (EntiGraph temperature 1.0; WRAP's four styles over ~300-token
chunks mixed 1:1 with real text; AdaptLLM's two mined examples per task kind; Bonito's 16 task types
at temperature 0.5, top-p 0.95, 256 tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from synthcpt.section import Section

GeneratorName = Literal["entigraph", "wrap", "rc_mined", "rc_llm", "bonito"]
GENERATORS: tuple[str, ...] = ("entigraph", "wrap", "rc_mined", "rc_llm", "bonito")
WrapStyle = Literal["easy", "medium", "hard", "qa"]
BONITO_TASK_TYPES: tuple[str, ...] = (
    "extractive question answering", "multiple-choice question answering", "question generation",
    "question answering without choices", "yes-no question answering", "coreference resolution",
    "paraphrase generation", "paraphrase identification", "sentence completion", "sentiment", "summarization",
    "text generation", "topic classification", "word sense disambiguation", "textual entailment",
    "natural language inference",
)


class GenerateSettings(Section):
    """Synthetic text generators, their token budgets, and the final training mix."""

    generators: list[GeneratorName] = Field(
        list(GENERATORS), description="Generators to run: entigraph, wrap, rc_mined (pattern-mined reading "
                                      "comprehension, no LLM), rc_llm (LLM-written tasks), bonito.")
    total_tokens: int | None = Field(
        None, ge=1, description="Synthetic tokens in all, split by `shares` over the generators without a "
                                "`tokens` entry (unset: each such generator produces all it can).")
    shares: dict[GeneratorName, float] = Field(
        default_factory=dict, description="Relative share of total_tokens per generator (unset ones weigh 1).")
    tokens: dict[GeneratorName, int] = Field(
        default_factory=dict, description="Target synthetic tokens per generator; overrides total_tokens/shares.")
    prompts_dir: Path | None = Field(
        None, description="Folder of prompt files replacing the shipped ones by name (entigraph/relation.md, ...).")

    min_chunk_tokens: int = Field(
        32, ge=1, description="Chunks shorter than this (headers, trailing scraps) are not sent to the chunk "
                              "generators (wrap, rc_llm, bonito).")

    entigraph_summaries: bool = Field(
        True, description="EntiGraph: include the document summaries from the entities stage as records.")
    entigraph_strategy: Literal["all", "cooccurring", "random", "degree"] = Field(
        "all", description="EntiGraph: how entity pairs and triples are sampled from each document's graph: all "
                           "(every pair, as in the paper), cooccurring (co-occurring first), random, degree "
                           "(hubs more often).")
    entigraph_pairs_per_doc: int | None = Field(
        None, ge=0, description="EntiGraph: entity pairs per document (unset: all pairs, as in the paper).")
    entigraph_triples_per_doc: int = Field(
        10, ge=0, description="EntiGraph: entity triples per document (the paper used a subset of triples).")
    entigraph_max_relations: int | None = Field(
        None, ge=1, description="EntiGraph: at most this many relations in all (unset: no cap).")
    entigraph_temperature: float = Field(1.0, ge=0, description="EntiGraph: sampling temperature (paper: 1.0).")
    entigraph_max_tokens: int = Field(1024, ge=1, description="EntiGraph: max tokens of one relation text.")

    wrap_styles: list[WrapStyle] = Field(
        ["easy", "medium", "hard", "qa"], description="WRAP: rephrasing styles: easy (child), medium "
                                                      "(Wikipedia), hard (scholarly), qa (Question:/Answer:).")
    wrap_rephrasings: int = Field(1, ge=1, description="WRAP: rephrasings per chunk and style.")
    wrap_temperature: float = Field(0.7, ge=0, description="WRAP: sampling temperature.")
    wrap_max_tokens: int = Field(512, ge=1, description="WRAP: max tokens of one rephrasing (chunks are ~300).")

    rc_passage_tokens: int = Field(
        1536, ge=64, description="Reading comprehension: passage size (consecutive chunks) that mined tasks "
                                 "follow, leaving room for the tasks in a 2048-token training sequence.")
    rc_max_per_kind: int = Field(2, ge=1, description="Mined reading comprehension: examples per task kind "
                                                      "per passage (AdaptLLM: 2).")
    rc_min_sentence_chars: int = Field(
        50, ge=1, description="Mined reading comprehension: characters each side of a connective (AdaptLLM: ~50).")
    rc_questions: int = Field(3, ge=1, description="LLM reading comprehension: question/answer pairs asked per chunk.")
    rc_temperature: float = Field(0.7, ge=0, description="LLM reading comprehension: sampling temperature.")
    rc_max_tokens: int = Field(384, ge=1, description="LLM reading comprehension: max tokens of one answer.")

    bonito_format: Literal["auto", "instruct", "bonito"] = Field(
        "auto", description="Bonito: 'bonito' is the Bonito model's raw task-type/context format, 'instruct' a "
                            "chat prompt per task type for any instruct model; 'auto' picks 'bonito' when the "
                            "engine model's name contains 'bonito'.")
    bonito_task_types: list[str] = Field(
        list(BONITO_TASK_TYPES), description="Bonito: task types to generate, rotated over the chunks.")
    bonito_tasks_per_chunk: int = Field(1, ge=1, description="Bonito: task types (pairs) generated per chunk.")
    bonito_temperature: float = Field(0.5, ge=0, description="Bonito: sampling temperature (paper: 0.5).")
    bonito_top_p: float = Field(0.95, gt=0, le=1, description="Bonito: top-p (paper: 0.95).")
    bonito_max_tokens: int = Field(256, ge=1, description="Bonito: max tokens of one pair (paper: 256).")

    mix_raw_ratio: float = Field(
        1.0, ge=0, description="Mix: raw corpus tokens per synthetic token (WRAP mixes real and synthetic 1:1); "
                               "the raw documents are repeated to approach it, up to mix_raw_max_repeats.")
    mix_raw_max_repeats: int = Field(
        4, ge=1, description="Mix: most copies of each raw document (about 4 epochs of repeated data cost little, "
                             "Muennighoff et al. 2023).")
    mix_min_tokens: int = Field(16, ge=1, description="Mix: records shorter than this many tokens are dropped.")
    mix_max_repetition: float = Field(
        0.15, gt=0, le=1, description="Mix: drop records whose characters inside repeated word 5-grams exceed this "
                                      "share (Gopher's rule; catches generation loops); applies to entigraph and wrap, whose "
                                      "whole text is model-written.")
    mix_near_duplicate: float = Field(
        0.8, gt=0, le=1, description="Mix: estimated Jaccard similarity (MinHash over word 5-grams) above which "
                                     "a record is a near duplicate of an earlier one.")
    mix_leak_ngram: int = Field(8, ge=3, description="Mix: word n-gram size of the evaluation-leak guard.")
    mix_leak_threshold: float = Field(
        0.5, gt=0, le=1, description="Mix: a record leaks when it contains this share of the n-grams of any "
                                     "evaluation question or option; leaking records are dropped.")
    mix_shard_records: int = Field(50_000, ge=1, description="Records per parquet shard of the outputs.")

    @field_validator("bonito_task_types")
    @classmethod
    def _known_task_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(BONITO_TASK_TYPES))
        if unknown:
            raise ValueError(f"unknown Bonito task types {unknown}; known: {', '.join(BONITO_TASK_TYPES)}")
        if not value:
            raise ValueError("name at least one task type")
        return value

    @model_validator(mode="after")
    def _budgets_name_selected_generators(self) -> GenerateSettings:
        for key in ("shares", "tokens"):
            extra = sorted(set(getattr(self, key)) - set(self.generators))
            if extra:
                raise ValueError(f"generate.{key} names generators that are not selected: {', '.join(extra)}")
        return self

    def targets(self) -> dict[str, int | None]:
        """Target tokens per selected generator (None: everything it can produce)."""
        shared = [g for g in self.generators if g not in self.tokens]
        weights = {g: self.shares.get(g, 1.0) for g in shared}
        total_weight = sum(weights.values())
        result: dict[str, int | None] = {}
        for name in self.generators:
            if name in self.tokens:
                result[name] = self.tokens[name]
            elif self.total_tokens is None or total_weight == 0:
                result[name] = None if self.total_tokens is None else 0
            else:
                result[name] = round(self.total_tokens * weights[name] / total_weight)
        return result
