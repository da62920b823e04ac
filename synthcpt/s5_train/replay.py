"""Replay text: general documents mixed into training to limit forgetting, with a held-out part on
which evaluation measures forgetting (perplexity before and after training)."""

from __future__ import annotations

import random
from pathlib import Path

from synthcpt.errors import SynthcptError

MAX_REPLAY_DOCUMENT_BYTES = 100_000_000


def read_texts(path: Path) -> list[str]:
    """The distinct documents of a local text dataset (any input ingest reads: .jsonl/.parquet `text`,
    .txt, folders), in order; a repeated document is kept once, so it cannot be both trained on and
    held out."""
    from synthcpt.s1_ingest.readers import BadInput, Fields, read_path

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


def split_replay(path: Path | str, heldout_share: float, seed: int) -> tuple[list[str], list[str]]:
    """Split the replay documents into (train, held-out), deterministically for a seed.

    At least one document is held out when `heldout_share` > 0 and there are two or more, so the
    forgetting measurement always has text; the training part is never empty.
    """
    texts = read_texts(Path(path))
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
