"""What the generate stage made: tokens per generator, what was rejected and why, and a browser of
sample records, each with its provenance (document, entities, generator, style, prompt)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from synthcpt.run_folder import RunFolder, read_json
from synthcpt.s7_report import plots
from synthcpt.s7_report.document import (
    Details,
    Fields,
    Figure,
    Heading,
    Paragraph,
    Preformatted,
    Section,
    Table,
)
from synthcpt.s7_report.readers import label, number, parquet_rows, plain, plural, titles

# Folders of generate/ that hold the mix or its by-products, not one generator's records.
NOT_GENERATORS = ("mix", "instructions")


def _generator_rows(stats: dict[str, Any]) -> list[list[str]]:
    generators = stats.get("generators") or {}
    in_mix = (stats.get("mix") or {}).get("by_generator") or {}
    rows = []
    for name in dict.fromkeys([*generators, *in_mix]):
        made, mixed = generators.get(name, {}), in_mix.get(name, {})
        rows.append([name, number(made.get("target_tokens") or "") or "-", number(made.get("requests", "-")),
                     number(made.get("cached", "-")), number(made.get("records", "-")),
                     number(made.get("tokens", "-")), number(mixed.get("records", "-")),
                     number(mixed.get("tokens", "-"))])
    return rows


def rejects(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Reason → generator → records rejected, at generation (parsing, quality rules) and by the mix's
    filters (leaks, duplicates), named apart because a reason may occur at both."""
    counts: dict[str, dict[str, int]] = {}
    phases = ((stats.get("generators") or {}, "at generation"),
              ((stats.get("mix") or {}).get("by_generator") or {}, "mix filter"))
    for per_generator, phase in phases:
        for generator, part in per_generator.items():
            for reason, n in (part.get("rejected") or {}).items():
                if n:
                    counts.setdefault(f"{label(reason)} ({phase})", {})[generator] = n
    return counts


def _mix_line(mix: dict[str, Any]) -> Paragraph:
    removed = plain(mix.get("rejected") or {}) or "none"
    return Paragraph(
        f"The training mix holds {number(mix.get('records', 0))} records, {number(mix.get('tokens', 0))} tokens, "
        f"{number(mix.get('synthetic_tokens', 0))} of them synthetic; the raw corpus goes in "
        f"{plural(mix.get('raw_copies', 0), 'copy', 'copies')}. Removed by the mix's filters: {removed}.", lead=True)


def synthetic(run_dir: Path, settings) -> Section | None:
    stats = read_json(RunFolder(run_dir).folder("generate") / "stats.json")
    if not isinstance(stats, dict):
        return None
    mix = stats.get("mix") or {}
    blocks: list = [_mix_line(mix)] if mix else []
    tokens = {name: part["tokens"] for name, part in (mix.get("by_generator") or {}).items()
              if isinstance(part.get("tokens"), int)}
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
    blocks += samples(run_dir, settings)
    return Section("What was generated", "synthetic", blocks)


def _cut(text: str, limit: int) -> str:
    return text[:limit] + (" [...]" if len(text) > limit else "")


def _record(row: dict[str, Any], names: dict[str, str], limit: int) -> Details:
    document = names.get(row.get("doc_id", ""), "")
    provenance = [("document", f"{document} ({row.get('doc_id', '')})" if document else row.get("doc_id", "")),
                  ("generator", row.get("generator", "")), ("style", row.get("style") or "default"),
                  ("entities", ", ".join(row.get("entities") or []) or "none"),
                  ("prompt", f"{row.get('prompt_file') or 'none'} (hash {row.get('prompt_hash') or '-'})"),
                  ("model", row.get("model") or "-"), ("tokens", number(row.get("n_tokens") or 0))]
    summary = f"{row.get('generator', '')} · {row.get('style') or 'default'} · {document or row.get('doc_id', '')}"
    return Details(summary, [Fields(provenance), Preformatted(_cut(row.get("text") or "", limit))])


def _pair(row: dict[str, Any], names: dict[str, str], limit: int) -> Details:
    document = names.get(row.get("doc_id", ""), row.get("doc_id", ""))
    text = _cut(f"Instruction: {row['instruction']}\n\nResponse: {row['response']}", limit)
    return Details(f"instruction pair · {row.get('task_type') or 'task'} · {document}",
                   [Fields([("document", document), ("task", row.get("task_type") or "-")]), Preformatted(text)])


def samples(run_dir: Path, settings) -> list:
    """A few records per generator (a fixed sample, so a rebuilt report shows the same ones)."""
    folder = RunFolder(run_dir).folder("generate")
    if settings.samples == 0 or not folder.is_dir():
        return []
    names, rng = titles(run_dir), random.Random(0)
    blocks: list = []
    generators = sorted(p for p in folder.iterdir()
                        if p.is_dir() and p.name not in NOT_GENERATORS and not p.name.startswith("."))
    for generator in generators:
        rows = parquet_rows(generator, "part-*.parquet")
        blocks += [_record(r, names, settings.sample_chars) for r in rng.sample(rows, min(settings.samples, len(rows)))]
    pairs = parquet_rows(folder / "instructions", "part-*.parquet")
    blocks += [_pair(r, names, settings.sample_chars) for r in rng.sample(pairs, min(settings.samples, len(pairs)))]
    if not blocks:
        return []
    return [Heading("Sample records"), Paragraph(f"Up to {settings.samples} records per generator; open one for "
                                                 "its text and where it came from."), *blocks]
