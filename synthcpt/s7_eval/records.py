"""Per-question evaluation records: one row per model, method and question (`eval/questions.parquet`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthcpt.atomic import Schema
from synthcpt.questions import QAItem
from synthcpt.s7_eval.metrics import choose, set_f1

# acc_attempted: accuracy over the questions answered (the EntiGraph protocol); attempted: the attempt rate.
# token_f1: SQuAD bag-of-tokens F1 of a free-form answer against the reference answer.
METRICS = ("acc", "acc_attempted", "attempted", "acc_norm", "f1", "token_f1", "unparsed")
# Each record carries its question and options, so what the models were asked can be read from the
# eval stage's output alone (the report, an analysis) without the question files.
RECORD_SCHEMA: Schema = {
    "model": "string", "method": "string", "question_id": "string", "doc_id": "string", "qa_set": "string",
    "question": "string", "options": ["string"], "answers": "string", "predicted": "string", "acc": "float64", "acc_attempted": "float64",
    "attempted": "float64", "acc_norm": "float64", "f1": "float64", "token_f1": "float64", "unparsed": "float64",
    "scores": ["float64"], "outputs": ["string"],
}


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: its name in the results and its model setting (folder, hub id or 'default')."""

    name: str
    model: str


def question_record(model: str, method: str, item: QAItem, predicted: Iterable[str] | None, **values: Any) -> dict:
    record = {"model": model, "method": method, "question_id": item.question_id, "doc_id": item.doc_id,
              "qa_set": item.qa_set, "question": item.question, "options": list(item.options),
              "answers": "".join(item.answers),
              "predicted": "".join(predicted or ()), "acc": None, "acc_attempted": None, "attempted": None,
              "acc_norm": None, "f1": None, "token_f1": None,
              "unparsed": None, "scores": [], "outputs": []}
    record.update(values)
    return record


def choice_records(name: str, method: str, items: list[QAItem], scores: list[list[float]],
                   multi_sets: set[str]) -> list[dict]:
    """Records of options scored by log-likelihood: the most likely option(s) against the answers; option F1
    in the sets with several correct options only (with one option chosen and one right, F1 is accuracy)."""
    records = []
    for item, option_scores in zip(items, scores):
        multi = item.qa_set in multi_sets
        predicted = choose(option_scores, item.letters, multi)
        values = {"acc": float(set(predicted) == set(item.answers)), "scores": option_scores}
        if multi:
            values["f1"] = set_f1(predicted, item.answers)
        else:
            # lm-eval-harness acc_norm: log-likelihood divided by the option's length in characters.
            per_char = [s / max(len(o), 1) for s, o in zip(option_scores, item.options)]
            values["acc_norm"] = float(choose(per_char, item.letters, False)[0] in item.answers)
        records.append(question_record(name, method, item, predicted, **values))
    return records


def model_fingerprint(path: str) -> str:
    """Identifies a model's weights: the path plus the size and modification time of its files."""
    digest = hashlib.sha256(path.encode())
    folder = Path(path)
    if folder.is_dir():
        for file in sorted(folder.iterdir()):
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
