"""Settings of the generation engine (the `engine` section of the config).

The section holds what every backend shares (model, tokenizer, prefix grouping, prices) and one nested
section per engine backend plugin (`engine.vllm`, `engine.openai`, ...), made from the backend registry.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from synthcpt import plugins
from synthcpt.section import Section

BACKENDS = plugins.BACKENDS


class Price(Section):
    """What a hosted model charges, in US dollars per million tokens."""

    input: float = Field(0.0, ge=0, description="Dollars per million prompt tokens.")
    output: float = Field(0.0, ge=0, description="Dollars per million completion tokens.")
    batch_input: float | None = Field(
        None, ge=0, description="Dollars per million prompt tokens through a batch API (unset: half of input).")
    batch_output: float | None = Field(
        None, ge=0, description="Dollars per million completion tokens through a batch API (unset: half of output).")

    @model_serializer(mode="wrap")
    def _without_unset_batch_prices(self, handler: Any) -> dict[str, Any]:
        # Unset batch prices are left out, so the engine's identity (and so every stage's fingerprint) of a
        # config written before they existed stays the same.
        return {k: v for k, v in handler(self).items() if v is not None or not k.startswith("batch_")}

    def batch(self) -> Price:
        """The price through a provider's batch API: what is set, else half the online price (OpenAI's and
        Anthropic's batch discount)."""
        return Price(input=self.input / 2 if self.batch_input is None else self.batch_input,
                     output=self.output / 2 if self.batch_output is None else self.batch_output)


# List prices (USD per million tokens) of hosted models often used for synthetic data; EntiGraph
# used gpt-4-turbo. Local models are free. Override or extend with engine.prices.
DEFAULT_PRICES = {
    "gpt-4-turbo": Price(input=10.0, output=30.0),
    "gpt-4o": Price(input=2.5, output=10.0),
    "gpt-4o-mini": Price(input=0.15, output=0.6),
    "gpt-4.1": Price(input=2.0, output=8.0),
    "gpt-4.1-mini": Price(input=0.4, output=1.6),
    "gpt-4.1-nano": Price(input=0.1, output=0.4),
}

class EngineSettings(Section):
    """The generation engine every LLM call goes through."""

    model: str = Field(
        "default",
        description="Generator model: 'default' (embedded SmolLM2-135M-Instruct), an HF folder or a hub id; "
                    "for a hosted backend, the model name the server knows.",
    )
    backend: str = Field("vllm", description="Engine backend: {plugins}.")
    tokenizer: str | None = Field(
        None, description="Tokenizer for exact prompt-token counts (plan, tokens-per-minute limit): an HF folder or "
                          "hub id (unset: the model's own, or a ~4 characters/token estimate when it has none).")
    max_model_len: int | None = Field(
        None, ge=1, description="The generator's context length in tokens: documents are cut to fit it, and vLLM "
                                "backends allocate it (unset: the model's own).")
    prefix_window: int = Field(
        4096, ge=1, description="Requests read ahead and grouped by prefix_key (e.g. the document), so requests that "
                                "share a long prefix run together and hit the prefix cache; 1 keeps the given order.")
    prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million prompt/completion tokens by model name, for live cost and plans "
                    "(models not listed are free).")

    @property
    def backend_plugin(self) -> Any:
        return BACKENDS.get(self.backend)

    def identity(self) -> dict[str, Any]:
        """What a stage's outputs depend on: the model, and what decides what is sent and how it is counted.
        Not the backend or its transport settings: responses are cached under keys without them, so a run
        moves between backends (vllm, ray, openai, openai_batch) and reuses everything, stages included."""
        return self.model_dump(mode="json", include={"model", "tokenizer", "max_model_len"})


def engine_settings() -> type[EngineSettings]:
    """The engine section's class, with a nested section per registered backend."""
    return plugins.plugin_section(EngineSettings, BACKENDS, "backend")
