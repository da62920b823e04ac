"""Closed-book QA evaluation of several models on the same questions, and the comparison of their scores.

Each method is a plugin (`synthcpt/s7_eval/methods/`, selected by `eval.methods`): `loglik` (options by
log-likelihood), `open_book` (the same with the document, the reference), `generative` (few-shot
chain-of-thought through the engine), `freeform` (a short answer graded by a judge), `rag` (options by
log-likelihood after BM25-retrieved passages)...

In a question set where some questions have several correct options (Coursera), every question is
answered with a set of letters and scored by exact set match (`acc`) and per-option F1.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from synthcpt.atomic import read_records, write_records
from synthcpt.engine.settings import EngineSettings
from synthcpt.plugins import EVAL_METHODS
from synthcpt.prompts import prompts_fingerprint
from synthcpt.questions import QAItem
from synthcpt.run_folder import Chunk
from synthcpt.s7_eval.method import MethodContext
from synthcpt.s7_eval.metrics import bootstrap_interval, paired_difference
from synthcpt.s7_eval.prompts import EvalPrompts
from synthcpt.s7_eval.records import METRICS, RECORD_SCHEMA, Candidate, model_fingerprint
from synthcpt.s7_eval.settings import EvalSettings


class _Scorer:
    """A candidate's log-likelihood scorer, loaded at first use and shared by its methods."""

    def __init__(self, candidate: Candidate, settings: EvalSettings):
        self.candidate, self.settings, self.loaded = candidate, settings, None

    def __call__(self):
        if self.loaded is None:
            from synthcpt.s7_eval.loglik import LoglikScorer

            self.loaded = LoglikScorer(self.candidate.model, batch_tokens=self.settings.batch_tokens,
                                       row_tokens=self.settings.row_tokens)
        return self.loaded


def method_key(settings: EvalSettings, method: str, prompts_dir: Path | None,
               depends_on: dict[str, Any] | None = None) -> str:
    """What a stored (model, method) part depends on besides the model and questions: the shared
    settings, the method's own, the content of its prompts (an edited prompt scores again) and what
    the method says it depends on (`Method.depends_on`: its judge, its passages)."""
    plugin = EVAL_METHODS.get(method)
    # The record schema too: a stored part with other columns is scored again, never read half-filled.
    payload = {"shared": settings.shared_identity(), "method": settings.method_settings(method).model_dump(mode="json"),
               "prompts": prompts_fingerprint(plugin.prompt_files(settings), prompts_dir), "schema": RECORD_SCHEMA}
    if depends_on:  # only when set, so the keys of the methods without it stay what they were
        payload["depends_on"] = depends_on
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]


def evaluate_models(candidates: list[Candidate], items: list[QAItem], settings: EvalSettings, engine_settings: EngineSettings, work_dir: Path,
                    seed: int, general_texts: list[str] | None = None, prompts_dir: Path | None = None,
                    passages: list[Chunk] | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Every candidate on every method; the per-question records and each model's perplexity on the
    general texts. `passages`: what retrieval methods (`rag`) retrieve from. Finished (model, method)
    parts are kept in `work_dir/parts/` and reused on a rerun."""
    from synthcpt.models import resolve

    records: list[dict] = []
    perplexity: dict[str, Any] = {}
    prompts = EvalPrompts(prompts_dir)
    questions_key = hashlib.sha256(json.dumps([i.question_id for i in items]).encode()).hexdigest()[:8]
    for candidate in candidates:
        weights = model_fingerprint(resolve(candidate.model))
        scorer = _Scorer(candidate, settings)
        for method in settings.methods:
            plugin = EVAL_METHODS.get(method)(settings)
            ctx = MethodContext(candidate, items, settings, prompts, engine_settings, work_dir, seed, scorer,
                                list(passages or []))
            key = method_key(settings, method, prompts_dir, plugin.depends_on(ctx))
            part = work_dir / "parts" / f"{candidate.name}-{method}-{weights}-{questions_key}-{key}.parquet"
            if part.is_file():
                records += read_records(part)
                continue
            found = plugin.score(ctx)
            write_records(part, found, RECORD_SCHEMA)
            records += found
        if general_texts:
            perplexity[candidate.name] = scorer().perplexity(general_texts, settings.perplexity_window,
                                                             settings.perplexity_max_tokens,
                                                             description=f"{candidate.name}: perplexity")
        del scorer
        gc.collect()
    return records, perplexity


def summarise(records: list[dict], baseline: str, settings: EvalSettings, seed: int) -> dict[str, Any]:
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
            if r["acc"] is not None:  # a free-form answer the judge's verdict on did not parse has none
                by_doc[r["doc_id"]].append(r["acc"])
        per_document += [{"model": model, "method": method, "doc_id": doc_id, "n": len(v), "acc": sum(v) / len(v)}
                         for doc_id, v in sorted(by_doc.items())]
        base = {r["question_id"]: r for r in groups.get((baseline, method), [])}
        if model == baseline or not base:
            continue
        for metric in ("acc", "acc_attempted", "acc_norm", "f1", "token_f1"):
            pairs = [(r[metric], base[r["question_id"]][metric]) for r in group
                     if r["question_id"] in base and r[metric] is not None
                     and base[r["question_id"]][metric] is not None]
            if pairs:
                difference, ci = paired_difference([a for a, _ in pairs], [b for _, b in pairs], **interval)
                comparisons.append({"model": model, "baseline": baseline, "method": method, "metric": metric,
                                    "n": len(pairs), "difference": difference, "ci": ci})
    return {"scores": scores, "comparisons": comparisons, "per_document": per_document}
