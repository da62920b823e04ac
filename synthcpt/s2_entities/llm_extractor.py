"""The EntiGraph request: a summary and an exhaustive entity list per document, as JSON.

The request carries a JSON schema, so vLLM and OpenAI-compatible servers constrain the output; what
still comes back malformed (a reply cut at max_tokens, prose around the object, a model that ignores
the schema) is salvaged as far as it goes, and counted. A document longer than the window is sent as
consecutive windows of its chunks; their summaries are joined and their entity lists merged.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthcpt.engine.types import Request, Result, Sampling
from synthcpt.s2_entities.normalize import Candidate

PROMPT_FILE = Path(__file__).resolve().parents[2] / "prompts" / "entities" / "entigraph.md"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
ENTITY_MAX_CHARS = 80
STRING_LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
SUMMARY_FIELD = re.compile(r'"summary"\s*:\s*"((?:[^"\\]|\\.)*)"?', re.DOTALL)
ENTITIES_FIELD = re.compile(r'"entities"\s*:\s*\[')
CODE_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


LLM_STEP = "entities: LLM extraction"


def extraction_schema(max_entities: int, summary_chars: int) -> dict[str, Any]:
    """The reply's JSON schema, bounded, so a model caught in a repetition loop must close the object
    instead of running on to max_tokens."""
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "maxLength": summary_chars},
            "entities": {"type": "array", "items": {"type": "string", "maxLength": ENTITY_MAX_CHARS},
                         "maxItems": max_entities},
        },
        "required": ["summary", "entities"],
        "additionalProperties": False,
    }


@dataclass
class Window:
    doc_id: str
    index: int
    text: str


@dataclass
class Parsed:
    summary: str | None
    entities: list[str]
    status: str  # "ok", "repaired" (salvaged from malformed output) or "unparsed"


@dataclass
class LlmOutcome:
    """What the LLM gave for each document, and how often it failed."""

    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def windows(doc_id: str, text: str, n_tokens: int, chunks: list[dict[str, Any]], window_tokens: int) -> list[Window]:
    """The whole document when it fits, else its chunks grouped in order into windows that fit."""
    if n_tokens <= window_tokens or not chunks:
        return [Window(doc_id, 0, text)]
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for chunk in sorted(chunks, key=lambda c: c["index"]):
        if groups[-1] and size + chunk["n_tokens"] > window_tokens:
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += chunk["n_tokens"]
    return [Window(doc_id, i, text[group[0]["char_start"]:group[-1]["char_end"]]) for i, group in enumerate(groups)]


def render(header: str, document: str) -> str:
    values = {"header": header, "document": document}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], PROMPT_FILE.read_text(encoding="utf-8")).strip()


def build_request(window: Window, header: str, settings: Any, seed: int) -> Request:
    return Request(messages=[{"role": "user", "content": render(header, window.text)}],
                   sampling=Sampling(temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens,
                                     seed=seed),
                   json_schema=extraction_schema(settings.llm_max_entities, settings.llm_summary_chars),
                   prefix_key=window.doc_id,
                   metadata={"doc_id": window.doc_id, "window": window.index})


def _from_object(data: Any) -> tuple[str | None, list[str]] | None:
    if isinstance(data, list):
        data = {"entities": data}
    if not isinstance(data, dict):
        return None
    items = data.get("entities")
    if not isinstance(items, list):
        return None
    names = []
    for item in items:
        if isinstance(item, dict):  # {"name": ..., "type": ...} from models that add detail
            item = item.get("name") or item.get("entity")
        if isinstance(item, str) and item.strip():
            names.append(item)
    summary = data.get("summary")
    return (summary.strip() if isinstance(summary, str) and summary.strip() else None), names


def parse_extraction(text: str) -> Parsed:
    """The summary and entities of a reply: strict JSON first, then the first JSON object in the reply,
    then whatever complete fields a malformed or truncated object still holds."""
    text = CODE_FENCE.sub("", text.strip())
    try:
        found = _from_object(json.loads(text))
        if found:
            return Parsed(*found, "ok")
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    if start >= 0:
        try:
            found = _from_object(json.JSONDecoder().raw_decode(text[start:])[0])
            if found:
                return Parsed(*found, "repaired")
        except json.JSONDecodeError:
            pass
    return _salvage(text)


def _salvage(text: str) -> Parsed:
    summary_match = SUMMARY_FIELD.search(text)
    summary = None
    if summary_match:
        try:
            summary = json.loads(f'"{summary_match.group(1)}"').strip() or None
        except json.JSONDecodeError:
            summary = summary_match.group(1).strip() or None
    entities: list[str] = []
    entities_match = ENTITIES_FIELD.search(text)
    if entities_match:
        listed = text[entities_match.end():].split("]", 1)[0]
        for literal in STRING_LITERAL.findall(listed):
            try:
                entities.append(json.loads(f'"{literal}"'))
            except json.JSONDecodeError:
                continue
    if summary is None and not entities:
        return Parsed(None, [], "unparsed")
    return Parsed(summary, entities, "repaired")


def collect(results: Iterable[Result], n_windows: dict[str, int]) -> LlmOutcome:
    """Per-document candidates and summaries from the results of every window."""
    outcome = LlmOutcome()
    parts: dict[str, dict[int, str]] = {}
    for result in results:
        doc_id, window = result.request.metadata["doc_id"], result.request.metadata["window"]
        if not result.texts:
            outcome.counts["failed"] += 1
            continue
        parsed = parse_extraction(result.text)
        outcome.counts[parsed.status] += 1
        if result.truncated:
            outcome.counts["truncated"] += 1
        seen = Counter(parsed.entities)
        outcome.candidates.setdefault(doc_id, []).extend(
            Candidate(name, "", count, "llm") for name, count in seen.items())
        if parsed.summary:
            parts.setdefault(doc_id, {})[window] = parsed.summary
    for doc_id, by_window in parts.items():
        outcome.summaries[doc_id] = "\n\n".join(by_window[i] for i in sorted(by_window))
    outcome.counts["documents_without_reply"] = sum(1 for d in n_windows if d not in outcome.candidates)
    return outcome


def llm_requests(documents: list[dict[str, Any]], chunks_by_doc: dict[str, list[dict[str, Any]]], settings: Any,
                 seed: int) -> tuple[list[Request], dict[str, int]]:
    """Every window's request (deterministic, so the engine's cache resumes them) and windows per document."""
    requests, per_doc = [], {}
    for doc in documents:
        doc_windows = windows(doc["doc_id"], doc["text"], doc["n_tokens"], chunks_by_doc.get(doc["doc_id"], []),
                              settings.llm_window_tokens)
        per_doc[doc["doc_id"]] = len(doc_windows)
        requests.extend(build_request(w, doc["header"], settings, seed) for w in doc_windows)
    return requests, per_doc


def extract_with_llm(engine_settings: Any, run_dir: Path, requests: list[Request], n_windows: dict[str, int]
                     ) -> LlmOutcome:
    from synthcpt.engine import open_engine

    with open_engine(engine_settings, run_dir) as engine:
        return collect(engine.generate(requests, description=LLM_STEP), n_windows)
