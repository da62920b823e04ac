"""What an evaluation method plugin gets: one candidate model, the questions, and shared resources.

A method is a module of `synthcpt/s6_eval/methods/` whose `PLUGIN` is a class with
- `name`, `summary`, `Settings` (its section, nested as `eval.<name>`);
- `prompts(settings) -> list[str]`: its prompt files (hashed into the stage fingerprint and into the
  key of its stored per-model results, so editing one scores again);
- `score(ctx: MethodContext) -> list[dict]`: one record per question (`records.question_record`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthcpt.s6_eval.prompts import EvalPrompts
from synthcpt.s6_eval.qa import QAItem
from synthcpt.s6_eval.records import Candidate


@dataclass
class MethodContext:
    candidate: Candidate
    items: list[QAItem]
    stage: Any  # the eval section (shared settings such as source_line)
    settings: Any  # the method's own section
    prompts: EvalPrompts
    engine_settings: Any
    work_dir: Path  # the eval stage's folder (an engine cache per model lives under it)
    seed: int
    scorer: Callable[[], Any]  # the candidate's log-likelihood scorer, loaded once and shared by methods
