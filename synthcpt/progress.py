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
    if not verbose:
        # PYTHONWARNINGS reaches child processes only; this process read it at startup.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # vLLM logs a few lines at import, before it applies VLLM_LOGGING_LEVEL (through Python's
        # last-resort handler): its logger's level, set now, covers those too.
        logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
        # The CLI's imports (datasets) load huggingface_hub before this runs, so it read
        # HF_HUB_DISABLE_PROGRESS_BARS too early; transformers' bars ("Loading weights") follow the hub's.
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    transient=True)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
