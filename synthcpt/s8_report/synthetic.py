"""What the generate stage made: tokens per generator, what was rejected and why, and a browser of
sample records, each with its provenance (document, entities, generator, style, prompt)."""

from __future__ import annotations

import random
from typing import Any

from synthcpt.run_folder import RunFolder
from synthcpt.s8_report import plots
from synthcpt.s8_report.document import (
    Details,
    Fields,
    Figure,
    Heading,
    Paragraph,
    Preformatted,
    Section,
    Table,
)
from synthcpt.s8_report.readers import label, number, parquet_rows, plain, plural, titles
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.stats import GenerateStats, MixStats


def _generator_rows(stats: GenerateStats) -> list[list[str]]:
    rows = []
    for name in dict.fromkeys([*stats.generators, *stats.mix.by_generator]):
        made, mixed = stats.generators.get(name), stats.mix.by_generator.get(name)
        made_cells = ([number(made.target_tokens) if made.target_tokens is not None else "-", number(made.requests),
                       number(made.cached), number(made.records), number(made.tokens)] if made else ["-"] * 5)
        mixed_cells = [number(mixed.records), number(mixed.tokens)] if mixed else ["-"] * 2
        rows.append([name, *made_cells, *mixed_cells])
    return rows


def rejects(stats: GenerateStats) -> dict[str, dict[str, int]]:
    """Reason → generator → records rejected, at generation (parsing, quality rules) and by the mix's
    filters (leaks, duplicates), named apart because a reason may occur at both."""
    counts: dict[str, dict[str, int]] = {}
    phases = (({g: part.rejected for g, part in stats.generators.items()}, "at generation"),
              ({g: part.rejected for g, part in stats.mix.by_generator.items()}, "mix filter"))
    for per_generator, phase in phases:
        for generator, rejected in per_generator.items():
            for reason, n in rejected.items():
                if n:
                    counts.setdefault(f"{label(reason)} ({phase})", {})[generator] = n
    return counts


def _mix_line(mix: MixStats) -> Paragraph:
    removed = plain(mix.rejected) or "none"
    return Paragraph(
        f"The training mix holds {number(mix.records)} records, {number(mix.tokens)} tokens, "
        f"{number(mix.synthetic_tokens)} of them synthetic; the raw corpus goes in "
        f"{plural(mix.raw_copies, 'copy', 'copies')}. Removed by the mix's filters: {removed}.", lead=True)


def synthetic(run: RunFolder, settings: ReportSettings) -> Section | None:
    stats = run.generate_stats()
    if stats is None:
        return None
    blocks: list = [_mix_line(stats.mix)]
    tokens = {name: part.tokens for name, part in stats.mix.by_generator.items()}
    if tokens:
        blocks.append(Figure("synthetic-tokens", plots.tokens_by_generator(tokens), "Tokens per generator in the "
                             "training mix (raw: the corpus itself)"))
    blocks.append(Table(["generator", "token target", "requests", "cached", "records made", "tokens made",
                         "records in the mix", "tokens in the mix"], _generator_rows(stats), id="synthetic-table"))
    reasons = rejects(stats)
    if reasons:
        blocks.append(Figure("rejects", plots.rejects_by_reason(reasons), "Records rejected, per reason and "
                             "generator"))
    else:
        blocks.append(Paragraph("No record was rejected."))
    blocks += samples(run, list(stats.generators), settings)
    return Section("What was generated", "synthetic", blocks)


def _cut(text: str, limit: int) -> str:
    return text[:limit] + (" [...]" if len(text) > limit else "")


def _record(row: dict[str, Any], names: dict[str, str], limit: int) -> Details:
    """A synthetic record (generate's RECORD_SCHEMA) with its provenance."""
    document = names.get(row["doc_id"], "")
    provenance = [("document", f"{document} ({row['doc_id']})" if document else row["doc_id"]),
                  ("generator", row["generator"]), ("style", row["style"] or "default"),
                  ("entities", ", ".join(row["entities"] or []) or "none"),
                  ("prompt", f"{row['prompt_file'] or 'none'} (hash {row['prompt_hash'] or '-'})"),
                  ("model", row["model"] or "-"), ("tokens", number(row["n_tokens"] or 0))]
    summary = f"{row['generator']} · {row['style'] or 'default'} · {document or row['doc_id']}"
    return Details(summary, [Fields(provenance), Preformatted(_cut(row["text"] or "", limit))])


def _pair(row: dict[str, Any], names: dict[str, str], limit: int) -> Details:
    """An instruction pair (generate's INSTRUCTION_SCHEMA)."""
    document = names.get(row["doc_id"], row["doc_id"])
    text = _cut(f"Instruction: {row['instruction']}\n\nResponse: {row['response']}", limit)
    return Details(f"instruction pair · {row['task_type'] or 'task'} · {document}",
                   [Fields([("document", document), ("task", row["task_type"] or "-")]), Preformatted(text)])


def samples(run: RunFolder, generators: list[str], settings: ReportSettings) -> list:
    """A few records per generator (a fixed sample, so a rebuilt report shows the same ones)."""
    if settings.samples == 0:
        return []
    names, rng = titles(run), random.Random(0)
    blocks: list = []
    for generator in sorted(generators):
        rows = parquet_rows(run.generator_folder(generator), "part-*.parquet")
        blocks += [_record(r, names, settings.sample_chars) for r in rng.sample(rows, min(settings.samples, len(rows)))]
    pairs = parquet_rows(run.instructions, "part-*.parquet")
    blocks += [_pair(r, names, settings.sample_chars) for r in rng.sample(pairs, min(settings.samples, len(pairs)))]
    if not blocks:
        return []
    return [Heading("Sample records"), Paragraph(f"Up to {settings.samples} records per generator; open one for "
                                                 "its text and where it came from."), *blocks]
