"""Run-folder files: writes that never leave a half-written file (write beside the target, fsync, then
rename over it), and the parquet records the stages exchange, read back."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_model(target: Path, model: BaseModel) -> None:
    """A pydantic model as indented JSON (a stage's stats, the manifest), atomically."""
    write_text(target, model.model_dump_json(indent=2) + "\n")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# A record schema: column -> Arrow type name ("string", "int64", "float64"), or [name] for a list of them.
# Plain data, so that the modules declaring one do not import `datasets` (seconds on every CLI start).
Schema = dict[str, str | list[str]]


def features(schema: Schema):
    """The `datasets.Features` of a schema."""
    import datasets

    def column(kind):
        return datasets.Sequence(datasets.Value(kind[0])) if isinstance(kind, list) else datasets.Value(kind)

    return datasets.Features({name: column(kind) for name, kind in schema.items()})


def write_records(target: Path, records: list[dict[str, Any]], schema: Schema | None = None) -> None:
    """Write records as a parquet file through `datasets` (the format every stage exchanges).

    `schema` fixes the columns and their types, so an empty file still has its columns.
    """
    import datasets

    datasets.disable_progress_bars()  # one bar per small file would interleave with the stage's own progress
    if schema is None:
        dataset = datasets.Dataset.from_list(records)
    else:
        dataset = datasets.Dataset.from_dict({k: [r[k] for r in records] for k in schema}, features=features(schema))
    with atomic_path(target) as tmp:
        dataset.to_parquet(str(tmp))


def read_records(*paths: Path | str) -> list[dict[str, Any]]:
    """The rows of parquet files, in memory. Unlike `datasets.Dataset.from_parquet`, this reads files
    with no rows and leaves no cache copy behind."""
    import pyarrow.parquet as pq

    return [row for path in paths for row in pq.read_table(path).to_pylist()]
