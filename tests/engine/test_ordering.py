"""Prefix-aware order: grouping within a bounded read-ahead window."""

from __future__ import annotations

from synthcpt.engine.ordering import prefix_grouped
from synthcpt.engine.types import Request


def requests(keys):
    return [Request(prompt=f"{key}-{i}", prefix_key=key, metadata={"i": i}) for i, key in enumerate(keys)]


def test_groups_by_prefix_in_order_of_first_appearance():
    given = requests(["a", "b", "a", None, "c", "b", "a"])
    out = list(prefix_grouped(given, window=100))
    assert [r.prefix_key for r in out] == ["a", "a", "a", "b", "b", None, "c"]
    assert sorted(r.metadata["i"] for r in out) == list(range(7))
    # within a group the given order is kept
    assert [r.metadata["i"] for r in out if r.prefix_key == "a"] == [0, 2, 6]


def test_reads_lazily_one_window_ahead():
    pulled = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield Request(prompt=str(i), prefix_key=str(i % 2))

    out = prefix_grouped(source(), window=4)
    first = next(out)
    assert first.prompt == "0" and len(pulled) == 4  # nothing beyond the first window was read
    rest = [first, *out]
    assert [r.prompt for r in rest] == ["0", "2", "1", "3", "4", "6", "5", "7", "8", "9"]


def test_window_of_one_keeps_the_given_order():
    given = requests(["a", "b", "a", "b"])
    assert [r.metadata["i"] for r in prefix_grouped(given, window=1)] == [0, 1, 2, 3]
