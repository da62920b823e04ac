"""Gathers what a run folder holds into report sections; a stage that has not run is left out."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthcpt.atomic import read_records, write_text
from synthcpt.s7_report import plots
from synthcpt.s7_report.document import Figure, Paragraph, Preformatted, Section, Table, to_html, to_markdown

FIGURES_FOLDER = "report"


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _parquet_rows(folder: Path, pattern: str = "*.parquet") -> list[dict[str, Any]]:
    return read_records(*sorted(folder.glob(pattern))) if folder.is_dir() else []


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[list[str]]:
    """Nested statistics as `key.sub: value` rows."""
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, name + ".")
        else:
            rows.append([name, _value(value)])
    return rows


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def overview(run_dir: Path, settings) -> Section | None:
    manifest = _json(run_dir / "manifest.json")
    if manifest is None:
        return None
    stages = manifest.get("stages", {})
    rows = [[name, entry.get("status", ""), _value(entry.get("seconds", "")),
             ", ".join(f"{k}={_value(v)}" for k, v in (entry.get("stats") or {}).items()
                       if isinstance(v, (int, float, str)))]
            for name, entry in stages.items()]
    versions = ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest.get("created", 0)))
    return Section("Run", "run", [
        Paragraph(f"Run folder {run_dir}, created {created}, code {manifest.get('git_sha') or 'unknown'}."),
        Paragraph(f"Versions: {versions}."),
        Table(["stage", "status", "seconds", "stats"], rows, id="stages-table")])


def config_section(run_dir: Path, settings) -> Section | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return Section("Config", "config", [Preformatted(path.read_text(encoding="utf-8"), summary="config.yaml")])


def corpus(run_dir: Path, settings) -> Section | None:
    ingest = run_dir / "ingest"
    stats = _json(ingest / "stats.json")
    if stats is None:
        return None
    documents = _parquet_rows(ingest, "documents.parquet")
    questions = _parquet_rows(ingest, "questions.parquet")
    per_doc = {d["doc_id"]: 0 for d in documents}
    for q in questions:
        per_doc[q["doc_id"]] = per_doc.get(q["doc_id"], 0) + 1
    rows = [[d["doc_id"], d["title"], json.loads(d.get("metadata") or "{}").get("author", ""), _value(d["n_tokens"]),
             _value(d["n_chunks"]), _value(per_doc.get(d["doc_id"], 0))] for d in documents]
    return Section("Corpus", "corpus", [
        Table(["statistic", "value"], _flatten(stats)),
        Table(["document", "title", "author", "tokens", "chunks", "questions"], rows, id="documents-table")])


def graph(run_dir: Path, settings) -> Section | None:
    entities = _parquet_rows(run_dir / "entities", "entities.parquet")
    stats = _json(run_dir / "graphs" / "stats.json")
    if not entities and stats is None:
        return None
    blocks: list = []
    if entities:
        counts: dict[str, int] = {}
        for row in entities:
            counts[row["doc_id"]] = counts.get(row["doc_id"], 0) + 1
        blocks.append(Table(["document", "entities"], [[d, _value(n)] for d, n in counts.items()],
                            caption="Entities extracted per document"))
    if isinstance(stats, dict):
        blocks.append(Table(["statistic", "value"], _flatten(stats), caption="Knowledge graph"))
    return Section("Entities and graph", "graph", blocks)


def synthetic(run_dir: Path, settings) -> Section | None:
    stats = _json(run_dir / "synthetic" / "stats.json")
    if not isinstance(stats, dict):
        return None
    generators = stats.get("generators") or {}
    mix = stats.get("mix") or {}
    by_generator = mix.get("by_generator") or {}
    reasons = lambda counts: ", ".join(f"{k} {v}" for k, v in (counts or {}).items()) or "-"
    rows = [[name, _value(generators.get(name, {}).get("requests", "")), _value(generators.get(name, {})
             .get("records", "")), reasons(generators.get(name, {}).get("rejected")),
             _value(part.get("records", "")), _value(part.get("tokens", "")), reasons(part.get("rejected"))]
            for name, part in by_generator.items()]
    blocks: list = [Table(["generator", "requests", "records", "rejected when parsed", "in the mix", "mix tokens",
                           "removed by filters"], rows, id="synthetic-table")]
    if mix:
        blocks.append(Paragraph(
            f"Training mix: {_value(mix.get('records', 0))} records, {_value(mix.get('tokens', 0))} tokens, "
            f"{_value(mix.get('synthetic_tokens', 0))} of them synthetic; raw corpus repeated "
            f"{_value(mix.get('raw_copies', 0))} times; removed in total: {reasons(mix.get('rejected'))}."))
    tokens = {name: part["tokens"] for name, part in by_generator.items() if isinstance(part.get("tokens"), int)}
    if tokens:
        blocks.append(Figure("synthetic-tokens", plots.tokens_by_generator(tokens), "Tokens per generator in the mix"))
    other = {k: v for k, v in stats.items() if k not in ("generators", "mix", "coverage")}
    if other:
        blocks.append(Table(["statistic", "value"], _flatten(other)))
    return Section("Synthetic data", "synthetic", blocks)


def coverage(run_dir: Path, settings) -> Section | None:
    data = _json(run_dir / "synthetic" / "coverage.json")
    if not isinstance(data, dict):
        return None
    return Section("Coverage of the knowledge graph", "coverage",
                   [Paragraph("Share of each document's entities and entity pairs that appear in at least one "
                              "synthetic passage."), Table(["measure", "value"], _flatten(data))])


def samples(run_dir: Path, settings) -> Section | None:
    folder = run_dir / "synthetic"
    if not folder.is_dir() or settings.samples == 0:
        return None
    blocks: list = []
    rng = random.Random(0)
    for generator in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in ("mix", "instructions")):
        rows = _parquet_rows(generator)
        for row in rng.sample(rows, min(settings.samples, len(rows))):
            text = row.get("text", "")
            cut = text[:settings.sample_chars] + (" [...]" if len(text) > settings.sample_chars else "")
            label = f"{generator.name} ({row.get('style') or 'default'}), {row.get('doc_id', '')}"
            blocks.append(Preformatted(cut, summary=label))
    pairs = _parquet_rows(folder / "instructions")
    for row in rng.sample(pairs, min(settings.samples, len(pairs))):
        text = f"Instruction: {row['instruction']}\n\nResponse: {row['response']}"[:settings.sample_chars]
        blocks.append(Preformatted(text, summary=f"instruction pair ({row.get('task_type', '')})"))
    return Section("Samples of synthetic text", "samples", blocks) if blocks else None


def training(run_dir: Path, settings) -> Section | None:
    folder = run_dir / "train"
    log_path = folder / "log.jsonl"
    log = []
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                log.append(row)
    stats = _json(folder / "stats.json")
    if not log and stats is None:
        return None
    blocks: list = []
    if isinstance(stats, dict):
        blocks.append(Table(["statistic", "value"], _flatten(stats)))
    if log:
        blocks.append(Figure("training-curves", plots.training_curves(log), "Training loss, learning rate and "
                             "throughput by step"))
    return Section("Training", "training", blocks)


def evaluation(run_dir: Path, settings) -> Section | None:
    results = _json(run_dir / "eval" / "results.json")
    if not isinstance(results, dict) or "scores" not in results:
        return None
    titles = {d["doc_id"]: d["title"] for d in _parquet_rows(run_dir / "ingest", "documents.parquet")}
    differences = {(c["model"], c["method"], c["metric"]): c for c in results.get("comparisons", [])}
    baseline = results.get("baseline", "base")
    rows = []
    for s in results["scores"]:
        diff = differences.get((s["model"], s["method"], s["metric"]))
        rows.append([s["model"], s["method"], s["metric"], _value(s["n"]), f"{s['value']:.3f}", _interval(s["ci"]),
                     f"{diff['difference']:+.3f} {_interval(diff['ci'])}" if diff else ""])
    confidence = f"{results.get('confidence', 0.95):.0%}"
    blocks: list = [
        Paragraph(f"{results.get('questions')} questions on {results.get('documents')} documents "
                  f"(sets: {', '.join(results.get('qa_sets', []))}), models: "
                  + ", ".join(f"{k} = {v}" for k, v in results.get("models", {}).items())
                  + f". Intervals: {confidence} bootstrap over questions; the difference to {baseline} is "
                    "paired on the same questions."),
        Table(["model", "method", "metric", "n", "value", f"{confidence} interval", f"difference to {baseline}"],
              rows, id="evaluation-table", caption="Closed-book QA")]
    if any(s["metric"] == "acc" for s in results["scores"]):
        blocks.append(Figure("accuracy", plots.accuracy_with_intervals(results["scores"]),
                             f"Accuracy with {confidence} bootstrap intervals"))
    forgetting = (results.get("forgetting") or {}).get("perplexity") or {}
    if forgetting:
        blocks.append(Table(["model", "perplexity", "tokens"],
                            [[m, f"{v['perplexity']:.3f}", _value(v["tokens"])] for m, v in forgetting.items()],
                            id="forgetting-table", caption="Forgetting check: perplexity on held-out general text"))
    per_document = results.get("per_document", [])
    if per_document:
        blocks.append(Table(["document", "title", "model", "method", "questions", "acc"],
                            [[r["doc_id"], titles.get(r["doc_id"], ""), r["model"], r["method"], _value(r["n"]),
                              f"{r['acc']:.3f}"] for r in per_document],
                            id="per-document-table", caption="Accuracy per document"))
    return Section("Evaluation", "evaluation", blocks)


SECTIONS: tuple[Callable[[Path, Any], Section | None], ...] = (
    overview, config_section, corpus, graph, synthetic, coverage, samples, training, evaluation)


def build_report(run_dir: Path, settings) -> dict[str, Any]:
    """Write `report.html` and `report.md` (figures for the Markdown in `report/`) into the run folder."""
    run_dir = Path(run_dir)
    sections = [s for s in (build(run_dir, settings) for build in SECTIONS) if s is not None]
    title = f"synthcpt report: {run_dir.resolve().name}"
    write_text(run_dir / "report.html", to_html(title, sections))
    write_text(run_dir / "report.md", to_markdown(title, sections, run_dir / FIGURES_FOLDER, FIGURES_FOLDER))
    return {"sections": len(sections), "shown": [s.id for s in sections]}
