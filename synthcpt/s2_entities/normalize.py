"""Entity names from any extractor into one canonical form per document.

A candidate's surface form is cleaned (Unicode, quotes, whitespace, possessives, leading articles),
junk is dropped (pronouns and other function words, numbers, single characters), candidates that
name the same thing are merged under one key (case-folded), and a surname alone is folded into the
full name when exactly one full name in the document ends (or starts) with it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from spacy.lang.en.lex_attrs import like_num
from spacy.lang.en.stop_words import STOP_WORDS

from synthcpt.entity_names import clean_surface, entity_key

MAX_WORDS = 8
MAX_CHARS = 80

# Types an extractor may give; the LLM's entities are untyped.
NAME_TYPES = {"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
              "LANGUAGE", "PROPN"}
GENERIC_TYPES = {"PROPN", "NOUN"}


def is_junk(surface: str) -> str | None:
    """Why a cleaned surface form is not an entity (None when it is one)."""
    words = surface.casefold().split()
    if not words or len(re.sub(r"\W", "", surface)) <= 1:
        return "too_short"
    if len(words) > MAX_WORDS or len(surface) > MAX_CHARS:
        return "too_long"
    if all(word in STOP_WORDS for word in words):
        return "function_words"
    parts = re.split(r"[\s-]+", surface.casefold().replace(",", ""))
    if all(like_num(part) or not re.search(r"[^\W\d_]", part) for part in parts):
        return "number"
    return None


@dataclass
class Candidate:
    """One entity of one document as an extractor saw it."""

    surface: str
    type: str = ""
    count: int = 1
    extractor: str = ""


@dataclass
class Entity:
    """A merged entity of a document: its best name, every surface form it was seen under, its type."""

    key: str
    name: str
    type: str
    aliases: set[str] = field(default_factory=set)
    extractors: set[str] = field(default_factory=set)
    seen: int = 0
    surface_counts: Counter = field(default_factory=Counter)


def merge_candidates(candidates: list[Candidate], junk: Counter) -> dict[str, Entity]:
    """Clean, filter and group a document's candidates by key; the most frequent surface form names
    the group. `junk` counts what was dropped, by reason."""
    entities: dict[str, Entity] = {}
    type_votes: dict[str, Counter] = {}
    for candidate in candidates:
        surface = clean_surface(candidate.surface)
        reason = is_junk(surface)
        if reason:
            junk[reason] += 1
            continue
        key = entity_key(surface)
        entity = entities.setdefault(key, Entity(key, surface, ""))
        entity.aliases.add(surface)
        entity.surface_counts[surface] += candidate.count
        entity.seen += candidate.count
        entity.extractors.add(candidate.extractor)
        if candidate.type:
            type_votes.setdefault(key, Counter())[candidate.type] += candidate.count
    for key, entity in entities.items():
        entity.name = _best_name(entity.surface_counts)
        votes = type_votes.get(key)
        # A named-entity label beats the generic noun-phrase kinds, whatever the counts.
        entity.type = max(votes, key=lambda t: (t not in GENERIC_TYPES, votes[t], t)) if votes else "OTHER"
    return entities


def merge_plurals(entities: dict[str, Entity]) -> int:
    """Fold a common noun's plural into its singular when both were found ("ships" into "ship")."""
    folded = 0
    for key in [k for k in entities if k.endswith("s") and entities[k].name == entities[k].name.lower()]:
        singular = next((s for s in (key[:-1], key[:-2]) if s in entities and s != key), None)
        if singular is not None:
            _absorb(entities[singular], entities.pop(key))
            folded += 1
    return folded


def _absorb(target: Entity, other: Entity) -> None:
    if target.type == "OTHER" and other.type != "OTHER":
        target.type = other.type
    target.aliases |= other.aliases
    target.extractors |= other.extractors
    target.seen += other.seen
    target.surface_counts.update(other.surface_counts)


def _best_name(counts: Counter) -> str:
    # Most seen first; then a form with capitals (a name as written) over a lower-cased one.
    return max(counts, key=lambda s: (counts[s], s != s.lower(), -len(s), s))


def _is_name(entity: Entity) -> bool:
    words = entity.name.split()
    return entity.type in NAME_TYPES | {"OTHER"} and all(w[:1].isupper() or not w[:1].isalpha() for w in words)


def merge_aliases(entities: dict[str, Entity]) -> int:
    """Fold a shorter name into the one longer name of the document that ends or starts with it
    ("Strykalski" into "David Farragut Strykalski"); left alone when two longer names could claim it.
    Returns the number of names folded."""
    names = [e for e in entities.values() if _is_name(e)]
    folded = 0
    for short in sorted(names, key=lambda e: len(e.key.split())):
        short_words = short.key.split()
        claims = [long for long in names if long is not short and long.key in entities
                  and len(long.key.split()) > len(short_words) and _affix(short, long)]
        if len(claims) != 1 or short.key not in entities:
            continue
        _absorb(claims[0], entities.pop(short.key))
        folded += 1
    return folded


def _affix(short: Entity, long: Entity) -> bool:
    """A surname ends the full name; a first name starts it, for people only ("Tr'en" is not "Tr'en Korvin")."""
    short_words, long_words = short.key.split(), long.key.split()
    if long_words[-len(short_words):] == short_words:
        return True
    return long_words[: len(short_words)] == short_words and short.type == long.type == "PERSON"
