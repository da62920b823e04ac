"""The whole pipeline on one short story at a tiny budget, through the CLI as a user runs it
(`synthcpt run CORPUS` in an 80-column terminal): every stage's output, the report, a terminal that shows
synthcpt's lines only, a rerun that redoes nothing, and what the run made shared with its cards."""

import json
import os
import re

import pytest

from synthcpt.atomic import read_records
from tests.conftest import DEMO_CORPUS, REPLAY_SAMPLE
from tests.helpers import assert_one_line_error, synthcpt

pytestmark = pytest.mark.slow

TINY = [
    "generate.total_tokens=1500", "generate.entigraph.max_relations=4", "generate.entigraph.max_tokens=96",
    "generate.wrap.max_tokens=96", "generate.rc_llm.max_tokens=96", "generate.bonito.max_tokens=96",
    "train.max_steps=3", "train.block_size=256", "train.batch_size=2", "train.micro_batch_size=2",
    "train.checkpoint_every=2", "train.lr=1e-4", f"train.replay_path={REPLAY_SAMPLE}",
]


# vLLM's log lines: "(EngineCore pid=12) INFO 12-01 10:35:46 [core.py:402] ..." or "INFO 12-01 ...".
LIBRARY_LOG = re.compile(r"\b(INFO|DEBUG|WARNING)\b \d\d-\d\d \d\d:\d\d:\d\d")
# Characters of rich's table borders: a table's lines, which must fit the terminal (plain lines may be
# longer: a path is never broken, the terminal wraps it).
TABLE_BORDERS = set("┏┃┡│└━─")


def rows(path):
    return read_records(*sorted(path.glob("*.parquet")))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, embedded_model):
    folder = tmp_path_factory.mktemp("e2e")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "story.jsonl").write_text(DEMO_CORPUS.read_text().splitlines()[0] + "\n")
    args = ["run", str(folder / "corpus"), "--preset", "cpu-demo", "--set", f"run.dir={folder / 'run'}",
            *[a for s in TINY for a in ("--set", s)]]
    proc = synthcpt(*args, timeout=1800, columns=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "run", args, proc


def test_every_stage_completes_with_its_outputs(finished_run):
    run_dir, _, _ = finished_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    from synthcpt.config import load_config
    from synthcpt.pipeline import fingerprints

    # A run of one round: every step complete, no quiz or probe among them.
    steps = list(fingerprints(load_config(None, [])))
    assert {n: entry["status"] for n, entry in manifest["stages"].items()} == {n: "complete" for n in steps}
    assert "quiz" not in steps and "probe" not in steps
    documents = read_records(run_dir / "ingest" / "documents.parquet")
    assert [d["title"] for d in documents] == ["LOST IN TRANSLATION"]
    entities = read_records(run_dir / "entities" / "entities.parquet")
    assert len(entities) >= 5
    assert (run_dir / "graph" / "graph.graphml").is_file()
    mix = rows(run_dir / "generate" / "mix")
    generators = {r["generator"] for r in mix}
    assert "raw" in generators and len(generators - {"raw"}) >= 2, generators
    assert all(r["text"].strip() and r["doc_id"] for r in mix)
    assert (run_dir / "train" / "model" / "config.json").is_file()
    log = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert "base" in json.dumps(results) and "trained" in json.dumps(results)
    report = (run_dir / "report.html").read_text()
    assert "LOST IN TRANSLATION" in report and "<table" in report
    assert (run_dir / "report.md").is_file()


def test_the_terminal_shows_synthcpt_lines_only_and_ends_with_the_report(finished_run):
    run_dir, _, proc = finished_run
    assert not LIBRARY_LOG.findall(proc.stderr), proc.stderr[-3000:]
    assert "Loading safetensors" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert "Loading weights" not in proc.stderr and "it/s]" not in proc.stderr, proc.stderr[-3000:]  # no library bars
    lines = proc.stderr.rstrip().splitlines()
    assert lines[-1] == f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}"
    tables = [line for line in lines if TABLE_BORDERS & set(line)]
    assert len(tables) >= 3 and max(map(len, tables)) <= 80, "\n".join(tables)
    assert proc.stdout == ""


