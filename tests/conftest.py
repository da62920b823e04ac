"""Shared fixtures. Fixture modules under tests/fixtures/ are loaded as plugins (one per area)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"
REPLAY_SAMPLE = ROOT / "examples" / "replay" / "general-sample.jsonl"

pytest_plugins = sorted(f"tests.fixtures.{p.stem}" for p in (ROOT / "tests" / "fixtures").glob("[!_]*.py"))

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded SmolLM2-135M-Instruct as an HF folder (converted once per machine)."""
    from synthcpt.models import prepare

    return prepare()


@pytest.fixture(scope="session")
def tokenizer(embedded_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)


@pytest.fixture
def demo_corpus() -> Path:
    return DEMO_CORPUS


@pytest.fixture
def shared_data() -> Path:
    """The larger shared data sets beside the checkout; tests that need them skip without them."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared data not found at {data} (it exists only beside the development checkout)")
    return data
