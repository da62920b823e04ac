"""Every benchmark's `--dry-run`: it builds what its real run builds (settings, corpus, requests, training
data) through the same functions, then stops before any vLLM engine, server, Ray cluster or training.
A rename in synthcpt that breaks a benchmark fails here in seconds, not after a long run on a free
machine. New scripts in bench/ are picked up by the glob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import ROOT

SCRIPTS = sorted((ROOT / "bench").glob("*.py"))
# Made unimportable in the dry runs: no engine or cluster starts without them.
BLOCKED = ("vllm", "ray")


@pytest.fixture(scope="module")
def blocking_path(tmp_path_factory) -> Path:
    """A folder of stand-in packages that fail on import, put first on the dry runs' PYTHONPATH."""
    folder = tmp_path_factory.mktemp("blocked")
    for name in BLOCKED:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('a dry run imported {name}')\n")
    return folder


@pytest.fixture(scope="module")
def dry_runs(request, blocking_path: Path) -> dict[Path, Future]:
    """The selected scripts' dry runs, started together on as many workers as cores: each is mostly
    imports and spaCy on one core, so on two cores two run in about the time of one."""
    selected = sorted({item.callspec.params["script"] for item in request.session.items
                       if item.module is request.module and hasattr(item, "callspec")})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(blocking_path), str(ROOT),
                                                                     os.environ.get("PYTHONPATH")])))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield {script: pool.submit(subprocess.run, [sys.executable, str(script), "--dry-run"], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=300, check=False)
               for script in selected}


def test_every_script_is_found():
    assert {p.stem for p in SCRIPTS} >= {"engine", "entities", "eval", "experiment", "generate", "scale", "soak",
                                         "train"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_dry_run(script: Path, dry_runs: dict[Path, Future]):
    proc = dry_runs[script].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    figures = json.loads(lines[-1])
    assert isinstance(figures, dict) and figures.get("dry_run") is True, lines[-1][:500]
    # What the dry run built, counted (requests per comparison, documents, sequences...): none empty.
    counts = figures.get("counts")
    assert isinstance(counts, dict) and counts, lines[-1][:500]
    empty = {k: v for k, v in counts.items() if not (isinstance(v, int) and v > 0)}
    assert not empty, f"{script.name} --dry-run built nothing for {empty}"
