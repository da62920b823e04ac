"""`synthcpt report`: rebuild the report of a run folder from what it holds, whichever stages have run.

It takes the place of the generated stage command, which would first require every earlier stage
to be complete for the current config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command(name="report")
    def report(
        run_dir: Annotated[Path | None, typer.Argument(help="Run folder (default: run.dir of the config).")] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config.")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value.")] = None,
    ) -> None:
        """Rebuild report.html and report.md of a run from its folder alone (any stages done so far)."""
        from synthcpt.errors import SynthcptError
        from synthcpt.progress import console
        from synthcpt.run_folder import RunFolder
        from synthcpt.s8_report.build import build_report

        run = RunFolder(run_dir or _configured_run_dir(config, set_ or []))
        if not run.manifest_path.is_file():
            raise SynthcptError(f"{run.dir} is not a run folder (no {run.manifest_path.name})")
        with console.status("building the report"):
            build_report(run.dir, _report_settings(run, config, set_ or []))
        console.print(f"report: [bold]{run.report_html}[/bold] and {run.report_md}")


def _configured_run_dir(config: Path | None, overrides: list[str]) -> Path:
    from synthcpt.config import load_config

    return Path(load_config(config, overrides).run.dir)


def _report_settings(run, config: Path | None, overrides: list[str]):
    """The report section of the given config, else of the run's own config, else the defaults."""
    import yaml

    from synthcpt.config import load_config
    from synthcpt.s8_report.settings import ReportSettings

    if config or overrides:
        return load_config(config, overrides).report
    saved = run.config_path
    try:
        section = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("report") if saved.is_file() else None
        return ReportSettings.model_validate(section or {})
    except (yaml.YAMLError, ValueError):
        return ReportSettings()
