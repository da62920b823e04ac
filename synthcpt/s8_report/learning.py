"""The report's first section: did the trained model learn the corpus? First the answer at a glance:
closed-book accuracy before and after training, retrieval (RAG) and the open-book ceiling side by side
with their intervals, one chart, and a sentence saying what they mean. Then the detail: accuracy before
and after training with intervals per method, chance, accuracy per document, and the questions whose
answer changed. When nothing was evaluated, the section says why and nothing more."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from synthcpt.atomic import read_records
from synthcpt.errors import SynthcptError
from synthcpt.run_folder import RunFolder
from synthcpt.s8_report import plots
from synthcpt.s8_report.document import Figure, Heading, Paragraph, Section, Table
from synthcpt.s8_report.readers import interval, plural, share, titles
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.stats import Comparison, DocumentScore, EvalResults, Score

TITLE = "Did the model learn the corpus?"
METHODS = {"loglik": "closed book, option likelihood", "open_book": "open book (document given), the reference",
           "generative": "closed book, chain-of-thought",
           "rag": "retrieved passages before the question, option likelihood",
           "freeform": "closed book, short answers graded by a judge"}
MEASURES = {"acc": "accuracy", "acc_norm": "accuracy, length-normalised", "f1": "option F1",
            "unparsed": "unparsed answers", "attempted": "not attempted", "acc_attempted": "correct given attempted",
            "token_f1": "token F1"}
# Measures named otherwise for one method: a judge grades free-form answers correct, or cannot be read.
METHOD_MEASURES = {"freeform": {"acc": "correct", "unparsed": "unparsed verdicts"}}
# Shown as one minus the stored value (and the change negated): "not attempted" from the attempt rate.
COMPLEMENTED = {"attempted"}
# Closed-book methods in the order the first screen prefers them.
CLOSED_BOOK = ("loglik", "freeform", "generative")
RAG, OPEN_BOOK = "rag", "open_book"


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


def _headlines(results: EvalResults, lead: bool = True) -> list[Paragraph]:
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
            f"(interval {interval(c.ci, signed=True)}); {_verdict(c.ci)}", lead=lead))
    return lines


def _measure(method: str, metric: str) -> str:
    return METHOD_MEASURES.get(method, {}).get(metric) or MEASURES.get(metric, metric)


def _shown(value: float, ci: tuple[float, float], metric: str, change: bool = False) -> tuple[float, tuple]:
    """A value and its interval as the table shows them: one minus both for a complemented measure (a
    change is negated instead)."""
    if metric not in COMPLEMENTED:
        return value, tuple(ci)
    if change:
        return -value, (-ci[1], -ci[0])
    return 1 - value, (1 - ci[1], 1 - ci[0])


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
        asked = [scores[m, method, metric].n for m in models if (m, method, metric) in scores]
        row = [method, _measure(method, metric), str(max(asked)) if asked else ""]
        for model in models:
            s = scores.get((model, method, metric))
            if s:
                value, ci = _shown(s.value, s.ci, metric)
                row.append(f"{value:.3f} {interval(ci)}")
            else:
                row.append("")
        for model in others:
            c = changes.get((model, method, metric))
            if c:
                value, ci = _shown(c.difference, c.ci, metric, change=True)
                row.append(f"{value:+.3f} {interval(ci, signed=True)}")
            else:
                row.append("")
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


@dataclass
class Headline:
    """The first screen's numbers (accuracy), each None where the results do not hold it."""

    baseline: str
    trained: str | None  # the model compared with the baseline
    method: str | None  # the closed-book method shown
    closed: Score | None  # the baseline, closed book
    closed_trained: Score | None
    change: Comparison | None  # trained − baseline, closed book, paired
    rag: Score | None  # the baseline with retrieval
    rag_trained: Score | None
    open_book: Score | None  # the baseline with the document in the prompt: the ceiling

    @property
    def empty(self) -> bool:
        return not any((self.closed, self.closed_trained, self.rag, self.rag_trained, self.open_book))


