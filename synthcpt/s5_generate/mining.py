"""Pattern mining of reading-comprehension tasks from a passage (AdaptLLM), no LLM involved.

Consecutive sentences joined by a connective ("However, ...", "Therefore, ...", "In other words,
...") become natural-language-inference, cause-and-effect and paraphrase examples; sentences with
several of the document's keywords become word-to-text examples; "X is a ..." sentences become
definitions; the title (and a summary when the entities stage wrote one) become title/summary
tasks; split sentences become completion tasks. Each kind keeps at most `max_per_kind` examples,
drawn by a seeded generator, and is rendered through one of several templates.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from synthcpt.errors import SynthcptError
from synthcpt.prompts import render_template
from synthcpt.sentences import sentence_spans

# Connectives that open the second sentence of a pair, by what they say about the pair.
NLI_CONNECTIVES = {
    "entailment": ("therefore", "thus", "hence", "accordingly", "for this reason", "consequently"),
    "contradiction": ("however", "but", "nevertheless", "nonetheless", "on the contrary", "in contrast",
                      "conversely", "yet", "still"),
    "neutral": ("moreover", "furthermore", "additionally", "in addition", "besides", "also", "meanwhile"),
}
YES_NO = {"entailment": "Yes", "contradiction": "No", "neutral": "Maybe"}
CAUSE_CONNECTIVES = ("therefore", "thus", "hence", "consequently", "as a result", "so", "accordingly",
                     "because of this", "for this reason")
# "EFFECT because CAUSE": the cause follows the connective inside one sentence.
INNER_CAUSE = re.compile(r"^(?P<effect>.+?),?\s+(?:because|due to|since|owing to)\s+(?P<cause>.+)$", re.DOTALL)
PARAPHRASE_CONNECTIVES = ("in other words", "namely", "that is to say", "that is", "i.e.", "put differently",
                          "to put it another way", "to put it differently")
DEFINITION = re.compile(
    r"^(?P<term>(?:[A-Z][\w'-]*)(?:\s+[A-Z][\w'-]*){0,3}|(?:The|A|An)\s+[a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)\s+"
    r"(?:is|are|was|were)\s+(?:a|an|the|one of the)\s+\w", re.DOTALL)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
MIN_KEYWORD_CHARS = 5
KEYWORDS_PER_TASK = 3
KINDS = ("title", "summary", "word_to_text", "definition", "nli", "cause_effect", "paraphrase", "completion")


@dataclass(frozen=True)
class Templates:
    lead_ins: list[str]
    kinds: dict[str, list[dict[str, str]]]

    @classmethod
    def parse(cls, text: str, name: str) -> Templates:
        try:
            data = yaml.safe_load(text)
            lead_ins, kinds = list(data["lead_ins"]), dict(data["kinds"])
            for kind in KINDS:
                if not kinds.get(kind) or not all({"q", "a"} <= set(t) for t in kinds[kind]):
                    raise KeyError(kind)
        except (yaml.YAMLError, KeyError, TypeError) as e:
            raise SynthcptError(f"prompt {name}: needs lead_ins and q/a templates for every kind "
                                f"({', '.join(KINDS)}); problem at {e}") from None
        return cls(lead_ins, kinds)


@dataclass
class Example:
    kind: str
    values: dict[str, str]


@dataclass
class MinedPassage:
    text: str
    examples: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.examples.values())


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def split_sentences(text: str) -> list[str]:
    return [s for s in (" ".join(text[a:b].split()) for a, b in sentence_spans(text)) if s]


def _after_connective(sentence: str, connectives: tuple[str, ...]) -> tuple[str, str] | None:
    """(connective, rest) when the sentence opens with one of `connectives` followed by a comma or space."""
    lowered = sentence.lower()
    for connective in sorted(connectives, key=len, reverse=True):
        if lowered.startswith(connective) and len(sentence) > len(connective) and \
                sentence[len(connective)] in ", ":
            rest = sentence[len(connective):].lstrip(", ").strip()
            return connective, rest[:1].upper() + rest[1:]
    return None


def _sentence_pairs(sentences: list[str], connectives: tuple[str, ...], min_chars: int):
    for first, second in itertools.pairwise(sentences):
        found = _after_connective(second, connectives)
        if found and len(first) >= min_chars and len(found[1]) >= min_chars:
            yield first, found[1], found[0]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) == 1 else text


def _strip_end(text: str) -> str:
    return text.rstrip(" .!?;:")


def mine_nli(sentences: list[str], min_chars: int) -> list[Example]:
    examples = []
    for label, connectives in NLI_CONNECTIVES.items():
        for premise, hypothesis, _ in _sentence_pairs(sentences, connectives, min_chars):
            examples.append(Example("nli", {"premise": premise, "hypothesis": hypothesis, "label": label,
                                            "yes_no": YES_NO[label]}))
    return examples


def _cause_effect(cause: str, effect: str) -> Example:
    cause, effect = _strip_end(cause) + ".", _strip_end(effect) + "."
    return Example("cause_effect", {"cause": cause, "effect": effect, "cause_lower": _lower_first(_strip_end(cause)),
                                    "effect_lower": _lower_first(_strip_end(effect))})


def mine_cause_effect(sentences: list[str], min_chars: int) -> list[Example]:
    examples = [_cause_effect(cause, effect)
                for cause, effect, _ in _sentence_pairs(sentences, CAUSE_CONNECTIVES, min_chars)]
    for sentence in sentences:
        match = INNER_CAUSE.match(sentence)
        if match and len(match["effect"]) >= min_chars and len(match["cause"]) >= min_chars:
            cause = match["cause"][:1].upper() + match["cause"][1:]
            examples.append(_cause_effect(cause, match["effect"]))
    return examples


def mine_paraphrase(sentences: list[str], min_chars: int) -> list[Example]:
    return [Example("paraphrase", {"sentence1": first, "sentence2": second})
            for first, second, _ in _sentence_pairs(sentences, PARAPHRASE_CONNECTIVES, min_chars)]


def mine_definitions(sentences: list[str], min_chars: int) -> list[Example]:
    examples = []
    for sentence in sentences:
        match = DEFINITION.match(sentence)
        if match and len(sentence) >= min_chars:
            term = match["term"]
            term = _lower_first(term) if term.split()[0] in ("The", "A", "An") else term
            examples.append(Example("definition", {"term": term, "sentence": sentence}))
    return examples


def _keywords(sentence: str, entities: list[str]) -> list[str]:
    """The sentence's keywords, best first: the document's entities it mentions, then capitalised
    words inside the sentence (names), then longer content words (length stands in for rarity)."""
    lowered = sentence.lower()
    found = [e for e in entities if e.lower() in lowered]
    stop = _stop_words()
    words = []
    for word in WORD.findall(sentence):
        if len(word) >= MIN_KEYWORD_CHARS and word.lower() not in stop and \
                not any(word.lower() in f.lower() for f in found + words):
            words.append(word)
    words.sort(key=lambda w: (not (w[0].isupper() and not sentence.startswith(w)), -len(w)))
    return found + words


def mine_word_to_text(sentences: list[str], entities: list[str], min_chars: int) -> list[Example]:
    examples = []
    for sentence in sentences:
        if len(sentence) < min_chars:
            continue
        keywords = _keywords(sentence, entities)[:KEYWORDS_PER_TASK]
        if len(keywords) == KEYWORDS_PER_TASK:
            keywords.sort(key=lambda k: sentence.lower().find(k.lower()))
            examples.append(Example("word_to_text", {"keywords": ", ".join(keywords), "sentence": sentence}))
    return examples


def mine_completion(sentences: list[str], min_chars: int) -> list[Example]:
    examples = []
    for sentence in sentences:
        if len(sentence) < 2 * min_chars:
            continue
        middle = sentence.find(" ", len(sentence) // 2)
        if middle > 0:
            examples.append(Example("completion", {"beginning": sentence[:middle], "ending": sentence[middle + 1:]}))
    return examples


def mine_passage(text: str, title: str, summary: str | None, entities: list[str], min_chars: int,
                 max_per_kind: int, rng: random.Random) -> MinedPassage:
    """Every kind's candidates from one passage, `max_per_kind` of each drawn by `rng`."""
    sentences = split_sentences(text)
    candidates = {
        "title": [Example("title", {"title": title})] if title else [],
        "summary": [Example("summary", {"title": title, "summary": summary})] if summary else [],
        "word_to_text": mine_word_to_text(sentences, entities, min_chars),
        "definition": mine_definitions(sentences, min_chars),
        "nli": mine_nli(sentences, min_chars),
        "cause_effect": mine_cause_effect(sentences, min_chars),
        "paraphrase": mine_paraphrase(sentences, min_chars),
        "completion": mine_completion(sentences, min_chars),
    }
    mined = MinedPassage(text)
    for kind, found in candidates.items():
        if found:
            mined.examples[kind] = rng.sample(found, min(max_per_kind, len(found)))
    return mined


def render(mined: MinedPassage, templates: Templates, rng: random.Random) -> str:
    """The passage followed by a lead-in and one few-shot block per kind, blocks shuffled."""
    blocks = []
    for kind, examples in mined.examples.items():
        lines = []
        for example in examples:
            template = rng.choice(templates.kinds[kind])
            lines.append(_fill(template["q"], example.values) + "\n" + _fill(template["a"], example.values))
        blocks.append("\n\n".join(lines))
    rng.shuffle(blocks)
    return "\n\n".join([mined.text.strip(), rng.choice(templates.lead_ins), *blocks])


def _fill(template: str, values: dict[str, Any]) -> str:
    return render_template(template, values, f"rc/mined.yaml template {template!r}")
