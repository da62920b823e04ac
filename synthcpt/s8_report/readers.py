"""What the report reads from a run folder, and how it writes values for people.

Every reader returns nothing (None, an empty list) for a file that is missing or unreadable: the
report shows what a run holds and leaves the rest out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthcpt.atomic import read_records
from synthcpt.errors import SynthcptError
from synthcpt.questions import QAItem
from synthcpt.run_folder import QUESTIONS_FILE, RunFolder


def parquet_rows(folder: Path, pattern: str = "*.parquet") -> list[dict[str, Any]]:
    return read_records(*sorted(folder.glob(pattern))) if folder.is_dir() else []


def titles(run: RunFolder) -> dict[str, str]:
    """Document id → title, from the ingested documents."""
    path = run.documents_path
    return {d["doc_id"]: d["title"] or d["doc_id"] for d in read_records(path)} if path.is_file() else {}


def exam_ran(run: RunFolder) -> bool:
    """Whether the run folder holds the exam stage's questions."""
    return (run.folder("exam") / QUESTIONS_FILE).is_file()


def exam_items(run: RunFolder) -> list[QAItem]:
    """The exam's questions; none when the exam stage has not run. A file of another shape (another
    version of synthcpt) is a SynthcptError, shown in place of the section that reads it."""
    if not exam_ran(run):
        return []
    try:
        return run.exam()
    except (TypeError, KeyError) as e:
        raise SynthcptError(f"{run.folder('exam') / QUESTIONS_FILE} does not hold what this version of synthcpt "
                            f"writes ({e}): rerun its stage") from None


def training_log(path: Path) -> list[dict[str, Any]]:
    log = []
    if not path.is_file():
        return log
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interrupted run
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            log.append(row)
    return log


def label(key: str) -> str:
    """A statistic's key as words: `synthetic_tokens` → `synthetic tokens`."""
    return key.replace("_", " ")


def number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def plain(value: Any) -> str | None:
    """A value as text for people: numbers formatted, a list as its items, a dict of counts as
    `name count` pairs; None for deeper structures, which belong in their own table or chart."""
    if isinstance(value, (str, int, float, bool)):
        return number(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(number(v) for v in value) or "none"
    if isinstance(value, dict) and all(isinstance(v, (str, int, float)) for v in value.values()):
        return ", ".join(f"{label(str(k))} {number(v)}" for k, v in value.items()) or "none"
    return None


def fields(data: dict[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The plainly writable entries of a statistics dict as (label, value) pairs."""
    items = []
    for key, value in data.items():
        text = plain(value) if key not in skip and value is not None else None
        if text is not None:
            items.append((label(key), text))
    return items


def plural(n: int, word: str, many: str = "") -> str:
    return f"{number(n)} {word if n == 1 else many or word + 's'}"


def share(value: float) -> str:
    return f"{value:.1%}"


def interval(ci: list[float], signed: bool = False) -> str:
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"[{form.format(ci[0])}, {form.format(ci[1])}]"