def headline(results: EvalResults) -> Headline:
    baseline = results.baseline
    acc = {(s.model, s.method): s for s in results.scores if s.metric == "acc"}
    models = list(dict.fromkeys([*results.models, *(s.model for s in results.scores)]))
    others = [m for m in models if m != baseline]
    trained = "trained" if "trained" in others else next(iter(others), None)
    # The first closed-book method both models answered, else the first either did.
    method = next((m for m in CLOSED_BOOK if (baseline, m) in acc and (trained, m) in acc),
                  next((m for m in CLOSED_BOOK if (baseline, m) in acc or (trained, m) in acc), None))
    change = next((c for c in results.comparisons if (c.model, c.method, c.metric) == (trained, method, "acc")), None)
    return Headline(baseline, trained, method, acc.get((baseline, method)), acc.get((trained, method)), change,
                    acc.get((baseline, RAG)), acc.get((trained, RAG)), acc.get((baseline, OPEN_BOOK)))


def _points(ci: tuple[float, float]) -> str:
    return f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}"


def _with_interval(score: Score) -> str:
    return f"{share(score.value)} [{100 * score.ci[0]:.1f}, {100 * score.ci[1]:.1f}]"


def _above(a: Score, b: Score) -> bool:
    """Whether `a`'s interval lies wholly above `b`'s."""
    return a.ci[0] > b.ci[1]


def _closed_clause(h: Headline) -> str | None:
    name = "closed-book accuracy" + ("" if h.method == "loglik" else f" ({h.method})")
    before, after = h.closed, h.closed_trained
    if before and after:
        difference = h.change.difference if h.change else after.value - before.value
        if h.change:
            detail = f"{100 * difference:+.1f} points, interval {_points(h.change.ci)}"
            up, down = h.change.ci[0] > 0, h.change.ci[1] < 0
        else:
            detail = f"{100 * difference:+.1f} points"
            up, down = _above(after, before), _above(before, after)
        if up or down:
            return (f"training {'raised' if up else 'lowered'} {name} from {share(before.value)} to "
                    f"{share(after.value)} ({detail})")
        return (f"{name} went from {share(before.value)} before training to {share(after.value)} after "
                f"({detail}), a change the interval cannot tell from none")
    if before:
        missing = "no trained model was evaluated" if h.trained is None else "the trained model was not evaluated closed book"
        return f"the base model's {name} is {share(before.value)}; {missing}"
    if after:
        return f"the trained model's {name} is {share(after.value)}; the base model was not evaluated closed book"
    return None


def _rag_clause(h: Headline) -> str | None:
    trained = h.closed_trained
    if h.rag is None:
        if h.rag_trained is None:
            return None
        return f"with retrieved passages (RAG) the trained model reaches {share(h.rag_trained.value)}"
    text = f"RAG on the base model reaches {share(h.rag.value)}"
    if trained is not None:
        if _above(trained, h.rag):
            text += ", so the trained model beats retrieval"
        elif _above(h.rag, trained):
            text += ", so the trained model does not yet beat retrieval"
        else:
            text += (f", and its interval overlaps that of the trained model's {share(trained.value)} closed book: "
                     "on this exam training and retrieval cannot be told apart")
    if h.rag_trained is not None:
        text += f"; the trained model with RAG reaches {share(h.rag_trained.value)}"
    return text


def meaning(h: Headline, chance: float | None = None) -> str:
    """One sentence saying what the first screen's numbers mean, from the numbers and their intervals
    (and chance, when known: a closed-book interval that reaches it cannot be told from guessing)."""
    clauses = [c for c in (_closed_clause(h), _rag_clause(h)) if c]
    closed = h.closed_trained or h.closed
    if clauses and closed is not None and chance is not None and closed.ci[0] <= chance:
        model = h.trained if closed is h.closed_trained else h.baseline
        clauses[0] += f" ({model}'s interval reaches chance, {share(chance)}: no better than guessing)"
    if h.open_book is not None:
        clauses.append(f"with the document in the prompt the base model reaches {share(h.open_book.value)}, "
                       "the ceiling for this exam")
    text = "; ".join(clauses)
    return text[:1].upper() + text[1:] + "."


