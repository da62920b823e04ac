"""The summary `synthcpt generate` prints: per generator, what was made and what the mix kept."""

from __future__ import annotations

from rich.table import Table

from synthcpt.progress import console
from synthcpt.stats import GenerateStats


def show_generated(stats: GenerateStats) -> None:
    table = Table(title="synthetic data")
    for column in ("generator", "requests", "cached", "rejects (parse, quality)", "records", "mix records", "mix tokens",
                   "mix rejects"):
        table.add_column(column, justify="left" if column == "generator" else "right")
    for name, part in stats.mix.by_generator.items():
        made = stats.generators.get(name)  # None for the raw corpus copies, which no generator made
        table.add_row(name, str(made.requests) if made else "", str(made.cached) if made else "",
                      _reasons(made.rejected if made else {}), str(made.records) if made else "", str(part.records),
                      f"{part.tokens:,}", _reasons(part.rejected))
    console.print(table)
    mix = stats.mix
    console.print(f"mix: {mix.records:,} records, {mix.tokens:,} tokens "
                  f"({mix.synthetic_tokens:,} synthetic, raw corpus x{mix.raw_copies}"
                  + (f", QA pairs {mix.qa_share:.0%} of synthetic" if mix.qa_share is not None else "") + "); "
                  f"evaluation leaks dropped: {_leaks(mix.rejected)}")
    for name, part in (stats.coverage or {}).items():
        console.print(f"graph coverage ({name}): " + ", ".join(f"{k}={v}" for k, v in part.model_dump().items()))


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _leaks(rejected: dict[str, int]) -> str:
    """Leaks dropped in all, and by what of the exam they reproduced."""
    reasons = {rule.removeprefix("eval_leak_"): n for rule, n in rejected.items() if rule.startswith("eval_leak_")}
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    return f"{sum(reasons.values())}" + (f" ({detail})" if detail else "")
