"""Every benchmark's `--dry-run`: it builds what its real run builds (settings, corpus, requests, training
data) through the same functions, then stops before any vLLM engine, server, Ray cluster or training.
A rename in synthcpt that breaks a benchmark fails here in seconds, not after a long run on a free
machine. New scripts in bench/ are picked up by the glob.

The GPU check (bench/device.sh) has a dry run of its own: every part trained on tiny shapes on a CPU,
as if the packages the GPU machine lacks were not installed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import ROOT

# bench/device.py runs through bench/device.sh, tested below.
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if p.stem != "device")
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
    assert (ROOT / "bench" / "device.py").is_file() and (ROOT / "bench" / "device.sh").is_file()


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


# synthcpt's dependencies that the GPU machine's image lacks (the device tool's notes), by import name;
# pydantic, which it lacks too, is carried as wheels (bench/device.sh).
NOT_ON_THE_GPU_MACHINE = ("datasets", "vllm", "liger_kernel", "gguf", "rapidfuzz", "spacy", "en_core_web_sm",
                          "bm25s", "ray", "openai", "tenacity", "datasketch")
DEVICE_PARTS = {"ours_1b", "hf_1b", "lora_8b", "loglik_1b", "fused_loss_off_1b", "compile_off_1b"}
TRAINING_PARTS = DEVICE_PARTS - {"loglik_1b"}


def _hiding_path(folder: Path, hidden: tuple[str, ...]) -> Path:
    """A sitecustomize that makes `hidden` packages not found, as on a machine without them: the path
    finder answers None, so `import` fails and transformers' availability checks say False (a stand-in
    package that raises would pass those checks and fail where the real machine would not)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"""import importlib.machinery

HIDDEN = {set(hidden)!r}
_find_spec = importlib.machinery.PathFinder.find_spec


def _find_unless_hidden(cls, fullname, path=None, target=None):
    if fullname.partition(".")[0] in HIDDEN:
        return None
    return _find_spec(fullname, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_unless_hidden)
""")
    return folder


def test_hidden_packages_are_not_found_and_transformers_sees_them_missing(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(_hiding_path(tmp_path / "site", ("datasets",))))
    code = ("from transformers.utils import is_datasets_available\n"
            "assert not is_datasets_available()\n"
            "import numpy\n"
            "import datasets\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "No module named 'datasets'" in proc.stderr, proc.stderr[-2000:]


def test_the_carried_wheels_cover_pydantic_and_its_requirements():
    from importlib.metadata import requires

    script = (ROOT / "bench" / "device.sh").read_text()
    carried = set(re.findall(r"\b([a-z][a-z-]+)==[0-9.]+", script))
    needed = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0].lower().replace("_", "-")
              for r in requires("pydantic") if "extra ==" not in r}
    assert carried >= needed | {"pydantic"}, carried


@pytest.mark.slow
def test_the_gpu_check_dry_run_trains_every_part_without_what_the_gpu_machine_lacks(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=str(_hiding_path(tmp_path / "site", NOT_ON_THE_GPU_MACHINE)))
    env.pop("OUT", None)
    proc = subprocess.run(["bash", str(ROOT / "bench" / "device.sh"), "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["dry_run"] is True and figures["fused_loss_kernel"] == "chunked"
    parts = figures["parts"]
    assert set(parts) == DEVICE_PARTS
    failed = {name: part["error"] for name, part in parts.items() if "error" in part}
    assert not failed, failed
    assert figures["counts"] == {"parts": 6, "parts_ran": 6}
    for name in TRAINING_PARTS:
        part = parts[name]
        assert part["steps"] == figures["cases"]["1b"]["steps"] and part["tokens_per_s"] > 0, name
        assert part["peak_memory_gb"] > 0 and "mfu" in part, name
        # A random model on random tokens: the loss of a uniform guess over the 1,000-word vocabulary.
        assert abs(part["mean_loss"] - math.log(1000)) < 0.5, (name, part["mean_loss"])
        if name != "hf_1b":
            assert part["planned_memory_gb"] > 0 and part["planned_over_peak"] > 0, name
    # The same model, data and settings: HF's loss, the plain loss's and eager mode's are ours.
    for name in ("hf_1b", "fused_loss_off_1b", "compile_off_1b"):
        assert parts[name]["mean_loss"] == pytest.approx(parts["ours_1b"]["mean_loss"], rel=1e-3), name
    assert parts["loglik_1b"]["questions"] == 16 and parts["loglik_1b"]["questions_per_s"] > 0
    assert all(value is not None for value in figures["comparisons"].values()), figures["comparisons"]
    # The GPU cases fit an H200 by the planner, before any GPU is lent.
    assert set(figures["gpu_plans"]) == {"llama-3.2-1b", "llama-3.1-8b"}
    assert all(plan["fits"] and plan["planned_memory_gb"] > 10 for plan in figures["gpu_plans"].values())


def _experiment():
    """bench/experiment.py as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("experiment", ROOT / "bench" / "experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_margin_of_a_question_with_several_right_options_is_their_mean_over_the_others():
    experiment = _experiment()
    one = {"scores": [-1.0, -3.0, -5.0, -7.0], "answers": ["A"]}
    assert experiment.correct_margin(one) == pytest.approx(-1.0 - (-5.0))
    two = {"scores": [-1.0, -3.0, -5.0, -7.0], "answers": ["A", "C"]}
    assert experiment.correct_margin(two) == pytest.approx(-3.0 - (-5.0))
    every = {"scores": [-1.0, -3.0], "answers": ["A", "B"]}
    assert experiment.correct_margin(every) == 0.0


def test_arm_rows_average_acc_norm_over_the_questions_that_have_it():
    experiment = _experiment()

    def record(model, question, acc, acc_norm):
        return {"model": model, "question_id": question, "acc": acc, "acc_norm": acc_norm,
                "scores": [-1.0, -2.0], "answers": "A"}

    interval = {"resamples": 200, "confidence": 0.95, "seed": 0}
    # A set of questions with several right options only (as Coursera's): acc_norm has no value.
    multi = experiment.arm_rows([record(m, q, 1.0, None) for m in ("base", "raw") for q in "xy"], {}, {}, 64, interval)
    assert [row["acc_norm"] for row in multi] == [None, None]
    mixed = [record("base", "x", 1.0, 1.0), record("base", "y", 0.0, None), record("base", "z", 1.0, 0.0)]
    assert experiment.arm_rows(mixed, {}, {}, 64, interval)[0]["acc_norm"] == pytest.approx(0.5)


def test_the_experiment_takes_the_chosen_documents_of_an_leval_file(tmp_path):
    experiment = _experiment()
    source = tmp_path / "docs.jsonl"
    lines = [json.dumps({"input": f"document {i}", "instructions": [], "outputs": []}) for i in range(5)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path, _, count = experiment.corpus_file(tmp_path / "work", str(source), 3, [4, 1])
    assert count == 2 and path.read_text(encoding="utf-8").splitlines() == [lines[4], lines[1]]
    path, _, count = experiment.corpus_file(tmp_path / "work", str(source), 2)
    assert count == 2 and path.read_text(encoding="utf-8").splitlines() == lines[:2]
    with pytest.raises(experiment.SynthcptError, match="has 5 documents"):
        experiment.corpus_file(tmp_path / "work", str(source), 3, [5])
    assert experiment.chosen_documents("0, 4,13") == [0, 4, 13]
    with pytest.raises(SystemExit):
        experiment.chosen_documents("1,1")
