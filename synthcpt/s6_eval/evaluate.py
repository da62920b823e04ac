"""Closed-book QA evaluation of several models on the same questions, and the comparison of their scores.

Methods (`eval.methods`):
- `loglik`: each option scored by its log-likelihood after the question (lm-eval-harness style):
  `acc` picks the most likely option, `acc_norm` the most likely per character;
- `open_book`: the same with the document before the question (when it fits the context window),
  the reference a closed-book score is compared to;
- `generative`: few-shot chain-of-thought through the engine, the answer letters parsed from the text.

In a question set where some questions have several correct options (Coursera), every question is
answered with a set of letters and scored by exact set match (`acc`) and per-option F1.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from synthcpt.atomic import read_records, write_records
from synthcpt.progress import console
from synthcpt.s6_eval import prompts
from synthcpt.s6_eval.metrics import bootstrap_interval, choose, paired_difference, parse_answer, set_f1
from synthcpt.s6_eval.qa import QAItem, multi_answer_sets

METRICS = ("acc", "acc_norm", "f1", "unparsed")
RECORD_FEATURES = datasets.Features({
    "model": datasets.Value("string"), "method": datasets.Value("string"),
    "question_id": datasets.Value("string"), "doc_id": datasets.Value("string"),
    "qa_set": datasets.Value("string"), "answers": datasets.Value("string"),
    "predicted": datasets.Value("string"), "acc": datasets.Value("float64"),
    "acc_norm": datasets.Value("float64"), "f1": datasets.Value("float64"),
    "unparsed": datasets.Value("float64"), "scores": datasets.Sequence(datasets.Value("float64")),
    "outputs": datasets.Sequence(datasets.Value("string")),
})


@dataclass(frozen=True)
class Candidate:
    """A model to evaluate: its name in the results and its model setting (folder, hub id or 'default')."""

    name: str
    model: str


def _record(model: str, method: str, item: QAItem, predicted: Iterable[str] | None, **values: Any) -> dict:
    record = {"model": model, "method": method, "question_id": item.question_id, "doc_id": item.doc_id,
              "qa_set": item.qa_set, "answers": "".join(item.answers),
              "predicted": "".join(predicted or ()), "acc": None, "acc_norm": None, "f1": None,
              "unparsed": None, "scores": [], "outputs": []}
    record.update(values)
    return record


def _choice_records(name: str, method: str, items: list[QAItem], scores: list[list[float]],
                    multi_sets: set[str]) -> list[dict]:
    records = []
    for item, option_scores in zip(items, scores):
        multi = item.qa_set in multi_sets
        predicted = choose(option_scores, item.letters, multi)
        values = {"acc": float(set(predicted) == set(item.answers)), "f1": set_f1(predicted, item.answers),
                  "scores": option_scores}
        if not multi:
            # lm-eval-harness acc_norm: log-likelihood divided by the option's length in characters.
            per_char = [s / max(len(o), 1) for s, o in zip(option_scores, item.options)]
            values["acc_norm"] = float(choose(per_char, item.letters, False)[0] in item.answers)
        records.append(_record(name, method, item, predicted, **values))
    return records


def choice_requests(items: list[QAItem], with_source: bool):
    from synthcpt.s6_eval.loglik import ChoiceRequest

    return [ChoiceRequest(prompts.closed_book(item, with_source), tuple(" " + o for o in item.options))
            for item in items]


def score_loglik(scorer, name: str, items: list[QAItem], settings) -> list[dict]:
    scores = scorer.score(choice_requests(items, settings.source_line), description=f"{name}: log-likelihood")
    return _choice_records(name, "loglik", items, scores, multi_answer_sets(items))


def score_open_book(scorer, name: str, items: list[QAItem], settings) -> list[dict]:
    """Questions grouped by document; each document is run once and its KV cache shared by its questions.
    Questions whose document is unknown or does not fit the context window are left out."""
    by_document: dict[str, list[QAItem]] = defaultdict(list)
    for item in items:
        if item.document:
            by_document[item.doc_id].append(item)
    multi_sets = multi_answer_sets(items)
    records = []
    for doc_items in by_document.values():
        prefix = prompts.open_book_prefix(doc_items[0])
        requests = choice_requests(doc_items, settings.source_line)
        fitting = [(i, r) for i, r in zip(doc_items, requests) if scorer.fits(r, prefix)]
        if not fitting:
            continue
        scores = scorer.score([r for _, r in fitting], f"{name}: open book", prefix=prefix)
        records += _choice_records(name, "open_book", [i for i, _ in fitting], scores, multi_sets)
    left_out = len(items) - len(records)
    if left_out:
        console.print(f"[yellow]{name}: open book left out {left_out} questions whose document is unknown or "
                      f"longer than the model's context window")
    return records


def score_generative(candidate: Candidate, items: list[QAItem], settings, engine_settings,
                     cache_root: Path, seed: int) -> list[dict]:
    """Few-shot chain-of-thought through the engine; its response cache (one per model weights) makes a
    rerun exact and a stopped one resume."""
    from synthcpt.engine import Request, Sampling, open_engine
    from synthcpt.models import resolve

    multi_sets = multi_answer_sets(items)
    # The engine resolves the model setting itself; the same setting shares an already loaded vLLM.
    engine = engine_settings.model_copy(update={"model": candidate.model, "backend": "vllm"})
    sampling = Sampling(temperature=settings.temperature, top_p=1.0, max_tokens=settings.max_tokens,
                        n=settings.samples, seed=seed, stop=("\n\nArticle:", "\n\nQuestion:", "\n---"))
    requests = [Request(prompt=prompts.chain_of_thought(item, settings.cot_shots, item.qa_set in multi_sets,
                                                        settings.source_line),
                        sampling=sampling, metadata={"index": index}) for index, item in enumerate(items)]
    outputs: dict[int, list[str]] = {}
    with open_engine(engine, cache_root / model_fingerprint(resolve(candidate.model))) as generator:
        for result in generator.generate(requests, description=f"{candidate.name}: chain-of-thought"):
            outputs[result.request.metadata["index"]] = result.texts if result.ok else []
    records = []
    for index, item in enumerate(items):
        texts = outputs.get(index) or []
        parsed = [parse_answer(text, item.letters) for text in texts]
        answered = [p for p in parsed if p is not None]
        samples = max(len(texts), 1)
        records.append(_record(
            candidate.name, "generative", item, answered[0] if answered else None,
            acc=sum(set(p) == set(item.answers) for p in answered) / samples,
            f1=sum(set_f1(p, item.answers) for p in answered) / samples,
            unparsed=(samples - len(answered)) / samples, outputs=texts))
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


def evaluate_models(candidates: list[Candidate], items: list[QAItem], settings, engine_settings, work_dir: Path,
                    seed: int, general_texts: list[str] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Every candidate on every method; the per-question records and each model's perplexity on the
    general texts. Finished (model, method) parts are kept in `work_dir/parts/` and reused on a rerun."""
    from synthcpt.models import resolve

    records: list[dict] = []
    perplexity: dict[str, Any] = {}
    questions_key = hashlib.sha256(json.dumps([i.question_id for i in items]).encode()).hexdigest()[:8]
    for candidate in candidates:
        path = resolve(candidate.model)
        part_key = f"{model_fingerprint(path)}-{questions_key}-{_settings_key(settings)}"
        scorer = None
        for method in settings.methods:
            part = work_dir / "parts" / f"{candidate.name}-{method}-{part_key}.parquet"
            if part.is_file():
                records += read_records(part)
                continue
            if method == "generative":
                found = score_generative(candidate, items, settings, engine_settings, work_dir / "engine", seed)
            else:
                scorer = scorer or _scorer(candidate, settings)
                found = (score_loglik if method == "loglik" else score_open_book)(scorer, candidate.name, items,
                                                                                  settings)
            write_records(part, found, RECORD_FEATURES)
            records += found
        if general_texts:
            scorer = scorer or _scorer(candidate, settings)
            perplexity[candidate.name] = scorer.perplexity(general_texts, settings.perplexity_window,
                                                           settings.perplexity_max_tokens,
                                                           description=f"{candidate.name}: perplexity")
        del scorer
        gc.collect()
    return records, perplexity


