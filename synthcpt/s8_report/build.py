"""Gathers what a run folder holds into report sections, the findings first: did the model learn the
corpus, the exam it was measured with, what was generated, the graph, its coverage, training; then the corpus and the run itself.
A stage that has not run is left out."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthcpt.atomic import read_records, write_text
from synthcpt.errors import SynthcptError
from synthcpt.run_folder import RunFolder, document_of, load_graph
from synthcpt.s8_report import plots
from synthcpt.s8_report.document import (
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
from synthcpt.s8_report.exam import exam
from synthcpt.s8_report.learning import learning
from synthcpt.s8_report.readers import exam_items, exam_ran, fields, number, share, titles, training_log
from synthcpt.s8_report.rounds import rounds
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.s8_report.synthetic import synthetic
from synthcpt.stats import Coverage, EvalResults, GraphStats, ReportStats

# The report's own manifest entry reads "running" while this report is written: it is left out.
REPORT_STAGE = "report"


def overview(run: RunFolder, settings: ReportSettings) -> Section | None:
    manifest = run.stored_manifest()
    if manifest is None:
        return None
    rows = []
    for name, entry in manifest.stages.items():
        if name == REPORT_STAGE:
            continue
        stats = ", ".join(f"{k} {v}" for k, v in fields(entry.stats))
        rows.append([name, entry.status, number(entry.seconds) if entry.seconds is not None else "", stats])
    versions = ", ".join(f"{k} {v}" for k, v in manifest.versions.items())
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest.created))
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return Section("Run", "run", [
        Paragraph(f"Run folder {run.dir}, created {created}, code {manifest.git_sha or 'unknown'}; this "
                  f"report built {built}."),
        Paragraph(f"Versions: {versions}."),
        Table(["stage", "status", "seconds", "results"], rows, id="stages-table")])


def config_section(run: RunFolder, settings: ReportSettings) -> Section | None:
    if not run.config_path.is_file():
        return None
    return Section("Config", "config", [Preformatted(run.config_path.read_text(encoding="utf-8"),
                                                     summary=run.config_path.name)])


def _questions_per_document(run: RunFolder) -> Counter:
    """The exam's questions once the exam stage has run (given and generated), else those ingest kept
    aside; an exam file this version cannot read is the exam section's line, and counts the latter here."""
    if exam_ran(run):
        try:
            return Counter(q.doc_id for q in exam_items(run))
        except SynthcptError:
            pass
    return Counter(q["doc_id"] for q in run.questions())


def corpus(run: RunFolder, settings: ReportSettings) -> Section | None:
    stats = run.ingest_stats()
    if stats is None:
        return None
    per_doc = _questions_per_document(run)
    rows = [[row["title"], row["doc_id"], document_of(row).author or "", number(row["n_tokens"]),
             number(row["n_chunks"]), number(per_doc[row["doc_id"]])] for row in read_records(run.documents_path)]
    return Section("Corpus", "corpus", [
        Fields(fields(stats.model_dump())),
        Table(["title", "document", "author", "tokens", "chunks", "questions"], rows, id="documents-table")])


def _graph_summary(stats: GraphStats) -> Paragraph:
    return Paragraph(
        f"{number(stats.nodes)} entities joined by {number(stats.edges)} co-occurrence edges over "
        f"{number(stats.documents)} documents ({number(stats.entities_per_document)} entities per document, "
        f"{number(stats.shared_entities)} named in several documents); {number(stats.components)} connected "
        f"components, the largest holding {number(stats.largest_component)}; mean degree "
        f"{number(stats.mean_degree)}, highest {number(stats.max_degree)}, "
        f"{number(stats.isolated_nodes)} entities without edges.", lead=True)


def _top_entities(stats: GraphStats) -> Table:
    rows = [[e.entity, e.type, number(e.degree), number(e.weighted_degree), number(e.mentions), number(e.documents)]
            for e in stats.top_entities]
    return Table(["entity", "type", "edges", "co-occurrences", "mentions", "documents"], rows,
                 id="top-entities-table", caption="Most connected entities")


