"""Replay text: general documents mixed into training to limit forgetting, with a held-out part on
which evaluation measures forgetting (perplexity before and after training).

`train.replay_path` is a local file or folder, or else a hub dataset id (`name` or `name:config`),
streamed: only the first `max_documents` documents are read, never the whole dataset."""

from __future__ import annotations

import random
from pathlib import Path

from synthcpt.errors import SynthcptError

MAX_REPLAY_DOCUMENT_BYTES = 100_000_000


def streamed_texts(source: str, max_documents: int, field: str = "text") -> list[str]:
    """The first `max_documents` distinct texts of a dataset `load_dataset` streams: a hub id (`name` or
    `name:config`) or a local dataset folder laid out as a hub repository."""
    import datasets

    name, _, config = source.partition(":")
    try:
        stream = datasets.load_dataset(name, config or None, split="train", streaming=True)
    except Exception as e:  # noqa: BLE001 - datasets raises many types (not found, offline, bad config)
        raise SynthcptError(f"replay dataset {source!r} cannot be streamed: {str(e).splitlines()[0]}") from None
    texts: dict[str, None] = {}
    for row in stream:
        text = row.get(field)
        if isinstance(text, str) and text.strip():
            texts.setdefault(text)
        if len(texts) >= max_documents:
            break
    if not texts:
        raise SynthcptError(f"replay dataset {source!r} holds no '{field}' text")
    return list(texts)


LOCAL_SUFFIXES = {".jsonl", ".json", ".parquet", ".txt", ".md"}


def is_local(source: Path | str) -> bool:
    """A path on this machine (or one that means to be: a missing file is reported as such), not a hub id."""
    path = Path(source)
    return path.exists() or path.is_absolute() or str(source).startswith(".") or path.suffix in LOCAL_SUFFIXES


def replay_texts(source: Path | str, max_documents: int) -> list[str]:
    """The replay documents of a local path, or of a hub dataset id (streamed)."""
    return read_texts(Path(source)) if is_local(source) else streamed_texts(str(source), max_documents)


def read_texts(path: Path) -> list[str]:
    """The distinct documents of a local text dataset (any input ingest reads: .jsonl/.parquet `text`,
    .txt, folders), in order; a repeated document is kept once, so it cannot be both trained on and
    held out."""
    from synthcpt.readers import BadInput, Fields, read_path

    path = Path(path)
    if not path.exists():
        raise SynthcptError(f"replay data not found: {path}")
    fields = Fields(text="text", title=None, id=None, max_bytes=MAX_REPLAY_DOCUMENT_BYTES)
    texts = []
    for item in read_path(path, fields):
        if isinstance(item, BadInput):
            raise SynthcptError(f"replay data: {item}")
        if item.text.strip():
            texts.append(item.text)
    if not texts:
        raise SynthcptError(f"replay data {path} holds no text")
    return list(dict.fromkeys(texts))


def split_replay(path: Path | str, heldout_share: float, seed: int, max_documents: int = 20_000
                 ) -> tuple[list[str], list[str]]:
    """Split the replay documents into (train, held-out), deterministically for a seed.

    At least one document is held out when `heldout_share` > 0 and there are two or more, so the
    forgetting measurement always has text; the training part is never empty.
    """
    texts = replay_texts(path, max_documents)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_heldout = round(len(texts) * heldout_share)
    if heldout_share > 0 and len(texts) > 1:
        n_heldout = min(max(n_heldout, 1), len(texts) - 1)
    else:
        n_heldout = 0
    heldout = set(order[:n_heldout])
    return ([t for i, t in enumerate(texts) if i not in heldout],
            [t for i, t in enumerate(texts) if i in heldout])
