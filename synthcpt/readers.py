"""Readers for every supported input: they yield raw documents or report a bad input with its reason.

A bad input is a `BadInput` (file, reason); the stage fails on the first one or skips and counts
it, as `ingest.on_error` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthcpt.leval import Question, is_leval, parse_question

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED = "text (.txt .md), .jsonl, .parquet, a saved HF dataset folder, or L-Eval .jsonl"


@dataclass
class RawDocument:
    text: str
    source: str
    title: str | None = None
    given_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    dropped_questions: int = 0


@dataclass(frozen=True)
class BadInput:
    source: str
    reason: str
    kind: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Fields:
    text: str
    title: str | None
    id: str | None
    max_bytes: int


Item = RawDocument | BadInput


def _too_large(source: str, size: int, fields: Fields) -> BadInput:
    return BadInput(source, f"document of {size / 1e6:.1f} MB is over ingest.max_document_mb="
                            f"{fields.max_bytes / 1e6:g}", "too_large")


def _decode(path: Path, data: bytes) -> str | BadInput:
    if b"\x00" in data[:8192]:
        return BadInput(str(path), "binary file, not text", "binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadInput(str(path), f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})", "encoding")


def read_text_file(path: Path, fields: Fields) -> Iterator[Item]:
    size = path.stat().st_size
    if size > fields.max_bytes:
        yield _too_large(str(path), size, fields)
        return
    text = _decode(path, path.read_bytes())
    if isinstance(text, BadInput):
        yield text
        return
    yield RawDocument(text=text, source=str(path), metadata={"file": path.name})


def _record_document(record: dict, source: str, fields: Fields) -> Item:
    if is_leval(record):
        return _leval_document(record, source)
    text = record.get(fields.text)
    if text is None:
        return BadInput(source, f"no '{fields.text}' field (set ingest.text_field)", "missing_field")
    if not isinstance(text, str):
        return BadInput(source, f"field '{fields.text}' is {type(text).__name__}, not text", "missing_field")
    if len(text.encode("utf-8")) > fields.max_bytes:
        return _too_large(source, len(text.encode("utf-8")), fields)
    title = record.get(fields.title) if fields.title else None
    given_id = record.get(fields.id) if fields.id else None
    used = {fields.text, fields.title, fields.id}
    metadata = {k: v for k, v in record.items() if k not in used and isinstance(v, (str, int, float, bool))}
    return RawDocument(text=text, source=source, title=str(title) if title else None,
                       given_id=str(given_id) if given_id is not None else None, metadata=metadata)


def _leval_document(record: dict, source: str) -> RawDocument:
    questions, dropped = [], 0
    for instruction, output in zip(record.get("instructions") or [], record.get("outputs") or []):
        parsed = parse_question(str(instruction), str(output))
        if parsed is None:
            dropped += 1
        else:
            questions.append(parsed)
    metadata = {k: record[k] for k in ("source", "evaluation") if isinstance(record.get(k), str)}
    return RawDocument(text=str(record["input"]), source=source, metadata=metadata,
                       questions=questions, dropped_questions=dropped)


def read_jsonl(path: Path, fields: Fields) -> Iterator[Item]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            source = f"{path}:{number}"
            line = _decode(path, raw)
            if isinstance(line, BadInput):
                yield BadInput(source, line.reason, line.kind)
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield BadInput(source, f"not valid JSON ({e.msg})", "bad_json")
                continue
            if not isinstance(record, dict):
                yield BadInput(source, "a JSONL line must be a JSON object", "bad_json")
                continue
            yield _record_document(record, source, fields)


def _read_table(rows: Any, source: str, fields: Fields) -> Iterator[Item]:
    for index, record in enumerate(rows):
        yield _record_document(record, f"{source}[{index}]", fields)


def read_parquet(path: Path, fields: Fields) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a file that is not parquet
        yield BadInput(str(path), f"not a readable parquet file ({str(e).splitlines()[0]})", "unreadable")
        return
    for batch in table.iter_batches(batch_size=256):
        yield from _read_table(batch.to_pylist(), str(path), fields)


def read_hf_folder(path: Path, fields: Fields) -> Iterator[Item]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - datasets raises several types for a folder it cannot read
        yield BadInput(str(path), f"not a readable saved dataset ({str(e).splitlines()[0]})", "unreadable")
        return
    splits = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    for split, dataset in splits:
        yield from _read_table(dataset, f"{path}{'/' + split if split else ''}", fields)


def is_hf_dataset_folder(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


def read_path(path: Path, fields: Fields) -> Iterator[Item]:
    """Every document under `path` (a file or a folder, read recursively in sorted order)."""
    if not path.exists():
        yield BadInput(str(path), "path not found", "missing")
    elif path.is_dir() and is_hf_dataset_folder(path):
        yield from read_hf_folder(path, fields)
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            yield BadInput(str(path), "empty folder: no documents", "empty_folder")
        for file in files:
            yield from read_file(file, fields)
    else:
        yield from read_file(path, fields)


def read_file(path: Path, fields: Fields) -> Iterator[Item]:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        yield from read_text_file(path, fields)
    elif suffix == ".jsonl":
        yield from read_jsonl(path, fields)
    elif suffix == ".parquet":
        yield from read_parquet(path, fields)
    else:
        yield BadInput(str(path), f"unsupported file type '{suffix or path.name}' (supported: {SUPPORTED})",
                       "unsupported")
