"""Prompt files: found by name under `prompts/` (or the user's `generate.prompts_dir`), hashed for
provenance, rendered by replacing `{{name}}` placeholders (documents may hold any braces)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from synthcpt.errors import SynthcptError

SHIPPED = Path(__file__).resolve().parents[2] / "prompts"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class Prompt:
    name: str  # relative to the prompts folder, e.g. "wrap/easy.md"
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def fields(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.text))

    def render(self, **values: str) -> str:
        missing = self.fields - values.keys()
        if missing:
            raise SynthcptError(f"prompt {self.name} needs values for {', '.join(sorted(missing))}")
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], self.text)


def prompt_path(name: str, prompts_dir: Path | None) -> Path:
    if prompts_dir is not None and (Path(prompts_dir) / name).is_file():
        return Path(prompts_dir) / name
    return SHIPPED / name


def load_prompt(name: str, prompts_dir: Path | None = None) -> Prompt:
    path = prompt_path(name, prompts_dir)
    if not path.is_file():
        raise SynthcptError(f"prompt file not found: {path}")
    return Prompt(name, path.read_text(encoding="utf-8"))


def prompts_fingerprint(names: list[str], prompts_dir: Path | None) -> str:
    """Digest of the prompt files a config uses, so editing one invalidates the generated data."""
    digest = hashlib.sha256()
    for name in sorted(names):
        path = prompt_path(name, prompts_dir)
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing") + b"\0")
    return digest.hexdigest()[:16]
