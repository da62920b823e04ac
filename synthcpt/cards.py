"""The cards of what a run made: the trained model's (`train/model/README.md`) and the synthetic
corpus's (`generate/mix/README.md`), in the Hugging Face Hub's card format (a YAML metadata header,
then Markdown), so each folder can be shared as it is (`synthcpt push`) and read by someone who did
not run it.

Every figure in a card is read from the run's typed stats and eval results, and the model card is
rebuilt when eval finishes: a card never says more, or other, than the run folder holds. Cards are
built with huggingface_hub's `ModelCard`/`DatasetCard`, which write the header the hub parses.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from synthcpt.models import DEFAULT_MODEL, EMBEDDED_NAME
from synthcpt.run_folder import CARD_FILE, RunFolder, is_main_process
from synthcpt.stats import EvalResults, GenerateStats, Score, TrainStats

# The embedded model is converted from this hub model's GGUF (synthcpt.models): the card names the
# original, whose license it carries.
EMBEDDED_BASE = ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")
TAGS = ["synthcpt", "synthetic-data", "continued-pretraining"]
# Rough bounds of the hub's `size_categories` by number of records.
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M")]


def _card_text(data: Any, body: str) -> str:
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"


def base_model(train_model: str, resolved: str) -> tuple[str | None, str | None]:
    """The base model's hub id and license, where they can be known without the network: the embedded
    model's are fixed; a hub id's license is read from its card when the hub cache holds it, a local
    folder's from its own README.md (a local folder has no hub id)."""
    from huggingface_hub import try_to_load_from_cache

    if train_model in (DEFAULT_MODEL, EMBEDDED_NAME):
        return EMBEDDED_BASE
    local = Path(resolved)
    if local.exists():
        return None, _card_license(local / CARD_FILE)
    cached = try_to_load_from_cache(resolved, CARD_FILE)
    return resolved, _card_license(Path(cached)) if isinstance(cached, str) else None


def _card_license(readme: Path) -> str | None:
    import yaml
    from huggingface_hub import ModelCard

    if not readme.is_file():
        return None
    try:
        return ModelCard.load(readme).data.license
    except (ValueError, yaml.YAMLError):  # a card the hub's parser refuses: the license is unknown
        return None


