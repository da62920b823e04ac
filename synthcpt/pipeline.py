"""The spine: the stages in pipeline order, fingerprinted, run, skipped or resumed.

Each stage is the `STAGE` of its package's `stage.py` (`synthcpt.stage.Stage`): its name is its config
section, CLI command and run subfolder. A stage reads the outputs of earlier stages from the run folder
and writes its own into `run_dir/<name>/`.

A stage is complete for a config when its manifest entry holds the fingerprint of its settings,
the sections it `uses`, its external inputs and the fingerprint of the stage before it: so a
change to one stage invalidates it and every stage after it.

A run of several rounds (`run.rounds`, `synthcpt.rounds`) runs steps, not stages: the quiz after the
exam, then generate, train and probe once per round, each round's steps chained to the round before,
then eval and report. A run of one round has neither quiz nor probe, and its steps are the stages.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthcpt.errors import SynthcptError
from synthcpt.prompts import prompts_fingerprint
from synthcpt.rounds import PROBE, QUIZ
from synthcpt.run_folder import ROUND_STAGES, RunFolder, is_main_process, step_name
from synthcpt.s1_ingest.stage import STAGE as INGEST
from synthcpt.s2_entities.stage import STAGE as ENTITIES
from synthcpt.s3_graph.stage import STAGE as GRAPH
from synthcpt.s4_exam.stage import STAGE as EXAM
from synthcpt.s5_generate.stage import STAGE as GENERATE
from synthcpt.s6_train.stage import STAGE as TRAIN
from synthcpt.s7_eval.stage import STAGE as EVAL
from synthcpt.s8_report.stage import STAGE as REPORT
from synthcpt.stage import Config, Stage, StageContext

STAGES: tuple[Stage, ...] = (INGEST, ENTITIES, GRAPH, EXAM, GENERATE, TRAIN, QUIZ, PROBE, EVAL, REPORT)
# The stages of a run of several rounds alone.
ROUNDS_ONLY = (QUIZ.name, PROBE.name)


@dataclass(frozen=True)
class Step:
    """A stage in one round (round 1 for the stages that run once)."""

    stage: Stage
    round: int = 1

    @property
    def name(self) -> str:
        return step_name(self.stage.name, self.round)


def steps(config: Config) -> list[Step]:
    """The run's steps in order: the stages, with generate, train and probe once per round. The quiz is
    written in round 1 just before its probe, so that round 1's generate and train are a run of one
    round's: `--rounds 2` on a finished run goes on from its model."""
    rounds, found = config.run.rounds, []
    for stage in STAGES:
        if stage.name in ROUNDS_ONLY:
            continue  # placed within the rounds below
        if stage.name not in ROUND_STAGES:
            found.append(Step(stage))
            continue
        if stage.name != ROUND_STAGES[0]:
            continue
        for round in range(1, rounds + 1):
            found += [Step(GENERATE, round), Step(TRAIN, round)]
            if rounds > 1:
                found += [Step(QUIZ)] if round == 1 else []
                found.append(Step(PROBE, round))
    return found


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def stage_by_name(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise SynthcptError(f"unknown stage '{name}' (stages: {', '.join(stage_names())})")


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section_identity(config: Config, name: str) -> dict[str, Any]:
    """What a section contributes to a fingerprint: its `identity()` where it defines one (the selected
    plugins' settings only), else all of it. Where the run folder and the prompt override folder lie is
    not what a stage computes (prompts count by their content): moving a run must not redo it."""
    section = getattr(config, name)
    if hasattr(section, "identity"):
        return section.identity()
    # The number of rounds is in the steps themselves: a run's round 1 is the same for any number of them.
    return section.model_dump(mode="json", exclude={"dir", "prompts_dir", "rounds"} if name == "run" else None)


def stage_prompts_fingerprint(stage: Stage, config: Config) -> str | None:
    if stage.prompts is None:
        return None
    return prompts_fingerprint(stage.prompts(config), config.run.prompts_dir)


def fingerprints(config: Config) -> dict[str, str]:
    """Each step's fingerprint for this config (by step name), chained through the steps before it."""
    previous = ""
    result = {}
    for step in steps(config):
        stage = step.stage
        payload = {
            "stage": step.name,
            "version": stage.version,
            "settings": _section_identity(config, stage.name),
            "uses": {name: _section_identity(config, name) for name in stage.uses},
            "inputs": stage.external_inputs(config) if stage.external_inputs else None,
            "prompts": stage_prompts_fingerprint(stage, config),
            "previous": previous,
        }
        previous = result[step.name] = _digest(payload)
    return result


def select(names: list[str], start: str | None, only: str | None) -> list[str]:
    for given in (start, only):
        if given is not None and given not in names:
            raise SynthcptError(f"unknown stage '{given}' (stages: {', '.join(names)})")
    if only:
        return [only]
    if start:
        return names[names.index(start):]
    return names


@dataclass
class Runner:
    """Runs the selected stages in order; forced ones always, the others only when not complete."""

    config: Any
    reporter: Callable[[str], None] = print
    run: RunFolder = field(init=False)

    def __post_init__(self) -> None:
        self.run = RunFolder(Path(self.config.run.dir))
        if is_main_process():
            self.run.write_config(self.config)

    def execute(self, selected: list[str], force: set[str]) -> None:
        """Run the steps of the `selected` stages (every round's), after checking the steps before them are
        complete; `force`: stages whose steps run even when complete."""
        prints = fingerprints(self.config)
        run_steps = steps(self.config)
        chosen = [step for step in run_steps if step.stage.name in selected]
        if not chosen:
            raise SynthcptError(f"stage '{selected[0]}' runs only in a run of several rounds (run.rounds)")
        last = run_steps.index(chosen[-1])
        for step in run_steps[: last + 1]:
            run = self.run.for_round(step.round)
            fingerprint = prints[step.name]
            done = run.is_complete(step.stage.name, fingerprint)
            if step.stage.name not in selected:
                if not done:
                    raise SynthcptError(
                        f"step '{step.name}' is not complete for this config: run it first "
                        f"(synthcpt run --from {step.stage.name})")
                continue
            if done and step.stage.name not in force:
                self.reporter(f"[dim]{step.name}: up to date, skipped[/dim]")
                continue
            self._run_step(step, run, fingerprint)

    def _run_step(self, step: Step, run: RunFolder, fingerprint: str) -> None:
        stage = step.stage
        run.update_stage(stage.name, status="running", fingerprint=fingerprint, started=time.time(), error=None)
        self.reporter(f"[bold]{step.name}[/bold]: {stage.help}")
        start = time.perf_counter()
        try:
            stats = stage.run(StageContext(self.config, stage, run))
        except KeyboardInterrupt:
            run.update_stage(stage.name, status="interrupted", seconds=round(time.perf_counter() - start, 2))
            raise
        except BaseException as e:
            run.update_stage(stage.name, status="failed", seconds=round(time.perf_counter() - start, 2),
                             error=str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise
        entry = run.update_stage(stage.name, status="complete", finished=time.time(),
                                 seconds=round(time.perf_counter() - start, 2), stats=stats.summary())
        self.reporter(f"[green]{step.name}: done[/green] in {entry.seconds:.1f} s  {_brief(entry.stats)}")


def _brief(summary: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in summary.items() if isinstance(v, (int, float, str)))[:200]