def _headline_table(h: Headline, results: EvalResults) -> Table:
    headers, cells = [], []
    if h.closed or h.closed_trained:
        models = [m for m, s in ((h.baseline, h.closed), (h.trained, h.closed_trained)) if s]
        headers.append(f"closed book ({h.method}): {' → '.join(models)}")
        cell = " → ".join(_with_interval(s) for s in (h.closed, h.closed_trained) if s)
        if h.change:
            low, high = h.change.ci
            cell += f" (change {100 * h.change.difference:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}])"
        cells.append(cell)
    if h.rag or h.rag_trained:
        models = [m for m, s in ((h.baseline, h.rag), (f"{h.trained} + RAG", h.rag_trained)) if s]
        headers.append(f"RAG: {' → '.join(models)}")
        cells.append(" → ".join(_with_interval(s) for s in (h.rag, h.rag_trained) if s))
    if h.open_book:
        headers.append(f"open book ({h.baseline}): the ceiling")
        cells.append(_with_interval(h.open_book))
    return Table(headers, [cells], id="headline-table",
                 caption=f"Accuracy on {plural(results.questions, 'exam question')} with {results.confidence:.0%} "
                         "bootstrap intervals (in percent)")


def _headline_bars(h: Headline) -> list[tuple[str, str, Score]]:
    bars = [(f"{h.baseline}, closed book", "closed", h.closed), (f"{h.trained}, closed book", "trained",
                                                                  h.closed_trained),
            (f"{h.baseline} + RAG", "rag", h.rag), (f"{h.trained} + RAG", "rag_trained", h.rag_trained),
            (f"{h.baseline}, open book", "open", h.open_book)]
    return [(label, kind, score) for label, kind, score in bars if score is not None]


def first_screen(results: EvalResults, chance: float | None) -> list:
    """The answer at a glance: the sentence, the numbers side by side, one chart."""
    h = headline(results)
    if h.empty:
        return []
    shown = [f"closed book ({h.method})" if h.closed or h.closed_trained else "",
             "with retrieved passages (RAG)" if h.rag or h.rag_trained else "",
             "with the document in the prompt (the ceiling)" if h.open_book else ""]
    caption = f"Accuracy with {results.confidence:.0%} bootstrap intervals: " + ", ".join(p for p in shown if p)
    if chance is not None:
        caption += f"; dashed line: chance = {chance:.2f}"
    return [Paragraph(meaning(h, chance), lead=True), _headline_table(h, results),
            Figure("headline", plots.headline_accuracy(_headline_bars(h), chance), caption)]


def _not_evaluated(reason: str) -> Section:
    reason = reason.strip()
    end = "" if reason.endswith((".", "!", "?")) else "."
    return Section(TITLE, "learning", [Paragraph(f"Nothing was evaluated: {reason}{end}", lead=True)])


def learning(run: RunFolder, settings: ReportSettings) -> Section | None:
    results = run.eval_results()
    if results is None:
        return None
    if results.not_evaluated:
        return _not_evaluated(results.not_evaluated)
    baseline = results.baseline
    records = read_records(run.eval_records) if run.eval_records.is_file() else []
    if records and not {"question", "options"} <= set(records[0]):
        raise SynthcptError(f"{run.eval_records} was written by an earlier synthcpt (no question text): rerun "
                            "`synthcpt eval`")
    names = titles(run)
    chance = chance_level(records)
    chance_text = (f"Chance, 1/number of options averaged over the questions, is {share(chance)}."
                   if chance is not None else "")
    first = first_screen(results, chance)
    detail = [Heading("By method")] if first else []
    blocks: list = [*first, *detail, *_headlines(results, lead=not first), Paragraph(
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
    return Section(TITLE, "learning", blocks)
