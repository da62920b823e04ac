from collections import Counter
from types import SimpleNamespace

import pytest

from synthcpt.entity_names import clean_surface, entity_key
from synthcpt.s2_entities.extract import document_entities
from synthcpt.s2_entities.normalize import (
    Candidate,
    is_junk,
    merge_aliases,
    merge_candidates,
    merge_plurals,
)


@pytest.mark.parametrize("raw, clean", [
    ("  the   Aphrodite\u2019s ", "Aphrodite"),
    ("\u201cSpace   Navy\u201d", "Space Navy"),
    ("An old man...", "old man"),
    ("Strykalski.", "Strykalski"),
    ("David Farragut Strykalski, Jr.", "David Farragut Strykalski, Jr."),
    ("U.S.", "U.S."),
    ("(Granite City)", "Granite City"),
    ("Cob Whitley's", "Cob Whitley"),
    ("the Tr'en", "Tr'en"),
])
def test_clean_surface(raw, clean):
    assert clean_surface(raw) == clean


def test_keys_fold_case_quotes_and_honorifics():
    assert entity_key("Marshal Thompson") == entity_key("THOMPSON") == entity_key("Mr. Thompson") == "thompson"
    assert entity_key("Tr\u2019en") == entity_key("tr'en")
    assert entity_key("Mr.") == "mr"  # an honorific alone stays itself


@pytest.mark.parametrize("surface, reason", [
    ("he", "function_words"), ("They", "function_words"), ("1952", "number"), ("forty-two", "number"),
    ("3,000", "number"), ("x", "too_short"), ("A.", "too_short"), ("one two three four five six seven eight nine",
                                                                   "too_long"),
    ("Korvin", None), ("Catch-22", None), ("old man", None),
])
def test_junk(surface, reason):
    assert is_junk(clean_surface(surface)) == reason


def test_merge_candidates_groups_by_key_and_names_by_count():
    junk = Counter()
    merged = merge_candidates([Candidate("the Ruler", "ORG", 3, "spacy"), Candidate("Ruler", "PROPN", 5, "spacy"),
                               Candidate("ruler", "", 1, "llm"), Candidate("it", "", 4, "llm"),
                               Candidate("42", "CARDINAL", 1, "spacy")], junk)
    assert list(merged) == ["ruler"]
    ruler = merged["ruler"]
    assert ruler.name == "Ruler" and ruler.seen == 9
    assert ruler.type == "ORG"  # a named-entity label beats the generic kinds
    assert ruler.extractors == {"spacy", "llm"}
    assert junk == Counter({"function_words": 1, "number": 1})


def _entities(*names_and_types):
    return merge_candidates([Candidate(n, t, 1, "spacy") for n, t in names_and_types], Counter())


def test_surname_folds_into_the_one_full_name():
    entities = _entities(("David Farragut Strykalski", "PERSON"), ("Strykalski", "PERSON"), ("Cob", "PERSON"),
                         ("Cob Whitley", "PERSON"), ("ship", "NOUN"))
    assert merge_aliases(entities) == 2
    assert set(entities) == {"david farragut strykalski", "cob whitley", "ship"}
    assert entities["david farragut strykalski"].aliases == {"David Farragut Strykalski", "Strykalski"}


def test_only_people_fold_by_first_name():
    entities = _entities(("Tr'en Korvin", "PERSON"), ("Tr'en", "NORP"), ("Korvin", "PERSON"))
    assert merge_aliases(entities) == 1
    assert set(entities) == {"tr'en korvin", "tr'en"}


def test_ambiguous_surname_is_left_alone():
    entities = _entities(("Ivy Hendricks", "PERSON"), ("Harlan Hendricks", "PERSON"), ("Hendricks", "PERSON"))
    assert merge_aliases(entities) == 0
    assert "hendricks" in entities


def test_plurals_fold_into_the_singular():
    entities = _entities(("ship", "NOUN"), ("ships", "NOUN"), ("boxes", "NOUN"), ("box", "NOUN"),
                         ("glass", "NOUN"), ("Mars", "LOC"), ("Mar", "PERSON"))
    assert merge_plurals(entities) == 2
    assert set(entities) == {"ship", "box", "glass", "mars", "mar"}  # names are never plurals
    assert entities["ship"].aliases == {"ship", "ships"} and entities["ship"].seen == 2


def test_common_nouns_are_not_aliases():
    entities = _entities(("space ship", "NOUN"), ("ship", "NOUN"))
    assert merge_aliases(entities) == 0


SETTINGS = SimpleNamespace(spacy=SimpleNamespace(min_phrase_mentions=2), require_mention=True,
                           max_entities_per_document=3)
TEXT = ("Korvin met the Ruler. Korvin lied to the Ruler about the ship. Korvin left. The Ruler stayed. "
        "Didyak watched the ship. The machine hummed.")


def test_document_entities_ground_rank_and_cap():
    counts = Counter()
    candidates = [Candidate("Korvin", "PERSON", 3, "spacy"), Candidate("Ruler", "ORG", 3, "spacy"),
                  Candidate("Didyak", "PERSON", 1, "spacy"), Candidate("ship", "NOUN", 2, "spacy"),
                  Candidate("machine", "NOUN", 1, "spacy"),  # a phrase seen once: not salient
                  Candidate("Mars", "", 1, "llm")]  # not in the text: an invention
    rows = document_entities(TEXT, candidates, SETTINGS, counts)
    assert [r["entity"] for r in rows] == ["Korvin", "Ruler", "Didyak"]
    assert [r["mentions"] for r in rows] == [3, 3, 1]
    assert rows[0]["salience"] == 1.0 and all(0 < r["salience"] <= 1 for r in rows)
    assert counts["rare_phrase"] == 1 and counts["not_in_text"] == 1 and counts["over_cap"] == 1


def test_the_llms_concepts_are_kept_without_a_literal_mention():
    concept = Candidate("the cost of deception", "", 1, "llm")  # a theme the story never names
    default = SimpleNamespace(spacy=SETTINGS.spacy, require_mention=False, max_entities_per_document=10)
    rows = document_entities(TEXT, [Candidate("Korvin", "PERSON", 3, "spacy"), concept], default, Counter())
    assert [r["entity"] for r in rows] == ["Korvin", "cost of deception"] and rows[1]["mentions"] == 0
    strict = document_entities(TEXT, [concept], SETTINGS, Counter())
    assert strict == []


def test_mentions_do_not_depend_on_the_order_of_an_entitys_forms():
    """An entity's forms come from a set, whose order changes from one process to the next: the counts
    must not (a noun seen capitalised at a sentence start is still matched in lower case)."""
    from synthcpt.mentions import MentionMatcher

    text = "Space was dark. The ship crossed space, then more spaces. Will said he will go. WILL waved."
    forward = MentionMatcher({"space": ["Space", "space"], "will": ["Will"], "ship": ["ship"]}).counts(text)
    backward = MentionMatcher({"space": ["space", "Space"], "will": ["Will"], "ship": ["ship"]}).counts(text)
    assert forward == backward == {"space": 3, "will": 2, "ship": 1}
    # A lower-case form owned by another entity's name stays out: "he will" is not the person Will.
    assert MentionMatcher({"will": ["Will"], "will-noun": ["will"]}).counts(text) == {"will": 2}
