"""The eval stage's settings."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthcpt import plugins
from synthcpt.plugins import EVAL_METHODS
from synthcpt.section import Section


class EvalSettings(Section):
    """Closed-book QA of the base and trained models; one nested section per evaluation method."""

    methods: list[str] = Field(["loglik"], min_length=1, description="{plugins}")
    source_line: bool = Field(True, description="Prefix each question with a line naming its document: title, "
                              "author and year (EntiGraph protocol).")
    batch_tokens: int = Field(2048, gt=0, description="Log-likelihood: tokens per forward pass (rows x longest row).")
    row_tokens: int = Field(512, gt=0, description="Log-likelihood: questions and their options are packed into "
                            "rows of at most this many tokens.")
    bootstrap_resamples: int = Field(1000, ge=100, description="Bootstrap resamples of the questions for the "
                                     "confidence intervals.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the bootstrap confidence intervals.")
    perplexity_window: int = Field(1024, gt=1, description="Forgetting check: tokens per perplexity window.")
    perplexity_max_tokens: int = Field(50_000, gt=0, description="Forgetting check: at most this many tokens "
                                       "of held-out general text.")

    def method_settings(self, name: str) -> Any:
        return getattr(self, name)

    def shared_identity(self) -> dict[str, Any]:
        """The settings every method's scores depend on (not which methods run, nor their own sections)."""
        return self.model_dump(mode="json", exclude={"methods", *EVAL_METHODS.names()})

    def identity(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=set(EVAL_METHODS.names()) - set(self.methods))


def eval_settings() -> type[EvalSettings]:
    return plugins.plugin_section(EvalSettings, EVAL_METHODS, "methods")