def _tokens(n: int) -> str:
    return f"{n:,}"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def engine_model(config: Any) -> str:
    if config.engine.model in (DEFAULT_MODEL, EMBEDDED_NAME):
        return f"{EMBEDDED_BASE[0]} (synthcpt's embedded model)"
    return config.engine.model


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _interval(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def corpus_lines(run: RunFolder) -> list[str]:
    stats = run.ingest_stats()
    if stats is None:
        return []
    return [(f"- Corpus: {_count(stats.documents, 'document')}, {_tokens(stats.tokens)} tokens "
            f"({_count(stats.chunks, 'passage')}).")]


def generator_table(generate: GenerateStats) -> list[str]:
    """Tokens and records of the mix by generator ('raw' is the corpus's own text, repeated)."""
    mix = generate.mix
    rows = ["| generator | records | tokens | share of the mix |", "|---|---:|---:|---:|"]
    for name, part in sorted(mix.by_generator.items(), key=lambda item: -item[1].tokens):
        rows.append(f"| {name} | {part.records:,} | {_tokens(part.tokens)} | {_share(part.tokens, mix.tokens)} |")
    rows.append(f"| all | {mix.records:,} | {_tokens(mix.tokens)} | 100.0% |")
    return rows


def _learned_from(run: RunFolder, config: Any, stats: TrainStats) -> list[str]:
    lines = ["## What it learned from", "", *corpus_lines(run)]
    generate = run.generate_stats()
    if stats.data == "mix" and generate is not None:
        lines += [(f"- Synthetic corpus: {_tokens(generate.mix.synthetic_tokens)} synthetic tokens written by "
                  f"`{engine_model(config)}` ({config.engine.backend} backend), and "
                  f"{_count(generate.mix.raw_copies, 'copy', 'copies')} of the corpus itself; trained on "
                  f"{', '.join(stats.generators) if stats.generators else 'every generator'}."), "",
                  *generator_table(generate)]
    else:
        lines.append(f"- Training data: `{stats.data}` (synthcpt's train.data).")
    return lines


def _training(config: Any, stats: TrainStats) -> list[str]:
    train = config.train
    mode = (f"LoRA (rank {train.lora.rank}, alpha {train.lora.alpha:g}, lr {train.lora.lr:g}), merged into "
            f"these weights" if train.lora.enabled else f"full fine-tuning, lr {train.lr:g}")
    loss = (f"{stats.first_loss:.3f} → {stats.final_loss:.3f}" if stats.first_loss is not None
            and stats.final_loss is not None else "-")
    replay = (f"{train.replay_share:.0%} of sequences from `{train.replay_path}` ({_tokens(stats.replay_tokens)} "
              f"tokens)" if train.replay_path and stats.replay_tokens else "none")
    return ["## Training", "",
            "| | |", "|---|---|",
            f"| method | continued pretraining, {mode} |",
            f"| tokens trained | {_tokens(stats.tokens)} over {stats.steps:,} steps |",
            f"| training data | {_tokens(stats.training_tokens)} tokens |",
            f"| replay | {replay} |",
            f"| schedule | {train.schedule}, {train.warmup_share:.0%} warm-up, floor {train.min_lr_ratio:g} × peak |",
            f"| sequences | {train.block_size:,} tokens, {train.batch_size} per step |",
            f"| loss | {loss} |",
            f"| hardware | {stats.processes} × {stats.device}, {stats.seconds:,.0f} s |"]


def _score_cell(score: Score | None) -> str:
    return "-" if score is None else f"{score.value:.3f} {_interval(score.ci)}"


def evaluation_lines(results: EvalResults | None) -> list[str]:
    """Each measured method and metric: base, trained, and the trained model's paired change with its interval."""
    lines = ["## Evaluation", ""]
    if results is None:
        return [*lines, "Not evaluated yet: `synthcpt eval` measures it and rebuilds this card."]
    if results.not_evaluated:
        return [*lines, f"Nothing was evaluated: {results.not_evaluated}."]
    scores = {(s.model, s.method, s.metric): s for s in results.scores}
    changes = {(c.model, c.method, c.metric): c for c in results.comparisons}
    lines += [(f"{_count(results.questions, 'held-out question')} over {_count(results.documents, 'document')} "
              f"({', '.join(results.qa_sets)}), {results.confidence:.0%} intervals; closed-book unless the method "
              "says otherwise (rag: retrieved passages in the prompt; open_book: the document in the prompt)."), "",
              f"| method | metric | {results.baseline} | trained | change |", "|---|---|---:|---:|---:|"]
    for method, metric in dict.fromkeys((s.method, s.metric) for s in results.scores):
        change = changes.get(("trained", method, metric))
        lines.append(f"| {method} | {metric} | {_score_cell(scores.get((results.baseline, method, metric)))} | "
                     f"{_score_cell(scores.get(('trained', method, metric)))} | "
                     f"{'-' if change is None else f'{change.difference:+.3f} {_interval(change.ci)}'} |")
    if results.forgetting.texts:
        perplexity = ", ".join(f"{model} {p.perplexity:.2f}" for model, p in results.forgetting.perplexity.items())
        lines += ["", (f"Forgetting check: perplexity on {_count(results.forgetting.texts, 'held-out general text')}: "
                      f"{perplexity}.")]
    return lines


def model_card(run: RunFolder, config: Any, datasets: list[str] | None = None, report_link: str | None = None,
               adapter_of: str | None = None):
    """The trained model's card; `datasets` names where its synthetic corpus is shared, `report_link` where
    the run's report is, relative to the card. With `adapter_of` (the merged model's repo, or ""), the card
    of the LoRA adapters alone."""
    from huggingface_hub import ModelCard, ModelCardData

    stats = run.train_stats()
    if stats is None:
        raise ValueError("no training stats: the model card needs a trained model")
    hub_id, license_ = base_model(config.train.model, stats.base_model)
    data = ModelCardData(base_model=hub_id, license=license_, datasets=datasets or None,
                         tags=[*TAGS, *(stats.generators or []), *(["lora"] if adapter_of is not None else [])],
                         library_name="transformers" if adapter_of is None else "peft",
                         pipeline_tag="text-generation")
    base = hub_id or stats.base_model
    if adapter_of is None:
        intro = [f"# {base}, continued-pretrained by synthcpt", "",
                 (f"`{base}` trained by synthcpt on a synthetic corpus written from a small set of documents, so "
                 "that it knows them closed-book.")]
    else:
        intro = [f"# LoRA adapters of {base}, continued-pretrained by synthcpt", "",
                 f"The low-rank adapters alone: `PeftModel.from_pretrained(base, this_repo)` on `{base}` gives the "
                 "trained model" + (f", also shared merged as `{adapter_of}`." if adapter_of else ".")]
    if config.train.model in (DEFAULT_MODEL, EMBEDDED_NAME):
        intro += ["", (f"The base is synthcpt's embedded `{base}`, dequantized from a Q4_1 GGUF: its weights are "
                      "close to, not equal to, the hub's.")]
    intro += ["", f"License: {license_ or 'the base model’s (not found locally: set it before publishing)'}."]
    body = [*intro, "", *_learned_from(run, config, stats), "", *_training(config, stats), "",
            *evaluation_lines(run.eval_results())]
    if report_link:
        body += ["", f"The run's full report (exam, synthetic samples, per-document scores): [report]({report_link})."]
    return ModelCard(_card_text(data, "\n".join(body)))


def write_model_card(run: RunFolder, config: Any) -> None:
    """The card beside the trained weights (train's end, and again when eval has measured them)."""
    if not is_main_process() or not (run.trained_model / "config.json").is_file() or run.train_stats() is None:
        return
    from synthcpt.atomic import write_text

    link = Path(os.path.relpath(run.report_html, run.trained_model))  # a later round's model lies deeper
    write_text(run.model_card, str(model_card(run, config, report_link=link.as_posix())))


def _size_category(records: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if records < bound), "n>10M")


