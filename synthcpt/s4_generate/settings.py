"""Settings of the generate stage: which generators run, their budgets, and the mix.
Each generator plugin (a module of `synthcpt/s4_generate/generators/`) nests its own section under its
name (`generate.wrap.temperature`), with defaults from its published method; this section holds what
they share.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from synthcpt import plugins
from synthcpt.section import Section

GENERATORS = plugins.GENERATORS


def default_generators() -> list[str]:
    """The generators a run uses unless told otherwise, in the order they run and enter the mix."""
    return [p.name for p in sorted(GENERATORS, key=lambda p: p.position) if p.enabled_by_default]


class MixSettings(Section):
    """The training mix: quality rules, deduplication, the evaluation-leak guard and the raw corpus."""

    raw_ratio: float = Field(
        1.0, ge=0, description="Raw corpus tokens per synthetic token (WRAP mixes real and synthetic 1:1); the "
                               "raw documents are repeated to approach it, up to raw_max_repeats.")
    raw_max_repeats: int = Field(
        4, ge=1, description="Most copies of each raw document (about 4 epochs of repeated data cost little, "
                             "Muennighoff et al. 2023).")
    min_tokens: int = Field(16, ge=1, description="Records shorter than this many tokens are rejected.")
    max_repetition: float = Field(
        0.15, gt=0, le=1, description="Reject records whose characters inside repeated word 5-grams exceed this "
                                      "share (Gopher's rule; catches generation loops); applies to generators whose "
                                      "whole text is model-written.")
    near_duplicate: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard similarity (MinHash over word 5-grams) above which a record "
                                     "is a near duplicate of an earlier one.")
    leak_ngram: int = Field(8, ge=3, description="Word n-gram size of the evaluation-leak guard.")
    leak_threshold: float = Field(
        0.5, gt=0, le=1, description="A record leaks when it contains this share of the n-grams of any evaluation "
                                     "question or option; leaking records are dropped.")


class GenerateSettings(Section):
    """Synthetic text generators, their token budgets, and the final training mix."""

    generators: list[str] = Field(default_factory=default_generators,
                                  description="Generators to run, in the order listed: {plugins}.")
    total_tokens: int | None = Field(
        None, ge=1, description="Synthetic tokens in all, split by `shares` over the generators without a "
                                "`tokens` entry (unset: each such generator produces all it can).")
    shares: dict[str, float] = Field(
        default_factory=dict, description="Relative share of total_tokens per generator (unset ones weigh 1).")
    tokens: dict[str, int] = Field(
        default_factory=dict, description="Target synthetic tokens per generator; overrides total_tokens/shares.")
    min_wave: int = Field(
        32, ge=1, description="Fewest requests per wave, so the engine always has a full batch (a small wave "
                              "leaves a GPU idle far more than a few extra requests cost); a CPU engine is full "
                              "at a few sequences, and a wave far above the budget's need wastes its time.")
    min_chunk_tokens: int = Field(
        32, ge=1, description="Chunks shorter than this (headers, trailing scraps) are not sent to the chunk "
                              "generators.")
    shard_records: int = Field(50_000, ge=1, description="Records per parquet shard of the outputs.")
    mix: MixSettings = Field(default_factory=MixSettings, description=MixSettings.__doc__)

    @model_validator(mode="after")
    def _budgets_name_selected_generators(self) -> GenerateSettings:
        for key in ("shares", "tokens"):
            extra = sorted(set(getattr(self, key)) - set(self.generators))
            if extra:
                raise ValueError(f"generate.{key} names generators that are not selected: {', '.join(extra)}")
        return self

    def identity(self) -> dict[str, Any]:
        """What the outputs depend on: the shared settings and the selected generators' sections."""
        return self.model_dump(mode="json", exclude=set(GENERATORS.names()) - set(self.generators))

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


def generate_settings() -> type[GenerateSettings]:
    """The generate section's class, with a nested section per registered generator."""
    return plugins.plugin_section(GenerateSettings, GENERATORS, "generators")
