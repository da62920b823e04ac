"""Prompt-token counts before a request is sent: exact with the model's tokenizer (chat template
applied), otherwise estimated at ~4 characters per token (hosted models whose tokenizer is not local)."""

from __future__ import annotations

from collections.abc import Callable

from synthcpt.engine.settings import EngineSettings
from synthcpt.engine.types import Request
from synthcpt.errors import SynthcptError

CHARS_PER_TOKEN = 4


def prompt_counter(settings: EngineSettings) -> tuple[Callable[[Request], int], bool]:
    """A function counting a request's prompt tokens, and whether its counts are exact."""
    tokenizer = _local_tokenizer(settings)
    if tokenizer is None:
        return _estimate, False

    def count(request: Request) -> int:
        if request.prompt is not None:
            return len(tokenizer(request.prompt, add_special_tokens=True)["input_ids"])
        text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count, True


def text_tokenizer(settings: EngineSettings, stage: str):
    """The tokenizer that counts and cuts the corpus's and the synthetic texts' tokens: the engine's
    (`engine.tokenizer`, else the model's), else, for a hosted model without a local tokenizer, the
    embedded model's, with one line saying so. An `engine.tokenizer` that cannot load is an error."""
    from synthcpt.models import DEFAULT_MODEL, load_tokenizer
    from synthcpt.progress import console

    tokenizer = _local_tokenizer(settings)
    if tokenizer is None:
        console.print(f"[yellow]{stage}: no local tokenizer for {settings.model}; tokens are counted with the "
                      "embedded model's (set engine.tokenizer for exact counts)")
        return load_tokenizer(DEFAULT_MODEL)
    return tokenizer


def _local_tokenizer(settings: EngineSettings):
    """The engine's tokenizer, or None when the model has none here (a hosted model's name); an
    `engine.tokenizer` that cannot load is an error."""
    from synthcpt.models import load_tokenizer

    try:
        return load_tokenizer(settings.tokenizer or settings.model)
    except SynthcptError:
        if settings.tokenizer:
            raise
        return None


def _estimate(request: Request) -> int:
    text = request.prompt if request.prompt is not None else "".join(m["content"] for m in request.messages or ())
    return len(text) // CHARS_PER_TOKEN + 1
