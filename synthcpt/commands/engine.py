"""Engine commands: `synthcpt plan` (tokens, time and cost before generating) and `synthcpt serve`
(a local OpenAI-compatible server with the engine's model and CPU settings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from synthcpt.errors import SynthcptError

if TYPE_CHECKING:
    from rich.table import Table

    from synthcpt.engine.plan import Plan
    from synthcpt.stage import Config, Stage

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value.")]
PresetOption = Annotated[str | None, typer.Option("--preset", "-p", help="Start from a preset (e.g. hosted-api).")]


def _planned_steps(config: Config, chosen: list[Stage]) -> list:
    """(stage, description, requests) for each chosen stage that declares its model requests."""
    from synthcpt.run_folder import RunFolder
    from synthcpt.stage import StageContext

    run = RunFolder(Path(config.run.dir))
    found = []
    for stage in (s for s in chosen if s.plan):
        planned = stage.plan(StageContext(config, stage, run))
        found += [(stage.name, step, requests) for step, requests in planned.items()]
    return found


def _resource_tables(config: Config, chosen: list[Stage]) -> list[Table]:
    """A (what, amount) table for each chosen stage that plans resources (the train stage's memory, and
    its teacher pass under distillation)."""
    from rich.table import Table

    from synthcpt.run_folder import RunFolder
    from synthcpt.stage import StageContext

    run, tables = RunFolder(Path(config.run.dir)), []
    for stage in (s for s in chosen if s.resources):
        table = Table("", "estimate", title=f"{stage.name}: resources, estimated before loading anything")
        for what, amount in stage.resources(StageContext(config, stage, run)):
            table.add_row(what, amount)
        tables.append(table)
    return tables


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no throughput measured yet)"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _dollars(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 or not amount else f"${amount:.4f}"  # cents hide a small run's cost


def _plan_table(cfg, plans: list[tuple[str, Plan]]) -> Table:
    """One row per step. A priced model gets its cost online and through a batch API side by side (the
    selected backend's in bold); under a batch backend the time is its completion window."""
    from rich.table import Table

    priced = any(p.cost or p.batch_cost for _, p in plans)
    window = plans[0][1].completion_window
    columns = ["stage", "step", "requests", "cached", "prompt tokens", "completion tokens", "time"]
    columns += ["cost online", f"cost batch API (≤ {window})"] if priced else ["cost"]
    table = Table(*columns, title=f"plan for {cfg.run.dir} ({cfg.engine.backend}, {cfg.engine.model})")
    for stage_name, p in plans:
        time = f"≤ {p.completion_window} (batch)" if p.batch else _format_seconds(p.seconds)
        costs = [_dollars(p.cost), _dollars(p.batch_cost)]
        if priced:
            costs[p.batch] = f"[bold]{costs[p.batch]}[/bold]"
        table.add_row(stage_name, p.description, f"{p.requests:,}", f"{p.cached:,}", f"{p.prompt_tokens:,}",
                      f"{p.completion_tokens:,} ({p.completion_basis})", time, *(costs if priced else costs[:1]))
    return table


def plan(stage: Annotated[str | None, typer.Argument(help="Only this stage.")] = None,
         config: ConfigOption = None, set_: SetOption = None, preset: PresetOption = None) -> None:
    """Estimate the requests, tokens, time and cost of the generations still to run, and the training's
    memory (`synthcpt plan train`)."""
    from rich.console import Console

    from synthcpt.config import load_config
    from synthcpt.engine.plan import estimate
    from synthcpt.pipeline import STAGES, stage_by_name, steps

    cfg = load_config(config, set_ or [], preset)
    in_run = {step.stage.name for step in steps(cfg)}
    if stage and stage_by_name(stage).name not in in_run:
        raise SynthcptError(f"stage {stage} runs only in a run of several rounds (run.rounds)")
    chosen = [stage_by_name(stage)] if stage else [s for s in STAGES if s.name in in_run]
    plans = [(stage_name, estimate(cfg.engine, Path(cfg.run.dir), description, requests))
             for stage_name, description, requests in _planned_steps(cfg, chosen)]
    # Resources are planned for a named stage: the memory plan reads the learner's config, which a plan of
    # generation costs (a hosted preset before any download) must not depend on.
    tables = _resource_tables(cfg, chosen) if stage else []
    if not plans and not tables:
        raise SynthcptError(f"stage {stage} has nothing to plan with this config (no model requests)" if stage
                            else "no stage makes model requests with this config")
    out = Console()  # the plan is the command's output: stdout, unlike progress and messages
    for table in tables:
        out.print(table)
    if not plans:
        return
    notes = set()
    if any(not p.exact_prompt_tokens for _, p in plans):
        notes.add("prompt tokens estimated at ~4 characters per token (set engine.tokenizer for exact counts)")
    if any(p.batch_cost for _, p in plans):
        notes.add("batch API: engine.backend=openai_batch, answered within engine.openai_batch.completion_window")
    out.print(_plan_table(cfg, plans))
    if cfg.run.rounds > 1 and any(name == "generate" for name, _ in plans):
        notes.add(f"rounds 2 to {cfg.run.rounds}: each generates again, with the generators that write from a "
                  "passage, for the passages its quiz finds missed: at most the generate rows above a round, "
                  "known once the round before has been probed")
    for note in sorted(notes):
        out.print(f"[dim]{note}[/dim]")


def serve(config: ConfigOption = None, set_: SetOption = None,
          host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000) -> None:
    """Serve engine.model as an OpenAI-compatible API with vLLM (CPU settings on CPU builds)."""
    from synthcpt.config import load_config
    from synthcpt.engine.server import server_command, server_environment
    from synthcpt.progress import console

    cfg = load_config(config, set_ or [])
    command = server_command(cfg.engine, host, port)
    console.print(f"serving {cfg.engine.model!r} at http://{host}:{port}/v1")
    os.execve(command[0], command, server_environment())


def register(app: typer.Typer) -> None:
    app.command(name="plan")(plan)
    app.command(name="serve")(serve)
