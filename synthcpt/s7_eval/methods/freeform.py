"""Free-form answers graded by a judge, as SimpleQA grades them: the candidate answers each question in a few
words without seeing its options (greedy, one line), then a judge model grades the answer against the
reference answer (`QAItem.reference`) with SimpleQA's grader prompt: A correct, B incorrect, C not attempted.

The grader prompt (`prompts/eval/simpleqa_grader.md`) is openai/simple-evals' `simpleqa_eval.py`
GRADER_TEMPLATE verbatim (MIT licence, Copyright (c) 2024 OpenAI), so grades compare with published
SimpleQA-style numbers. simple-evals reads the first A/B/C anywhere in the reply and takes C when there is
none (so a judge that answers "CORRECT" is read as C); here a verdict that does not parse is counted
(`unparsed`) and scores nothing, never guessed.

Figures per question: `acc` (correct), `attempted` (correct or incorrect), `acc_attempted` (correct among
the attempted), `unparsed`, and `token_f1`, SQuAD's token F1 of the answer against the reference, which
needs no judge. The judge is the engine section as configured (the run's generator) unless
`eval.freeform.judge` replaces some of its fields. Both the answers and the verdicts go through the
engine's response cache (one per answering model's weights, one per judge), so a rerun sends nothing and
a stopped one resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator

from synthcpt.errors import SynthcptError
from synthcpt.questions import QAItem
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.metrics import token_f1
from synthcpt.s7_eval.prompts import FREEFORM, SIMPLEQA_GRADER, SOURCE
from synthcpt.s7_eval.records import model_fingerprint, question_record
from synthcpt.section import Section

CORRECT, INCORRECT, NOT_ATTEMPTED = "A", "B", "C"
# The grades as the grader prompt names them: its letters and its labels (it spells NOT_ATTEMPTED both ways).
GRADES = {"A": CORRECT, "CORRECT": CORRECT, "B": INCORRECT, "INCORRECT": INCORRECT, "C": NOT_ATTEMPTED,
          "NOT_ATTEMPTED": NOT_ATTEMPTED, "NOT ATTEMPTED": NOT_ATTEMPTED}
# A standalone capital letter or label; INCORRECT before CORRECT, and \b keeps CORRECT out of INCORRECT.
VERDICT = re.compile(r"\b(?:NOT[_ ]ATTEMPTED|INCORRECT|CORRECT|[ABC])\b")
WHERE = "eval.freeform.judge"


class FreeformSettings(Section):
    """freeform: a short answer to each question, options unseen, graded by a judge with SimpleQA's grader."""

    max_tokens: int = Field(32, gt=0, description="Tokens of each answer: a few words (SimpleQA's answers are "
                                                  "short); the answer also ends at its first line break.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature of the answers (0: greedy).")
    judge: dict[str, Any] = Field(
        default_factory=dict,
        description="The judge: fields of the engine section that replace the configured ones for grading, e.g. "
                    "{model: gpt-4o-mini, backend: openai} (empty: the engine section as configured, the run's "
                    "generator). It must be a chat model.")
    judge_max_tokens: int = Field(8, gt=0, description="Tokens of the judge's reply (the grader asks for one letter).")
    judge_temperature: float = Field(0.0, ge=0, description="Sampling temperature of the judge (0: greedy).")

    @field_validator("judge")
    @classmethod
    def _judge_is_an_engine_section(cls, judge: dict[str, Any]) -> dict[str, Any]:
        # Checked against the default engine section here, so a typo fails when the config loads; the run
        # checks it again against the engine section as configured (judge_engine).
        from synthcpt.engine.settings import engine_settings

        try:
            judge_engine(engine_settings()(), judge)
        except SynthcptError as e:
            raise ValueError(str(e).removeprefix(f"{WHERE}: ")) from None
        return judge