def graph(run: RunFolder, settings: ReportSettings) -> Section | None:
    from synthcpt.graph_drawing import DRAWN_ENTITIES, draw_graph

    stats = run.graph_stats()
    if stats is None:
        return None
    blocks: list = [_graph_summary(stats)]
    if run.graph_dir is not None:
        blocks.append(Figure("graph", draw_graph(load_graph(run.graph_dir)), f"The {DRAWN_ENTITIES} most connected "
                             "entities and the edges among them (node size: mentions, edge width: co-occurrences)"))
    blocks.append(_top_entities(stats))
    counts = Counter(row["doc_id"] for row in run.entities())
    if counts:
        names = titles(run)
        blocks.append(Table(["document", "entities"], [[names.get(d, d), number(n)] for d, n in counts.items()],
                            id="entities-table", caption="Entities extracted per document"))
    return Section("Knowledge graph", "graph", blocks)


def _coverage_line(name: str, part: Coverage) -> str:
    return (f"{name}: {number(part.passages)} passages name {share(part.entity_coverage)} of the entities, "
            f"{share(part.pair_coverage)} of the entity pairs and {share(part.edge_coverage)} of the "
            "co-occurring pairs")


def coverage(run: RunFolder, settings: ReportSettings) -> Section | None:
    parts = run.coverage()
    if not parts:
        return None
    names = {"all": "all synthetic text", "entigraph": "EntiGraph text"}
    blocks: list = [Paragraph("; ".join(_coverage_line(names.get(k, k), v) for k, v in parts.items()) + ".",
                              lead=True)]
    # One chart, of the widest part: all synthetic text when present.
    key = "all" if "all" in parts else next(iter(parts))
    if parts[key].per_document:
        blocks.append(Figure("coverage", plots.coverage_per_document(parts[key].per_document, titles(run)),
                             f"Coverage per document by {names.get(key, key)}"))
    return Section("Coverage of the graph", "coverage", blocks)


def _forgetting(results: EvalResults | None) -> list:
    perplexity = results.forgetting.perplexity if results is not None else {}
    if not perplexity:
        return []
    rows = [[model, f"{v.perplexity:.3f}", number(v.tokens)] for model, v in perplexity.items()]
    return [Heading("Forgetting"),
            Paragraph("Perplexity on held-out general text the model never trained on: a rise after training "
                      "means general ability was lost."),
            Table(["model", "perplexity", "tokens"], rows, id="forgetting-table")]


def training(run: RunFolder, settings: ReportSettings) -> Section | None:
    log = training_log(run.training_log)
    stats = run.train_stats()
    forgetting = _forgetting(run.eval_results())
    if not log and stats is None and not forgetting:
        return None
    blocks: list = []
    if stats is not None:
        blocks.append(Fields(fields(stats.model_dump())))
    if log:
        blocks.append(Figure("training-curves", plots.training_curves(log), "Training loss and learning rate by "
                             "optimizer step"))
    return Section("Training", "training", blocks + forgetting)


SECTIONS: tuple[Callable[[RunFolder, Any], Section | None], ...] = (
    learning, rounds, exam, synthetic, graph, coverage, training, corpus, overview, config_section)


def _section(build: Callable[[RunFolder, ReportSettings], Section | None], run: RunFolder,
             settings: ReportSettings) -> Section | None:
    """A section, or in its place the one line saying why its outputs could not be read (a file another
    version of synthcpt wrote): the rest of the report still shows."""
    try:
        return build(run, settings)
    except SynthcptError as e:
        name = build.__name__.replace("_", " ")
        return Section(f"Not shown: {name}", build.__name__.replace("_", "-"), [Paragraph(str(e))])


def build_report(run_dir: Path, settings: ReportSettings) -> ReportStats:
    """Write `report.html` and `report.md` (figures for the Markdown in `report/`) into the run folder."""
    run = RunFolder(Path(run_dir))
    sections = [s for s in (_section(build, run, settings) for build in SECTIONS) if s is not None]
    title = f"synthcpt report: {run.dir.resolve().name}"
    write_text(run.report_html, to_html(title, sections))
    write_text(run.report_md, to_markdown(title, sections, run.report_figures, run.report_figures.name))
    return ReportStats(sections=len(sections), shown=[s.id for s in sections])
