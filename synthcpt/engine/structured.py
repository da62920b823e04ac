"""Structured output: a pydantic model is both the JSON schema a request is held to and the validation
of its answer, so no plugin writes a schema by hand.

The schema is inlined (no `$defs`/`$ref`) and carries no titles: the form every engine (vLLM's
structured outputs, OpenAI's `response_format`) accepts, and a stable part of the cache key.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inline(definitions[node["$ref"].rsplit("/", 1)[-1]], definitions)
    schema = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":  # names of fields, each mapped to a schema: keep the names
            schema[key] = {name: _inline(sub, definitions) for name, sub in value.items()}
        else:
            schema[key] = _inline(value, definitions)
    return schema


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, inlined and without titles."""
    raw = model.model_json_schema()
    return _inline(raw, raw.get("$defs", {}))


def validated(model: type[M], parsed: list[Any] | None) -> M | None:
    """The first parsed answer as a `model` instance, or None when it is missing or invalid."""
    if not parsed:
        return None
    try:
        return model.model_validate(parsed[0])
    except ValidationError:
        return None
