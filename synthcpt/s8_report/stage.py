"""The report stage's entry points."""

from __future__ import annotations

from synthcpt.s8_report.settings import ReportSettings
from synthcpt.stage import Stage, StageContext
from synthcpt.stats import ReportStats


def run(ctx: StageContext) -> ReportStats:
    from synthcpt.s8_report.build import build_report

    return build_report(ctx.run.dir, ctx.settings)


def show(ctx: StageContext) -> None:
    from synthcpt.progress import console

    console.print(f"report: [bold]{ctx.run.report_html}[/bold] and {ctx.run.report_md}")


STAGE = Stage(
    name="report",
    help="the run report: what the model learned, what was generated, the graph, coverage, training",
    settings=ReportSettings,
    run=run,
    show=show,
)
