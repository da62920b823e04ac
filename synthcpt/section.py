"""The base class of every settings section: config sections and the nested sections of plugins.

A leaf module (it imports nothing of synthcpt), so any module can declare settings without an import
cycle through the config, the pipeline or the engine.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
