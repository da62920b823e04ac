"""The report's rounds section (a run of several rounds): per round, the synthetic tokens it generated and
trained on, its model's quiz score (what chose the next round's passages) and exam score (held out)."""

from __future__ import annotations

from typing import Any

from synthcpt.run_folder import RunFolder
from synthcpt.s8_report import plots
from synthcpt.s8_report.document import Figure, Paragraph, Section, Table
from synthcpt.s8_report.readers import number
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.stats import round_model

CLOSED_BOOK = "loglik"


def round_rows(run: RunFolder) -> list[dict[str, Any]]:
    rounds = run.rounds()
    results = run.eval_results()
    exam = {s.model: s.value for s in results.scores if s.method == CLOSED_BOOK and s.metric == "acc"} \
        if results is not None else {}
    rows, so_far = [], 0
    for round in range(1, rounds + 1):
        view = run.for_round(round)
        generated, trained, probe = view.generate_stats(), view.train_stats(), view.probe_stats()
        tokens = generated.mix.synthetic_tokens if generated else 0
        so_far += tokens
        rows.append({"round": round, "tokens": tokens, "tokens_so_far": so_far,
                     "trained_tokens": trained.tokens if trained else None,
                     "quiz": probe.accuracy if probe else None,
                     "missed": f"{probe.passages_missed} of {probe.passages}" if probe else "",
                     "exam": exam.get(round_model(round, rounds))})
    return rows


def rounds(run: RunFolder, settings: ReportSettings) -> Section | None:
    if run.rounds() == 1:
        return None
    rows = round_rows(run)
    table = [[str(r["round"]), number(r["tokens"]), number(r["trained_tokens"]) if r["trained_tokens"] else "",
              f"{r['quiz']:.3f}" if r["quiz"] is not None else "", r["missed"],
              f"{r['exam']:.3f}" if r["exam"] is not None else ""] for r in rows]
    return Section("Rounds", "rounds", [
        Paragraph("Each round after the first generated only for the passages whose quiz questions the round "
                  "before's model answered wrongly, and trained on from that model. The quiz chose the text; the "
                  "exam, held out, was never used to choose it."),
        Table(["round", "synthetic tokens generated", "tokens trained", "quiz accuracy", "passages missed",
               "exam accuracy (closed book)"], table, id="rounds-table"),
        Figure("rounds", plots.rounds_scores(rows), "Exam and quiz accuracy of each round's model against the "
                                                    "synthetic tokens generated so far"),
    ])
