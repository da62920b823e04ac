"""Synthetic records: their schema, ids, token counts, and parquet shards written atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthcpt.atomic import Schema, read_records, write_records

RECORD_SCHEMA: Schema = {
    "id": "string", "text": "string", "generator": "string", "style": "string", "doc_id": "string",
    "entities": ["string"], "prompt_file": "string", "prompt_hash": "string", "model": "string",
    "n_tokens": "int64", "question": "string", "chunk_id": "string", "upstream_prompt_hash": "string",
}
# The last three: the question a record answers or is focused on (qa, focal), the chunk of the
# corpus it was written from, and the prompt of the first step a two-step generator built its request
# from (focal: the question's; Active Reading: the strategy list's); empty where they do not apply.
INSTRUCTION_SCHEMA: Schema = {
    "id": "string", "instruction": "string", "response": "string", "task_type": "string", "doc_id": "string",
}


def record_id(generator: str, *key: Any) -> str:
    """A stable id from what identifies the record (its source, style, sample...), not its text."""
    digest = hashlib.sha256("\0".join(str(k) for k in key).encode()).hexdigest()[:16]
    return f"{generator}-{digest}"


def make_record(*, id: str, text: str, generator: str, style: str, doc_id: str, entities: Iterable[str] = (),
                prompt_file: str = "", prompt_hash: str = "", model: str = "", n_tokens: int = 0,
                question: str = "", chunk_id: str = "", upstream_prompt_hash: str = "") -> dict[str, Any]:
    return {"id": id, "text": text, "generator": generator, "style": style, "doc_id": doc_id,
            "entities": list(entities), "prompt_file": prompt_file, "prompt_hash": prompt_hash, "model": model,
            "n_tokens": n_tokens, "question": question, "chunk_id": chunk_id,
            "upstream_prompt_hash": upstream_prompt_hash}


def count_tokens(tokenizer, texts: list[str], batch: int = 256) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(texts[start:start + batch], add_special_tokens=False)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    return counts


def write_shards(folder: Path, records: list[dict[str, Any]], schema: Schema, shard_records: int) -> int:
    """Replace `folder` by parquet shards of `records`: written beside it, then swapped in whole, so a
    reader sees the old shards or the new ones, never a mixture. Returns the number of shards."""
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    starts = range(0, len(records), shard_records) if records else [0]
    for number, start in enumerate(starts):
        write_records(staging / f"part-{number:05d}.parquet", records[start:start + shard_records], schema)
    retired = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if folder.exists():
        os.replace(folder, retired)
    os.replace(staging, folder)
    shutil.rmtree(retired, ignore_errors=True)
    return len(starts)


def read_shards(folder: Path) -> list[dict[str, Any]]:
    """The records of all shards of an output folder, in shard order."""
    return read_records(*sorted(folder.glob("part-*.parquet")))
