"""What an evaluation method plugin gets: one candidate model, the questions, and shared resources.

A method is a plugin (`synthcpt.plugins`): a module of `synthcpt/s7_eval/methods/` whose `PLUGIN` is a
`Method` subclass with
- `name`, `summary`, its settings (nested as `eval.<name>`, read as `self.settings`);
- `prompts(settings) -> list[str]`: its prompt files (hashed into the stage fingerprint and into the
  key of its stored per-model results, so editing one scores again);
- `score(ctx: MethodContext) -> list[dict]`: one record per question (`records.question_record`);
- optionally `depends_on(ctx) -> dict`: what else its scores depend on (a judge model, the passages it
  retrieves from), hashed into the key of its stored results beside its settings and prompts;
- `uses_passages = True` when it reads `ctx.passages` (the stage then reads the run's chunks).
The stage makes one per model and method with the eval section (`Method(eval_settings)`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from synthcpt.plugins import Plugin, S
from synthcpt.questions import QAItem
from synthcpt.run_folder import Chunk
from synthcpt.s7_eval.prompts import EvalPrompts
from synthcpt.s7_eval.records import Candidate


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
    # The text to retrieve from (the run's corpus chunks), for methods with `uses_passages`; else empty.
    passages: list[Chunk] = field(default_factory=list)


class Method(Plugin[S]):
    """Base of every evaluation method. `self.settings` is its own section, `self.section` the eval one."""

    kind: ClassVar[str] = "eval method"
    uses_passages: ClassVar[bool] = False

    def depends_on(self, ctx: MethodContext) -> dict[str, Any]:
        """What its scores depend on besides the model, the questions, its settings and prompts (JSON)."""
        return {}

    def score(self, ctx: MethodContext) -> list[dict]:
        """One record per question it answers (`records.question_record`)."""
        raise NotImplementedError
