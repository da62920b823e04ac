"""What crosses a stage boundary besides records: each stage's stats and the evaluation's results, typed.

A stage builds its model and writes it as JSON into its folder (`stats.json`; eval: `results.json`),
and the run folder reads it back (`RunFolder.ingest_stats()`, ..., `eval_results()`), so the writer
and every reader (the report, the CLI, the benchmarks) share one definition: a renamed field fails on
both sides at once, never as a silently empty report section. Unknown fields are errors, so an old
run folder is read as exactly what it holds or not at all.

`summary()` is what the manifest keeps of a stage's stats, and what the terminal and the report's run
table show: its flat fields, not its nested ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    # NaN and infinity written as JSON's NaN/Infinity (as json.dumps does), so a diverged loss or an
    # empty perplexity reads back instead of failing as a null.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


def _flat(value: Any) -> bool:
    """A scalar, or a list or dict of scalars: what a line of text can show."""
    scalar = (int, float, str)
    if isinstance(value, list):
        return all(isinstance(v, scalar) for v in value)
    if isinstance(value, dict):
        return all(isinstance(v, scalar) for v in value.values())
    return isinstance(value, scalar)


class StageStats(Record):
    def summary(self) -> dict[str, Any]:
        """Its flat fields (numbers, names, counts by reason), for the manifest and the terminal; the
        nested ones stay in the stage's own stats file."""
        return {k: v for k, v in self.model_dump(mode="json").items() if _flat(v)}


# ingest


class IngestStats(StageStats):
    documents: int
    tokens: int
    chunks: int
    chunk_tokens: int
    duplicates_dropped: int
    skipped: int
    skipped_by_reason: dict[str, int]
    questions: int
    questions_unparsed: int


# exam


class ExamStats(StageStats):
    questions: int  # in the exam: given + generated
    given: int
    generated: int
    drafts: int  # generated questions drafted by the engine, before validation
    rejected: dict[str, int]  # drafts rejected by validation, by reason
    documents: int  # documents with at least one exam question
    documents_without_questions: list[str]
    source: str  # what the exam holds: given, generated or both (exam.source resolved)


# rounds: the quiz (probe questions, once) and each round's probe of its model


class QuizStats(StageStats):
    questions: int  # in the quiz: validated, none shared with the exam
    passages: int  # passages with at least one quiz question
    drafts: int
    rejected: dict[str, int]  # drafts rejected by validation (duplicate: of the exam or the quiz), by reason


class ProbeStats(StageStats):
    round: int
    model: str  # the round's trained model
    questions: int
    correct: int
    accuracy: float
    passages: int  # passages the quiz asks about
    passages_missed: int  # passages with a quiz question the round's model answered wrongly


# entities


class EntitiesStats(StageStats):
    documents: int
    entities: int
    entities_per_document: float
    max_entities_per_document: int
    summaries: int
    documents_without_entities: list[str]
    documents_not_english: list[str]
    most_candidates_in_a_document: int
    dropped: dict[str, int]  # candidates dropped, by reason
    llm: dict[str, int]  # the LLM extractor's answers: unparsed, repaired, failed...

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "documents_without_entities": len(self.documents_without_entities),
                "documents_not_english": len(self.documents_not_english),
                **{f"llm_{k}": self.llm.get(k, 0) for k in ("unparsed", "repaired", "failed")}}


# graph


class TopEntity(Record):
    entity: str
    type: str
    degree: int
    weighted_degree: int
    mentions: int
    documents: int


class GraphStats(StageStats):
    nodes: int
    edges: int
    documents: int
    documents_without_entities: int
    entities_per_document: float
    edges_per_document: float
    shared_entities: int
    components: int
    largest_component: int
    isolated_nodes: int
    density: float
    mean_degree: float
    max_degree: int
    degree_histogram: list[int]
    top_entities: list[TopEntity]


# generate


class Coverage(Record):
    """How much of the graph a set of passages names: entities, entity pairs and co-occurrence edges."""

    passages: int
    entities: int
    entities_covered: int
    entity_coverage: float
    pairs: int
    pairs_covered: int
    pair_coverage: float
    edges: int
    edges_covered: int
    edge_coverage: float


class CoverageSummary(Coverage):
    documents: int
    documents_covered: int
    unmatched_passages: int  # passages of documents outside the graph


