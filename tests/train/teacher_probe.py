"""Runs the teacher pass of a small distillation stream (argv: model folder, work folder): the stream
is built in `<work>/stream` from the demo stories (a context per story part, two texts after each), the
teacher's rows in `<work>/teacher`. Run as a process so that a test can kill it mid-pass."""

import sys
from pathlib import Path

from transformers import AutoTokenizer

from synthcpt.s6_train.data import Example, build_stream
from synthcpt.s6_train.runtime import start_runtime
from synthcpt.s6_train.settings import DistillSettings
from synthcpt.s6_train.teacher import teacher_rows
from tests.fixtures.train import demo_texts

CONTEXTS = 24
# Contexts of about 45 tokens cut to 32: kept from their start or, for odd parts, their end.
SETTINGS = DistillSettings(top_k=8, context_tokens=32, teacher_batch_tokens=256)


def examples() -> list[Example]:
    """Texts about parts of the stories, each part the teacher's context of two of them; one without."""
    story = " ".join(demo_texts(max_chars=6000))
    parts = [story[i * 200:(i + 1) * 200] for i in range(CONTEXTS)]
    about = [Example(f"Question: What happens in part {i}?\nAnswer:", context="") for i in range(2)]
    for i, part in enumerate(parts):
        about += [Example(f" {part[:60]}", prompt=f"Question: How does part {i} begin?\nAnswer:", context=part,
                          context_keeps_end=i % 2 == 1),
                  Example(f"In part {i} of the story: {part[-80:]}", context=part, context_keeps_end=i % 2 == 1)]
    return about


def build(model: str, work: Path):
    tokenizer = AutoTokenizer.from_pretrained(model)
    stream = build_stream(work / "stream", examples(), tokenizer, "teacher-probe", "tokenising")
    return tokenizer, stream


if __name__ == "__main__":
    model, work = sys.argv[1], Path(sys.argv[2])
    tokenizer, stream = build(model, work)
    teacher_rows(model, tokenizer, stream, SETTINGS, work / "teacher", start_runtime())
