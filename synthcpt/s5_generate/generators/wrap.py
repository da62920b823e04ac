"""WRAP (Maini et al., 2024): rephrase each ~300-token, sentence-aligned chunk in four styles (easy,
medium/Wikipedia, hard/scholarly, question-answer); preambles are stripped by rules.

Requests come in sweeps: every sweep visits each chunk once (documents interleaved) with the styles
rotated from chunk to chunk, so a token budget cut anywhere still covers the whole corpus in a mix
of styles; later sweeps fill in the remaining styles, then further rephrasings.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from synthcpt.engine.types import Request, Result
from synthcpt.s5_generate.base import Generator, GeneratorSettings, Rejected, selected_chunks
from synthcpt.s5_generate.parsing import parse_qa_pairs, strip_preamble, trim_truncated

WrapStyle = Literal["easy", "medium", "hard", "qa"]


class WrapSettings(GeneratorSettings):
    """WRAP: rephrasings of each chunk in the paper's four styles."""

    styles: list[WrapStyle] = Field(
        ["easy", "medium", "hard", "qa"], description="Rephrasing styles: easy (child), medium (Wikipedia), hard "
                                                      "(scholarly), qa (Question:/Answer:).")
    rephrasings: int = Field(1, ge=1, description="Rephrasings per chunk and style.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Max tokens of one rephrasing (chunks are ~300).")


class Wrap(Generator[WrapSettings]):
    name = "wrap"
    summary = "rephrasings in four styles"
    position = 2
    from_passages = True
    enabled_by_default = True
    model_written = True

    @classmethod
    def prompts(cls, settings: WrapSettings) -> list[str]:
        return [f"wrap/{style}.md" for style in settings.styles]

    @cached_property
    def templates(self):
        return {style: self.prompt(f"wrap/{style}.md") for style in self.settings.styles}

    def requests(self) -> Iterator[Request]:
        s = self.settings
        chunks = selected_chunks(self.corpus.chunks_by_doc(), self.stage.min_chunk_tokens)
        styles = s.styles
        for sweep in range(len(styles) * s.rephrasings):
            sample = sweep // len(styles)
            for position, chunk in enumerate(chunks):
                style = styles[(position + sweep) % len(styles)]
                template = self.templates[style]
                sampling = self.sampling(s.temperature, s.max_tokens)
                header = self.corpus.by_id[chunk.doc_id].header
                yield self.request(template.render(header=header, text=chunk.text.strip()), template, sampling,
                                   sample=sample,
                                   metadata={"doc_id": chunk.doc_id, "chunk_id": chunk.chunk_id, "unit": chunk.chunk_id, "style": style})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        style = result.request.metadata["style"]
        if style == "qa":
            pairs = parse_qa_pairs(result.text, truncated=result.truncated)
            if not pairs:
                return Rejected("no_qa_pairs")
            text = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
        else:
            text = strip_preamble(trim_truncated(result.text) if result.truncated else result.text)
            if not text:
                return Rejected("empty")
        # The document's header line ties what the rephrasing teaches to the title a question names.
        header = self.corpus.by_id[result.request.metadata["doc_id"]].header
        return [self.record(result, f"{header}\n\n{text}", style)]


PLUGIN = Wrap
