"""What an evaluation method plugin gets: one candidate model, the questions, and shared resources.

A method is a plugin (`synthcpt.plugins`): a module of `synthcpt/s6_eval/methods/` whose `PLUGIN` is a
`Method` subclass with
- `name`, `summary`, its settings (nested as `eval.<name>`, read as `self.settings`);
- `prompts(settings) -> list[str]`: its prompt files (hashed into the stage fingerprint and into the
  key of its stored per-model results, so editing one scores again);
- `score(ctx: MethodContext) -> list[dict]`: one record per question (`records.question_record`).
The stage makes one per model and method with the eval section (`Method(eval_settings)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from synthcpt.plugins import Plugin, S
from synthcpt.s6_eval.prompts import EvalPrompts
from synthcpt.s6_eval.qa import QAItem
from synthcpt.s6_eval.records import Candidate


@dataclass
class MethodContext:
    candidate: Candidate
    items: list[QAItem]
    stage: Any  # the eval section (shared settings such as source_line); the method's own is its `settings`
    prompts: EvalPrompts
    engine_settings: Any
    work_dir: Path  # the eval stage's folder (an engine cache per model lives under it)
    seed: int
    scorer: Callable[[], Any]  # the candidate's log-likelihood scorer, loaded once and shared by methods


class Method(Plugin[S]):
    """Base of every evaluation method. `self.settings` is its own section, `self.section` the eval one."""

    kind: ClassVar[str] = "eval method"

    def score(self, ctx: MethodContext) -> list[dict]:
        """One record per question it answers (`records.question_record`)."""
        raise NotImplementedError
