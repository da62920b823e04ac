"""The `synthcpt` command line: `run` for the whole pipeline, one command per stage, and tools."""

from __future__ import annotations

import errno
import inspect
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthcpt.errors import SynthcptError
from synthcpt.progress import console, set_library_logs

app = typer.Typer(help="synthcpt: teach a language model a small corpus with synthetic continued pretraining.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="The embedded default model and other prepared models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value.")]
PresetOption = Annotated[str | None, typer.Option(
    "--preset", "-p", help="Start from a preset (cpu-demo, gpu-local, hosted-api); the config file and --set "
                           "override it.")]
VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show the info logs of vLLM, transformers, datasets and torch (hidden by default).")]
CorpusArgument = Annotated[list[Path] | None, typer.Argument(
    help="Corpus files or folders (sets ingest.inputs; --set and the config file may set it instead).",
    show_default=False)]


@app.callback()
def _global_options(verbose: VerboseOption = False) -> None:
    # Before any command imports a library, so that each reads its log level when first imported.
    set_library_logs(verbose)


def _corpus_override(corpus: list[Path] | None) -> list[str]:
    """The corpus paths as an ingest.inputs override, placed before --set so that --set still wins."""
    if not corpus:
        return []
    for path in corpus:
        if not path.exists():
            raise SynthcptError(f"corpus not found: {path}")
    return [f"ingest.inputs={json.dumps([str(path) for path in corpus])}"]


def _runner(config_path: Path | None, overrides: list[str] | None, preset: str | None,
            corpus: list[Path] | None = None, verbose: bool = False):
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner

    if verbose:
        set_library_logs(True)
    settings = load_config(config_path, _corpus_override(corpus) + (overrides or []), preset)
    return Runner(settings, reporter=console.print)


def _release_engines() -> None:
    """Stop the loaded vLLM engines now: they log as they stop, and the run's summary must be the last
    thing printed. Loaded only if a stage used it."""
    vllm_backend = sys.modules.get("synthcpt.engine.backends.vllm")
    if vllm_backend is not None:
        vllm_backend.release_models()


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("synthcpt.yaml"),
         preset: PresetOption = None,
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a config (the defaults, or a preset's values), every setting commented."""
    from synthcpt.atomic import write_text
    from synthcpt.config import commented_config, load_config

    if path.exists() and not force:
        raise SynthcptError(f"{path} exists (use --force to overwrite)")
    write_text(path, commented_config(load_config(None, [], preset)))
    console.print(f"wrote {path}")


# The run's closing summary: tokens generated per generator, training, accuracy with intervals, the report.
SUMMARY_STAGES = ("generate", "train", "probe", "eval", "report")


@app.command()
def run(corpus: CorpusArgument = None, config: ConfigOption = None, set_: SetOption = None,
        preset: PresetOption = None,
        start: Annotated[str | None, typer.Option("--from", help="Rerun from this stage on.")] = None,
        only: Annotated[str | None, typer.Option("--only", help="Rerun only this stage.")] = None,
        rounds: Annotated[int | None, typer.Option(
            "--rounds", help="Rounds of generate, train and quiz (sets run.rounds): each round after the "
                                    "first generates for the passages the model has not learned.")] = None,
        verbose: VerboseOption = False) -> None:
    """Run the pipeline on CORPUS (or the config's ingest.inputs): stages already complete for the same
    inputs and settings are skipped."""
    from synthcpt.pipeline import is_main_process, select, stage_by_name, stage_names
    from synthcpt.stage import StageContext

    # Before --set, so that --set still wins.
    runner = _runner(config, ([f"run.rounds={rounds}"] if rounds is not None else []) + (set_ or []), preset, corpus,
                     verbose)
    selected = select(stage_names(), start, only)
    runner.execute(selected, force=set(selected) if (start or only) else set())
    _release_engines()
    if not is_main_process():
        return
    console.print(f"run folder: [bold]{runner.run.dir}[/bold]")
    # The report's line (its path) comes last, as the run's final word.
    rounds = runner.config.run.rounds
    for stage in (stage_by_name(n) for n in SUMMARY_STAGES if n in selected):
        # A run of several rounds: generate and train of its last round, the probe of every round.
        for round in range(1, rounds + 1) if stage.name == "probe" else [rounds]:
            if stage.show:
                stage.show(StageContext(runner.config, stage, runner.run.for_round(round)))


# The stage whose command takes the corpus as arguments, like `run` does.
CORPUS_STAGE = "ingest"


def _add_stage_command(stage) -> None:
    def command(corpus: CorpusArgument = None, config: ConfigOption = None, set_: SetOption = None,
                preset: PresetOption = None,
                force: Annotated[bool, typer.Option(help="Rerun even if complete.")] = False,
                verbose: VerboseOption = False) -> None:
        from synthcpt.stage import StageContext

        runner = _runner(config, set_, preset, corpus, verbose)
        runner.execute([stage.name], force={stage.name} if force else set())
        _release_engines()
        if stage.show:
            stage.show(StageContext(runner.config, stage, runner.run))
        console.print(f"{stage.name} output: [bold]{runner.run.folder(stage.name)}[/bold]")

    command.__doc__ = f"Run the {stage.name} stage: {stage.help}."
    if stage.name != CORPUS_STAGE:  # later stages read the run folder, not the corpus: no CORPUS argument
        signature = inspect.signature(command, eval_str=True)
        command.__signature__ = signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != "corpus"])
    app.command(name=stage.name)(command)


