"""The eval stage: the run's questions, the base model (`train.model`) and the trained one (`train/model/`)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from synthcpt.atomic import write_model, write_records
from synthcpt.errors import SynthcptError
from synthcpt.plugins import EVAL_METHODS
from synthcpt.progress import console
from synthcpt.run_folder import QUESTIONS_FILE, RESULTS_FILE, RunFolder
from synthcpt.s6_eval.evaluate import evaluate_models, summarise
from synthcpt.s6_eval.qa import QAItem, load_qa_file, load_run_questions
from synthcpt.s6_eval.records import RECORD_SCHEMA, Candidate
from synthcpt.stage import Config, StageContext
from synthcpt.stats import EvalResults, Forgetting, Perplexity

BASELINE = "base"


def run_candidates(config: Config, run_dir: Path) -> list[Candidate]:
    """The base model and, when the train stage has produced it, the trained model."""
    candidates = [Candidate(BASELINE, config.train.model)]
    trained = RunFolder(run_dir).trained_model
    if (trained / "config.json").is_file():
        candidates.append(Candidate("trained", str(trained)))
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
    ctx.input("ingest")
    items = load_run_questions(ctx.run)
    for path in ctx.settings.qa_files:
        items += load_qa_file(Path(path))
    unique = {item.question_id: item for item in reversed(items)}
    if len(unique) < len(items):
        console.print(f"[yellow]eval: {len(items) - len(unique)} questions appear twice; each is asked once")
        items = [item for item in items if unique.get(item.question_id) is item]
    if not items:
        raise SynthcptError("no questions to evaluate: ingest an L-Eval file (its questions are kept aside) "
                            "or name question files in eval.qa_files")
    return items


def evaluate_run(config: Config, run_dir: Path, items: list[QAItem], out: Path) -> EvalResults:
    return evaluate_candidates(run_candidates(config, run_dir), items, config, out, heldout_texts(config))


def evaluate_candidates(candidates: list[Candidate], items: list[QAItem], config: Config, out: Path,
                        general: list[str]) -> EvalResults:
    """Each candidate on every item, then scores, paired differences to the first candidate (the
    baseline) and perplexity on the `general` text; results and records written into `out`."""
    settings, baseline = config.eval, candidates[0].name
    records, perplexity = evaluate_models(candidates, items, settings, config.engine, out, config.run.seed, general,
                                          prompts_dir=config.run.prompts_dir)
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
    return evaluate_run(ctx.config, ctx.run.dir, questions(ctx), ctx.out)


def results_tables(results: EvalResults) -> list[Table]:
    """Accuracy, one row per model and method; option F1 the same way where some set has several correct
    options (elsewhere it is the accuracy again). Each fits 80 columns."""
    tables = [metric_table(results, "acc", "accuracy", "closed-book QA",
                           caption=perplexity_caption(results.forgetting.perplexity))]
    if any(score.metric == "f1" for score in results.scores):
        tables.append(metric_table(results, "f1", "option F1", "closed-book QA, sets with several correct options"))
    return tables


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
