"""The report's figures as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Any


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def training_curves(log: list[dict[str, Any]]) -> bytes:
    """Loss, learning rate and throughput against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, label) for key, label in (("loss", "loss"), ("lr", "learning rate"),
                                              ("tokens_per_s", "tokens / s"))
              if any(isinstance(row.get(key), (int, float)) for row in log)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, (key, label) in zip(axes[0], panels):
        points = [(row["step"], row[key]) for row in log if isinstance(row.get(key), (int, float))]
        axis.plot([p[0] for p in points], [p[1] for p in points])
        axis.set_xlabel("step")
        axis.set_title(label)
        axis.grid(alpha=.3)
    return _png(figure)


def tokens_by_generator(tokens: dict[str, int]) -> bytes:
    figure, axis = _figure(6, 3)
    names = list(tokens)
    axis.barh(names, [tokens[n] for n in names])
    axis.set_xlabel("tokens in the training mix")
    axis.grid(axis="x", alpha=.3)
    return _png(figure)


def accuracy_with_intervals(scores: list[dict[str, Any]], metric: str = "acc") -> bytes:
    """One bar per model and method, with its bootstrap interval."""
    chosen = [s for s in scores if s["metric"] == metric]
    methods = sorted({s["method"] for s in chosen})
    models = list(dict.fromkeys(s["model"] for s in chosen))
    figure, axis = _figure(max(5.0, 1.6 * len(methods) * len(models)), 3.5)
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        rows = {s["method"]: s for s in chosen if s["model"] == model}
        xs = [m + i * width for m, method in enumerate(methods) if method in rows]
        values = [rows[method]["value"] for method in methods if method in rows]
        errors = [[rows[method]["value"] - rows[method]["ci"][0] for method in methods if method in rows],
                  [rows[method]["ci"][1] - rows[method]["value"] for method in methods if method in rows]]
        axis.bar(xs, values, width, yerr=errors, capsize=4, label=model)
    axis.set_xticks([m + width * (len(models) - 1) / 2 for m in range(len(methods))], methods)
    axis.set_ylabel(metric)
    axis.set_ylim(0, 1)
    axis.legend()
    axis.grid(axis="y", alpha=.3)
    return _png(figure)