@app.command()
def status(config: ConfigOption = None, set_: SetOption = None, preset: PresetOption = None) -> None:
    """Show each stage's status for a run."""
    from synthcpt.config import load_config
    from synthcpt.manifest import StageEntry
    from synthcpt.pipeline import fingerprints
    from synthcpt.plugins import BACKENDS
    from synthcpt.run_folder import RunFolder

    cfg = load_config(config, set_ or [], preset)
    manifest = RunFolder(Path(cfg.run.dir)).stored_manifest()
    stages = manifest.stages if manifest else {}
    table = Table("stage", "status", "seconds", "stats", title=str(cfg.run.dir))
    for name, fingerprint in fingerprints(cfg).items():
        entry = stages.get(name, StageEntry())
        state = "stale" if entry.status == "complete" and entry.fingerprint != fingerprint else entry.status
        stats = {k: v for k, v in entry.stats.items() if isinstance(v, (int, float))}
        table.add_row(name, state, "" if entry.seconds is None else str(entry.seconds), ", ".join(f"{k}={v}" for k, v in stats.items()))
    console.print(table)
    # What a backend keeps in the run folder of its own (a provider batch's submissions).
    for plugin in BACKENDS:
        found = plugin.status_table(Path(cfg.run.dir))
        if found is not None:
            console.print(found)


@models_app.command("prepare")
def models_prepare(force: Annotated[bool, typer.Option(help="Convert again even if ready.")] = False) -> None:
    """Convert the embedded SmolLM2-135M-Instruct GGUF into an HF folder (no hub access)."""
    from synthcpt.models import prepare

    with console.status("converting the embedded model"):
        path = prepare(force=force)
    console.print(f"ready: {path}")


@models_app.command("list")
def models_list() -> None:
    """List the prepared models."""
    from synthcpt.models import models_dir, prepared_models

    found = prepared_models()
    if not found:
        console.print(f"no prepared models in {models_dir()} (run: synthcpt models prepare)")
        return
    table = Table("name", "path", "source")
    for model in found:
        table.add_row(model.name, str(model.path), model.source)
    console.print(table)


def _register_commands() -> None:
    """A command per stage, then the others (`synthcpt plan`, `serve`, `evaluate`, `report`, `push`)."""
    from synthcpt.commands import engine, evaluate, push, report
    from synthcpt.pipeline import STAGES

    for stage in STAGES:
        _add_stage_command(stage)
    for commands in (engine, evaluate, report, push):
        commands.register(app)


_register_commands()


def main() -> None:
    # A SIGTERM (timeout, docker stop, a scheduler) is an interruption like Ctrl-C: the stage is marked
    # interrupted and the exit hooks stop vLLM's engine processes, which the default handler would orphan.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app()
    except SynthcptError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: rerun the same command to resume")
        sys.exit(130)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        console.print(f"[red]error:[/red] disk full ({e.filename or 'writing'}): free space and rerun to resume")
        sys.exit(1)