def judge_engine(engine: Any, judge: dict[str, Any]) -> Any:
    """The engine section for the judge: `engine` with the fields of `judge` replaced (nested sections merged),
    validated as an engine section; a one-line error naming eval.freeform.judge otherwise."""
    merged = _merge(engine.model_dump(), judge)
    try:
        return type(engine).model_validate(merged)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        problem = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise SynthcptError(f"{WHERE}: engine setting '{key}': {problem}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both else value
    return merged


def judge_key(judge: Any) -> str:
    """Identifies the judge: its model setting (and for a local model its weights' files) and what decides
    what it is sent; the name of its response cache and part of the key of the stored scores."""
    from synthcpt.models import resolve

    payload = {"engine": judge.identity(),
               "weights": model_fingerprint(resolve(judge.model)) if judge.backend_plugin.local_model else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def parse_verdict(reply: str) -> str | None:
    """The grade in the judge's reply ("A", "B" or "C"), or None when it names none or several different ones.

    Read from the reply's first non-empty line: its standalone letters A/B/C and its labels CORRECT,
    INCORRECT, NOT_ATTEMPTED (or NOT ATTEMPTED) in capitals must all name the same grade; a line that is
    only a label in any case ("Correct.") counts too. Lower-case labels inside a sentence do not count
    ("not correct" would read as correct)."""
    line = next((text.strip() for text in reply.splitlines() if text.strip()), "")
    alone = " ".join(re.sub(r"[^\w ]", " ", line).split()).upper()
    if alone in GRADES and len(alone) > 1:
        return GRADES[alone]
    found = {GRADES[match] for match in VERDICT.findall(line)}
    return found.pop() if len(found) == 1 else None


def grade_values(verdict: str | None) -> dict[str, float | None]:
    """A question's figures from its grade; all None (and unparsed 1) when the verdict did not parse."""
    if verdict is None:
        return {"acc": None, "attempted": None, "acc_attempted": None, "unparsed": 1.0}
    correct, attempted = float(verdict == CORRECT), float(verdict != NOT_ATTEMPTED)
    return {"acc": correct, "attempted": attempted, "acc_attempted": correct if attempted else None,
            "unparsed": 0.0}


class Freeform(Method[FreeformSettings]):
    name: ClassVar[str] = "freeform"
    summary: ClassVar[str] = ("a short answer without the options, graded by a judge as SimpleQA grades (correct, "
                              "not attempted, correct given attempted) and by token F1")

    @classmethod
    def prompts(cls, settings: FreeformSettings) -> list[str]:
        return [FREEFORM, SIMPLEQA_GRADER, SOURCE]

    def depends_on(self, ctx: MethodContext) -> dict[str, Any]:
        return {"judge": judge_key(judge_engine(ctx.engine_settings, self.settings.judge))}

    def score(self, ctx: MethodContext) -> list[dict]:
        judge = judge_engine(ctx.engine_settings, self.settings.judge)
        answers = self.answers(ctx)
        replies = self.verdicts(ctx, judge, answers)
        return [_record(ctx.candidate.name, item, answers[index], replies.get(index))
                for index, item in enumerate(ctx.items)]

    def answers(self, ctx: MethodContext) -> list[str | None]:
        """The candidate's answer to each question: its first line, stripped (None where the request failed)."""
        from synthcpt.engine import Request, Sampling
        from synthcpt.models import resolve

        s, candidate = self.settings, ctx.candidate
        # The candidate is a base or trained model: it completes the prompt (no chat template).
        engine = ctx.engine_settings.model_copy(update={"model": candidate.model, "backend": "vllm"})
        sampling = Sampling(temperature=s.temperature, top_p=1.0, max_tokens=s.max_tokens, seed=ctx.seed,
                            stop=("\n",))
        requests = [Request(prompt=ctx.prompts.freeform(item, ctx.stage.source_line), sampling=sampling,
                            metadata={"index": index}) for index, item in enumerate(ctx.items)]
        cache_root = ctx.work_dir / "engine" / model_fingerprint(resolve(candidate.model))
        texts = _generate(engine, cache_root, requests, f"{candidate.name}: free-form answers")
        return [text.strip() if (text := texts.get(index)) is not None else None for index in range(len(ctx.items))]

    def verdicts(self, ctx: MethodContext, judge: Any, answers: list[str | None]) -> dict[int, str | None]:
        """The judge's reply on each non-empty answer, by question index (None where the request failed)."""
        from synthcpt.engine import Request, Sampling

        s = self.settings
        sampling = Sampling(temperature=s.judge_temperature, top_p=1.0, max_tokens=s.judge_max_tokens, seed=ctx.seed)
        requests = [Request(messages=[{"role": "user", "content": _grader_prompt(ctx, item, answer)}],
                            sampling=sampling, metadata={"index": index})
                    for index, (item, answer) in enumerate(zip(ctx.items, answers)) if answer]
        if not requests:
            return {}
        cache_root = ctx.work_dir / "engine" / f"judge-{judge_key(judge)}"
        return _generate(judge, cache_root, requests, f"{ctx.candidate.name}: free-form grades")


def _record(name: str, item: QAItem, answer: str | None, reply: str | None) -> dict:
    """A question's record: the grade from the judge's reply; token F1 whatever the verdict."""
    if answer == "":
        verdict = NOT_ATTEMPTED  # an empty answer attempts nothing: no need to ask the judge
    else:  # a failed request (answer or verdict) has no grade either: counted as unparsed, never guessed
        verdict = parse_verdict(reply) if answer is not None and reply is not None else None
    return question_record(name, "freeform", item, (verdict,) if verdict else None, **grade_values(verdict),
                           token_f1=token_f1(answer or "", item.reference), outputs=[answer or "", reply or ""])


def _grader_prompt(ctx: MethodContext, item: QAItem, answer: str) -> str:
    return ctx.prompts.simpleqa_grader(question=item.question, target=item.reference, predicted_answer=answer)


def _generate(engine: Any, cache_root: Path, requests: list, description: str) -> dict[int, str | None]:
    """The first text of each request's result by its metadata index (None for a failed request)."""
    from synthcpt.engine import open_engine

    texts: dict[int, str | None] = {}
    with open_engine(engine, cache_root) as generator:
        for result in generator.generate(requests, description=description):
            texts[result.request.metadata["index"]] = result.text if result.ok else None
    return texts


PLUGIN = Freeform
