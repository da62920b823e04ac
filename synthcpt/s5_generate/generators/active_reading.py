"""Active Reading (Lin et al., 2025, "Learning Facts at Scale with Active Reading"): the model first
writes, for each document, study strategies of its own choosing (paraphrase, timeline, analogies,
self-quiz, links to what it knows...), then carries out each strategy on the document; every applied
strategy is one record, its strategy's name its style.

Followed from the paper: the two steps; the task-agnostic variant (no knowledge of the evaluation's
questions); its strategy question ("What are some strategies specific to this document that I can
use to help me learn and remember all of the information contained?"); its application prompt as in
its released data ("Here's a learning strategy: ... Apply this strategy to the following document:
<document>...</document>", after the system prompt "You are a helpful assistant."). Decided here,
where the paper is silent or its setting does not fit:
- The strategy list is a JSON object held to a pydantic model by structured output (the paper had
  the model write markdown headings): at most `strategies` per list (10), each a name and an
  instruction, the instruction clipped to INSTRUCTION_CHARS.
- The document comes before the strategy in the application prompt (the paper puts it after), so a
  document's requests share it as their prefix in the engine's cache; no system prompt (the other
  generators have none).
- Temperatures: 1.0 for the strategy lists (their variety is the method), 0.7 for applying them (the
  facts must stay right, as in WRAP and rc_llm here); max tokens 1024 for both.
- Documents longer than the model's context are cut to fit, as EntiGraph does; the paper applied its
  strategies to chunks of Wikipedia articles, the stories here are read whole.
- `lists`: strategy lists drawn per document (1; the paper's released data repeats each document
  chunk ten times), for budgets one list cannot fill.

Requests in budget order: every document's first strategy, then every document's second, and so on
(list after list), so a token budget cut anywhere covers the whole corpus."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from synthcpt.engine.structured import json_schema, validated
from synthcpt.engine.types import Request, Result
from synthcpt.s5_generate.base import (
    Document,
    GenerationContext,
    GeneratorSettings,
    Rejected,
    TwoStepGenerator,
    round_robin,
)
from synthcpt.s5_generate.parsing import complete_items, strip_preamble, trim_truncated

STRATEGIES_PROMPT = "active_reading/strategies.md"
APPLY_PROMPT = "active_reading/apply.md"
# A strategy's instruction is clipped to this many characters, so the application prompt has a known
# bound when the document is fitted to the model's context.
INSTRUCTION_CHARS = 600
# A style is the strategy's name, lowercased, at most this many words.
STYLE_WORDS = 6
MARKDOWN = re.compile(r"[*#_`]+")


class ActiveReadingSettings(GeneratorSettings):
    """Active Reading: the model writes study strategies for each document, then applies each one to it."""

    strategies: int = Field(10, ge=1, le=30, description="Most strategies in one document's list (the paper set no "
                                                          "bound: its model listed them as markdown headings).")
    lists: int = Field(1, ge=1, description="Strategy lists drawn per document, for budgets one list cannot fill "
                                            "(the paper's released data repeats each document chunk ten times).")
    strategies_temperature: float = Field(1.0, ge=0, description="Sampling temperature of the strategy lists.")
    strategies_max_tokens: int = Field(1024, ge=1, description="Max tokens of one strategy list.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature of applying a strategy.")
    max_tokens: int = Field(1024, ge=1, description="Max tokens of one applied strategy.")


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    instruction: str


def strategies_model(count: int) -> type[BaseModel]:
    """The JSON answer of the first step: one to `count` strategies."""
    return create_model("StudyStrategies", __config__=ConfigDict(extra="forbid"),
                        strategies=(list[Strategy], Field(min_length=1, max_length=count)))


def style_of(name: str) -> str:
    """A strategy's name as a record style: lowercase words, markdown and numbering dropped, shortened."""
    words = re.sub(r"[^\w\s'-]", " ", name.lower()).split()
    while words and words[0].isdigit():  # "3. Create a timeline"
        words.pop(0)
    return " ".join(words[:STYLE_WORDS])


