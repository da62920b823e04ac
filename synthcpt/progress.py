"""Rich progress for long steps, on stderr so that stdout stays clean for results; how much the
libraries underneath (vLLM, transformers, datasets, torch) may say."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# soft_wrap: a long line (a path) is never broken into two; the terminal wraps it. Tables still fit the width.
console = Console(stderr=True, soft_wrap=True)

# The libraries' log settings, as the environment variables each reads when it is first imported (the CLI
# imports them lazily, so setting these first is enough; vLLM's engine-core processes inherit them).
# vLLM's CPU build warns a dozen times per load about things a user cannot act on (tcmalloc, Triton, eager
# mode, thread counts): quiet means its errors only. tqdm bars are the libraries' (datasets; transformers'
# follow the hub's switch; vLLM's own follows its log level), never synthcpt's.
QUIET = {"VLLM_LOGGING_LEVEL": "ERROR", "TRANSFORMERS_VERBOSITY": "warning", "DATASETS_VERBOSITY": "warning",
         "HF_HUB_VERBOSITY": "warning", "TORCH_CPP_LOG_LEVEL": "ERROR", "TQDM_DISABLE": "1",
         "HF_HUB_DISABLE_PROGRESS_BARS": "1",
         "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning"}
VERBOSE = {"VLLM_LOGGING_LEVEL": "INFO", "TRANSFORMERS_VERBOSITY": "info", "DATASETS_VERBOSITY": "info",
           "HF_HUB_VERBOSITY": "info", "TORCH_CPP_LOG_LEVEL": "INFO", "TQDM_DISABLE": "0",
           "HF_HUB_DISABLE_PROGRESS_BARS": "0", "PYTHONWARNINGS": "default"}


def set_library_logs(verbose: bool) -> None:
    """Quiet (warnings and errors only) unless verbose. Quiet keeps what the user set in the environment;
    verbose overrides it, since asking for -v means wanting to see everything."""
    for name, value in (VERBOSE if verbose else QUIET).items():
        if verbose:
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)
    apply_vllm_level()
    if not verbose:
        # PYTHONWARNINGS reaches child processes only; this process read it at startup.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # The CLI's imports (datasets) load huggingface_hub before this runs, so it read
        # HF_HUB_DISABLE_PROGRESS_BARS too early; transformers' bars ("Loading weights") follow the hub's.
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def apply_vllm_level() -> None:
    """vLLM logs a few warnings while it is imported (Triton without a CPU backend), before it applies
    VLLM_LOGGING_LEVEL: with no handler yet, Python's last-resort handler prints them. Its logger's level,
    set before vLLM is imported, filters those too."""
    level = os.environ.get("VLLM_LOGGING_LEVEL", "").upper()
    if isinstance(logging.getLevelName(level), int):  # a level's name; vLLM reports a wrong one itself
        logging.getLogger("vllm").setLevel(level)


# vLLM's engine-core and worker processes are spawned: each imports the `synthcpt` script, hence this
# module, before it imports vLLM, and inherits the level set_library_logs put in the environment. (A parent
# run as `python -c` has no script to import: its children still print them.) Ray's replicas import this
# module before vLLM too (synthcpt.engine.backends.ray).
apply_vllm_level()


def progress() -> Progress:
    # A transient bar shows nothing where the output is not a live terminal (a file, a pipe, TERM=dumb), yet
    # rich ends it there with an empty line: off there, so stages print compactly.
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    transient=True, disable=not console.is_interactive)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
