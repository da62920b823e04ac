"""The report's first section: did the trained model learn the corpus? Accuracy before and after
training with intervals per method, chance, accuracy per document, and the questions whose answer
changed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from synthcpt.atomic import read_records
from synthcpt.errors import SynthcptError
from synthcpt.run_folder import RunFolder
from synthcpt.s7_report import plots
from synthcpt.s7_report.document import Figure, Heading, Paragraph, Section, Table
from synthcpt.s7_report.readers import interval, plural, share, titles
from synthcpt.s7_report.settings import ReportSettings
from synthcpt.stats import DocumentScore, EvalResults

METHODS = {"loglik": "closed book, option likelihood", "open_book": "open book (document given), the reference",
           "generative": "closed book, chain-of-thought"}
MEASURES = {"acc": "accuracy", "acc_norm": "accuracy, length-normalised", "f1": "option F1",
            "unparsed": "unparsed answers"}


def _method(name: str) -> str:
    return f"{name} ({METHODS[name]})" if name in METHODS else name


def chance_level(records: list[dict[str, Any]]) -> float | None:
    """Expected accuracy of guessing: the mean of 1/number of options over the evaluated questions."""
    options: dict[str, int] = {}
    for r in records:
        options[r["question_id"]] = len(r["options"])
    inverse = [1 / n for n in options.values() if n]
    return sum(inverse) / len(inverse) if inverse else None


def _verdict(ci: tuple[float, float]) -> str:
    if ci[0] > 0:
        return "the interval lies above zero: the trained model answers more of these questions right."
    if ci[1] < 0:
        return "the interval lies below zero: the trained model answers fewer of these questions right."
    return "the interval includes zero: no clear change."


def _headlines(results: EvalResults) -> list[Paragraph]:
    baseline = results.baseline
    scores = {(s.model, s.method): s for s in results.scores if s.metric == "acc"}
    lines = []
    for c in results.comparisons:
        if c.metric != "acc" or (baseline, c.method) not in scores or (c.model, c.method) not in scores:
            continue
        before, after = scores[baseline, c.method], scores[c.model, c.method]
        lines.append(Paragraph(
            f"{_method(c.method)}: {baseline} {share(before.value)} → {c.model} {share(after.value)} "
            f"of {after.n} questions right, a change of {100 * c.difference:+.1f} points "
            f"(interval {interval(c.ci, signed=True)}); {_verdict(c.ci)}", lead=True))
    return lines


def _scores_table(results: EvalResults) -> Table:
    """One row per method and measure, a column per model with its interval, then the paired change."""
    baseline = results.baseline
    models = list(results.models)
    others = [m for m in models if m != baseline]
    scores = {(s.model, s.method, s.metric): s for s in results.scores}
    changes = {(c.model, c.method, c.metric): c for c in results.comparisons}
    keys = list(dict.fromkeys((s.method, s.metric) for s in results.scores))
    rows = []
    for method, metric in keys:
        row = [method, MEASURES.get(metric, metric),
               str(max(scores[m, method, metric].n for m in models if (m, method, metric) in scores))]
        for model in models:
            s = scores.get((model, method, metric))
            row.append(f"{s.value:.3f} {interval(s.ci)}" if s else "")
        for model in others:
            c = changes.get((model, method, metric))
            row.append(f"{c.difference:+.3f} {interval(c.ci, signed=True)}" if c else "")
        rows.append(row)
    return Table(["method", "measure", "questions", *models, *(f"{m} − {baseline}" for m in others)], rows,
                 id="evaluation-table", caption=f"Scores with {results.confidence:.0%} bootstrap intervals over "
                                                "questions; the change is paired on the same questions")


def _per_document(results: EvalResults, names: dict[str, str]) -> Table | None:
    if not results.per_document:
        return None
    columns = list(dict.fromkeys((r.method, r.model) for r in results.per_document))
    cells: dict[str, dict[tuple[str, str], DocumentScore]] = defaultdict(dict)
    for r in results.per_document:
        cells[r.doc_id][r.method, r.model] = r
    rows = []
    for doc_id, row in cells.items():
        asked = max(r.n for r in row.values())
        rows.append([names.get(doc_id, doc_id), str(asked), *(share(row[c].acc) if c in row else "" for c in columns)])
    return Table(["document", "questions", *(f"{method}: {model}" for method, model in columns)], rows,
                 id="per-document-table", caption="Accuracy per document")


def changed_answers(records: list[dict[str, Any]], baseline: str) -> dict[str, list[tuple[dict, dict]]]:
    """(baseline record, other record) pairs of the same question and method whose accuracy differs:
    `gained` where the other model does better, `lost` where it does worse."""
    base = {(r["method"], r["question_id"]): r for r in records if r["model"] == baseline}
    found: dict[str, list[tuple[dict, dict]]] = {"gained": [], "lost": []}
    for record in records:
        before = base.get((record["method"], record["question_id"]))
        if record["model"] == baseline or before is None or record["acc"] is None or before["acc"] is None:
            continue
        if record["acc"] != before["acc"]:
            found["gained" if record["acc"] > before["acc"] else "lost"].append((before, record))
    return found


def _options(options: list[str]) -> str:
    return "; ".join(f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(options))


def _changed_table(pairs: list[tuple[dict, dict]], names: dict[str, str], table_id: str, caption: str,
                   limit: int) -> list:
    if not pairs:
        return [Paragraph(f"{caption}: none.")]
    rows = []
    for before, after in pairs[:limit]:
        rows.append([names.get(after["doc_id"], after["doc_id"]), after["method"], after["question"],
                     _options(after["options"]), after["answers"], before["predicted"] or "none",
                     after["predicted"] or "none"])
    more = [Paragraph(f"… and {len(pairs) - limit} more.")] if len(pairs) > limit else []
    before_model, after_model = pairs[0][0]["model"], pairs[0][1]["model"]
    return [Table(["document", "method", "question", "options", "correct", f"{before_model} chose",
                   f"{after_model} chose"], rows, id=table_id, caption=f"{caption} ({len(pairs)})"), *more]


def _changes(records: list[dict], names: dict[str, str], baseline: str, limit: int) -> list:
    found = changed_answers(records, baseline)
    return [Heading("Answers that changed"),
            *_changed_table(found["gained"], names, "gained-table", f"{baseline} wrong, trained right", limit),
            *_changed_table(found["lost"], names, "lost-table", f"{baseline} right, trained wrong", limit)]


def learning(run: RunFolder, settings: ReportSettings) -> Section | None:
    results = run.eval_results()
    if results is None:
        return None
    baseline = results.baseline
    records = read_records(run.eval_records) if run.eval_records.is_file() else []
    if records and not {"question", "options"} <= set(records[0]):
        raise SynthcptError(f"{run.eval_records} was written by an earlier synthcpt (no question text): rerun "
                            "`synthcpt eval`")
    names = titles(run)
    chance = chance_level(records)
    chance_text = (f"Chance, 1/number of options averaged over the questions, is {share(chance)}."
                   if chance is not None else "")
    blocks: list = [*_headlines(results), Paragraph(
        f"{plural(results.questions, 'question')} on {plural(results.documents, 'document')}. "
        "Models: " + ", ".join(f"{k} = {v}" for k, v in results.models.items())
        + f". {chance_text}"), _scores_table(results)]
    if any(s.metric == "acc" for s in results.scores):
        caption = f"Accuracy with {results.confidence:.0%} bootstrap intervals"
        if chance is not None:
            caption += f"; dashed line: chance (1/number of options) = {chance:.2f}"
        blocks.append(Figure("accuracy", plots.accuracy_with_intervals(results.scores, chance), caption))
    per_document = _per_document(results, names)
    if per_document:
        blocks += [Heading("Per document"), per_document]
    if records:
        blocks += _changes(records, names, baseline, settings.changed_answers)
    return Section("Did the model learn the corpus?", "learning", blocks)
