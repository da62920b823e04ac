"""Run folders for the entities and graph tests: the real stages on real stories, made once per session."""

from __future__ import annotations

from pathlib import Path

from synthcpt.config import load_config
from synthcpt.pipeline import Runner


def write_corpus(path: Path, documents: dict[str, str]) -> Path:
    """A .jsonl corpus of `id → text` documents."""
    import json

    path.write_text("".join(json.dumps({"id": doc_id, "title": doc_id, "text": text}) + "\n"
                            for doc_id, text in documents.items()), encoding="utf-8")
    return path


def run_stages(run_dir: Path, inputs: list[Path], stages: list[str], *settings: str):
    """Run `stages` (and what they need) on `inputs`; return the config."""
    listed = ", ".join(f"'{p}'" for p in inputs)
    # The engine section stays at its defaults: the same settings as the session's vLLM fixture.
    config = load_config(None, [f"run.dir={run_dir}", f"ingest.inputs=[{listed}]", *settings])
    Runner(config, reporter=lambda _: None).execute(stages, force=set())
    return config


_made: dict[str, Path] = {}


def demo_spacy_run(tmp_path_factory) -> Path:
    """The demo stories through ingest, entities (spaCy) and graph; made once per session and shared
    by the entities and graph tests."""
    from tests.conftest import DEMO_CORPUS

    if "spacy" not in _made:
        run_dir = tmp_path_factory.mktemp("entities") / "run"
        run_stages(run_dir, [DEMO_CORPUS], ["ingest", "entities", "graph"], "entities.extractor=spacy")
        _made["spacy"] = run_dir
    return _made["spacy"]
