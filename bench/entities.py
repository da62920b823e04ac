"""spaCy entity extraction throughput: our extractor against a plain `nlp.pipe` with every component on.

Measured in one run on the same general text (news, reports, patents): words per second of
- the baseline: `spacy.load(model)` with all components, `nlp.pipe(texts)` over whole documents;
- our extractor (`entities.extractor=spacy` defaults): NER + tagger only, documents cut into pieces,
  noun-phrase matching and counting included, on 1 and on 2 processes.

Prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_TEXT = ROOT.parent / "shared" / "data" / "replay" / "general.jsonl"
SHIPPED_TEXT = ROOT / "examples" / "replay" / "general-sample.jsonl"
QUICK_WORDS = 60_000


def load_texts(limit_words: int | None) -> tuple[list[str], str]:
    path = SHARED_TEXT if SHARED_TEXT.is_file() else SHIPPED_TEXT
    texts, words = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        texts.append(text)
        words += len(text.split())
        if limit_words is not None and words >= limit_words:
            break
    return texts, str(path.relative_to(ROOT.parent) if path == SHARED_TEXT else path.relative_to(ROOT))


def plain_pipeline(model: str, texts: list[str]) -> float:
    import spacy

    nlp = spacy.load(model)
    list(nlp.pipe(texts[:1]))  # warm-up outside the timing
    start = time.perf_counter()
    for _ in nlp.pipe(texts):
        pass
    return time.perf_counter() - start


def our_extractor(settings, texts: list[str], n_process: int) -> float:
    from synthcpt.s2_entities.spacy_extractor import load_pipeline, spacy_candidates

    load_pipeline(settings.spacy_model, settings.noun_phrases)
    list(spacy_candidates([("warm-up", texts[0][:2000])], settings.spacy_model, set(settings.ner_labels),
                          settings.noun_phrases, settings.batch_size, 1, settings.piece_chars))
    start = time.perf_counter()
    found = list(spacy_candidates(((str(i), t) for i, t in enumerate(texts)), settings.spacy_model,
                                  set(settings.ner_labels), settings.noun_phrases, settings.batch_size, n_process,
                                  settings.piece_chars))
    assert len(found) == len(texts)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"about {QUICK_WORDS:,} words instead of all")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from synthcpt.s2_entities import EntitiesSettings

    settings = EntitiesSettings()
    texts, source = load_texts(QUICK_WORDS if args.quick else None)
    words = sum(len(t.split()) for t in texts)
    print(f"{len(texts)} documents, {words:,} words from {source}; {os.cpu_count()} CPUs", file=sys.stderr)
    plain = words / plain_pipeline(settings.spacy_model, texts)
    print(f"plain nlp.pipe, every component, 1 process: {plain:,.0f} words/s", file=sys.stderr)
    ours = {}
    for n_process in (1, 2):
        ours[n_process] = words / our_extractor(settings, texts, n_process)
        print(f"our extractor, {n_process} process(es): {ours[n_process]:,.0f} words/s", file=sys.stderr)
    print(json.dumps({
        "bench": "entities", "model": settings.spacy_model, "source": source, "documents": len(texts),
        "words": words, "cpus": os.cpu_count(),
        "plain_words_per_s": round(plain), "ours_1proc_words_per_s": round(ours[1]),
        "ours_2proc_words_per_s": round(ours[2]),
        "speedup_vs_plain_1proc": round(ours[1] / plain, 2), "target_speedup_vs_plain": 1.5,
        "scaling_2proc": round(ours[2] / ours[1], 2), "target_scaling_2proc": 1.8,
    }))


if __name__ == "__main__":
    main()
