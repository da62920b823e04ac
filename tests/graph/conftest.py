from __future__ import annotations

import pytest

from tests.entities.runs import demo_spacy_run


@pytest.fixture(scope="session")
def spacy_run(tmp_path_factory, embedded_model):
    """A run folder: the demo stories through ingest, entities (spaCy) and graph."""
    return demo_spacy_run(tmp_path_factory)
