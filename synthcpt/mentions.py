"""Finding entities in text: every surface form of every entity, by regular expressions.

Used to count an entity's mentions in its document, to find which entities share a sentence (the
graph's edges) and which ones a synthetic passage talks about (coverage). Forms written with capitals
are names: they match as written (or in capitals, as in headings), so the person "Will" is not found
in "he will"; lower-case forms match in any case and in the plural.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from synthcpt.entity_names import QUOTES


def _alternation(forms: Iterable[str]) -> str:
    # Longest first, so a name is not cut short by a shorter one; ties by the text, so the pattern does
    # not depend on the order of a set (which changes from one process to the next).
    ordered = sorted(set(forms), key=lambda form: (-len(form), form))
    return "|".join(r"\s+".join(map(re.escape, form.split())) for form in ordered)


class MentionMatcher:
    def __init__(self, aliases: dict[str, Iterable[str]]):
        """`aliases`: entity key → its surface forms."""
        self.owner: dict[str, str] = {}
        names, common = [], []
        for key, forms in aliases.items():
            for form in sorted(forms):
                form = " ".join(form.translate(QUOTES).split())
                # A lower-case form another entity's name owns is left out: "will" is not the person Will.
                if not form or form == form.casefold() and self.owner.get(form, key) != key:
                    continue
                self.owner.setdefault(form.casefold(), key)
                if form == form.casefold():
                    common.append(form)
                else:
                    names.extend((form, form.upper()))
        self.patterns = []
        if names:
            self.patterns.append(re.compile(rf"(?<!\w)(?:{_alternation(names)})(?!\w)"))
        if common:
            self.patterns.append(re.compile(rf"(?<!\w)(?:{_alternation(common)})(?:e?s)?(?!\w)", re.IGNORECASE))

    def find(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, entity key) of every mention, left to right; of overlapping ones, the longest."""
        text = text.translate(QUOTES)
        spans = sorted((m.start(), -m.end(), m.group()) for p in self.patterns for m in p.finditer(text))
        reached = 0
        for start, negative_end, found in spans:
            if start < reached:
                continue
            key = self._key(" ".join(found.split()))
            if key is not None:
                reached = -negative_end
                yield start, reached, key

    def _key(self, found: str) -> str | None:
        folded = found.casefold()
        for form in (folded, folded[:-1], folded[:-2]):  # as found, then without a plural ending
            if form in self.owner:
                return self.owner[form]
        return None

    def counts(self, text: str) -> Counter:
        return Counter(key for _, _, key in self.find(text))

    def present(self, text: str) -> set[str]:
        return {key for _, _, key in self.find(text)}
