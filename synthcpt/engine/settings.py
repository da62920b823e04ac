"""Settings of the generation engine (the `engine` section of the config)."""

from __future__ import annotations

from pydantic import Field

from synthcpt.config import Section


class EngineSettings(Section):
    """The generation engine every LLM call goes through."""

    model: str = Field(
        "default",
        description="Generator model: 'default' (embedded SmolLM2-135M-Instruct), an HF folder or a hub id.",
    )
