"""The train stage's entry points."""

from __future__ import annotations

from synthcpt.s6_train.settings import TrainSettings
from synthcpt.stage import Config, Stage, StageContext, files_fingerprint
from synthcpt.stats import TrainStats


def run(ctx: StageContext) -> TrainStats:
    from synthcpt.cards import write_model_card
    from synthcpt.s6_train.training import train_run

    stats = train_run(ctx)
    write_model_card(ctx.run, ctx.config)
    return stats


def show(ctx: StageContext) -> None:
    from synthcpt.s6_train.training import show_training

    show_training(ctx)


def resources(ctx: StageContext) -> list[tuple[str, str]]:
    """The memory plan, estimated before anything is loaded; under distillation, the teacher pass's cost."""
    from synthcpt.s6_train.memory import plan_rows

    rows = plan_rows(ctx.config)
    if ctx.settings.objective == "distill":
        from synthcpt.s6_train import teacher

        rows += teacher.plan_rows(ctx.settings, ctx.run)
    return rows


def external_inputs(config: Config) -> str:
    """The base model and the replay file(s): paths, sizes and modification times."""
    replay = [config.train.replay_path] if config.train.replay_path is not None else []
    return files_fingerprint(replay, salt=config.train.model)


STAGE = Stage(
    name="train",
    help="continued pretraining: packed data with replay, re-warmed schedule, checkpoints, HF model out",
    settings=TrainSettings,
    run=run,
    uses=("run",),
    external_inputs=external_inputs,
    show=show,
    resources=resources,
)