def clip(text: str, limit: int) -> str:
    """`text` cut at its last sentence end within `limit` characters (at `limit` when there is none)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind(".\n"))
    return head[:end + 1] if end > 0 else head


def usable_strategies(strategies: Iterable[Strategy]) -> list[Strategy]:
    """Strategies with a name and an instruction, the first of each style kept."""
    kept: dict[str, Strategy] = {}
    for strategy in strategies:
        # Markdown emphasis dropped: the name heads the record's text.
        name, instruction = " ".join(MARKDOWN.sub("", strategy.name).split()), strategy.instruction.strip()
        if style_of(name) and instruction and style_of(name) not in kept:
            kept[style_of(name)] = Strategy(name=name, instruction=clip(instruction, INSTRUCTION_CHARS))
    return list(kept.values())


# The strategy a truncated list was cut off in: its name complete, its instruction's text so far.
CUT_OFF = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"instruction"\s*:\s*"((?:[^"\\]|\\.)*)$')


def cut_off_strategy(text: str) -> Strategy | None:
    """The strategy max_tokens cut off, its instruction cut back to its last complete sentence: a small
    model often runs its first instruction on to the limit."""
    match = CUT_OFF.search(text)
    if match is None:
        return None
    try:
        name = json.loads(match.group(1))
        instruction = trim_truncated(json.loads(f'"{match.group(2).rstrip(chr(92))}"'))
    except json.JSONDecodeError:  # cut inside an escape sequence
        return None
    return Strategy(name=name, instruction=instruction) if instruction else None


def parse_strategies(result: Result, model: type[BaseModel]) -> list[Strategy]:
    """The strategies of a first-step result; a list cut off by max_tokens keeps those it completed and
    the complete sentences of the one it was cut off in."""
    if not result.texts:
        return []
    if result.truncated:
        items = [validated(Strategy, [item]) for item in complete_items(result.text)]
        return usable_strategies(item for item in [*items, cut_off_strategy(result.text)] if item is not None)
    answer = validated(model, result.parsed)
    return usable_strategies(answer.strategies) if answer is not None else []


def stand_ins(count: int) -> list[Strategy]:
    """Strategies assumed for a list not generated yet (the plan), each as long as an instruction may be."""
    return [Strategy(name=f"strategy {i + 1}", instruction="x " * (INSTRUCTION_CHARS // 2)) for i in range(count)]


class ActiveReading(TwoStepGenerator[ActiveReadingSettings]):
    name = "active_reading"
    summary = "the model's own study strategies, applied to each document"
    position = 6
    enabled_by_default = False  # new: opt in with generate.generators
    model_written = True
    first_step_name = "strategies"

    def __init__(self, ctx: GenerationContext) -> None:
        super().__init__(ctx)
        self._fitted: dict[str, str] = {}
        # (doc_id, list) -> its strategies, from `prepare`.
        self._strategies: dict[tuple[str, int], list[Strategy]] | None = None

    @classmethod
    def prompts(cls, settings: ActiveReadingSettings) -> list[str]:
        return [STRATEGIES_PROMPT, APPLY_PROMPT]

    @cached_property
    def strategies_template(self):
        return self.prompt(STRATEGIES_PROMPT)

    @cached_property
    def apply_template(self):
        return self.prompt(APPLY_PROMPT)

    @cached_property
    def answer_model(self) -> type[BaseModel]:
        return strategies_model(self.settings.strategies)

    def first_step(self) -> Iterator[Request]:
        s = self.settings
        schema = json_schema(self.answer_model)
        for sample in range(s.lists):
            for doc in self.corpus.documents:
                content = self.strategies_template.render(header=doc.header, document=self.fitted(doc),
                                                          count=str(s.strategies))
                sampling = self.sampling(s.strategies_temperature, s.strategies_max_tokens)
                yield self.request(content, self.strategies_template, sampling, prefix_key=doc.doc_id, sample=sample,
                                   json_schema=schema, metadata={"doc_id": doc.doc_id, "unit": doc.doc_id})

    def prepare(self, results: Iterable[Result], planning: bool = False) -> Counter:
        found = {(r.request.metadata["doc_id"], r.request.sample): parse_strategies(r, self.answer_model)
                 for r in results}
        if planning:  # lists not generated yet are assumed full
            assumed = stand_ins(self.settings.strategies)
            found = {(doc.doc_id, sample): found.get((doc.doc_id, sample), assumed)
                     for sample in range(self.settings.lists) for doc in self.corpus.documents}
        self._strategies = found
        empty = sum(not strategies for strategies in found.values())
        return Counter({"no_strategies": empty} if empty else {})

    def requests(self) -> Iterator[Request]:
        if self._strategies is None:
            raise RuntimeError("active_reading: prepare() takes the strategies before requests()")
        s = self.settings
        for sample in range(s.lists):
            per_doc = [[(doc, i, strategy) for i, strategy in enumerate(self._strategies.get((doc.doc_id, sample), []))]
                       for doc in self.corpus.documents]
            for doc, index, strategy in round_robin(per_doc):
                content = self.apply_template.render(header=doc.header, title=doc.title, document=self.fitted(doc),
                                                     strategy=f"**{strategy.name}**\n\n{strategy.instruction}")
                sampling = self.sampling(s.temperature, s.max_tokens)
                yield self.request(content, self.apply_template, sampling, prefix_key=doc.doc_id, sample=sample,
                                   metadata={"doc_id": doc.doc_id, "unit": f"{doc.doc_id}|{sample}|{index}",
                                             "strategy": strategy.name,
                                             "upstream_prompt_hash": self.strategies_template.hash})

    def fitted(self, doc: Document) -> str:
        """The document, cut so that either step's prompt and answer fit the model's context."""
        if doc.doc_id not in self._fitted:
            s = self.settings
            apply_frame = self.apply_template.render(header=doc.header, title=doc.title, document="",
                                                     strategy="x " * (INSTRUCTION_CHARS // 2 + 40))
            strategies_frame = self.strategies_template.render(header=doc.header, document="", count="10")
            self._fitted[doc.doc_id] = min(
                self.fit(doc, apply_frame, s.max_tokens, "max_tokens"),
                self.fit(doc, strategies_frame, s.strategies_max_tokens, "strategies_max_tokens"), key=len)
        return self._fitted[doc.doc_id]

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        text = trim_truncated(result.text) if result.truncated else result.text
        body = strip_preamble(text)
        if not body:
            return Rejected("empty")
        meta = result.request.metadata
        doc = self.corpus.by_id[meta["doc_id"]]
        return [self.record(result, f"{doc.header}: {meta['strategy']}\n\n{body}", style_of(meta["strategy"]))]


PLUGIN = ActiveReading
