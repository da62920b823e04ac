"""How a text becomes a document of a run: normalised text, title, author and id. The ingest stage and
evaluation question files that name the same documents (L-Eval) must agree on them, so both use these."""

from __future__ import annotations

import hashlib
import re
import unicodedata

AUTHOR_LINE = re.compile(r"^\s*by\s+(.{2,80}?)\s*$", re.IGNORECASE)
MAX_TITLE_CHARS = 120
SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def normalise(text: str, form: str) -> str:
    text = unicodedata.normalize(form, text.removeprefix("\ufeff"))
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def derive_title(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.lstrip("#").split())
        if line:
            return line[:MAX_TITLE_CHARS]
    return ""


def derive_author(text: str) -> str | None:
    """The "By NAME" line of a story's header (QuALITY and Gutenberg stories carry one)."""
    lines = [" ".join(line.split()) for line in text.splitlines()[:20] if line.strip()][:5]
    for i, line in enumerate(lines[1:], start=1):
        if line.lower() == "by" and i + 1 < len(lines):
            line = f"By {lines[i + 1]}"
        match = AUTHOR_LINE.match(line)
        if match:
            return match.group(1)
    return None


def document_id(given_id: str | None, text: str) -> str:
    if given_id:
        return SAFE_ID.sub("-", given_id).strip("-") or hashlib.sha1(text.encode()).hexdigest()[:12]
    return "doc-" + hashlib.sha1(text.encode()).hexdigest()[:12]