def _scorer(candidate: Candidate, settings):
    from synthcpt.s6_eval.loglik import LoglikScorer

    return LoglikScorer(candidate.model, batch_tokens=settings.batch_tokens, row_tokens=settings.row_tokens)


def _settings_key(settings) -> str:
    return hashlib.sha256(json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]


def summarise(records: list[dict], baseline: str, settings, seed: int) -> dict[str, Any]:
    """Per model and method: each metric with its bootstrap interval; every other model's paired
    difference to the baseline; per-document accuracy."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[record["model"], record["method"]].append(record)
    interval = {"resamples": settings.bootstrap_resamples, "confidence": settings.confidence, "seed": seed}
    scores, comparisons, per_document = [], [], []
    for (model, method), group in groups.items():
        for metric in METRICS:
            values = [r[metric] for r in group if r[metric] is not None]
            if values:
                scores.append({"model": model, "method": method, "metric": metric, "n": len(values),
                               "value": sum(values) / len(values), "ci": bootstrap_interval(values, **interval)})
        by_doc: dict[str, list[float]] = defaultdict(list)
        for r in group:
            by_doc[r["doc_id"]].append(r["acc"])
        per_document += [{"model": model, "method": method, "doc_id": doc_id, "n": len(v), "acc": sum(v) / len(v)}
                         for doc_id, v in sorted(by_doc.items())]
        base = {r["question_id"]: r for r in groups.get((baseline, method), [])}
        if model == baseline or not base:
            continue
        for metric in ("acc", "acc_norm", "f1"):
            pairs = [(r[metric], base[r["question_id"]][metric]) for r in group
                     if r["question_id"] in base and r[metric] is not None
                     and base[r["question_id"]][metric] is not None]
            if pairs:
                difference, ci = paired_difference([a for a, _ in pairs], [b for _, b in pairs], **interval)
                comparisons.append({"model": model, "baseline": baseline, "method": method, "metric": metric,
                                    "n": len(pairs), "difference": difference, "ci": ci})
    return {"scores": scores, "comparisons": comparisons, "per_document": per_document}
