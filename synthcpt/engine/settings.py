"""Settings of the generation engine (the `engine` section of the config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthcpt.config import Section


class Price(Section):
    """What a hosted model charges, in US dollars per million tokens."""

    input: float = Field(0.0, ge=0, description="Dollars per million prompt tokens.")
    output: float = Field(0.0, ge=0, description="Dollars per million completion tokens.")


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
                    "for the openai backend, the model name the server knows.",
    )
    backend: Literal["vllm", "openai"] = Field(
        "vllm", description="'vllm': in-process vllm.LLM; 'openai': any OpenAI-compatible server (engine.base_url).")
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint for the openai backend, e.g. http://127.0.0.1:8000/v1 "
                          "(unset: api.openai.com).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never stored in the run folder).")
    tokenizer: str | None = Field(
        None, description="Tokenizer for exact prompt-token counts (plan, tokens-per-minute limit): an HF folder or "
                          "hub id (unset: the model's own, or a ~4 characters/token estimate when it has none).")
    concurrency: int = Field(64, ge=1, description="openai backend: requests in flight at once.")
    rpm: int = Field(0, ge=0, description="openai backend: requests-per-minute limit (0: none).")
    tpm: int = Field(0, ge=0, description="openai backend: tokens-per-minute limit, prompt + max_tokens (0: none).")
    timeout: float = Field(600.0, gt=0, description="openai backend: seconds before one request times out.")
    max_retries: int = Field(
        8, ge=0, description="openai backend: retries of a request on 429, 5xx, timeouts and connection errors "
                             "(exponential backoff with jitter, Retry-After honoured).")
    dtype: str = Field("auto", description="vllm backend: weights dtype ('auto': float32 on CPU, the model's on GPU).")
    max_model_len: int | None = Field(None, ge=1, description="vllm backend: context length (unset: the model's).")
    max_num_seqs: int | None = Field(
        None, ge=1, description="vllm backend: sequences batched at once (unset: vLLM's default).")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm backend on GPU: share of GPU memory for weights and KV cache.")
    kv_cache_gb: float = Field(2.0, gt=0, description="vllm backend on CPU: GiB of RAM for the KV cache.")
    prefix_window: int = Field(
        4096, ge=1, description="Requests read ahead and grouped by prefix_key (e.g. the document), so requests that "
                                "share a long prefix run together and hit the prefix cache; 1 keeps the given order.")
    prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million prompt/completion tokens by model name, for live cost and plans "
                    "(models not listed are free).")
