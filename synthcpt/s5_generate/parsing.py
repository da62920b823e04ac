"""Rule-based clean-up and parsing of model outputs: preambles, truncation, JSON in prose and Q/A
pairs. Every function takes raw model text and never raises on bad text."""

from __future__ import annotations

import json
import re
from typing import Any

# "Here is a paraphrase of the text:", "Sure! Here's the rewritten paragraph:", "Paraphrased version:" ...
PREAMBLE_LINE = re.compile(
    r"""^\W*(?:
        (?:sure|certainly|of\ course|okay|ok|absolutely)\b[!.,]?\s*(?:here(?:'s|\ is|\ are)\b[^\n]{0,100})?
      | (?:here(?:'s|\ is|\ are)|below\ is|the\ following\ is)\b[^\n]{0,100}:
      | (?:(?:a|the|my)\s+)?(?:paraphrased?|rephrased?|rewritten|rewrite|simplified|revised|new|reworded)
        (?:\s+(?:text|version|paragraph|passage|content))?\s*:
      | (?:paraphrase|rephrasing|rewrite|rewriting|rephrase)\s*:
    )\W*$""", re.IGNORECASE | re.VERBOSE)
# A preamble that runs straight into the text on the same line: "Here is a paraphrase: The ship ..."
INLINE_PREAMBLE = re.compile(
    r"^\W*(?:sure[^\n:]*?[.!]\s*)?(?:here(?:'s| is| are)|below is)\b[^\n:]{0,80}:\s*", re.IGNORECASE)
CLOSER_LINE = re.compile(
    r"^\W*(?:i hope (?:this|that)|let me know|feel free to|(?:do you )?need (?:any )?(?:more|further)|"
    r"is there anything|note: (?:this|the) (?:paraphrase|rephras|rewrit))", re.IGNORECASE)
SENTENCE_END = re.compile(r"""[.!?]["'”’)\]]*(?=\s|$)""")
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
MARKDOWN = re.compile(r"[*_#`]+")
QUESTION_KEYS = ("question", "q", "instruction")
ANSWER_KEYS = ("answer", "a", "response")
QA_MARKER = re.compile(
    r"^\W*(?:\d+[.)]\s*)?\W*(?P<kind>question|answer|q|a)\s*\d*\s*[:.)\-]\W*", re.IGNORECASE | re.MULTILINE)


def strip_preamble(text: str) -> str:
    """Drop assistant chatter around the content: leading "Here is ..." lines, trailing "I hope this
    helps" lines, and quotes wrapped around the whole text."""
    lines = text.strip().splitlines()
    while lines and (not lines[0].strip() or PREAMBLE_LINE.match(lines[0].strip())):
        lines.pop(0)
    while lines and (not lines[-1].strip() or CLOSER_LINE.match(lines[-1].strip())):
        lines.pop()
    body = "\n".join(lines).strip()
    body = INLINE_PREAMBLE.sub("", body, count=1) if "\n" not in body[:120] else body
    if len(body) > 1 and body[0] in "\"“" and body[-1] in "\"”" and body.count('"') <= 2:
        body = body[1:-1].strip()
    return body


def trim_truncated(text: str) -> str:
    """Text cut off at max_tokens, cut back to its last complete sentence ('' when there is none)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[:ends[-1]].rstrip() if ends else ""


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in `text`: fenced, bare, or embedded in prose."""
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start, char in enumerate(candidate):
            if char in "{[":
                try:
                    value, _ = decoder.raw_decode(candidate[start:])
                except json.JSONDecodeError:
                    continue
                if isinstance(value, (dict, list)) and value:
                    return value
    return None


def complete_items(text: str) -> list[Any]:
    """The complete objects of the first JSON array in `text`, an answer cut off by max_tokens."""
    decoder = json.JSONDecoder()
    items: list[Any] = []
    at = text.find("[")
    while at >= 0:
        at = text.find("{", at)
        if at < 0:
            break
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break  # the object the limit cut off
        items.append(item)
    return items


def _clean(text: str) -> str:
    return " ".join(MARKDOWN.sub("", text).split())


def qa_pairs_from_json(value: Any) -> list[tuple[str, str]]:
    """Question/answer pairs from parsed JSON: a list of objects, or an object (holding such a list)."""
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        items = lists[0] if lists and not any(k in value for k in QUESTION_KEYS) else [value]
    else:
        items = value if isinstance(value, list) else []
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            continue
        question = next((str(item[k]) for k in QUESTION_KEYS if item.get(k)), "")
        answer = next((str(item[k]) for k in ANSWER_KEYS if item.get(k)), "")
        if _clean(question) and _clean(answer):
            pairs.append((_clean(question), _clean(answer)))
    return pairs


def parse_qa_pairs(text: str, truncated: bool = False) -> list[tuple[str, str]]:
    """Question/answer pairs from "Question: .. Answer: .." (also "Q1:", "1. Question:", bold) or from
    JSON in prose. A pair cut off by max_tokens is dropped."""
    markers = list(QA_MARKER.finditer(text))
    pairs: list[tuple[str, str]] = []
    for current, following in zip(markers, markers[1:] + [None]):
        body = text[current.end(): following.start() if following else len(text)]
        if current.group("kind").lower().startswith("q"):
            pairs.append((_clean(body), ""))
        elif pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], _clean(body))
    if truncated and pairs and markers and markers[-1].group("kind").lower().startswith("a"):
        pairs.pop()  # the last answer ran into the token limit
    pairs = [(q, a) for q, a in pairs if q and a]
    if pairs:
        return pairs
    value = extract_json(text)
    return qa_pairs_from_json(value) if value else []

