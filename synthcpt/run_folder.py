"""The run folder: where every stage's outputs live, and the readers of what crosses a stage boundary.

    runs/<name>/
      config.yaml  manifest.json       the config as run; per-stage status, fingerprints and stats
      cache/                           the engine's response cache (engine.sqlite) and usage
      ingest/      documents, chunks and held-out questions (parquet)
      entities/    entities and the LLM's summaries
      graph/       the knowledge graph
      exam/        questions.parquet (the held-out questions: given and generated), drafts.parquet, stats.json
      generate/    one folder of records per generator, mix/ (with its card, README.md), instructions/,
                   stats.json, coverage.json
      train/       model/ (HF folder with its card, README.md), adapter/ (LoRA runs), checkpoints/, log.jsonl,
                   stats.json
      quiz/        questions.parquet (the probe questions of a run of several rounds: never the exam's), drafts.parquet,
                   stats.json
      probe/       answers.parquet (the round's model on the quiz: which passages it missed), stats.json
      rounds/<r>/  generate/, train/ and probe/ of round r >= 2 (round 1's are the folders above)
      eval/        results.json, questions.parquet
      report.html  report.md  and report/, their figures

Each stage's subfolder is named after the stage. A run of several rounds (`run.rounds`) repeats the
stages of `ROUND_STAGES`: `RunFolder.for_round(r)` is the same folder seen from round r, whose
`folder("train")` is that round's and whose manifest entries are that round's (`step_name`). This module owns every name in the run folder: a
stage writes into its own folder (`StageContext.out`) through the names here and reads another stage's
outputs only through the readers here, never by spelling a path (tests/test_structure.py checks). A
stage's private working files (skipped inputs, leaks, checkpoints, stored eval parts) are named in its
own code: no other stage reads them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from synthcpt.atomic import Schema, read_records, write_model, write_records, write_text
from synthcpt.errors import SynthcptError
from synthcpt.manifest import Manifest, StageEntry, load_or_create
from synthcpt.manifest import read as read_manifest
from synthcpt.manifest import save as save_manifest
from synthcpt.questions import QAItem
from synthcpt.section import Section
from synthcpt.stats import (
    CorpusCoverage,
    EvalResults,
    ExamStats,
    GenerateStats,
    GraphStats,
    IngestStats,
    ProbeStats,
    QuizStats,
    StageStats,
    TrainStats,
)

S = TypeVar("S", bound=StageStats)
COVERAGE_BY_PART = TypeAdapter(dict[str, CorpusCoverage])

CONFIG_FILE = "config.yaml"
ROUNDS_FOLDER = "rounds"
# The stages a run of several rounds repeats, in their order within a round.
ROUND_STAGES = ("generate", "train", "probe")
PROBE_FILE = "answers.parquet"
MANIFEST_FILE = "manifest.json"
CACHE_FOLDER = "cache"

DOCUMENTS_FILE = "documents.parquet"
CHUNKS_FILE = "chunks.parquet"
QUESTIONS_FILE = "questions.parquet"
ENTITIES_FILE = "entities.parquet"
SUMMARIES_FILE = "summaries.parquet"
MIX_FOLDER = "mix"
INSTRUCTIONS_FOLDER = "instructions"
STATS_FILE = "stats.json"
COVERAGE_FILE = "coverage.json"
GRAPH_JSON_FILE = "graph.json"
GRAPHML_FILE = "graph.graphml"
MODEL_FOLDER = "model"
ADAPTER_FOLDER = "adapter"  # a LoRA run's adapters alone, beside the merged model
RESULTS_FILE = "results.json"
TRAINING_LOG_FILE = "log.jsonl"
REPORT_HTML_FILE = "report.html"
REPORT_MD_FILE = "report.md"
REPORT_FIGURES_FOLDER = "report"
# A shared folder's card, in the Hugging Face Hub's format (synthcpt.cards).
CARD_FILE = "README.md"

DOCUMENT_SCHEMA: Schema = {
    "doc_id": "string", "title": "string", "text": "string", "source": "string", "metadata": "string",
    "n_chars": "int64", "n_tokens": "int64", "n_chunks": "int64",
}
CHUNK_SCHEMA: Schema = {
    "chunk_id": "string", "doc_id": "string", "index": "int64", "text": "string", "n_tokens": "int64",
    "char_start": "int64", "char_end": "int64",
}
QUESTION_SCHEMA: Schema = {
    "question_id": "string", "doc_id": "string", "title": "string", "question": "string",
    "options": ["string"], "answers": ["string"], "source": "string",
}
EXAM_SCHEMA: Schema = {
    "question_id": "string", "doc_id": "string", "question": "string", "options": ["string"],
    "answers": ["string"], "qa_set": "string", "title": "string", "author": "string", "year": "string",
    "context": "string", "document": "string", "answer": "string", "passage": "string", "origin": "string",
    "chunk_id": "string",
}
PROBE_SCHEMA: Schema = {"question_id": "string", "doc_id": "string", "chunk_id": "string", "correct": "bool"}
DRAFTS_FILE = "drafts.parquet"
ENTITY_SCHEMA: Schema = {
    "doc_id": "string", "entity": "string", "type": "string", "mentions": "int64", "extractor": "string",
    "salience": "float64", "aliases": ["string"],
}
SUMMARY_SCHEMA: Schema = {"doc_id": "string", "summary": "string"}


class RunSettings(Section):
    """Where the run lives and what makes it reproducible."""

    dir: Path = Field(Path("runs/default"), description="Run folder: config, manifest and one subfolder per stage.")
    seed: int = Field(0, description="Seed for every sampling decision of the run.")
    prompts_dir: Path | None = Field(
        None, description="Folder of prompt files replacing the shipped ones by relative name (wrap/easy.md, "
                          "eval/closed_book.md, ...); every stage whose prompt changes is redone.")
    rounds: int = Field(
        1, ge=1, description="Rounds of generate, train and probe: after each round's training a quiz (probe "
                             "questions, never the exam's) finds the passages the model has not learned, and "
                             "the next round generates for those alone and trains on from the round's model.")


def step_name(stage: str, round: int = 1) -> str:
    """A step's name in the manifest and `synthcpt status`: the stage's, with its round after the first."""
    return f"{stage}@{round}" if round > 1 and stage in ROUND_STAGES else stage


@dataclass(frozen=True)
class ProbeAnswer:
    """One quiz question as a round's model answered it (closed book)."""

    question_id: str
    doc_id: str
    chunk_id: str
    correct: bool


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str
    author: str | None
    n_tokens: int
    year: str | None = None

    @property
    def header(self) -> str:
        """How synthetic texts name their source, so a model learns facts together with their title."""
        return f"{self.title}, by {self.author}" if self.author else self.title


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    index: int
    text: str
    n_tokens: int
    char_start: int
    char_end: int


