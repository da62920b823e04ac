"""Stage 7, report: `run_dir/report.html` and `run_dir/report.md` from everything in the run folder.

The report reads the run folder alone and shows whatever stages have produced; `synthcpt report`
rebuilds it at any time, also for a run whose later stages have not run.
"""

from __future__ import annotations

from pydantic import Field

from synthcpt.pipeline import Stage
from synthcpt.section import Section


class ReportSettings(Section):
    samples: int = Field(3, ge=0, description="Synthetic text samples shown per generator.")
    sample_chars: int = Field(1500, gt=0, description="Longest sample shown, in characters (longer ones are cut).")
    changed_answers: int = Field(20, ge=0, description="Questions listed per direction whose answer changed "
                                                       "with training (base wrong → trained right, and back).")


def _run(ctx):
    from synthcpt.s7_report.build import build_report

    return build_report(ctx.run.dir, ctx.settings)


def _show(ctx):
    from synthcpt.progress import console

    console.print(f"report: [bold]{ctx.run.dir / 'report.html'}[/bold] and {ctx.run.dir / 'report.md'}")


STAGE = Stage(
    name="report",
    help="the run report: what the model learned, what was generated, the graph, coverage, training",
    settings=ReportSettings,
    run=_run,
    show=_show,
)
