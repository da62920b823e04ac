"""Small helpers shared by tests: the CLI in a subprocess, and a config for a temporary run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
