"""WRAP (Maini et al., 2024): rephrase each ~300-token, sentence-aligned chunk in four styles (easy,
medium/Wikipedia, hard/scholarly, question-answer); preambles are stripped by rules.

Requests come in sweeps: every sweep visits each chunk once (documents interleaved) with the styles
rotated from chunk to chunk, so a token budget cut anywhere still covers the whole corpus in a mix
of styles; later sweeps fill in the remaining styles, then further rephrasings.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from synthcpt.engine.types import Request, Result
from synthcpt.s4_generate.base import Chunk, Generator, Rejected, round_robin
from synthcpt.s4_generate.parsing import parse_qa_pairs, strip_preamble, trim_truncated


def selected_chunks(chunks_by_doc: dict[str, list[Chunk]], min_tokens: int) -> list[Chunk]:
    """Chunks worth rephrasing (not headers or scraps), documents interleaved."""
    return round_robin([c for c in chunks if c.n_tokens >= min_tokens] for chunks in chunks_by_doc.values())


class Wrap(Generator):
    name = "wrap"

    @classmethod
    def prompt_files(cls, settings) -> list[str]:
        return [f"wrap/{style}.md" for style in settings.wrap_styles]

    @property
    def max_tokens(self) -> int:
        return self.settings.wrap_max_tokens

    @cached_property
    def templates(self):
        return {style: self.prompt(f"wrap/{style}.md") for style in self.settings.wrap_styles}

    @cached_property
    def chunks(self) -> dict[str, Chunk]:
        return {c.chunk_id: c for c in self.corpus.chunks}

    def requests(self) -> Iterator[Request]:
        s = self.settings
        chunks = selected_chunks(self.corpus.chunks_by_doc(), s.min_chunk_tokens)
        styles = s.wrap_styles
        for sweep in range(len(styles) * s.wrap_rephrasings):
            sample = sweep // len(styles)
            for position, chunk in enumerate(chunks):
                style = styles[(position + sweep) % len(styles)]
                template = self.templates[style]
                sampling = self.sampling(s.wrap_temperature, s.wrap_max_tokens)
                yield self.request(template.render(text=chunk.text.strip()), template, sampling, sample=sample,
                                   metadata={"doc_id": chunk.doc_id, "unit": chunk.chunk_id, "style": style})

    def parse(self, result: Result) -> list[dict[str, Any]] | Rejected:
        if not result.ok or not result.texts:
            return Rejected("engine_error")
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
        return [self.record(result, text, style)]