class CorpusCoverage(CoverageSummary):
    per_document: dict[str, Coverage]

    def overall(self) -> CoverageSummary:
        return CoverageSummary(**self.model_dump(exclude={"per_document"}))


class GeneratorStats(Record):
    target_tokens: int | None
    requests: int
    cached: int
    waves: int
    rejected: dict[str, int]
    truncated: int  # answers cut off by max_tokens that still gave records
    produced_records: int
    produced_tokens: int
    records: int
    tokens: int


class MixPart(Record):
    records: int
    tokens: int
    rejected: dict[str, int]


class MixStats(Record):
    records: int
    tokens: int
    synthetic_tokens: int
    raw_tokens: int
    raw_copies: int
    raw_share: float
    rejected: dict[str, int]
    qa_share: float | None = None  # QA-pair tokens over synthetic tokens, when a QA generator ran
    eval_texts_guarded: int
    eval_texts_unguarded: int
    eval_texts_in_corpus: int
    by_generator: dict[str, MixPart]

    @property
    def eval_leaks(self) -> int:
        return sum(n for rule, n in self.rejected.items() if rule.startswith("eval_leak"))


class GenerateStats(StageStats):
    targets: dict[str, int | None]
    generators: dict[str, GeneratorStats]
    mix: MixStats
    instructions: int
    engine: dict[str, float | int | None]  # the engine's usage over the stage (engine.usage.Usage)
    coverage: dict[str, CoverageSummary] | None  # by "all" synthetic text and by "entigraph" text

    def summary(self) -> dict[str, Any]:
        covered = self.coverage["all"] if self.coverage and "all" in self.coverage else None
        return {"records": self.mix.records, "tokens": self.mix.tokens, "synthetic_tokens": self.mix.synthetic_tokens,
                "raw_copies": self.mix.raw_copies, "eval_leaks": self.mix.eval_leaks,
                "instructions": self.instructions,
                **({"entity_coverage": covered.entity_coverage, "pair_coverage": covered.pair_coverage,
                    "edge_coverage": covered.edge_coverage} if covered else {})}


# train


class TrainStats(StageStats):
    steps: int
    resumed_from_step: int
    tokens: int
    sequences: int
    replay_sequences: int
    main_blocks: int
    replay_blocks: int
    first_loss: float | None
    final_loss: float | None
    tokens_per_s: float
    mfu: float | None
    parameters: int
    trained_parameters: int
    processes: int
    device: str
    seconds: float
    data: str
    generators: list[str] | None
    base_model: str
    training_tokens: int
    replay_tokens: int
    # The weights training started from when not the base model's (a later round: the round before's model).
    started_from: str | None = None


# eval


def round_model(round: int, rounds: int) -> str:
    """How the eval results name a round's model: the last round's is the trained model."""
    return "trained" if round == rounds else f"round {round}"


class Score(Record):
    model: str
    method: str
    metric: str
    n: int
    value: float
    ci: tuple[float, float]


class Comparison(Record):
    """A model's paired difference to the baseline on the same questions."""

    model: str
    baseline: str
    method: str
    metric: str
    n: int
    difference: float
    ci: tuple[float, float]


class DocumentScore(Record):
    model: str
    method: str
    doc_id: str
    n: int
    acc: float


class Perplexity(Record):
    perplexity: float
    tokens: int
    windows: int


class Forgetting(Record):
    texts: int
    perplexity: dict[str, Perplexity]  # by model


class EvalResults(StageStats):
    questions: int
    # Why nothing was evaluated ("" when something was): the run still finishes and the report says so.
    not_evaluated: str = ""
    documents: int
    qa_sets: list[str]
    models: dict[str, str]  # name → the model's path or id
    baseline: str
    methods: list[str]
    confidence: float
    scores: list[Score]
    comparisons: list[Comparison]
    per_document: list[DocumentScore]
    forgetting: Forgetting

    def summary(self) -> dict[str, Any]:
        accuracies = {f"{s.model}_{s.method}_acc": round(s.value, 4) for s in self.scores if s.metric == "acc"}
        return {"questions": self.questions, "models": len(self.models), **accuracies}


# report


class ReportStats(StageStats):
    sections: int
    shown: list[str]
