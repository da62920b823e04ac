"""One pydantic config for the whole pipeline, assembled from the stage sections.

The non-stage sections are `run` (here) and `engine` (`synthcpt.engine.settings`); every stage contributes its own
section (its `Stage.settings`), so a new stage adds its settings without touching this file. Plugins nest their
sections inside these (`engine.openai`, `generate.wrap`), so the model is rebuilt when a plugin is registered.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from synthcpt import plugins
from synthcpt.engine.settings import engine_settings
from synthcpt.errors import SynthcptError
from synthcpt.pipeline import STAGES
from synthcpt.run_folder import RunSettings
from synthcpt.section import Section


def _stage_sections() -> dict[str, Any]:
    sections = {}
    for stage in STAGES:
        settings = stage.settings_class()
        sections[stage.name] = (settings, Field(default_factory=settings, description=stage.help))
    return sections


@lru_cache(maxsize=4)
def _config_model(generation: int) -> type[BaseModel]:
    engine = engine_settings()
    return create_model(
        "Config",
        __config__=ConfigDict(extra="forbid", validate_assignment=True),
        run=(RunSettings, Field(default_factory=RunSettings, description=RunSettings.__doc__)),
        engine=(engine, Field(default_factory=engine, description=engine.__doc__)),
        **_stage_sections(),
    )


def config_model() -> type[BaseModel]:
    """The Config class: `run`, `engine`, then one section per stage in pipeline order."""
    return _config_model(plugins.generation())


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown setting '{key}'")
        else:
            parts.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
    return "invalid config: " + "; ".join(parts)


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise SynthcptError(f"--set expects section.key=value, got {assignment!r}")
    path = key.strip().split(".")
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SynthcptError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    try:
        node[path[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        node[path[-1]] = raw


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SynthcptError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SynthcptError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise SynthcptError(f"{path}: the config must be a mapping of sections")
    return loaded or {}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_sections else value
    return merged


def load_config(path: Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                preset: str | None = None) -> Any:
    """The config: defaults, then a preset, then the YAML file, then `--set` overrides."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in preset_names():
            raise SynthcptError(f"unknown preset '{preset}' (presets: {', '.join(preset_names())})")
        data = _read_yaml(PRESETS_DIR / f"{preset}.yaml")
    if path is not None:
        data = _merge(data, _read_yaml(path))
    for assignment in overrides:
        _apply_override(data, assignment)
    try:
        return config_model().model_validate(data)
    except ValidationError as e:
        raise SynthcptError(_format_validation_error(e)) from None


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("\n...")


def commented_config(config: BaseModel | None = None) -> str:
    """A config as YAML (the defaults when None), every section and key preceded by its description."""
    config = config or config_model()()
    lines = ["# synthcpt config. Every key is optional; a key left out takes its default.",
             "# Override any key on the command line: --set section.key=value", ""]
    for section_name, section_field in type(config).model_fields.items():
        lines.append(f"# {section_field.description or section_name}")
        lines += _commented_section(section_name, getattr(config, section_name), "")
        lines.append("")
    return "\n".join(lines) + "\n"


def _commented_section(name: str, section: BaseModel, indent: str) -> list[str]:
    """A section's keys, each after its description; nested sections (a plugin's settings) indented."""
    if not type(section).model_fields:  # a plugin without settings of its own
        return [f"{indent}{name}: {{}}"]
    lines = [f"{indent}{name}:"]
    values = section.model_dump(mode="json")
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, Section):
            lines.append(f"{indent}  # {(field.description or key).splitlines()[0]}")
            lines += _commented_section(key, value, indent + "  ")
            continue
        if field.description:
            lines.append(f"{indent}  # {field.description}")
        lines.append(f"{indent}  {key}: {_yaml_value(values[key])}")
    return lines
