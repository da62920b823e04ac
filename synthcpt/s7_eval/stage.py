"""The eval stage's entry points."""

from __future__ import annotations

from synthcpt.plugins import EVAL_METHODS
from synthcpt.s7_eval.settings import eval_settings
from synthcpt.stage import Config, Stage, StageContext
from synthcpt.stats import EvalResults


def run(ctx: StageContext) -> EvalResults:
    from synthcpt.cards import write_model_card
    from synthcpt.s7_eval.evaluation import evaluate_stage

    results = evaluate_stage(ctx)
    # The trained model's card (the last round's) now shows what was measured.
    write_model_card(ctx.run.for_round(ctx.config.run.rounds), ctx.config)
    return results


def show(ctx: StageContext) -> None:
    from synthcpt.s7_eval.evaluation import show_results

    show_results(ctx)


def prompts(config: Config) -> list[str]:
    settings = config.eval
    return sorted({name for method in settings.methods
                   for name in EVAL_METHODS.get(method).prompts(settings.method_settings(method))})


STAGE = Stage(
    name="eval",
    help="closed-book QA of the base and trained models: log-likelihood, open-book reference, chain-of-thought",
    settings=eval_settings,
    run=run,
    uses=("engine",),
    prompts=prompts,
    show=show,
)
