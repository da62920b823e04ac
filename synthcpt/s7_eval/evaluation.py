"""The eval stage: the run's questions, the base model (`train.model`) and the trained one (`train/model/`)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from synthcpt.atomic import write_model, write_records
from synthcpt.plugins import EVAL_METHODS
from synthcpt.progress import console
from synthcpt.questions import QAItem
from synthcpt.run_folder import QUESTIONS_FILE, RESULTS_FILE, Chunk, RunFolder
from synthcpt.s7_eval.evaluate import evaluate_models, summarise
from synthcpt.s7_eval.records import RECORD_SCHEMA, Candidate
from synthcpt.stage import Config, StageContext
from synthcpt.stats import EvalResults, Forgetting, Perplexity, Score, round_model

BASELINE = "base"


def run_candidates(config: Config, run_dir: Path) -> list[Candidate]:
    """The base model and, when the train stage has produced it, the trained model (the last round's); in a
    run of several rounds, each earlier round's model too ("round 1", ...), so the exam scores every round."""
    candidates = [Candidate(BASELINE, config.train.model)]
    rounds = config.run.rounds
    for round in range(1, rounds):
        model = RunFolder(run_dir, round).trained_model
        if (model / "config.json").is_file():
            candidates.append(Candidate(round_model(round, rounds), str(model)))
    trained = RunFolder(run_dir, rounds).trained_model
    if (trained / "config.json").is_file():
        candidates.append(Candidate(round_model(rounds, rounds), str(trained)))
    else:
        console.print(f"[yellow]eval: no trained model in {trained}; evaluating the base model alone")
    return candidates



def heldout_texts(config: Config) -> list[str]:
    """The held-out part of the replay text (the same split the train stage made), or nothing."""
    from synthcpt.replay import split_replay

    if config.train.replay_path is None or config.train.replay_heldout_share == 0:
        return []
    return split_replay(config.train.replay_path, config.train.replay_heldout_share, config.run.seed,
                        config.train.replay_max_documents)[1]


def questions(ctx: StageContext) -> list[QAItem]:
    ctx.input("exam")
    return ctx.run.exam()


def evaluate_run(config: Config, run_dir: Path, items: list[QAItem], out: Path) -> EvalResults:
    return evaluate_candidates(run_candidates(config, run_dir), items, config, out, heldout_texts(config),
                               run_passages(config, run_dir))


def run_passages(config: Config, run_dir: Path) -> list[Chunk]:
    """The run's corpus chunks, what retrieval methods (`rag`) retrieve from; read only when one runs."""
    if not any(EVAL_METHODS.get(method).uses_passages for method in config.eval.methods):
        return []
    return RunFolder(run_dir).chunks()


def evaluate_candidates(candidates: list[Candidate], items: list[QAItem], config: Config, out: Path,
                        general: list[str], passages: list[Chunk] | None = None) -> EvalResults:
    """Each candidate on every item, then scores, paired differences to the first candidate (the
    baseline) and perplexity on the `general` text; results and records written into `out`.
    `passages`: what retrieval methods retrieve from."""
    settings, baseline = config.eval, candidates[0].name
    records, perplexity = evaluate_models(candidates, items, settings, config.engine, out, config.run.seed, general,
                                          prompts_dir=config.run.prompts_dir, passages=passages)
    results = EvalResults(
        questions=len(items),
        documents=len({item.doc_id for item in items}),
        qa_sets=sorted({item.qa_set for item in items}),
        models={c.name: c.model for c in candidates},
        baseline=baseline,
        methods=list(settings.methods),
        confidence=settings.confidence,
        **summarise(records, baseline, settings, config.run.seed),
        forgetting=Forgetting(texts=len(general), perplexity={name: Perplexity(**value)
                                                              for name, value in perplexity.items()}),
    )
    write_records(out / QUESTIONS_FILE, records, RECORD_SCHEMA)
    write_model(out / RESULTS_FILE, results)
    return results


def evaluate_stage(ctx: StageContext) -> EvalResults:
    ctx.require(EVAL_METHODS.get(method) for method in ctx.settings.methods)
    items = questions(ctx)
    if not items:
        return nothing_evaluated(ctx)
    return evaluate_run(ctx.config, ctx.run.dir, items, ctx.out)


def nothing_evaluated(ctx: StageContext) -> EvalResults:
    """An empty exam ends the run normally: the work done so far stands, and the results say why
    nothing was measured (the report shows that line in place of the scores)."""
    stats = ctx.run.exam_stats()
    why = ("the exam holds no questions: " + (
        "the corpus brings none and exam.source is 'given'" if stats and stats.source == "given"
        else "no generated question passed validation (see exam/stats.json)" if stats and stats.drafts
        else "the corpus brings none, and no chunk is long enough to write one from (exam.min_chunk_tokens)"))
    console.print(f"[yellow]eval: nothing evaluated: {why}")
    results = EvalResults(questions=0, not_evaluated=why, documents=0, qa_sets=[], models={}, baseline=BASELINE,
                          methods=list(ctx.settings.methods), confidence=ctx.settings.confidence, scores=[],
                          comparisons=[], per_document=[], forgetting=Forgetting(texts=0, perplexity={}))
    write_model(ctx.out / RESULTS_FILE, results)
    return results


def results_tables(results: EvalResults) -> list[Table]:
    """Accuracy, one row per model and method; option F1 the same way where some set has several correct
    options (elsewhere it is the accuracy again); the judge's grades of free-form answers where a method
    gave some. Each fits 80 columns."""
    tables = [metric_table(results, "acc", "accuracy", "closed-book QA",
                           caption=perplexity_caption(results.forgetting.perplexity))]
    if any(score.metric == "f1" for score in results.scores):
        tables.append(metric_table(results, "f1", "option F1", "closed-book QA, sets with several correct options"))
    if any(score.metric == "token_f1" for score in results.scores):
        tables.append(freeform_table(results))
    return tables


# The free-form table's columns: (heading, metric, whether the column is one minus the metric).
FREEFORM_COLUMNS = (("correct", "acc", False), ("not attempted", "attempted", True),
                    ("correct given\nattempted", "acc_attempted", False), ("token F1", "token_f1", False))


def freeform_table(results: EvalResults) -> Table:
    """Free-form answers graded by the judge (SimpleQA's figures) and their token F1, one row per model and
    method that has them; each value over its interval, so that four of them fit 80 columns. The paired
    differences to the baseline are in the caption."""
    scores = {(s.model, s.method, s.metric): s for s in results.scores}
    rows = [(s.model, s.method) for s in results.scores if s.metric == "token_f1"]
    several = len({method for _, method in rows}) > 1
    table = Table("model", "n", *(heading for heading, _, _ in FREEFORM_COLUMNS),
                  title=f"free-form answers graded by the judge ({results.confidence:.0%} intervals)",
                  caption=freeform_caption(results), caption_justify="left")
    table.columns[1].justify = "right"
    for model, method in rows:
        cells = [_stacked(scores.get((model, method, metric)), complement) for _, metric, complement in FREEFORM_COLUMNS]
        table.add_row(f"{model} ({method})" if several else model, str(scores[model, method, "token_f1"].n), *cells)
    return table


def _stacked(score: Score | None, complement: bool) -> str:
    """A value with its interval beneath it; `complement`: one minus both (not attempted from attempted)."""
    if score is None:  # e.g. correct given attempted when nothing was attempted
        return "-"
    value, (low, high) = score.value, score.ci
    if complement:
        value, low, high = 1 - value, 1 - high, 1 - low
    return f"{value:.2f}\n[{low:.2f}, {high:.2f}]"


def freeform_caption(results: EvalResults) -> str:
    """How many verdicts did not parse (left out of the judge's figures; n counts every question), and each
    model's paired difference to the baseline in correct answers and token F1."""
    names = {"acc": "correct", "token_f1": "token F1"}
    methods = {s.method for s in results.scores if s.metric == "token_f1"}

    def label(model: str, method: str) -> str:
        return model + (f" ({method})" if len(methods) > 1 else "")

    unparsed = [f"{label(s.model, s.method)} {round(s.value * s.n)} of {s.n}" for s in results.scores
                if s.method in methods and s.metric == "unparsed"]
    lines = ["judge's verdicts that did not parse: " + ", ".join(unparsed)]
    differences = [f"{label(c.model, c.method)} {names[c.metric]} {_with_interval(c.difference, c.ci, '+.2f')}"
                   for c in results.comparisons if c.method in methods and c.metric in names]
    if differences:
        lines.append(f"vs {results.baseline}: " + "; ".join(differences))
    return "\n".join(lines)


def metric_table(results: EvalResults, metric: str, heading: str, title: str, caption: str | None = None
                 ) -> Table:
    """One metric per model and method with its interval, and its paired difference to the baseline's."""
    table = Table("model", "method", "n", heading, f"vs {results.baseline}",
                  title=f"{title} ({results.confidence:.0%} intervals)", caption=caption, caption_justify="left")
    table.columns[2].justify = "right"
    differences = {(c.model, c.method): c for c in results.comparisons if c.metric == metric}
    for score in results.scores:
        if score.metric == metric:
            difference = differences.get((score.model, score.method))
            table.add_row(score.model, score.method, str(score.n), _with_interval(score.value, score.ci, ".2f"),
                          _with_interval(difference.difference, difference.ci, "+.2f") if difference else "")
    return table


def _with_interval(value: float, ci: tuple[float, float], spec: str) -> str:
    # Two decimals: every cell of a column has the same width, and the table fits 80 columns.
    return f"{value:{spec}} [{ci[0]:{spec}}, {ci[1]:{spec}}]"


def perplexity_caption(perplexity: dict[str, Perplexity]) -> str | None:
    """The forgetting check in a line: each model's perplexity on the held-out text, and over how many
    tokens (once where they are the same: models sharing a tokenizer)."""
    if not perplexity:
        return None
    tokens = {value.tokens for value in perplexity.values()}
    shared = f" ({tokens.pop():,} tokens)" if len(tokens) == 1 else ""
    return f"perplexity on held-out text{shared}: " + ", ".join(
        f"{model} {value.perplexity:.2f}" + ("" if shared else f" ({value.tokens:,} tokens)")
        for model, value in perplexity.items())


def show_results(ctx: StageContext) -> None:
    results = ctx.run.eval_results()
    if results is not None:
        for table in results_tables(results):
            console.print(table)
