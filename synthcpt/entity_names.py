"""Entity names in one canonical form: the display form of a surface form, and the key two forms share
when they name the same thing. Shared by the stages that find entities (entities), join them (graph) and
look for them in text (mentions)."""

from __future__ import annotations

import re
import unicodedata

QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
                        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
                        "\u00ab": '"', "\u00bb": '"'})
LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
POSSESSIVE = re.compile(r"(?:'s|s')$", re.IGNORECASE)
LEADING_JUNK = re.compile(r"^[\W_]+")
TRAILING_JUNK = re.compile(r"[^\w.]+$|\.{2,}$")
# A final period that belongs to the word: "Jr.", "Dr.", "U.S.", "St."
ABBREVIATION = re.compile(r"(?:^|\s)(?:[A-Z][a-z]{0,2}|(?:\w\.)+\w)\.$")
# Honorifics and ranks in front of a name: "Mr. Harris" and "Harris" are the same person.
TITLE_WORDS = {"mr", "mrs", "ms", "miss", "mx", "dr", "doctor", "prof", "professor", "sir", "madam", "lady", "lord",
               "captain", "capt", "lieutenant", "lt", "commander", "cmdr", "colonel", "col", "general", "gen",
               "major", "sergeant", "sgt", "admiral", "marshal", "governor", "president", "senator", "judge",
               "father", "sister", "brother", "king", "queen", "prince", "princess", "uncle", "aunt"}


def clean_surface(text: str) -> str:
    """The display form of a name: NFKC, straight quotes, one space, no possessive or leading article,
    no punctuation at either end but the period of an abbreviation ("Jr.", "U.S.")."""
    text = " ".join(unicodedata.normalize("NFKC", text).translate(QUOTES).split())
    previous = None
    while text != previous:
        previous = text
        text = LEADING_JUNK.sub("", TRAILING_JUNK.sub("", text))
        if text.endswith(".") and not ABBREVIATION.search(text):
            text = text[:-1]
        text = LEADING_ARTICLE.sub("", POSSESSIVE.sub("", text))
    return text


def entity_key(surface: str) -> str:
    """The key two surface forms share when they name the same thing (case and honorifics folded)."""
    words = clean_surface(surface).casefold().replace(".", " ").split()
    while len(words) > 1 and words[0] in TITLE_WORDS:
        words = words[1:]
    return " ".join(words)
