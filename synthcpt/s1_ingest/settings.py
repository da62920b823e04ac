"""The ingest stage's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from synthcpt.section import Section


class IngestSettings(Section):
    inputs: list[Path] = Field(default_factory=list, description="Files or folders to read: .txt/.md, .jsonl, "
                               ".parquet, saved HF dataset folders, L-Eval .jsonl (questions kept for evaluation).")
    text_field: str = Field("text", description="Field holding the text in .jsonl / .parquet / dataset inputs.")
    title_field: str | None = Field("title", description="Field holding the title (else the first line is used).")
    id_field: str | None = Field("id", description="Field holding a document id (else an id from the content).")
    on_error: Literal["fail", "skip"] = Field("fail", description="On a bad input: stop with its reason, or "
                                              "skip it and count it.")
    max_document_mb: float = Field(10.0, gt=0, description="Largest document accepted, in MB.")
    unicode_form: Literal["NFC", "NFKC"] = Field("NFC", description="Unicode normalisation of every text.")
    deduplicate: bool = Field(True, description="Drop documents whose normalised text was seen before.")
    chunk_tokens: int = Field(300, gt=0, description="Token window of the sentence-aware chunks "
                              "(WRAP rephrases ~300-token chunks).")
