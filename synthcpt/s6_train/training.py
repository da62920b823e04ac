"""The train stage: choose the data source, tokenise and pack it with replay, train, write the model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from synthcpt.atomic import atomic_path, write_model
from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.run_folder import STATS_FILE, RunFolder
from synthcpt.s6_train.data import (
    Example,
    PackedData,
    TeacherRows,
    TokenStream,
    build_stream,
    instruction_examples,
    read_instruction_pairs,
    read_parquet_column,
    stream_key,
)
from synthcpt.s6_train.runtime import Runtime, start_runtime
from synthcpt.s6_train.settings import TrainSettings
from synthcpt.s6_train.teacher import (
    Sources,
    corpus_examples,
    mix_examples,
    teacher_rows,
)
from synthcpt.stage import StageContext
from synthcpt.stats import TrainStats


def source_files(ctx: StageContext, run: RunFolder | None = None) -> list[Path]:
    """The parquet files of the configured data source, from the earlier stages' outputs (of `run`'s round,
    by default the stage's own)."""
    data, run = ctx.settings.data, run or ctx.run
    if data == "raw":
        ctx.input("ingest")
        files = [run.documents_path]
    else:
        if not run.is_done("generate"):
            raise SynthcptError(f"stage 'train' needs the output of 'generate' (round {run.round}), which has not run")
        files = sorted((run.mix if data == "mix" else run.instructions).glob("*.parquet"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise SynthcptError(f"no training data for train.data={data}: no parquet files found "
                            f"(run the {'ingest' if data == 'raw' else 'generate'} stage)")
    return files


def _files_key(files: list[Path]) -> list[str]:
    return [f"{f.resolve()}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files]


def prepare_data(settings: TrainSettings, files: list[Path], replay_texts: list[str] | None, tokenizer, folder: Path,
                 runtime: Runtime, sources: Sources | None = None) -> PackedData:
    """Tokenise and pack the training files (and replay texts) into `folder` (the main process writes,
    the others wait and read), then check there is at least one block of training data."""
    tokenizer_id = getattr(tokenizer, "name_or_path", "")
    distill = settings.distill.qa_answers_only if settings.objective == "distill" else None
    main_key = stream_key({"files": _files_key(files), "mode": settings.data, "generators": settings.generators,
                           "tokenizer": tokenizer_id, "distill": distill})
    replay_key = stream_key({"texts": stream_key(replay_texts), "tokenizer": tokenizer_id}) if replay_texts else None
    if runtime.is_main:
        main = build_stream(folder / "main", _examples(settings, files, tokenizer, sources), tokenizer, main_key,
                            "tokenising training data")
        replay = build_stream(folder / "replay", (Example(t) for t in replay_texts), tokenizer, replay_key,
                              "tokenising replay data") if replay_texts else None
    runtime.barrier()
    if not runtime.is_main:
        main = TokenStream.open(folder / "main")
        replay = TokenStream.open(folder / "replay") if replay_texts else None
    if main.n_tokens == 0:
        chosen = f" from generators {', '.join(settings.generators)}" if settings.generators else ""
        raise SynthcptError(f"no training text{chosen} in {', '.join(str(f) for f in files)}")
    if main.n_blocks(settings.block_size) == 0:
        raise SynthcptError(f"the training data has {main.n_tokens} tokens, fewer than one block of "
                            f"train.block_size={settings.block_size}: add data or lower train.block_size")
    if replay is not None and replay.n_blocks(settings.block_size) == 0 and settings.replay_share > 0:
        raise SynthcptError(f"the replay data has {replay.n_tokens} tokens, fewer than one block of "
                            f"train.block_size={settings.block_size}")
    return PackedData(main, replay, settings.block_size, settings.document_attention)


def _examples(settings: TrainSettings, files: list[Path], tokenizer, sources: Sources | None) -> Iterable[Example]:
    if settings.objective == "distill":
        if sources is None:
            raise SynthcptError("train.objective=distill needs the run's corpus (the records' sources)")
        if settings.data == "raw":
            return corpus_examples(sources)
        return mix_examples(files, settings.generators, sources, settings.distill)
    if settings.data == "instructions":
        return instruction_examples(read_instruction_pairs(files), tokenizer)
    where = ("generator", set(settings.generators)) if settings.generators else None
    return (Example(text) for text in read_parquet_column(files, "text", where))


def check_causal_lm(model_path: str) -> None:
    """Fail early, in one line, on a model that transformers cannot train as a causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise SynthcptError(f"cannot read the model config of {model_path}: {str(e).splitlines()[0][:200]}") from None
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise SynthcptError(f"{model_path} is not a causal language model (model type '{config.model_type}'): "
                            f"train.model needs a decoder LM such as Llama, Qwen or SmolLM")


def train_on_files(settings: TrainSettings, files: list[Path], out: Path, seed: int,
                   sources: Sources | None = None, start_from: Path | None = None) -> TrainStats:
    """Train `settings.model` on the parquet `files` (+ replay) into `out`; the stage and tests call this.
    Distillation also reads `sources`, the corpus the records were written from. `start_from`: the weights
    training starts from when not the base model's (a later round: the round before's model); the
    tokenizer and the distillation teacher stay the base model's."""
    from synthcpt.models import load_tokenizer, resolve
    from synthcpt.replay import split_replay
    from synthcpt.s6_train.memory import fit_memory
    from synthcpt.s6_train.trainer import Trainer

    runtime = start_runtime()
    model_path = resolve(settings.model)
    check_causal_lm(model_path)
    tokenizer = load_tokenizer(model_path)
    replay_texts = None
    if settings.replay_path is not None and settings.replay_share > 0:
        replay_texts, _ = split_replay(settings.replay_path, settings.replay_heldout_share, seed,
                                       settings.replay_max_documents)
    data = prepare_data(settings, files, replay_texts, tokenizer, out / "data", runtime, sources)
    if settings.objective == "distill":
        data.teacher = distill_targets(settings, model_path, tokenizer, data, out / "data" / "teacher", runtime)
    # Before the model is loaded: what does not fit ends in one line (data errors came first).
    settings = fit_memory(settings, model_path, runtime)
    trainer = Trainer(settings, data, str(start_from) if start_from else model_path, out, seed, runtime)
    stats = TrainStats(**trainer.train(), data=settings.data, generators=settings.generators, base_model=model_path,
                       training_tokens=data.main.n_tokens, replay_tokens=data.replay.n_tokens if data.replay else 0,
                       started_from=str(start_from) if start_from else None)
    if runtime.is_main:
        write_model(out / STATS_FILE, stats)
    return stats


def distill_targets(settings: TrainSettings, model_path: str, tokenizer, data: PackedData, folder: Path,
                    runtime: Runtime) -> TeacherRows:
    """The teacher pass, shared by the processes of a distributed run."""
    rows = teacher_rows(model_path, tokenizer, data.main, settings.distill, folder, runtime)
    if rows is None:
        raise SynthcptError(f"the teacher pass left no complete rows in {folder}")
    return rows


def train_run(ctx: StageContext) -> TrainStats:
    sources = None
    if ctx.settings.objective == "distill":
        ctx.input("ingest")
        sources = Sources(ctx.run.documents(), ctx.run.chunks())
    files, start_from = source_files(ctx), None
    if ctx.run.round > 1:
        if ctx.settings.data != "mix":
            raise SynthcptError(f"a run of several rounds trains on the mix each round generates (train.data=mix, "
                                f"not {ctx.settings.data})")
        start_from = ctx.run.previous_round().trained_model
        if not (start_from / "config.json").is_file():
            raise SynthcptError(f"round {ctx.run.round} trains on from round {ctx.run.round - 1}'s model, which is "
                                f"not in {start_from}")
        earlier = earlier_rounds_sample(ctx, files)
        files += [earlier] if earlier else []
    return train_on_files(ctx.settings, files, ctx.out, ctx.config.run.seed, sources, start_from)


# The train stage's own file: the earlier rounds' records a later round trains on again.
EARLIER_ROUNDS_FILE = "earlier-rounds.parquet"


def earlier_rounds_sample(ctx: StageContext, files: list[Path]) -> Path | None:
    """The earlier rounds' mix records, shuffled by the run's seed and the round, up to
    `earlier_rounds_replay` times the tokens of this round's mix (`files`), as one parquet file."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    share = ctx.settings.earlier_rounds_replay
    if share == 0:
        return None
    new_tokens = sum(sum(pq.read_table(f, columns=["n_tokens"]).column("n_tokens").to_pylist()) for f in files)
    earlier = [f for r in range(1, ctx.run.round) for f in source_files(ctx, ctx.run.for_round(r))]
    table = pa.concat_tables([pq.read_table(f) for f in earlier], promote_options="default")
    order = list(range(table.num_rows))
    random.Random(f"{ctx.config.run.seed}:{ctx.run.round}").shuffle(order)
    tokens, chosen, total = table.column("n_tokens").to_pylist(), [], 0
    for index in order:
        if total >= share * new_tokens:
            break
        chosen.append(index)
        total += tokens[index]
    sample, path = table.take(chosen), ctx.out / EARLIER_ROUNDS_FILE
    # Written only when it changes: the packed data and a killed training's checkpoints are keyed by
    # the files' sizes and times, so a rewrite would start the round's training over.
    if not (path.is_file() and pq.read_table(path).equals(sample)):
        with atomic_path(path) as staging:
            pq.write_table(sample, staging)
    console.print(f"train: round {ctx.run.round} replays {len(chosen)} records of the earlier rounds "
                  f"({total:,} tokens; its new text: {new_tokens:,})")
    return path


def show_training(ctx: StageContext) -> None:
    stats = ctx.run.train_stats()
    if stats is None:
        return
    mfu = f", MFU {stats.mfu:.1%}" if stats.mfu else ""
    loss = (f"loss {stats.first_loss:.3f} → {stats.final_loss:.3f}, " if stats.first_loss is not None
            and stats.final_loss is not None else "")
    console.print(f"trained {stats.steps} steps, {stats.tokens:,} tokens "
                  f"({stats.replay_sequences} of {stats.sequences} sequences replay): "
                  f"{loss}{stats.tokens_per_s:,.0f} tok/s{mfu}")
