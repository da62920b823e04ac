"""Few-shot chain-of-thought through the engine (the EntiGraph protocol): the model reasons, then names
the answer letters, which are parsed from its text. Its response cache (one per model weights) makes a
rerun exact and a stopped one resume."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from synthcpt.questions import multi_answer_sets
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.metrics import parse_answer, set_f1
from synthcpt.s7_eval.prompts import COT_EXAMPLES, COT_HEADER, COT_HEADER_MULTI, COT_QUESTION, SOURCE
from synthcpt.s7_eval.records import model_fingerprint, question_record
from synthcpt.section import Section

STOP = ("\n\nArticle:", "\n\nQuestion:", "\n---")


class GenerativeSettings(Section):
    """generative: few-shot chain-of-thought through the engine (EntiGraph: 5 shots)."""

    shots: int = Field(5, ge=0, le=5, description="Worked examples in the prompt (EntiGraph: 5).")
    samples: int = Field(1, ge=1, description="Answers sampled per question (accuracy is their mean).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature (0: greedy; set it above 0 when "
                                                      "samples > 1).")
    max_tokens: int = Field(384, gt=0, description="Tokens of reasoning and answer per sample.")

    @model_validator(mode="after")
    def _sampling_varies(self) -> GenerativeSettings:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy samples are all the same)")
        return self


class Generative(Method[GenerativeSettings]):
    name: ClassVar[str] = "generative"
    summary: ClassVar[str] = "few-shot chain-of-thought through the engine (the EntiGraph protocol)"

    @classmethod
    def prompts(cls, settings: GenerativeSettings) -> list[str]:
        return [COT_EXAMPLES, COT_HEADER, COT_HEADER_MULTI, COT_QUESTION, SOURCE]

    def score(self, ctx: MethodContext) -> list[dict]:
        from synthcpt.engine import Request, Sampling, open_engine
        from synthcpt.models import resolve

        s, items, candidate = self.settings, ctx.items, ctx.candidate
        multi_sets = multi_answer_sets(items)
        # The engine resolves the model setting itself; the same setting shares an already loaded vLLM.
        engine = ctx.engine_settings.model_copy(update={"model": candidate.model, "backend": "vllm"})
        sampling = Sampling(temperature=s.temperature, top_p=1.0, max_tokens=s.max_tokens, n=s.samples,
                            seed=ctx.seed, stop=STOP)
        requests = [Request(prompt=ctx.prompts.chain_of_thought(item, s.shots, item.qa_set in multi_sets,
                                                                ctx.stage.source_line),
                            sampling=sampling, metadata={"index": index}) for index, item in enumerate(items)]
        outputs: dict[int, list[str]] = {}
        cache_root = ctx.work_dir / "engine" / model_fingerprint(resolve(candidate.model))
        with open_engine(engine, cache_root) as generator:
            for result in generator.generate(requests, description=f"{candidate.name}: chain-of-thought"):
                outputs[result.request.metadata["index"]] = result.texts if result.ok else []
        return [_record(candidate.name, item, outputs.get(index) or [], item.qa_set in multi_sets)
                for index, item in enumerate(items)]


def _record(name: str, item, texts: list[str], multi: bool) -> dict:
    """The samples' mean accuracy; option F1 in the sets with several correct options only."""
    parsed = [parse_answer(text, item.letters) for text in texts]
    answered = [p for p in parsed if p is not None]
    samples = max(len(texts), 1)
    f1 = sum(set_f1(p, item.answers) for p in answered) / samples if multi else None
    return question_record(
        name, "generative", item, answered[0] if answered else None,
        acc=sum(set(p) == set(item.answers) for p in answered) / samples, f1=f1,
        unparsed=(samples - len(answered)) / samples, outputs=texts)


PLUGIN = Generative
