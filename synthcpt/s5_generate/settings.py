"""Settings of the generate stage: which generators run, their budgets, and the mix.
Each generator plugin (a module of `synthcpt/s5_generate/generators/`) nests its own section under its
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
    leak_question_similarity: float = Field(
        85, ge=0, le=100, description="A record written about a question (qa, focal) leaks when its question is "
                                      "this similar to an exam question (rapidfuzz token-sort ratio, 0-100): a "
                                      "reworded exam question escapes the n-gram rule.")
    qa_share: float | None = Field(
        0.5, gt=0, lt=1, description="Share of QA-pair tokens (the qa generator) in the mix's synthetic tokens when "
                                     "documents are generated beside them: Synthetic Mixed Training's 1:1, the best "
                                     "of the ratios it compared (1:8, 2:7, 1:1, 8:1), taken by tokens, its scaling "
                                     "axis. generate.total_tokens is split by it, and the mix trims the tail of "
                                     "whichever kind exceeds it after filtering. null: no balancing.")
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

    def text_kind(self, generator: str) -> str:
        """"qa" or "document": what the generator's records are in the mix's QA : document ratio."""
        return GENERATORS.get(generator).text_kind

    def balanced(self) -> bool:
        """Whether the mix holds `mix.qa_share`: set, with QA pairs and documents both generated."""
        kinds = {self.text_kind(g) for g in self.generators}
        return self.mix.qa_share is not None and kinds == {"qa", "document"}

    def targets(self) -> dict[str, int | None]:
        """Target tokens per selected generator (None: everything it can produce). total_tokens goes to the
        generators without a `tokens` entry by their `shares`; when the mix is balanced, the QA
        generators' part of it is `mix.qa_share`, the documents' the rest."""
        shared = [g for g in self.generators if g not in self.tokens]
        groups = [[g for g in shared if self.text_kind(g) == kind] for kind in ("qa", "document")]
        if not (self.balanced() and all(groups)):  # one budget for all (a kind with its own `tokens` takes none)
            groups = [shared]
        result: dict[str, int | None] = {name: self.tokens[name] for name in self.generators if name in self.tokens}
        for group, part in zip(groups, self._parts(len(groups))):
            weights = {g: self.shares.get(g, 1.0) for g in group}
            total_weight = sum(weights.values())
            for name in group:
                if self.total_tokens is None or total_weight == 0:
                    result[name] = None if self.total_tokens is None else 0
                else:
                    result[name] = round(self.total_tokens * part * weights[name] / total_weight)
        return {name: result[name] for name in self.generators}

    def _parts(self, groups: int) -> list[float]:
        """The shares of total_tokens of one group (every shared generator) or two (QA, documents)."""
        return [1.0] if groups == 1 else [self.mix.qa_share, 1 - self.mix.qa_share]


def generate_settings() -> type[GenerateSettings]:
    """The generate section's class, with a nested section per registered generator."""
    return plugins.plugin_section(GenerateSettings, GENERATORS, "generators")