def test_rerun_redoes_nothing(finished_run):
    run_dir, args, _ = finished_run
    before = json.loads((run_dir / "manifest.json").read_text())["stages"]
    proc = synthcpt(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert {n: e["started"] for n, e in after.items()} == {n: e["started"] for n, e in before.items()}
    assert proc.stderr.count("up to date, skipped") == len(before)
    # The closing summary: tokens per generator, base and trained accuracy, where the report is.
    assert "mix:" in proc.stderr and "entigraph" in proc.stderr
    assert "trained" in proc.stderr and "base" in proc.stderr
    assert f"report: {run_dir / 'report.html'}" in proc.stderr


def _cell(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def test_the_cards_hold_the_runs_own_numbers(finished_run):
    import datasets
    from huggingface_hub import DatasetCard, ModelCard

    from synthcpt.run_folder import RunFolder

    run = RunFolder(finished_run[0])
    model, corpus = ModelCard.load(run.model_card), DatasetCard.load(run.dataset_card)
    assert (model.data.base_model, model.data.license) == ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")
    assert model.data.library_name == "transformers" and "synthcpt" in model.data.tags
    train, generate, results = run.train_stats(), run.generate_stats(), run.eval_results()
    assert f"| tokens trained | {train.tokens:,} over {train.steps:,} steps |" in model.text
    assert f"| training data | {train.training_tokens:,} tokens |" in model.text
    for name, part in generate.mix.by_generator.items():
        row = f"| {name} | {part.records:,} | {part.tokens:,} |"
        assert row in model.text and row in corpus.text, row
    # The card was rebuilt when eval finished: every base and trained score, with its interval.
    assert results.scores and not results.not_evaluated
    for score in results.scores:
        assert _cell(score.value, score.ci) in model.text, score
    for change in results.comparisons:
        assert f"{change.difference:+.3f} [{change.ci[0]:.3f}, {change.ci[1]:.3f}]" in model.text, change
    assert f"with the run's exam ({generate.mix.eval_texts_guarded:,} question and answer texts)" in corpus.text
    assert corpus.data.task_categories == ["text-generation"]
    # The mix loads from its folder as it is, card and all.
    loaded = datasets.load_dataset(str(run.mix), split="train")
    assert len(loaded) == generate.mix.records and "text" in loaded.column_names


def test_push_to_a_folder_loads_with_transformers_and_datasets_and_never_writes_the_token(finished_run, tmp_path):
    import datasets
    import torch
    from huggingface_hub import DatasetCard, ModelCard
    from transformers import AutoModelForCausalLM

    run_dir = finished_run[0]
    token = "hf_synthcptSentinel0123456789abcdef"
    proc = synthcpt("push", str(run_dir), "--to", str(tmp_path / "shared"), "--model", "someone/story-model",
                    "--dataset", "someone/story-corpus", env={**os.environ, "HF_TOKEN": token})
    assert proc.returncode == 0, proc.stderr[-3000:]
    shared = tmp_path / "shared"
    pushed = AutoModelForCausalLM.from_pretrained(shared / "model")
    trained = AutoModelForCausalLM.from_pretrained(run_dir / "train" / "model")
    assert all(torch.equal(a, b) for a, b in zip(pushed.state_dict().values(), trained.state_dict().values()))
    corpus = datasets.load_dataset(str(shared / "dataset"), split="train")
    assert len(corpus) == len(rows(run_dir / "generate" / "mix"))
    card = ModelCard.load(shared / "model" / "README.md")
    assert card.data.datasets == ["someone/story-corpus"] and "[report](report.html)" in card.text
    assert (shared / "model" / "report.html").is_file()
    assert "someone/story-model" in DatasetCard.load(shared / "dataset" / "README.md").text
    written = [p for folder in (run_dir, shared) for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in written if token.encode() in p.read_bytes()]
    assert token not in proc.stdout + proc.stderr


def test_push_refuses_bad_input_in_one_line_and_writes_nothing(finished_run, tmp_path):
    run_dir = finished_run[0]
    no_login = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | {"HF_HOME": str(tmp_path / "hf")}
    assert_one_line_error(synthcpt("push", str(run_dir), "--model", "someone/m", env=no_login), "no Hugging Face token")
    assert_one_line_error(synthcpt("push", str(run_dir), "--model", "some//one"), "--model some//one",
                          "not a repo name")
    assert_one_line_error(synthcpt("push", str(run_dir)), "nothing to push")
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    assert_one_line_error(synthcpt("push", str(untrained), "--model", "someone/m"), "no trained model")
    (tmp_path / "taken" / "model").mkdir(parents=True)
    (tmp_path / "taken" / "model" / "mine.txt").write_text("the user's")
    assert_one_line_error(synthcpt("push", str(run_dir), "--to", str(tmp_path / "taken")), "is not empty")
    assert [p.name for p in (tmp_path / "taken").rglob("*")] == ["model", "mine.txt"]
