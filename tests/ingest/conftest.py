from __future__ import annotations

from pathlib import Path

import pytest

from synthcpt.atomic import read_records
from synthcpt.config import load_config
from synthcpt.pipeline import Runner


def ingest(run_dir: Path, *inputs: Path, settings: tuple[str, ...] = ()) -> Path:
    """Run the real ingest stage on `inputs`; return its output folder."""
    listed = ", ".join(f"'{p}'" for p in inputs)
    config = load_config(None, [f"run.dir={run_dir}", f"ingest.inputs=[{listed}]", *settings])
    Runner(config, reporter=lambda _: None).execute(["ingest"], force={"ingest"})
    return run_dir / "ingest"


def table(path: Path) -> list[dict]:
    return read_records(path)


@pytest.fixture
def run_ingest(tmp_path, embedded_model):
    def run(*inputs: Path, settings: tuple[str, ...] = ()) -> Path:
        return ingest(tmp_path / "run", *inputs, settings=settings)

    return run
