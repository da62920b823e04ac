"""The LLM extractor (EntiGraph's first step): per document a summary and an exhaustive list of its
salient entities, concepts included, as JSON held to a schema by the engine's structured output.

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
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from synthcpt.engine.structured import json_schema
from synthcpt.engine.types import Request, Result, Sampling
from synthcpt.prompts import Prompt, load_prompt
from synthcpt.run_folder import Chunk, Document
from synthcpt.s2_entities.extractor import Extraction, Extractor
from synthcpt.s2_entities.normalize import Candidate
from synthcpt.section import Section

PROMPT = "entities/entigraph.md"
STEP = "entities: LLM extraction"
ENTITY_MAX_CHARS = 80


class LlmSettings(Section):
    """llm extractor: the EntiGraph request (summary + exhaustive entity list as JSON) through the engine."""

    window_tokens: int = Field(
        6000, ge=256, description="Documents longer than this many tokens are sent as windows of this size.")
    max_tokens: int = Field(1024, ge=16, description="Max tokens of the JSON reply.")
    max_entities: int = Field(
        150, ge=1, description="Most entities in one reply (the JSON schema bounds the list, so a model that "
                               "repeats itself has to stop).")
    summary_chars: int = Field(1500, ge=50, description="Longest summary, in characters (schema bound).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy, a stable list).")


def extraction_model(max_entities: int, summary_chars: int) -> type[BaseModel]:
    """The reply, bounded, so a model caught in a repetition loop must close the object instead of running
    on to max_tokens."""
    entity = Annotated[str, StringConstraints(max_length=ENTITY_MAX_CHARS)]
    return create_model("EntityExtraction", __config__=ConfigDict(extra="forbid"),
                        summary=(str, Field(max_length=summary_chars)),
                        entities=(list[entity], Field(max_length=max_entities)))


STRING_LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
SUMMARY_FIELD = re.compile(r'"summary"\s*:\s*"((?:[^"\\]|\\.)*)"?', re.DOTALL)
ENTITIES_FIELD = re.compile(r'"entities"\s*:\s*\[')
CODE_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


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


def windows(doc_id: str, text: str, n_tokens: int, chunks: list[Chunk], window_tokens: int) -> list[Window]:
    """The whole document when it fits, else its chunks grouped in order into windows that fit."""
    if n_tokens <= window_tokens or not chunks:
        return [Window(doc_id, 0, text)]
    groups: list[list[Chunk]] = [[]]
    size = 0
    for chunk in sorted(chunks, key=lambda c: c.index):
        if groups[-1] and size + chunk.n_tokens > window_tokens:
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += chunk.n_tokens
    return [Window(doc_id, i, text[group[0].char_start:group[-1].char_end]) for i, group in enumerate(groups)]


def build_request(window: Window, header: str, settings: LlmSettings, template: Prompt, schema: dict[str, Any],
                  seed: int) -> Request:
    return Request(messages=[{"role": "user", "content": template.render(header=header, document=window.text).strip()}],
                   sampling=Sampling(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=seed),
                   json_schema=schema, prefix_key=window.doc_id,
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


def collect(results: Iterable[Result], n_windows: dict[str, int]) -> Extraction:
    """Per-document candidates and summaries from the results of every window."""
    outcome = Extraction()
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


def llm_requests(documents: list[Document], chunks_by_doc: dict[str, list[Chunk]], settings: LlmSettings, template: Prompt,
                 schema: dict[str, Any], seed: int) -> tuple[list[Request], dict[str, int]]:
    """Every window's request (deterministic, so the engine's cache resumes them) and windows per document."""
    requests, per_doc = [], {}
    for doc in documents:
        doc_windows = windows(doc.doc_id, doc.text, doc.n_tokens, chunks_by_doc.get(doc.doc_id, []),
                              settings.window_tokens)
        per_doc[doc.doc_id] = len(doc_windows)
        requests.extend(build_request(w, doc.header, settings, template, schema, seed) for w in doc_windows)
    return requests, per_doc


class Llm(Extractor[LlmSettings]):
    name: ClassVar[str] = "llm"
    summary: ClassVar[str] = ("the EntiGraph request through the engine; its summaries become EntiGraph data "
                              "(use with a capable generator)")

    @classmethod
    def prompts(cls, settings: LlmSettings) -> list[str]:
        return [PROMPT]

    def _requests(self) -> tuple[list[Request], dict[str, int]]:
        s = self.settings
        schema = json_schema(extraction_model(s.max_entities, s.summary_chars))
        template = load_prompt(PROMPT, self.ctx.prompts_dir)
        return llm_requests(self.ctx.documents, self.ctx.chunks_by_doc, s, template, schema, self.ctx.seed)

    def requests(self) -> dict[str, list[Request]]:
        return {STEP: self._requests()[0]}

    def extract(self) -> Extraction:
        from synthcpt.engine import open_engine

        requests, n_windows = self._requests()
        with open_engine(self.ctx.engine_settings, self.ctx.run_dir) as engine:
            return collect(engine.generate(requests, description=STEP), n_windows)


PLUGIN = Llm
