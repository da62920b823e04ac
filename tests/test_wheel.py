"""synthcpt installed the normal way: a wheel built from the tree, installed (not editable) into a fresh
virtual environment outside the source tree, runs every LLM generator on the embedded model (served by
the session's vLLM server: what is tested is the installed package, not an engine's start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from synthcpt.plugins import GENERATORS
from tests.helpers import ROOT, write_stories

pytestmark = pytest.mark.slow

LLM_GENERATORS = ("entigraph", "wrap", "rc_llm", "bonito", "active_reading", "qa", "focal")
# Reads its passages out of the documents: no model.
MINED_GENERATORS = ("rc_mined",)


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT),
                cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [built] = out.glob("synthcpt-*.whl")
    return built


def test_the_wheel_ships_every_prompt(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT / "prompts")) for p in (ROOT / "prompts").rglob("*") if p.is_file()}
    assert shipped and {f"synthcpt/shipped_prompts/{name}" for name in shipped} <= names
    assert "synthcpt/presets/cpu-demo.yaml" in names


def test_installed_wheel_runs_every_llm_generator(wheel, tmp_path, openai_engine_settings):
    # A generator added to the registry must be added here too.
    assert sorted(LLM_GENERATORS + MINED_GENERATORS) == sorted(GENERATORS.names())
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    assert _run(str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel), cwd=tmp_path).returncode == 0
    # The dependencies (torch, vLLM, spaCy...) come from this environment's site-packages as a plain path:
    # its editable install of synthcpt is a .pth that is not processed there, so only the wheel is importable.
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp_path).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run(str(python), "-c", "import synthcpt, importlib.resources as r; print(synthcpt.__file__); "
                 "print((r.files('synthcpt') / 'shipped_prompts' / 'wrap' / 'easy.md').is_file())", cwd=work, env=env)
    assert where.stdout.splitlines() == [str(site / "synthcpt" / "__init__.py"), "True"], where.stderr[-2000:]

    engine = openai_engine_settings
    settings = [f"run.dir={work / 'run'}", f"ingest.inputs=[{write_stories(tmp_path / 'stories')}]", "exam.source=given",
                "entities.extractor=spacy",
                f"generate.generators=[{', '.join(LLM_GENERATORS)}]",
                "generate.tokens={" + ", ".join(f"{g}: 40" for g in LLM_GENERATORS) + "}",
                # Six relations of 96 tokens: with two of 48 a sampled pair of answers was sometimes all
                # rejected (truncated or empty), and EntiGraph had no relation left to try.
                "generate.entigraph.max_relations=6", "generate.entigraph.max_tokens=96",
                "generate.wrap.max_tokens=48", "generate.rc_llm.max_tokens=96", "generate.bonito.max_tokens=96",
                # Two stories gave bonito and rc_llm two sampled answers each, which could all be rejected:
                # bonito up to three tasks a chunk (sent in waves only while its budget is unmet), rc_llm
                # one pair an answer (fewer truncated), and no repetition rule (it can never fire at 1.0;
                # tests/generate/test_mix.py tests it).
                "generate.bonito.tasks_per_chunk=3", "generate.rc_llm.questions=1", "generate.mix.max_repetition=1.0",
                # Greedy lists, as tests/generate/test_active_reading.py has them: the 135M model's parse.
                "generate.active_reading.strategies=1", "generate.active_reading.strategies_temperature=0",
                "generate.active_reading.strategies_max_tokens=200",
                # Greedy applications too: two sampled ones (a strategy per story) were sometimes both rejected.
                "generate.active_reading.max_tokens=64", "generate.active_reading.temperature=0",
                "generate.mix.min_tokens=4",
                # Question lists as tests/generate/test_smt.py has them (the 135M model's JSON), and
                # focal's rewrites of the question's passage.
                # Four lists a passage and kind: the two stories' ten first lists may all fail to parse.
                "generate.qa.max_tokens=384", "generate.qa.temperature=0.5", "generate.qa.lists=4",
                "generate.focal.questions.max_tokens=384", "generate.focal.questions.temperature=0.5",
                "generate.focal.question_lists=5", "generate.focal.source=passage", "generate.focal.max_tokens=96",
                # Every generator's own records in the mix: the QA : document balance would cut the
                # documents to the few QA tokens, some generators' single record with them.
                "generate.mix.qa_share=null",
                f"engine.backend={engine.backend}", f"engine.model={engine.model}",
                f"engine.openai.base_url={engine.openai.base_url}", f"engine.openai.timeout={engine.openai.timeout}",
                # 40-token budgets need a request or two each; the default first wave is 32 requests.
                "generate.min_wave=2"]
    args = [a for s in settings for a in ("--set", s)]
    synthcpt = str(venv / "bin" / "synthcpt")
    for stage in ("ingest", "entities", "graph", "exam", "generate"):
        proc = _run(synthcpt, stage, *args, cwd=work, env=env)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
    stats = json.loads((work / "run" / "generate" / "stats.json").read_text())["generators"]
    for name in LLM_GENERATORS:
        assert stats[name]["records"] > 0, (name, stats[name])