def is_main_process() -> bool:
    """False in the other processes of a `torchrun` launch: only rank 0 writes the run's files."""
    return int(os.environ.get("RANK", "0")) == 0


def document_of(row: dict[str, Any]) -> Document:
    metadata = json.loads(row.get("metadata") or "{}")
    author, year = metadata.get("author"), metadata.get("year")
    return Document(row["doc_id"], row["title"], row["text"], str(author) if author else None, row["n_tokens"],
                    str(year) if year else None)


class RunFolder:
    """A run's folder: its manifest (read when first needed) and the paths and readers of its outputs,
    seen from one round (`round`: the folders and manifest entries of `ROUND_STAGES` are that round's)."""

    def __init__(self, directory: Path, round: int = 1):
        self.dir = Path(directory)
        self.round = round

    def for_round(self, round: int) -> RunFolder:
        """The same run seen from `round`, sharing this view's manifest (one file, one writer)."""
        view = RunFolder(self.dir, round)
        view.__dict__["manifest"] = self.manifest
        return view

    def rounds(self) -> int:
        """The last round the manifest holds a step of (1 for a run of one round)."""
        later = [int(name.rpartition("@")[2]) for name in self.manifest.stages if "@" in name]
        return max(later, default=1)

    def previous_round(self) -> RunFolder:
        if self.round == 1:
            raise SynthcptError("round 1 has no round before it")
        return self.for_round(self.round - 1)

    # The manifest.

    @cached_property
    def manifest(self) -> Manifest:
        return load_or_create(self.manifest_path)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_FILE

    def stored_manifest(self) -> Manifest | None:
        """The manifest as written, without creating one; None in a folder that is not a run's."""
        return read_manifest(self.manifest_path)

    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG_FILE

    def save(self) -> None:
        if is_main_process():
            save_manifest(self.manifest_path, self.manifest)

    def update_stage(self, name: str, **changes: Any) -> StageEntry:
        """Change a stage's manifest entry (this round's) and save the manifest."""
        key = step_name(name, self.round)
        entry = self.manifest.stages.get(key, StageEntry()).model_copy(update=changes)
        self.manifest.stages[key] = entry
        self.save()
        return entry

    def is_done(self, name: str) -> bool:
        """The stage has completed (for some config), in this round."""
        entry = self.manifest.stages.get(step_name(name, self.round))
        return entry is not None and entry.status == "complete"

    def is_complete(self, name: str, fingerprint: str) -> bool:
        return self.is_done(name) and self.manifest.stages[step_name(name, self.round)].fingerprint == fingerprint

    def write_config(self, config: BaseModel) -> None:
        write_text(self.config_path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False,
                                                          allow_unicode=True))

    # Stats: each stage's, typed (synthcpt.stats), written and read here.

    def stats_path(self, stage: str) -> Path:
        return self.folder(stage) / (RESULTS_FILE if stage == "eval" else STATS_FILE)

    def write_stats(self, stage: str, stats: StageStats) -> None:
        write_model(self.stats_path(stage), stats)

    def _stats(self, stage: str, model: type[S]) -> S | None:
        path = self.stats_path(stage)
        return _read_model(path, TypeAdapter(model)) if path.is_file() else None

    # Folders.

    def folder(self, stage: str) -> Path:
        if self.round > 1 and stage in ROUND_STAGES:
            return self.dir / ROUNDS_FOLDER / str(self.round) / stage
        return self.dir / stage

    @property
    def cache(self) -> Path:
        return self.dir / CACHE_FOLDER

    def _needed(self, stage: str, file: str, command: str) -> Path:
        path = self.folder(stage) / file
        if not path.exists():
            raise SynthcptError(f"no {stage} output in {self.dir}: run `synthcpt {command}` first")
        return path

    # ingest

    @property
    def documents_path(self) -> Path:
        return self.folder("ingest") / DOCUMENTS_FILE

    def documents(self) -> list[Document]:
        return [document_of(row) for row in read_records(self._needed("ingest", DOCUMENTS_FILE, "ingest"))]

    def chunks(self) -> list[Chunk]:
        return [Chunk(**row) for row in read_records(self._needed("ingest", CHUNKS_FILE, "ingest"))]

    def questions(self) -> list[dict[str, Any]]:
        path = self.folder("ingest") / QUESTIONS_FILE
        return read_records(path) if path.is_file() else []

    def ingest_stats(self) -> IngestStats | None:
        return self._stats("ingest", IngestStats)

    # entities

    def entities(self) -> list[dict[str, Any]]:
        """One row per entity of each document: doc_id, entity, type, mentions, extractor, salience, aliases."""
        path = self.folder("entities") / ENTITIES_FILE
        return read_records(path) if path.is_file() else []

    def summaries(self) -> dict[str, str]:
        """doc_id → the LLM's summary of the document (empty when no LLM extraction ran)."""
        path = self.folder("entities") / SUMMARIES_FILE
        return {row["doc_id"]: row["summary"] for row in read_records(path)} if path.is_file() else {}

    # exam

    def exam(self) -> list[QAItem]:
        """The run's held-out questions, given and generated, in exam order."""
        return [QAItem(**{**row, "options": tuple(row["options"]), "answers": tuple(row["answers"])})
                for row in read_records(self._needed("exam", QUESTIONS_FILE, "exam"))]

    def write_exam(self, items: list[QAItem]) -> None:
        write_records(self.folder("exam") / QUESTIONS_FILE, [asdict(item) for item in items], EXAM_SCHEMA)

    def exam_stats(self) -> ExamStats | None:
        return self._stats("exam", ExamStats)

    # quiz and probe (runs of several rounds)

    def quiz(self) -> list[QAItem]:
        """The probe questions, one or more per passage, none of them the exam's."""
        return [QAItem(**{**row, "options": tuple(row["options"]), "answers": tuple(row["answers"])})
                for row in read_records(self._needed("quiz", QUESTIONS_FILE, "run --rounds 2"))]

    def write_quiz(self, items: list[QAItem]) -> None:
        write_records(self.folder("quiz") / QUESTIONS_FILE, [asdict(item) for item in items], EXAM_SCHEMA)

    def quiz_drafts_path(self) -> Path:
        return self.folder("quiz") / DRAFTS_FILE

    def quiz_stats(self) -> QuizStats | None:
        return self._stats("quiz", QuizStats)

    def write_probe(self, answers: list[ProbeAnswer]) -> None:
        write_records(self.folder("probe") / PROBE_FILE, [asdict(a) for a in answers], PROBE_SCHEMA)

    def probe_answers(self) -> list[ProbeAnswer]:
        """This round's model on the quiz."""
        return [ProbeAnswer(**row) for row in read_records(self._needed("probe", PROBE_FILE, "run --rounds 2"))]

    def missed_chunks(self) -> set[str]:
        """The passages (chunk ids) with a quiz question this round's model answered wrongly."""
        return {a.chunk_id for a in self.probe_answers() if not a.correct}

    def probe_stats(self) -> ProbeStats | None:
        return self._stats("probe", ProbeStats)

    # graph

    def graph_stats(self) -> GraphStats | None:
        return self._stats("graph", GraphStats)

    @property
    def graph_dir(self) -> Path | None:
        path = self.folder("graph")
        return path if path.is_dir() else None

    # generate

    def generator_folder(self, generator: str) -> Path:
        return self.folder("generate") / generator

    @property
    def mix(self) -> Path:
        return self.folder("generate") / MIX_FOLDER

    @property
    def dataset_card(self) -> Path:
        return self.mix / CARD_FILE

    @property
    def instructions(self) -> Path:
        return self.folder("generate") / INSTRUCTIONS_FOLDER

    def generate_stats(self) -> GenerateStats | None:
        return self._stats("generate", GenerateStats)

    def coverage(self) -> dict[str, CorpusCoverage] | None:
        """The graph's coverage by the mix: by "all" synthetic text, and by "entigraph" text when there is."""
        path = self.folder("generate") / COVERAGE_FILE
        return _read_model(path, COVERAGE_BY_PART) if path.is_file() else None

    def write_coverage(self, coverage: dict[str, CorpusCoverage]) -> None:
        write_text(self.folder("generate") / COVERAGE_FILE, COVERAGE_BY_PART.dump_json(coverage, indent=2).decode())

    # train

    @property
    def trained_model(self) -> Path:
        return self.folder("train") / MODEL_FOLDER

    @property
    def adapter(self) -> Path:
        return self.folder("train") / ADAPTER_FOLDER

    @property
    def model_card(self) -> Path:
        return self.trained_model / CARD_FILE

    @property
    def training_log(self) -> Path:
        return self.folder("train") / TRAINING_LOG_FILE

    def train_stats(self) -> TrainStats | None:
        return self._stats("train", TrainStats)

    # eval

    def eval_results(self) -> EvalResults | None:
        return self._stats("eval", EvalResults)

    @property
    def eval_records(self) -> Path:
        """One row per model, method and question."""
        return self.folder("eval") / QUESTIONS_FILE

    # report

    @property
    def report_html(self) -> Path:
        return self.dir / REPORT_HTML_FILE

    @property
    def report_md(self) -> Path:
        return self.dir / REPORT_MD_FILE

    @property
    def report_figures(self) -> Path:
        """The Markdown report's figures (the HTML report embeds its own)."""
        return self.dir / REPORT_FIGURES_FOLDER


def load_graph(folder: Path):
    """The graph saved by the graph stage (from its node-link JSON, which keeps every attribute)."""
    import networkx as nx

    data = json.loads((Path(folder) / GRAPH_JSON_FILE).read_text(encoding="utf-8"))
    return nx.node_link_graph(data, edges="edges")


def _read_model(path: Path, adapter: TypeAdapter) -> Any:
    try:
        return adapter.validate_json(path.read_bytes())
    except ValidationError as e:
        raise SynthcptError(f"{path} does not hold what this version of synthcpt writes ({e.errors()[0]['msg']} at "
                            f"{'.'.join(map(str, e.errors()[0]['loc']))}): rerun its stage") from None
