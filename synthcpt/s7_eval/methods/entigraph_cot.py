"""The EntiGraph paper's QuALITY protocol: 5-shot chain-of-thought generation with the reference's
prompt ("In the context of "<title>", written by <author> in <year>, <question> There is only one correct
choice."), 8 samples at temperature 0.1, 300 tokens, the answer taken from the "Answer: X." line, a
majority vote over the samples that gave one, and accuracy over the questions answered, with the
attempt rate beside it (and accuracy over all questions, unanswered ones wrong).

The reference stops generation at any "Answer: <letters>.\n" string and reads the letter from the stop
string, which only vLLM reports; here generation stops at the next example ("\n## Example") and the
first "Answer: <letters>." line is read, which gives the same answer on any OpenAI-compatible engine.
The protocol asks for one correct choice: questions of a set with several correct options are left out.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar

from pydantic import Field

from synthcpt.progress import console
from synthcpt.prompts import load_prompt
from synthcpt.questions import LETTERS, QAItem, multi_answer_sets
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.records import model_fingerprint, question_record
from synthcpt.section import Section

EXAMPLES = "eval/entigraph_cot.md"
QUESTION = "eval/entigraph_cot_question.md"
STOP = ("\n## Example", "\n### Question")
ANSWER_LINE = re.compile(r"\bAnswer:\s*([A-Z](?:\s*,?\s*[A-Z])*)\s*\.")


class EntigraphCotSettings(Section):
    """entigraph_cot: the EntiGraph paper's 5-shot chain-of-thought protocol for QuALITY."""

    samples: int = Field(8, ge=1, description="Answers sampled per question, majority-voted (reference: 8).")
    temperature: float = Field(0.1, ge=0, description="Sampling temperature (reference: 0.1).")
    max_tokens: int = Field(300, gt=0, description="Tokens of reasoning and answer per sample (reference: 300).")


def context_line(item: QAItem) -> str:
    """The reference's article context: 'In the context of "<title>", written by <author> in <year>,'."""
    written = f", written by {item.author}" + (f" in {item.year}" if item.year else "") if item.author else ""
    return f'In the context of "{item.title}"{written},'


def question_prompt(examples: str, template: str, item: QAItem) -> str:
    question = item.question[:1].lower() + item.question[1:] if item.question else ""
    choices = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, item.options))
    body = (template.replace("{{context}}", context_line(item)).replace("{{question}}", question)
            .replace("{{choices}}", choices))
    return examples + body.rstrip("\n")


def vote(texts: list[str], letters: str) -> str | None:
    """The most frequent single-letter answer among the samples that gave one (the first on a tie)."""
    answers = []
    for text in texts:
        match = ANSWER_LINE.search(text)
        if match and len(found := re.sub(r"[^A-Z]", "", match.group(1))) == 1 and found in letters:
            answers.append(found)
    return Counter(answers).most_common(1)[0][0] if answers else None


class EntigraphCot(Method[EntigraphCotSettings]):
    name: ClassVar[str] = "entigraph_cot"
    summary: ClassVar[str] = ("the EntiGraph paper's protocol: 5-shot chain of thought, 8 samples voted, accuracy "
                              "over the questions answered and the attempt rate")

    @classmethod
    def prompts(cls, settings: EntigraphCotSettings) -> list[str]:
        return [EXAMPLES, QUESTION]

    def score(self, ctx: MethodContext) -> list[dict]:
        from synthcpt.engine import Request, Sampling, open_engine
        from synthcpt.models import resolve

        s, candidate = self.settings, ctx.candidate
        multi = multi_answer_sets(ctx.items)
        items = [item for item in ctx.items if item.qa_set not in multi]
        if len(items) < len(ctx.items):
            console.print(f"[yellow]{candidate.name}: entigraph_cot left out {len(ctx.items) - len(items)} questions "
                          "of sets with several correct options (the protocol asks for one)")
        prompts_dir = ctx.prompts.prompts_dir
        examples, template = load_prompt(EXAMPLES, prompts_dir).text, load_prompt(QUESTION, prompts_dir).text
        engine = ctx.engine_settings.model_copy(update={"model": candidate.model, "backend": "vllm"})
        sampling = Sampling(temperature=s.temperature, top_p=1.0, max_tokens=s.max_tokens, n=s.samples,
                            seed=ctx.seed, stop=STOP)
        requests = [Request(prompt=question_prompt(examples, template, item), sampling=sampling,
                            metadata={"index": index}) for index, item in enumerate(items)]
        outputs: dict[int, list[str]] = {}
        cache_root = ctx.work_dir / "engine" / model_fingerprint(resolve(candidate.model))
        with open_engine(engine, cache_root) as generator:
            for result in generator.generate(requests, description=f"{candidate.name}: EntiGraph chain-of-thought"):
                outputs[result.request.metadata["index"]] = result.texts if result.ok else []
        return [_record(candidate.name, item, outputs.get(index) or []) for index, item in enumerate(items)]


def _record(name: str, item: QAItem, texts: list[str]) -> dict:
    answer = vote(texts, item.letters)
    correct = float(answer is not None and answer in item.answers)
    return question_record(name, "entigraph_cot", item, (answer,) if answer else None, acc=correct,
                           acc_attempted=correct if answer is not None else None,
                           attempted=float(answer is not None), unparsed=float(answer is None), outputs=texts)


PLUGIN = EntigraphCot
