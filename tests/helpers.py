"""Small helpers shared by tests: the CLI in a subprocess, and a config for a temporary run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synthcpt(*args: str, cwd: Path | None = None, timeout: float = 600, columns: int = 200
             ) -> subprocess.CompletedProcess:
    """Run the `synthcpt` CLI as a user would, capturing its output (in a terminal `columns` wide)."""
    env = dict(os.environ, COLUMNS=str(columns), TERM="dumb")
    return subprocess.run([sys.executable, "-c", "from synthcpt.cli import main; main()", *args],
                          cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A bad input must end in one clear error line, a non-zero exit and no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
