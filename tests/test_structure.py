"""The package's structure: stages talk only through the run folder and the shared layer, and the run
folder's names have one owner.

Layers, bottom up: the shared modules (synthcpt/*.py, engine/), the stage packages (s<N>_<name>/), and
the top (pipeline, config, cli, commands/). A module imports from its own layer or below; a stage never
imports another stage.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from synthcpt.pipeline import STAGES
from tests.helpers import ROOT

PACKAGE = ROOT / "synthcpt"
TOP = {"synthcpt.cli", "synthcpt.config", "synthcpt.pipeline", "synthcpt.rounds", "synthcpt.quiz", "synthcpt.commands"}
STAGE_PACKAGE = re.compile(r"^s\d+_[a-z]+$")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and STAGE_PACKAGE.match(parts[1]):
        return parts[1]
    return "top" if ".".join(parts[:2]) in TOP else "shared"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every synthcpt module imported anywhere in the file (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthcpt"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("synthcpt")]
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "shipped_prompts" not in p.parts)


def test_no_stage_imports_another_and_no_import_runs_back_up():
    wrong = []
    for path in _sources():
        source = _layer(_module(path))
        for line, target in _imports(path):
            if target == "synthcpt":  # `from synthcpt import x` names a shared module
                continue
            goal = _layer(target)
            allowed = goal in (source, "shared") or source == "top"
            if not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target} ({goal})")
    assert wrong == []


def test_the_checks_see_a_cross_stage_import(tmp_path):
    """The rule above is not vacuous: a stage module importing another stage is caught."""
    assert _layer(_module(PACKAGE / "s3_graph" / "build.py")) == "s3_graph"
    assert _layer("synthcpt.s2_entities.normalize") == "s2_entities" and _layer("synthcpt.config") == "top"
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from synthcpt.s2_entities.normalize import Candidate\n")
    assert _imports(probe) == [(2, "synthcpt.s2_entities.normalize")]


def _run_folder_names() -> set[str]:
    """The names the run folder owns: its module's string constants, and the stages' subfolders."""
    tree = ast.parse((PACKAGE / "run_folder.py").read_text(encoding="utf-8"))
    constants = {node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str) and all(isinstance(t, ast.Name) and t.id.isupper()
                                                              for t in node.targets)}
    return constants | {stage.name for stage in STAGES}


def _spelled_paths(path: Path, names: set[str]) -> list[str]:
    """`<path> / "name"` (or `"name" / ...`) with a run-folder name spelled out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [f"{path}:{node.lineno}: {side.value!r}" for side in (node.left, node.right)
                      if isinstance(side, ast.Constant) and side.value in names]
    return found


def test_no_module_but_the_run_folder_spells_a_run_folder_path():
    names = _run_folder_names()
    assert {"manifest.json", "stats.json", "cache", "generate", "results.json"} <= names
    spelled = [hit for path in _sources() if path != PACKAGE / "run_folder.py" for hit in _spelled_paths(path, names)]
    assert spelled == []


@pytest.mark.parametrize("source", ['run_dir / "manifest.json"', 'Path(d) / "train" / MODEL_FOLDER'])
def test_the_path_check_sees_a_spelled_name(source, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n")
    assert len(_spelled_paths(probe, _run_folder_names())) == 1
