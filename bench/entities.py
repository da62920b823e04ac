"""spaCy entity extraction throughput: our extractor against a plain `nlp.pipe` with every component on.

Measured in one run on the same general text (news, reports, patents): words per second of
- the baseline: `spacy.load(model)` with all components, `nlp.pipe(texts)` over whole documents;
- our extractor (`entities.extractor=spacy` defaults): NER + tagger only, documents cut into pieces,
  noun-phrase matching and counting included, on 1 and on 2 processes.

Prints one JSON object on its last stdout line. `--dry-run` builds the settings and reads the texts,
then stops before loading spaCy.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.config import load_config
from synthcpt.s2_entities.extractors.spacy import load_pipeline, spacy_candidates

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


def extractor_settings():
    """The spaCy extractor's settings as a run with `entities.extractor=spacy` and the defaults gets them
    (its nested section, `entities.spacy`)."""
    return load_config(None, ["entities.extractor=spacy"]).entities.spacy


def candidate_arguments(settings, n_process: int) -> dict:
    """`spacy_candidates`' arguments besides the texts, as the extractor plugin passes them
    (synthcpt/s2_entities/extractors/spacy.py), with our number of processes."""
    return {"model": settings.model, "labels": set(settings.ner_labels), "noun_phrases": settings.noun_phrases,
            "batch_size": settings.batch_size, "n_process": n_process, "piece_chars": settings.piece_chars}


def our_extractor(settings, texts: list[str], n_process: int) -> float:
    load_pipeline(settings.model, settings.noun_phrases)
    list(spacy_candidates([("warm-up", texts[0][:2000])], **candidate_arguments(settings, 1)))
    start = time.perf_counter()
    found = list(spacy_candidates(((str(i), t) for i, t in enumerate(texts)),
                                  **candidate_arguments(settings, n_process)))
    assert len(found) == len(texts)
    return time.perf_counter() - start


def dry_run(settings, texts: list[str], words: int, source: str, quick: bool) -> dict:
    """What the run would measure, without loading spaCy. Binding the extractor's call to its signature
    fails as the real call would if a parameter was renamed."""
    arguments = candidate_arguments(settings, 1)
    inspect.signature(spacy_candidates).bind(texts, **arguments)
    return {"bench": "entities", "dry_run": True, "quick": quick, "source": source,
            **arguments, "labels": sorted(arguments["labels"]), "counts": {"documents": len(texts), "words": words}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"about {QUICK_WORDS:,} words instead of all")
    parser.add_argument("--dry-run", action="store_true", help="build the settings and read the texts, then stop "
                                                               "before loading spaCy")
    args = parser.parse_args()
    settings = extractor_settings()
    texts, source = load_texts(QUICK_WORDS if args.quick else None)
    words = sum(len(t.split()) for t in texts)
    print(f"{len(texts)} documents, {words:,} words from {source}; {os.cpu_count()} CPUs", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(dry_run(settings, texts, words, source, args.quick)))
        return
    plain = words / plain_pipeline(settings.model, texts)
    print(f"plain nlp.pipe, every component, 1 process: {plain:,.0f} words/s", file=sys.stderr)
    ours = {}
    for n_process in (1, 2):
        ours[n_process] = words / our_extractor(settings, texts, n_process)
        print(f"our extractor, {n_process} process(es): {ours[n_process]:,.0f} words/s", file=sys.stderr)
    print(json.dumps({
        "bench": "entities", "model": settings.model, "source": source, "documents": len(texts),
        "words": words, "cpus": os.cpu_count(),
        "plain_words_per_s": round(plain), "ours_1proc_words_per_s": round(ours[1]),
        "ours_2proc_words_per_s": round(ours[2]),
        "speedup_vs_plain_1proc": round(ours[1] / plain, 2), "target_speedup_vs_plain": 1.5,
        "scaling_2proc": round(ours[2] / ours[1], 2), "target_scaling_2proc": 1.8,
    }))


if __name__ == "__main__":
    main()