def _schema_lines(mix: Path) -> list[str]:
    """The records' columns as the parquet shards hold them."""
    import pyarrow.parquet as pq

    shards = sorted(mix.glob("*.parquet"))
    if not shards:
        return []
    return ["| column | type |", "|---|---|", *(f"| {f.name} | {f.type} |" for f in pq.read_schema(shards[0]))]


def _prompt_lines(mix: Path) -> list[str]:
    """Each generator's prompt files and their hashes, as recorded on the records."""
    import pyarrow.parquet as pq

    shards = sorted(mix.glob("*.parquet"))
    if not shards:
        return []
    table = pq.read_table(shards, columns=["generator", "prompt_file", "prompt_hash"])
    used = sorted({row for row in zip(*(table.column(c).to_pylist() for c in table.column_names)) if row[1]})
    return ["| generator | prompt | hash |", "|---|---|---|", *(f"| {g} | {p} | `{h}` |" for g, p, h in used)]


def _filter_lines(generate: GenerateStats) -> list[str]:
    """Per generator: its requests, the records its answers gave, those its token budget took, those the
    mix kept, and what was dropped on the way, by reason."""
    lines = ["| generator | requests | records made | within its budget | kept in the mix | dropped (by reason) |",
             "|---|---:|---:|---:|---:|---|"]
    for name, made in sorted(generate.generators.items()):
        kept = generate.mix.by_generator.get(name)
        reasons = Counter(made.rejected) + Counter(kept.rejected if kept else {})
        lines.append(f"| {name} | {made.requests:,} | {made.produced_records:,} | {made.records:,} | "
                     f"{kept.records if kept else 0:,} | "
                     f"{', '.join(f'{k} {v:,}' for k, v in sorted(reasons.items())) or '-'} |")
    return lines


def dataset_card(run: RunFolder, config: Any, model: str | None = None):
    """The synthetic corpus's card; `model` names where the model trained on it is shared."""
    from huggingface_hub import DatasetCard, DatasetCardData

    generate = run.generate_stats()
    if generate is None:
        raise ValueError("no generate stats: the dataset card needs the mix")
    mix = generate.mix
    data = DatasetCardData(pretty_name="synthcpt synthetic corpus", task_categories=["text-generation"],
                           language=["en"], size_categories=[_size_category(mix.records)],
                           # No `configs`: datasets caches a folder that declares them by its name and the
                           # declared pattern, so a second mix folder of the same name loaded the first's rows.
                           tags=[*TAGS, *sorted(g for g in mix.by_generator if g != "raw")])
    body = ["# synthcpt synthetic corpus", "",
            ("Synthetic text written from a small set of documents by synthcpt, for continued pretraining: the documents' facts in many "
            "phrasings, mixed with the documents themselves. `datasets.load_dataset` reads this folder as it is "
            "(one `train` split). Its license follows the source documents' and the generator model's terms."), "",
            *corpus_lines(run),
            (f"- Generator model: `{engine_model(config)}` ({config.engine.backend} backend); "
            f"{_tokens(mix.synthetic_tokens)} synthetic tokens, {_tokens(mix.raw_tokens)} tokens of the corpus "
            f"itself ({_count(mix.raw_copies, 'copy', 'copies')}), {mix.records:,} records in all."),
            *([f"- Question-answer share of the synthetic tokens: {mix.qa_share:.1%}."] if mix.qa_share is not None
              else []),
            *([f"- The model trained on it: `{model}`."] if model else []), "",
            "## Generators", "", *generator_table(generate), "",
            "## Filters", "",
            ("Every record passed the generator's own checks and the mix's filters (length, repetition, near-"
            "duplicates). Counts of what was dropped:"), "", *_filter_lines(generate), "",
            "## Kept out: the evaluation", "",
            (f"The leak guard compared every record with the run's exam ({mix.eval_texts_guarded:,} question and "
             f"answer texts) and dropped {_count(mix.eval_leaks, 'record')} that reproduced one, so a model "
             "trained on this corpus was never shown the questions it is evaluated on."), "",
            "## Prompts", "", *_prompt_lines(run.mix), "",
            "## Record schema", "", *_schema_lines(run.mix)]
    return DatasetCard(_card_text(data, "\n".join(body)))


def write_dataset_card(run: RunFolder, config: Any) -> None:
    if run.generate_stats() is None or not run.mix.is_dir():
        return
    from synthcpt.atomic import write_text

    write_text(run.dataset_card, str(dataset_card(run, config)))
