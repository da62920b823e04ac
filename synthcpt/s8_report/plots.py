"""The report's charts as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Any

from synthcpt.stats import Coverage, Score


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def training_curves(log: list[dict[str, Any]]) -> bytes:
    """Loss and learning rate against the optimizer step, one panel each."""
    panels = [(key, label) for key, label in (("loss", "training loss"), ("lr", "learning rate"))
              if any(isinstance(row.get(key), (int, float)) for row in log)]
    figure, axes = _pyplot().subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for axis, (key, label) in zip(axes[0], panels):
        points = [(row["step"], row[key]) for row in log if isinstance(row.get(key), (int, float))]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 40 else None)
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=.3)
    return _png(figure)


def tokens_by_generator(tokens: dict[str, int]) -> bytes:
    figure, axis = _pyplot().subplots(figsize=(7, 0.5 + 0.45 * len(tokens)))
    names = list(tokens)
    bars = axis.barh(names, [tokens[n] for n in names], color="#4c72b0")
    axis.bar_label(bars, labels=[f"{tokens[n]:,}" for n in names], padding=3, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("tokens in the training mix")
    axis.grid(axis="x", alpha=.3)
    return _png(figure)


def rejects_by_reason(counts: dict[str, dict[str, int]]) -> bytes:
    """One bar per reason (`counts[reason][generator]`), stacked by generator."""
    plt = _pyplot()
    reasons = list(counts)
    generators = sorted({g for per in counts.values() for g in per})
    figure, axis = plt.subplots(figsize=(7, 0.8 + 0.45 * len(reasons)))
    left = [0] * len(reasons)
    for generator in generators:
        values = [counts[r].get(generator, 0) for r in reasons]
        axis.barh(reasons, values, left=left, label=generator)
        left = [a + b for a, b in zip(left, values)]
    axis.invert_yaxis()
    axis.set_xlabel("records rejected")
    axis.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, never on them
    axis.grid(axis="x", alpha=.3)
    return _png(figure)


def accuracy_with_intervals(scores: list[Score], chance: float | None) -> bytes:
    """One bar per model and method with its bootstrap interval, and chance as a dashed line."""
    chosen = [s for s in scores if s.metric == "acc"]
    methods = list(dict.fromkeys(s.method for s in chosen))
    models = list(dict.fromkeys(s.model for s in chosen))
    figure, axis = _pyplot().subplots(figsize=(max(5.0, 1.6 * len(methods) * len(models)), 3.5))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        rows = {s.method: s for s in chosen if s.model == model}
        present = [m for m in methods if m in rows]
        xs = [methods.index(m) + i * width for m in present]
        errors = [[rows[m].value - rows[m].ci[0] for m in present], [rows[m].ci[1] - rows[m].value for m in present]]
        axis.bar(xs, [rows[m].value for m in present], width, yerr=errors, capsize=4, label=model)
    if chance is not None:
        axis.axhline(chance, color="#c44e52", linestyle="--", linewidth=1.2, label=f"chance ({chance:.2f})")
    axis.set_xticks([m + width * (len(models) - 1) / 2 for m in range(len(methods))], methods)
    axis.set_ylabel("accuracy")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=.3)
    return _png(figure)


# Bar colours of the first screen's chart, by kind of bar.
HEADLINE_COLOURS = {"closed": "#8c8c8c", "trained": "#4c72b0", "rag": "#dd8452", "rag_trained": "#a0522d",
                    "open": "#55a868"}


def headline_accuracy(bars: list[tuple[str, str, Score]], chance: float | None) -> bytes:
    """The first screen's chart: one horizontal bar per (label, kind, score) in the given order, top to
    bottom, with its interval as whiskers and its value written beside it; chance as a dashed line."""
    figure, axis = _pyplot().subplots(figsize=(7, 0.9 + 0.5 * len(bars)))
    ys = list(range(len(bars)))
    values = [s.value for _, _, s in bars]
    errors = [[max(s.value - s.ci[0], 0) for _, _, s in bars], [max(s.ci[1] - s.value, 0) for _, _, s in bars]]
    axis.barh(ys, values, xerr=errors, capsize=4, height=0.6,
              color=[HEADLINE_COLOURS.get(kind, "#4c72b0") for _, kind, _ in bars], error_kw={"elinewidth": 1.2})
    for y, (_, _, s) in zip(ys, bars):
        axis.text(min(s.ci[1] + 0.02, 0.9), y, f"{s.value:.0%}", va="center", fontsize=8)
    if chance is not None:
        axis.axvline(chance, color="#c44e52", linestyle="--", linewidth=1.2, label=f"chance ({chance:.2f})")
        axis.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.set_yticks(ys, [label for label, _, _ in bars])
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("accuracy")
    axis.grid(axis="x", alpha=.3)
    return _png(figure)


COVERAGE_MEASURES = (("entity_coverage", "entities"), ("pair_coverage", "entity pairs"),
                     ("edge_coverage", "co-occurring pairs"))


def coverage_per_document(per_document: dict[str, Coverage], titles: dict[str, str]) -> bytes:
    """Per document, the share of its entities, pairs and co-occurring pairs that synthetic text names."""
    documents = list(per_document)
    figure, axis = _pyplot().subplots(figsize=(8, 1.0 + 0.6 * len(documents)))
    height = 0.8 / len(COVERAGE_MEASURES)
    for i, (key, label) in enumerate(COVERAGE_MEASURES):
        axis.barh([d + i * height for d in range(len(documents))],
                  [getattr(per_document[doc], key) for doc in documents], height, label=label)
    axis.set_yticks([d + height for d in range(len(documents))],
                    [_short(titles.get(doc) or doc) for doc in documents])
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("share covered by synthetic text")
    axis.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.grid(axis="x", alpha=.3)
    return _png(figure)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def rounds_scores(rounds: list[dict[str, Any]]) -> bytes:
    """The exam and quiz accuracy of each round's model against the synthetic tokens generated so far."""
    figure, axis = _pyplot().subplots(figsize=(6, 3.2))
    tokens = [r["tokens_so_far"] for r in rounds]
    for key, label in (("exam", "exam (held out, closed book)"), ("quiz", "quiz (chooses the next round's text)")):
        points = [(t, r[key]) for t, r in zip(tokens, rounds) if r[key] is not None]
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    for t, r in zip(tokens, rounds):
        axis.annotate(f"round {r['round']}", (t, 1), textcoords="offset points", xytext=(0, -12), fontsize=8,
                      ha="center", xycoords=("data", "axes fraction"))
    axis.set_xlabel("synthetic tokens generated, all rounds so far")
    axis.set_ylabel("accuracy")
    axis.grid(alpha=.3)
    axis.legend(fontsize=8)
    return _png(figure)
