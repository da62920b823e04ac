"""Gathers what a run folder holds into report sections, the findings first: did the model learn the
corpus, what was generated, the graph, its coverage, training; then the corpus and the run itself.
A stage that has not run is left out."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthcpt.atomic import write_text
from synthcpt.run_folder import RunFolder, read_json
from synthcpt.s7_report import plots
from synthcpt.s7_report.document import (
    Fields,
    Figure,
    Heading,
    Paragraph,
    Preformatted,
    Section,
    Table,
    to_html,
    to_markdown,
)
from synthcpt.s7_report.learning import learning
from synthcpt.s7_report.readers import fields, number, parquet_rows, share, titles, training_log
from synthcpt.s7_report.synthetic import synthetic

# The report's own manifest entry reads "running" while this report is written: it is left out.
REPORT_STAGE = "report"


def overview(run_dir: Path, settings) -> Section | None:
    manifest = read_json(run_dir / "manifest.json")
    if manifest is None:
        return None
    rows = []
    for name, entry in (manifest.get("stages") or {}).items():
        if name == REPORT_STAGE:
            continue
        stats = ", ".join(f"{k} {v}" for k, v in fields(entry.get("stats") or {}))
        rows.append([name, entry.get("status", ""), number(entry.get("seconds", "")), stats])
    versions = ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items())
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest.get("created", 0)))
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return Section("Run", "run", [
        Paragraph(f"Run folder {run_dir}, created {created}, code {manifest.get('git_sha') or 'unknown'}; this "
                  f"report built {built}."),
        Paragraph(f"Versions: {versions}."),
        Table(["stage", "status", "seconds", "results"], rows, id="stages-table")])


def config_section(run_dir: Path, settings) -> Section | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return Section("Config", "config", [Preformatted(path.read_text(encoding="utf-8"), summary="config.yaml")])


def corpus(run_dir: Path, settings) -> Section | None:
    import json

    ingest = RunFolder(run_dir).folder("ingest")
    stats = read_json(ingest / "stats.json")
    if stats is None:
        return None
    documents = parquet_rows(ingest, "documents.parquet")
    per_doc = Counter(q["doc_id"] for q in parquet_rows(ingest, "questions.parquet"))
    rows = [[d["title"], d["doc_id"], json.loads(d.get("metadata") or "{}").get("author", ""), number(d["n_tokens"]),
             number(d["n_chunks"]), number(per_doc.get(d["doc_id"], 0))] for d in documents]
    return Section("Corpus", "corpus", [
        Fields(fields(stats)),
        Table(["title", "document", "author", "tokens", "chunks", "questions"], rows, id="documents-table")])


def _graph_summary(stats: dict[str, Any]) -> Paragraph:
    return Paragraph(
        f"{number(stats['nodes'])} entities joined by {number(stats['edges'])} co-occurrence edges over "
        f"{number(stats['documents'])} documents ({number(stats['entities_per_document'])} entities per document, "
        f"{number(stats['shared_entities'])} named in several documents); {number(stats['components'])} connected "
        f"components, the largest holding {number(stats['largest_component'])}; mean degree "
        f"{number(stats['mean_degree'])}, highest {number(stats['max_degree'])}, "
        f"{number(stats['isolated_nodes'])} entities without edges.", lead=True)


def _top_entities(stats: dict[str, Any]) -> Table:
    rows = [[e["entity"], e["type"], number(e["degree"]), number(e["weighted_degree"]), number(e["mentions"]),
             number(e["documents"])] for e in stats.get("top_entities") or []]
    return Table(["entity", "type", "edges", "co-occurrences", "mentions", "documents"], rows,
                 id="top-entities-table", caption="Most connected entities")


def graph(run_dir: Path, settings) -> Section | None:
    from synthcpt.graph_drawing import DRAWN_ENTITIES, draw_graph
    from synthcpt.run_folder import GRAPH_JSON_FILE, load_graph

    folder = RunFolder(run_dir).folder("graph")
    stats = read_json(folder / "stats.json")
    if not isinstance(stats, dict):
        return None
    blocks: list = [_graph_summary(stats)]
    if (folder / GRAPH_JSON_FILE).is_file():
        blocks.append(Figure("graph", draw_graph(load_graph(folder)), f"The {DRAWN_ENTITIES} most connected "
                             "entities and the edges among them (node size: mentions, edge width: co-occurrences)"))
    blocks.append(_top_entities(stats))
    counts = Counter(row["doc_id"] for row in parquet_rows(RunFolder(run_dir).folder("entities"), "entities.parquet"))
    if counts:
        names = titles(run_dir)
        blocks.append(Table(["document", "entities"], [[names.get(d, d), number(n)] for d, n in counts.items()],
                            id="entities-table", caption="Entities extracted per document"))
    return Section("Knowledge graph", "graph", blocks)


def _coverage_line(name: str, part: dict[str, Any]) -> str:
    return (f"{name}: {number(part['passages'])} passages name {share(part['entity_coverage'])} of the entities, "
            f"{share(part['pair_coverage'])} of the entity pairs and {share(part['edge_coverage'])} of the "
            "co-occurring pairs")


def coverage(run_dir: Path, settings) -> Section | None:
    data = read_json(RunFolder(run_dir).folder("generate") / "coverage.json")
    parts = {k: v for k, v in (data or {}).items() if isinstance(v, dict) and "entity_coverage" in v}
    if not parts:
        return None
    names = {"all": "all synthetic text", "entigraph": "EntiGraph text"}
    blocks: list = [Paragraph("; ".join(_coverage_line(names.get(k, k), v) for k, v in parts.items()) + ".",
                              lead=True)]
    # One chart, of the widest part: all synthetic text when present.
    key = "all" if "all" in parts else next(iter(parts))
    if parts[key].get("per_document"):
        blocks.append(Figure("coverage", plots.coverage_per_document(parts[key]["per_document"], titles(run_dir)),
                             f"Coverage per document by {names.get(key, key)}"))
    return Section("Coverage of the graph", "coverage", blocks)


def _forgetting(results: dict[str, Any] | None) -> list:
    perplexity = ((results or {}).get("forgetting") or {}).get("perplexity") or {}
    if not perplexity:
        return []
    rows = [[model, f"{v['perplexity']:.3f}", number(v["tokens"])] for model, v in perplexity.items()]
    return [Heading("Forgetting"),
            Paragraph("Perplexity on held-out general text the model never trained on: a rise after training "
                      "means general ability was lost."),
            Table(["model", "perplexity", "tokens"], rows, id="forgetting-table")]


def training(run_dir: Path, settings) -> Section | None:
    folder = RunFolder(run_dir).folder("train")
    log = training_log(folder / "log.jsonl")
    stats = read_json(folder / "stats.json")
    forgetting = _forgetting(read_json(RunFolder(run_dir).folder("eval") / "results.json"))
    if not log and stats is None and not forgetting:
        return None
    blocks: list = []
    if isinstance(stats, dict):
        blocks.append(Fields(fields(stats)))
    if log:
        blocks.append(Figure("training-curves", plots.training_curves(log), "Training loss and learning rate by "
                             "optimizer step"))
    return Section("Training", "training", blocks + forgetting)


SECTIONS: tuple[Callable[[Path, Any], Section | None], ...] = (
    learning, synthetic, graph, coverage, training, corpus, overview, config_section)


def build_report(run_dir: Path, settings) -> dict[str, Any]:
    """Write `report.html` and `report.md` (figures for the Markdown in `report/`) into the run folder."""
    run = RunFolder(Path(run_dir))
    sections = [s for s in (build(run.dir, settings) for build in SECTIONS) if s is not None]
    title = f"synthcpt report: {run.dir.resolve().name}"
    write_text(run.report_html, to_html(title, sections))
    write_text(run.report_md, to_markdown(title, sections, run.report_figures, run.report_figures.name))
    return {"sections": len(sections), "shown": [s.id for s in sections]}
