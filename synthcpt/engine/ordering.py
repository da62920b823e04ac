"""Prefix-aware order: requests that share a `prefix_key` (e.g. one long document with dozens of
entity pairs) are sent together, so the document's KV blocks are computed once and reused while
they are still in the prefix cache, instead of being evicted by other documents in between."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from synthcpt.engine.types import Request

R = TypeVar("R", bound=Request)


def prefix_grouped(requests: Iterable[R], window: int) -> Iterator[R]:
    """Read `window` requests at a time and emit each window grouped by prefix_key, groups in order
    of first appearance. Memory holds one window; requests without a key keep their place."""
    iterator = iter(requests)
    while chunk := list(islice(iterator, window)):
        groups: dict[object, list[R]] = {}
        for request in chunk:
            key = request.prefix_key if request.prefix_key is not None else object()
            groups.setdefault(key, []).append(request)
        for group in groups.values():
            yield from group
