"""The one prompt loader: every stage's prompt files, found by name, overridden, hashed and rendered.

Prompt files live in the project's top-level `prompts/`, shipped inside the package as
`synthcpt/shipped_prompts` (a link in the source tree, real files in the wheel) and read with
importlib.resources, so an installed wheel finds them as a checkout does. A user's `run.prompts_dir`
replaces any of them by the same relative name. A prompt is rendered by replacing `{{name}}`
placeholders, so documents and JSON examples may hold any braces. Each stage's fingerprint holds the
hash of every prompt it uses, so editing one redoes that stage and the stages after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from synthcpt.errors import SynthcptError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def shipped() -> Traversable:
    return resources.files("synthcpt") / "shipped_prompts"


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render_template(template: str, values: dict[str, str], where: str) -> str:
    """`template` with each `{{name}}` replaced by `values[name]`; `where` names it in the error."""
    missing = placeholders(template) - values.keys()
    if missing:
        raise SynthcptError(f"prompt {where} needs values for {', '.join(sorted(missing))}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


@dataclass(frozen=True)
class Prompt:
    name: str  # relative to the prompts folder, e.g. "wrap/easy.md"
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def fields(self) -> set[str]:
        return placeholders(self.text)

    def render(self, **values: str) -> str:
        return render_template(self.text, values, self.name)


def _source(name: str, override_dir: Path | None) -> Traversable | Path:
    if override_dir is not None and (Path(override_dir) / name).is_file():
        return Path(override_dir) / name
    return shipped().joinpath(*name.split("/"))


def load_prompt(name: str, override_dir: Path | None = None) -> Prompt:
    source = _source(name, override_dir)
    if not source.is_file():
        raise SynthcptError(f"prompt file not found: {name} (neither in {override_dir} nor shipped)"
                            if override_dir else f"prompt file not found: {name}")
    return Prompt(name, source.read_text(encoding="utf-8"))


def prompts_fingerprint(names: Iterable[str], override_dir: Path | None) -> str:
    """Digest of the named prompt files as they will be read (override or shipped)."""
    digest = hashlib.sha256()
    for name in sorted(set(names)):
        source = _source(name, override_dir)
        digest.update(name.encode() + b"\0" + (source.read_bytes() if source.is_file() else b"missing") + b"\0")
    return digest.hexdigest()[:16]
