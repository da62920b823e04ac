"""Small helpers shared by tests: the CLI in a subprocess, a config for a temporary run, a stage run in-process
and an engine result built from an answer."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from synthcpt.engine.types import Request, Result

ROOT = Path(__file__).resolve().parent.parent
# Two short stories full of named entities: a corpus that every generator reads in seconds.
STORIES = {
    "lighthouse.txt": "The Lighthouse of Varrow\n\nThe lighthouse of Varrow was built in 1873 by the engineer Mara "
                      "Quell. Its lamp burned whale oil until 1902, when the keeper Tobias Wren installed an "
                      "electric light. Wren kept the light for forty years and wrote a diary of every storm. In 1921 "
                      "the steamer Halcyon ran aground on the Varrow rocks; Wren rowed out alone and saved eleven "
                      "sailors. The town gave him a silver compass, which now hangs in the lighthouse museum.",
    "orchard.txt": "The Orchard at Hollin\n\nThe orchard at Hollin grows a rare pear called the Amber Bell, first bred "
                   "by the gardener Ida Sorn in 1890. Sorn crossed a wild pear from the Kestrel hills with a French "
                   "pear. The Amber Bell ripens in late October and keeps until March in a cold cellar. In 1935 a "
                   "frost killed half the trees; Sorn's grandson Emil replanted them from cuttings kept in the "
                   "village church. Every autumn Hollin holds a pear fair where the best Amber Bell wins a brass bell.",
}


def write_stories(folder: Path) -> Path:
    """The two stories as text files in `folder` (a corpus for `ingest.inputs`); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in STORIES.items():
        (folder / name).write_text(text)
    return folder


def synthcpt(*args: str, cwd: Path | None = None, timeout: float = 600, columns: int = 200,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the `synthcpt` CLI as a user would, capturing its output (in a terminal `columns` wide);
    `env` replaces the environment (default: this process's)."""
    env = dict(os.environ if env is None else env, COLUMNS=str(columns), TERM="dumb")
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


def stored_responses(run_dir: Path) -> int:
    """How many responses the run's engine cache holds (0 before it exists): what a killed run kept."""
    path = run_dir / "cache" / "engine.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def run_stage(config, stages, force=()):
    """Run `stages` of `config` in this process, quietly; `force` reruns those already done."""
    from synthcpt.pipeline import Runner

    Runner(config, reporter=lambda _: None).execute(stages, force=set(force))


def config_of(args):
    """The config that `--set` overrides `args` make, with no config file."""
    from synthcpt.config import load_config

    return load_config(None, args)


def result(parsed, truncated: bool = False, text: str | None = None) -> Result:
    """An engine result whose one answer is `parsed` as JSON (or raw `text`), cut off by max_tokens if `truncated`."""
    request = Request(messages=[{"role": "user", "content": "x"}], json_schema={}, metadata={"doc_id": "d"})
    return Result(request, texts=[text if text is not None else json.dumps(parsed)],
                  finish_reasons=["length" if truncated else "stop"], parsed=None if truncated else [parsed])
