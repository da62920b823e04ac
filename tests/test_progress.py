"""What the terminal shows besides synthcpt's own lines: vLLM's import-time warnings in the processes vLLM
spawns, and the progress bars where the output is not a live terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synthcpt.progress import QUIET, track
from tests.helpers import ROOT

TRITON_LINE = "Triton is installed, but doesn't include CPU backend"

# A main script as the `synthcpt` console script is (it imports synthcpt.cli), loading vLLM in this process
# and in a child spawned as vLLM spawns its engine core and workers: the child imports this script before
# it unpickles its target, whose module imports vLLM.
SPAWNING_SCRIPT = """\
import importlib
import multiprocessing
import sys

from synthcpt.cli import main  # noqa: F401

if __name__ == "__main__":
    from synthcpt.progress import set_library_logs

    set_library_logs(verbose=sys.argv[1] == "verbose")
    importlib.import_module("vllm.triton_utils")
    child = multiprocessing.get_context("spawn").Process(target=importlib.import_module,
                                                         args=("vllm.triton_utils",))
    child.start()
    child.join()
    sys.exit(child.exitcode)
"""


def _vllm_import_stderr(tmp_path, mode: str) -> str:
    script = tmp_path / "synthcpt_like.py"
    script.write_text(SPAWNING_SCRIPT)
    # None of the log settings inherited (an in-process test may have set them): the script sets its own.
    env = {name: value for name, value in os.environ.items() if name not in QUIET}
    proc = subprocess.run([sys.executable, str(script), mode], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture(scope="module")
def triton_warns():
    """vLLM's CPU build next to a Triton without a CPU backend (xgrammar's): vLLM warns at import."""
    platforms = pytest.importorskip("vllm.platforms")
    backends = pytest.importorskip("triton.backends").backends
    if not platforms.current_platform.is_cpu() or "cpu" in backends:
        pytest.skip("vLLM does not warn about Triton here")


def test_quiet_hides_vllm_import_warnings_in_spawned_processes(tmp_path, triton_warns):
    assert TRITON_LINE not in _vllm_import_stderr(tmp_path, "quiet")


def test_verbose_shows_them_in_every_process(tmp_path, triton_warns):
    assert _vllm_import_stderr(tmp_path, "verbose").count(TRITON_LINE) == 2


def test_a_bar_prints_nothing_where_the_output_is_not_a_terminal(capsys):
    # rich ends a bar there with an empty line: one per bar, runs of them between the stages' lines.
    assert list(track(range(3), "work")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
