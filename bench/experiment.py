"""The knowledge-gain experiment: does synthetic text teach a model more of a corpus than the corpus itself?

On QuALITY stories (`../shared/data/leval/quality.jsonl`; without it, the three stories shipped in
`examples/quality/`), the pipeline runs once up to `generate`, so every arm trains on text from the
same generation. Then the base model is trained once per arm, every arm on the same number of tokens
(same steps, batch and block; a source smaller than the budget is repeated), and every model answers
the stories' questions closed-book:

    base       no training
    raw        the stories themselves: raw-corpus continued pretraining
    entigraph  EntiGraph relation texts only (taken from the mix: filtered, deduplicated, leak-guarded)
    wrap       WRAP rephrasings only
    mix        the full mix: every generator, plus the raw corpus 1:1
    active_reading  Active Reading only: the model's own study strategies, each applied to the story
    qa         synthetic QA pairs only (Synthetic Mixed Training's QA half)
    focal      Focal Rewriting only: rewrites each focused on one question about the story
    smt        Synthetic Mixed Training: qa and focal together, 1:1 by tokens (equal budgets; the shared
               generation is not balanced, so that every arm's text is its generator's whole budget)
    distill    context distillation on the corpus (train.objective=distill, train.data=raw): each chunk,
               the base model reading the story before it as the teacher (Deep Context Distillation)
    distill_ce distill with next-token cross-entropy added at equal weight (train.distill.ce_weight=1): does
               the teacher's distribution add to what raw training teaches?
    distill_qa context distillation on the QA records, the teacher reading each one's passage (prompt
               distillation)
    rounds2    two rounds (run.rounds=2) of qa and focal: the second generates only for the passages whose
               quiz questions (cloze, from the passages) the first round's model missed, and trains on from it
    budget2x   one round of qa and focal with twice the generation budget and twice the steps: rounds2's
               tokens, spent uniformly (the two run only when --arms names them)
    control    the positive control: the evaluation's questions with their correct answers, stated as
               text. Not a method: it shows whether this learner, trainer and evaluator can register
               knowledge at all at this scale; every arm's gain is also reported as a share of its gain.

The token-budget sweep (the EntiGraph paper's central curve): the entigraph arm again on a quarter and
a half of its synthetic tokens (fewer steps over the same data, one pass), accuracy and margin against
synthetic tokens.

Beside the arms, the bar a trained model must beat: the base model with BM25-retrieved passages
("base + RAG", the eval's `rag` method), and the ceiling of what reading can teach: the base model with
the whole story in its prompt ("base + open book", the eval's `open_book` method), scored like the arms;
each arm's gain is also reported as a share of the open book's (its `Δmargin` over base).

Per arm: accuracy and acc_norm with bootstrap intervals, the paired difference to base, the
correct option's log-likelihood margin over the other options and its paired change from base (a
finer signal than accuracy when few questions flip), and perplexity on held-out general text
(forgetting). Every arm also keeps 10% replay of general text, as the EntiGraph recipe does.

    python bench/experiment.py --quick    # one story, tiny budgets: the whole path in a few minutes
    python bench/experiment.py            # the committed table: bench/results/experiment-quality.*
    python bench/experiment.py --dry-run  # the stages before generate, generate's plan, every arm's settings
    python bench/experiment.py --arms raw,wrap,distill,distill_qa --out bench/results/experiment-distill
                                          # some arms (and only the generators they need), with base, RAG,
                                          # open book and the control

Rerunning resumes: finished stages, engine requests, trained arms and scored models are reused.
The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.atomic import write_json, write_records, write_text
from synthcpt.config import load_config
from synthcpt.errors import SynthcptError
from synthcpt.pipeline import Runner, StageContext, fingerprints, stage_by_name
from synthcpt.progress import console
from synthcpt.questions import LETTERS
from synthcpt.run_folder import RunFolder
from synthcpt.s6_train.teacher import Sources
from synthcpt.s6_train.training import source_files, train_on_files
from synthcpt.s7_eval.evaluate import evaluate_models
from synthcpt.s7_eval.evaluation import heldout_texts
from synthcpt.s7_eval.metrics import bootstrap_interval, paired_difference
from synthcpt.s7_eval.records import Candidate
from synthcpt.s8_report import plots
from synthcpt.s8_report.document import Figure, Paragraph, Preformatted, Section, Table, to_html, to_markdown
from synthcpt.stats import Score

SHARED_LEVAL = ROOT.parent / "shared" / "data" / "leval"
SHIPPED_QUALITY = ROOT / "examples" / "quality" / "quality-demo.jsonl"
# --corpus names: L-Eval's QuALITY stories (one answer per question) and Coursera lecture transcripts
# (some questions with several right answers); any other value is the path of an L-Eval file.
CORPORA = {"quality": "QuALITY", "coursera": "Coursera"}
REPLAY = ROOT / "examples" / "replay" / "general-sample.jsonl"
RESULTS = ROOT / "bench" / "results"

ARMS = {  # arm → train settings that choose its data
    "raw": ["train.data=raw"],
    "entigraph": ["train.data=mix", "train.generators=[entigraph]"],
    "wrap": ["train.data=mix", "train.generators=[wrap]"],
    "mix": ["train.data=mix"],
    "active_reading": ["train.data=mix", "train.generators=[active_reading]"],
    "qa": ["train.data=mix", "train.generators=[qa]"],
    "focal": ["train.data=mix", "train.generators=[focal]"],
    "smt": ["train.data=mix", "train.generators=[qa, focal]"],
    "distill": ["train.data=raw", "train.objective=distill"],
    "distill_ce": ["train.data=raw", "train.objective=distill", "train.distill.ce_weight=1.0"],
    "distill_qa": ["train.data=mix", "train.generators=[qa]", "train.objective=distill"],
}
GENERATORS = ["entigraph", "wrap", "rc_mined", "rc_llm", "bonito", "active_reading", "qa", "focal"]
# The rounds comparison (run.rounds), run when --arms names them: each arm its own run of the pipeline,
# on qa and focal (generators that write from a passage), at equal training tokens. arm -> (rounds, the
# factor of one round's generation budget and training steps).
ROUND_ARMS = {"rounds2": (2, 1), "budget2x": (1, 2)}
ROUND_GENERATORS = ["qa", "focal"]
# The rows of the base model with retrieved passages (the eval's rag method) and with the whole story
# in its prompt (open_book: the ceiling of what reading it can teach).
RAG_ROW = "base + RAG"
OPEN_BOOK_ROW = "base + open book"
# The stages run once for every arm: the arms train on the same generation.
SHARED_STAGES = ["ingest", "entities", "graph", "exam", "generate"]
# The sweep: the entigraph arm on these shares of its synthetic tokens (the full arm is the last point).
SWEEP = (0.25, 0.5)


def sweep_steps(share: float, s: dict) -> int:
    return max(1, round(share * s["steps"]))


def arms(s: dict, chosen: list[str] | None = None) -> dict[str, list[str]]:
    """Every trained arm's train settings (or the `chosen` ones): the methods, then the entigraph sweep
    points (fewer steps) when the entigraph arm runs."""
    found = {name: settings for name, settings in ARMS.items() if chosen is None or name in chosen}
    for share in SWEEP if "entigraph" in found else ():
        found[f"entigraph@{share:g}"] = [*ARMS["entigraph"], f"train.max_steps={sweep_steps(share, s)}"]
    return found


def needed_generators(arm_settings: dict[str, list[str]]) -> list[str]:
    """The generators the arms train on: a mix arm without a selection needs them all."""
    needed = set()
    for settings in arm_settings.values():
        if "train.data=mix" not in settings:
            continue
        chosen = next((x for x in settings if x.startswith("train.generators=")), None)
        if chosen is None:
            return GENERATORS
        needed |= {g.strip() for g in chosen.split("=", 1)[1].strip("[]").split(",")}
    return [g for g in GENERATORS if g in needed]


def sweep_rows(rows: list[dict], s: dict) -> list[dict]:
    """Accuracy and margin against the tokens of EntiGraph text each point trained on, and its passes."""
    by_arm = {r["arm"]: r for r in rows}
    points = [(f"entigraph@{share:g}", share) for share in SWEEP] + [("entigraph", 1.0)]
    return [{"arm": arm, "tokens_trained": sweep_steps(share, s) * s["batch_size"] * s["block_size"],
             "passes": by_arm[arm]["passes"], "acc": by_arm[arm]["acc"],
             "margin_vs_base": by_arm[arm]["margin_vs_base"]}
            for arm, share in points if arm in by_arm]


def setup(quick: bool, stories: int | None, steps: int | None, synthetic_tokens: int | None = None) -> dict:
    """Budgets: by default EntiGraph, WRAP and Active Reading each produce more usable text (tokens
    passing the quality rules) than one arm trains on, with a margin for what deduplication and the
    leak guard remove; `synthetic_tokens` sets a smaller budget, which the arms then repeat (passes)."""
    block, batch, steps = (256, 4, steps or 3) if quick else (512, 8, steps or 10)
    train_tokens = steps * batch * block
    synthetic = synthetic_tokens or round(1.2 * train_tokens)
    return {
        "stories": stories or (1 if quick else 3),
        "block_size": block,
        "batch_size": batch,
        "steps": steps,
        "train_tokens": train_tokens,
        "lr": 1e-4,
        "generate_tokens": {
            "entigraph": synthetic,
            "wrap": synthetic,
            "rc_llm": train_tokens // 5,
            "bonito": train_tokens // 5,
            "rc_mined": train_tokens // 5,
            "active_reading": synthetic,
            "qa": synthetic,
            "focal": synthetic,
        },
        # Strategy lists per document: enough applications to reach the budget (only step one grows);
        # a list gives at most ten strategies of at most 256 tokens, about 2,000 usable tokens.
        "active_reading_lists": 4 if quick else max(1, math.ceil(synthetic / (2000 * (stories or 3)))),
    }


def corpus_source(corpus: str) -> Path:
    """The L-Eval file a --corpus value names (QuALITY falls back to the three shipped stories)."""
    if corpus in CORPORA:
        shared = SHARED_LEVAL / f"{corpus}.jsonl"
        if shared.is_file() or corpus != "quality":
            return shared
        return SHIPPED_QUALITY
    return Path(corpus)


def corpus_name(corpus: str) -> str:
    return CORPORA.get(corpus, Path(corpus).stem)


def corpus_file(work: Path, corpus: str, stories: int, documents: list[int] | None = None) -> tuple[Path, str, int]:
    """The chosen documents of the corpus (`documents`: their line numbers from 0, else the first
    `stories`), with their questions, as the run's input file; the source and how many documents it has."""
    source = corpus_source(corpus)
    if not source.is_file():
        raise SynthcptError(f"corpus file {source} not found")
    every = source.read_text(encoding="utf-8").splitlines()
    if documents is not None and max(documents) >= len(every):
        raise SynthcptError(f"--documents {max(documents)}: {source} has {len(every)} documents (0 to {len(every) - 1})")
    lines = [every[i] for i in documents] if documents is not None else every[:stories]
    path = work / "corpus.jsonl"
    text = "\n".join(lines) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:  # rewritten only when it changes
        work.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path, os.path.relpath(source, ROOT), len(lines)


def overrides(work: Path, corpus: Path, s: dict, generators: list[str] = GENERATORS) -> list[str]:
    generators = generators or GENERATORS  # no arm trains on generated text: generate does not run
    budget = "{" + ", ".join(f"{k}: {v}" for k, v in s["generate_tokens"].items() if k in generators) + "}"
    return [
        f"run.dir={work / 'run'}",
        f"ingest.inputs=[{corpus}]",
        f"generate.generators=[{', '.join(generators)}]",
        f"generate.tokens={budget}",
        f"generate.active_reading.lists={s['active_reading_lists']}",
        # As long as the preset's EntiGraph and WRAP texts: the arms differ by method, not by length.
        "generate.active_reading.max_tokens=256",
        "generate.active_reading.strategies_max_tokens=512",
        # Focal rewrites of the question's passage, not of the whole 6.7k-token story (the paper's
        # choice): on CPU a whole-story prompt runs at ~15 tok/s, ten times slower than a passage's.
        "generate.focal.source=passage",
        "generate.focal.max_tokens=256",
        "generate.qa.max_tokens=512",
        "generate.focal.questions.max_tokens=512",
        # Equal budgets make the smt arm 1:1; balancing the shared mix would cut the other arms' text.
        "generate.mix.qa_share=null",
        f"train.replay_path={REPLAY}",
        f"train.block_size={s['block_size']}",
        f"train.batch_size={s['batch_size']}",
        f"train.max_steps={s['steps']}",
        f"train.lr={s['lr']}",
    ]


def train_arm(config, name: str, folder: Path) -> dict:
    """Train one arm into `folder`, unless it holds the finished model of this train fingerprint (which
    chains the train settings, replay file, seed and every earlier stage's)."""
    done, key = folder / "arm.json", fingerprints(config)["train"]
    if done.is_file() and json.loads(done.read_text())["fingerprint"] == key and (folder / "model").is_dir():
        return json.loads(done.read_text())["stats"]
    ctx = StageContext(config, stage_by_name("train"), RunFolder(Path(config.run.dir)))
    chosen = f" / {', '.join(config.train.generators)}" if config.train.generators else ""
    console.print(f"[bold]arm {name}[/bold]: training on {config.train.data}{chosen}")
    sources = None
    if config.train.objective == "distill":
        run = RunFolder(Path(config.run.dir))
        sources = Sources(run.documents(), run.chunks())
    stats = train_on_files(config.train, source_files(ctx), folder, config.run.seed, sources).model_dump(mode="json")
    write_json(done, {"fingerprint": key, "stats": stats})
    return stats


def round_arm_config(work: Path, corpus: Path, s: dict, name: str):
    """A rounds arm's own run: the experiment's settings on qa and focal, its rounds, budget and steps."""
    rounds, factor = ROUND_ARMS[name]
    budgets = {**s, "generate_tokens": {g: factor * s["generate_tokens"][g] for g in ROUND_GENERATORS}}
    return load_config(None, overrides(work, corpus, budgets, ROUND_GENERATORS) + [
        f"run.dir={work / 'rounds' / name}", f"run.rounds={rounds}", f"train.max_steps={factor * s['steps']}",
        # The embedded model writes no question that passes validation: the quiz blanks the passages' entities.
        "quiz.source=cloze"], preset="cpu-demo")


def train_round_arm(config, name: str) -> tuple[dict, str, list[dict]]:
    """Run a rounds arm's pipeline up to its last round's training and probe: its training stats summed over
    the rounds, its last model, and per round the text generated and the quiz."""
    run = RunFolder(Path(config.run.dir))
    if name == "budget2x":  # its first requests are rounds2's round 1: one engine cache answers them once
        shared = RunFolder(Path(config.run.dir).parent / "rounds2").cache
        shared.mkdir(parents=True, exist_ok=True)
        if not run.cache.exists():
            run.dir.mkdir(parents=True, exist_ok=True)
            run.cache.symlink_to(shared.resolve(), target_is_directory=True)
    console.print(f"[bold]arm {name}[/bold]: {config.run.rounds} round(s) of {', '.join(ROUND_GENERATORS)}")
    Runner(config, reporter=console.print).execute([*SHARED_STAGES, "train", "quiz", "probe"], force=set())
    views = [run.for_round(r) for r in range(1, config.run.rounds + 1)]
    trained = [view.train_stats() for view in views]
    stats = {key: sum(getattr(t, key) for t in trained)
             for key in ("tokens", "sequences", "replay_sequences", "training_tokens", "seconds")}
    stats["final_loss"] = trained[-1].final_loss
    rounds = []
    for view in views:
        probe = view.probe_stats()
        rounds.append({"round": view.round, "synthetic_tokens": view.generate_stats().mix.synthetic_tokens,
                       "trained_tokens": view.train_stats().tokens,
                       "quiz_accuracy": probe.accuracy if probe else None,
                       "passages_missed": probe.passages_missed if probe else None,
                       "passages": probe.passages if probe else None})
    return stats, str(views[-1].trained_model), rounds


def control_file(work: Path, items) -> Path:
    """The positive control's training text: each question with its correct answer, as a statement
    under its document's header line (the leak the leak guard exists to stop, here on purpose)."""
    rows = []
    for item in items:
        answer = " ".join(item.options[LETTERS.index(letter)] for letter in item.answers)
        source = f"{item.title}, by {item.author}" if item.author else item.title
        rows.append({"doc_id": item.doc_id, "text": f"{source}\n\nQuestion: {item.question}\nAnswer: {answer}"})
    path = work / "control" / "answers.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, rows)
    return path


def train_control(config, items, work: Path) -> dict:
    """The control arm: the raw-data path of the trainer on the answers file, at the same steps."""
    folder, files = work / "arms" / "control", [control_file(work, items)]
    done = folder / "arm.json"
    key = f"{fingerprints(config)['train']}-{files[0].stat().st_size}"
    if done.is_file() and json.loads(done.read_text())["fingerprint"] == key and (folder / "model").is_dir():
        return json.loads(done.read_text())["stats"]
    console.print("[bold]arm control[/bold]: training on the evaluation answers stated as text")
    stats = train_on_files(config.train, files, folder, config.run.seed).model_dump(mode="json")
    write_json(done, {"fingerprint": key, "stats": stats})
    return stats


def rag_records(config, items, work: Path) -> list[dict]:
    """The base model's answers with the passages BM25 retrieves from the run's chunks, as the row RAG_ROW."""
    rag = config.eval.model_copy(update={"methods": ["rag"]})
    records, _ = evaluate_models([Candidate("base", config.train.model)], items, rag, config.engine, work / "eval",
                                 config.run.seed, passages=RunFolder(Path(config.run.dir)).chunks())
    return [{**r, "model": RAG_ROW} for r in records if r["method"] == "rag"]


def open_book_records(config, items, work: Path) -> list[dict]:
    """The base model's answers with the whole story in its prompt, as the row OPEN_BOOK_ROW."""
    open_book = config.eval.model_copy(update={"methods": ["open_book"]})
    records, _ = evaluate_models([Candidate("base", config.train.model)], items, open_book, config.engine,
                                 work / "eval", config.run.seed)
    return [{**r, "model": OPEN_BOOK_ROW} for r in records if r["method"] == "open_book"]


def share_of_control(rows: list[dict]) -> None:
    """Each arm's gain over base as a share of the positive control's and of the open book's (None when
    that reference gained nothing)."""
    for reference_arm, suffix in (("control", "control"), (OPEN_BOOK_ROW, "open_book")):
        reference_row = next((r for r in rows if r["arm"] == reference_arm), None)
        for row in rows:
            for gain in ("acc_vs_base", "margin_vs_base"):
                reference = reference_row and reference_row[gain] and reference_row[gain][0]
                own = row[gain][0] if row[gain] else None
                row[f"{gain}_share_of_{suffix}"] = own / reference \
                    if reference and own is not None and reference > 0 else None


def correct_margin(record: dict, letters: str = "ABCDEFGHIJ") -> float:
    """Mean log-likelihood of the correct options minus the mean of the others (nats; a Coursera question
    may have several correct options). The options' lengths bias it, but the same way for every model:
    its change from base is what training taught."""
    scores = record["scores"]
    correct = {letters.index(letter) for letter in record["answers"]}
    right = [s for i, s in enumerate(scores) if i in correct]
    others = [s for i, s in enumerate(scores) if i not in correct]
    if not others:  # every option is right (4 of Coursera's 172 questions): nothing to separate, for any model
        return 0.0
    return sum(right) / len(right) - sum(others) / len(others)


def arm_rows(
    records: list[dict], perplexity: dict, stats: dict[str, dict], block_size: int, interval: dict
) -> list[dict]:
    """Per arm: accuracy, its paired change from base, and the correct-option margin's paired change
    from base and from raw-corpus training, each with a bootstrap interval over questions."""
    by_model: dict[str, dict[str, dict]] = {}
    for record in records:
        by_model.setdefault(record["model"], {})[record["question_id"]] = record

    def paired(model: str, baseline: str, value) -> tuple[float, list[float]] | None:
        if model in (baseline, "base") or baseline not in by_model:
            return None
        ids = list(by_model[model])
        return paired_difference(
            [value(by_model[model][q]) for q in ids], [value(by_model[baseline][q]) for q in ids], **interval
        )

    rows = []
    for model, answered in by_model.items():
        arm = stats.get(model, {})
        accuracy = [r["acc"] for r in answered.values()]
        margins = [correct_margin(r) for r in answered.values()]
        # acc_norm is defined for questions with one right option only (none of Coursera's has it).
        normalised = [r["acc_norm"] for r in answered.values() if r["acc_norm"] is not None]
        flipped = sum(r["acc"] != by_model["base"][q]["acc"] for q, r in answered.items())
        main_tokens = (arm.get("sequences", 0) - arm.get("replay_sequences", 0)) * block_size
        rows.append(
            {
                "arm": model,
                "trained_tokens": arm.get("tokens", 0),
                "source_tokens": arm.get("training_tokens", 0),
                "passes": main_tokens / arm["training_tokens"] if arm.get("training_tokens") else None,
                "final_loss": arm.get("final_loss"),
                "questions_changed": flipped,
                "acc": sum(accuracy) / len(accuracy),
                "acc_ci": bootstrap_interval(accuracy, **interval),
                "acc_norm": sum(normalised) / len(normalised) if normalised else None,
                "acc_vs_base": paired(model, "base", lambda r: r["acc"]),
                "margin": sum(margins) / len(margins),
                "margin_vs_base": paired(model, "base", correct_margin) if model != "base" else None,
                "margin_vs_raw": paired(model, "raw", correct_margin),
                "heldout_perplexity": perplexity.get(model, {}).get("perplexity"),
            }
        )
    return rows


def _difference(found) -> str:
    return f"{found[0]:+.3f} [{found[1][0]:+.3f}, {found[1][1]:+.3f}]" if found else ""


def sweep_plot(sweep: list[dict]) -> bytes:
    """Accuracy and margin gain against the tokens of EntiGraph text trained on."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    tokens = [p["tokens_trained"] for p in sweep]
    left.plot(tokens, [p["acc"] for p in sweep], marker="o")
    left.set_xlabel("tokens of EntiGraph text trained on")
    left.set_ylabel("closed-book accuracy")
    margins = [p["margin_vs_base"] for p in sweep]
    right.errorbar(tokens, [m[0] if m else 0 for m in margins],
                   yerr=[[m[0] - m[1][0] if m else 0 for m in margins], [m[1][1] - m[0] if m else 0 for m in margins]],
                   marker="o", capsize=4)
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_xlabel("tokens of EntiGraph text trained on")
    right.set_ylabel("Δ margin vs base (nats)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _share(value) -> str:
    return f"{value:.0%}" if value is not None else ""


def control_verdict(rows: list[dict]) -> str:
    """What the positive control says about this learner, trainer and evaluator at this scale."""
    control = next((r for r in rows if r["arm"] == "control"), None)
    if control is None or not control["margin_vs_base"]:
        return "No positive control was trained."
    gain, (low, _) = control["margin_vs_base"]
    acc = control["acc_vs_base"][0] if control["acc_vs_base"] else 0.0
    if low > 0:
        return (f"The positive control (the answers stated as text) moved the correct-option margin by {gain:+.2f} "
                f"nats (interval above zero) and accuracy by {acc:+.3f}: this learner, trainer and evaluator do "
                "register knowledge at this scale, so an arm's small gain is the synthetic text's, not the "
                "yardstick's; the shares of the control's gain say how much of the facts each arm's text carries.")
    return (f"Even the positive control (the answers stated as text) barely moved (margin {gain:+.2f} nats, "
            f"interval reaching zero; accuracy {acc:+.3f}): at this scale the learner does not register "
            "knowledge from so few steps, so no arm can be judged. More optimizer steps (train.max_steps), a "
            "higher learning rate (train.lr) or a larger learner (train.model) would have to change first.")


def write_results(rows: list[dict], meta: dict, out: Path, sweep: list[dict]) -> None:
    """The table as Markdown and HTML (the report's document model), the figures as JSON, and a plot."""
    header = [
        "arm",
        "distinct source tokens",
        "passes",
        "final loss",
        "acc [95% CI]",
        "Δacc vs base [95% CI]",
        "answers changed",
        "acc_norm",
        "Δmargin vs base [95% CI]",
        "Δmargin vs raw [95% CI]",
        "share of control's Δacc",
        "share of control's Δmargin",
        "share of open book's Δmargin",
        "held-out ppl",
    ]
    table = [
        [
            r["arm"],
            f"{r['source_tokens']:,}" if r["source_tokens"] else "",
            f"{r['passes']:.1f}" if r["passes"] else "",
            f"{r['final_loss']:.3f}" if r["final_loss"] else "",
            f"{r['acc']:.3f} [{r['acc_ci'][0]:.3f}, {r['acc_ci'][1]:.3f}]",
            _difference(r["acc_vs_base"]),
            str(r["questions_changed"]) if r["arm"] != "base" else "",
            f"{r['acc_norm']:.3f}" if r["acc_norm"] is not None else "",
            _difference(r["margin_vs_base"]),
            _difference(r["margin_vs_raw"]),
            _share(r["acc_vs_base_share_of_control"]) if r["arm"] != "control" else "",
            _share(r["margin_vs_base_share_of_control"]) if r["arm"] != "control" else "",
            _share(r["margin_vs_base_share_of_open_book"]) if r["arm"] != OPEN_BOOK_ROW else "",
            f"{r['heldout_perplexity']:.2f}" if r["heldout_perplexity"] else "",
        ]
        for r in rows
    ]
    sweep_table = [[p["arm"], f"{p['tokens_trained']:,}", f"{p['passes']:.1f}", f"{p['acc']:.3f}",
                    _difference(p["margin_vs_base"])]
                   for p in sweep]
    scores = [Score(model=r["arm"], method="closed book", metric="acc", n=meta["questions"], value=r["acc"],
                    ci=tuple(r["acc_ci"]))
              for r in rows]
    title = f"synthcpt experiment: {meta['corpus_name']}"
    sections = [
        Section(
            "Knowledge gain at equal training tokens",
            "experiment",
            [
                Paragraph(meta["summary"]),
                Table(header, table),
                *[Paragraph(f"Not trained, {arm}: {why}") for arm, why in meta["not_trained"].items()],
                Figure(
                    "accuracy",
                    plots.accuracy_with_intervals(scores, meta["chance"]),
                    f"Closed-book accuracy per arm, 95% bootstrap intervals; dashed line: chance "
                    f"(1/number of options) = {meta['chance']:.2f}",
                ),
                Paragraph(meta["control"]),
                Paragraph(meta["reading"]),
                Paragraph(meta["scale"]),
                Preformatted(
                    json.dumps(
                        {k: v for k, v in meta.items() if k not in ("summary", "reading", "scale", "control")},
                        indent=2,
                    ),
                    "command, corpus and settings",
                ),
            ],
        ),
    ]
    if meta["rounds"]:  # the rounds arms ran
        round_table = [[arm, str(r["round"]), f"{r['synthetic_tokens']:,}", f"{r['trained_tokens']:,}",
                        f"{r['quiz_accuracy']:.3f}" if r["quiz_accuracy"] is not None else "",
                        f"{r['passages_missed']} of {r['passages']}" if r["passages"] else ""]
                       for arm, rounds in meta["rounds"].items() for r in rounds]
        sections.append(Section("Rounds", "rounds", [
            Paragraph("rounds2's second round generated only for the passages whose cloze quiz questions its first "
                      "round's model answered wrongly, and trained on from that model; budget2x spent the same "
                      "generation and training budget in one round, uniformly over the passages."),
            Table(["arm", "round", "synthetic tokens in its mix", "tokens trained", "quiz accuracy",
                   "passages missed"], round_table),
            *([Paragraph(f"rounds2 minus budget2x, paired over the exam's questions: accuracy "
                         f"{_difference(meta['rounds2_minus_budget2x']['acc'])}, margin "
                         f"{_difference(meta['rounds2_minus_budget2x']['margin'])} nats.")]
              if meta["rounds2_minus_budget2x"] else []),
        ]))
    if sweep:  # the entigraph arm ran
        sections.append(Section(
            "Token-budget sweep",
            "sweep",
            [
                Paragraph("The entigraph arm stopped after a quarter and a half of its steps, beside all of them: "
                          "the EntiGraph paper's accuracy-against-tokens curve, in tokens of EntiGraph text "
                          "trained on. With the default budgets each point is one pass over that share of the "
                          "synthetic text; with a smaller generation budget the text repeats (passes)."),
                Table(["point", "tokens trained", "passes", "acc", "Δmargin vs base [95% CI]"], sweep_table),
                Figure("sweep", sweep_plot(sweep), "Accuracy and margin gain against tokens of EntiGraph text "
                                                   "trained on"),
            ],
        ))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(
        out.with_suffix(".md"),
        to_markdown(title, sections, out.parent / f"{out.name}-figures", f"{out.name}-figures"),
    )
    write_text(out.with_suffix(".html"), to_html(title, sections))
    write_json(out.with_suffix(".json"), {**meta, "arms": rows, "sweep": sweep})


def summary_line(rows: list[dict], trained_tokens: int) -> str:
    parts = []
    for r in rows:
        if r["arm"] == "base":
            continue
        verdicts = []
        for baseline in ("base", "raw"):
            found = r[f"margin_vs_{baseline}"]
            if found:
                low, high = found[1]
                verdicts.append(
                    f"above {baseline}"
                    if low > 0
                    else f"below {baseline}"
                    if high < 0
                    else f"not separable from {baseline}"
                )
        parts.append(f"{r['arm']} {r['acc']:.3f} (margin {', '.join(verdicts)})")
    base = next(r for r in rows if r["arm"] == "base")
    longer = [f"{r['arm']} {r['trained_tokens']:,}" for r in rows if r["trained_tokens"] not in (0, trained_tokens)]
    trained = f"Every arm trained on {trained_tokens:,} tokens" + (f" (but {', '.join(longer)})" if longer else "")
    return f"{trained}. Closed-book accuracy: base {base['acc']:.3f}; " + "; ".join(parts) + "."


def rounds_comparison(records: list[dict], interval: dict) -> dict | None:
    """rounds2 minus budget2x, paired over the questions: accuracy and the correct-option margin."""
    by_model: dict[str, dict[str, dict]] = {}
    for record in records:
        by_model.setdefault(record["model"], {})[record["question_id"]] = record
    if not {"rounds2", "budget2x"} <= by_model.keys():
        return None
    ids = list(by_model["rounds2"])
    pairs = [(by_model["rounds2"][q], by_model["budget2x"][q]) for q in ids]
    return {"acc": paired_difference([a["acc"] for a, _ in pairs], [b["acc"] for _, b in pairs], **interval),
            "margin": paired_difference([correct_margin(a) for a, _ in pairs], [correct_margin(b) for _, b in pairs],
                                        **interval)}


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"


def generate_plan(config) -> dict[str, int]:
    """The requests the generate stage would send, per engine step, as `synthcpt plan` counts them
    (the generate stage's plan hook; the stages before it must be complete)."""
    stage = stage_by_name("generate")
    planned = stage.plan(StageContext(config, stage, RunFolder(Path(config.run.dir))))
    return {step: sum(1 for _ in requests) for step, requests in planned.items()}


def dry_run(config, arm_configs: dict, work: Path, s: dict, source: str, stories: int, round_configs: dict) -> dict:
    """The shared stages before generate (no model calls: the preset's spaCy entities), generate's plan,
    the control's answers file, and every arm's training settings: nothing generated or trained."""
    Runner(config, reporter=console.print).execute(SHARED_STAGES[:-1], force=set())
    requests = generate_plan(config)
    items = RunFolder(config.run.dir).exam()
    control_file(work, items)
    return {"bench": "experiment", "dry_run": True, "corpus": source, "stories": stories, "settings": s,
            "generate_requests": requests,
            "arms": {name: {"data": c.train.data, "generators": c.train.generators, "max_steps": c.train.max_steps,
                            "train_fingerprint": fingerprints(c)["train"]} for name, c in arm_configs.items()},
            "round_arms": {name: {"rounds": c.run.rounds, "max_steps": c.train.max_steps, "steps": list(fingerprints(c)),
                                  "generate_tokens": c.generate.tokens} for name, c in round_configs.items()},
            "counts": {"stories": stories, "questions": len(items), "generate_requests": sum(requests.values()),
                       "arms": len(arm_configs)}}


def ceiling_rows(records: list[dict], items, documents, interval: dict) -> list[dict]:
    """Per document (in corpus order), on the questions the open book could score (the document fits the
    context window): closed-book and open-book accuracy of the base model and the paired change of the
    correct-option margin; a last row "all" over every such question."""
    by_method: dict[str, dict[str, dict]] = {}
    for record in records:
        by_method.setdefault(record["model"], {})[record["question_id"]] = record
    closed, opened = by_method["base"], by_method.get(OPEN_BOOK_ROW, {})
    order = {d.doc_id: i for i, d in enumerate(documents)}
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(item.doc_id, []).append(item)
    groups["all"] = list(items)
    rows = []
    for doc_id, group in sorted(groups.items(), key=lambda g: order.get(g[0], len(order))):
        scored = [i.question_id for i in group if i.question_id in opened]
        row = {"document": order.get(doc_id, "all"), "title": group[0].title if doc_id != "all" else "all",
               "questions": len(group), "open_book_scored": len(scored)}
        if scored:
            row |= {
                "closed_acc": sum(closed[q]["acc"] for q in scored) / len(scored),
                "open_acc": sum(opened[q]["acc"] for q in scored) / len(scored),
                "margin_gain": paired_difference([correct_margin(opened[q]) for q in scored],
                                                 [correct_margin(closed[q]) for q in scored], **interval),
            }
        rows.append(row)
    return rows


def write_ceiling(rows: list[dict], meta: dict, out: Path) -> None:
    header = ["document", "title", "questions", "open book scored", "closed-book acc", "open-book acc",
              "Δmargin open − closed [95% CI]"]
    table = [[str(r["document"]), r["title"][:40], str(r["questions"]), str(r["open_book_scored"]),
              f"{r['closed_acc']:.3f}" if "closed_acc" in r else "", f"{r['open_acc']:.3f}" if "open_acc" in r else "",
              _difference(r.get("margin_gain"))] for r in rows]
    title = f"synthcpt: the open-book ceiling on {meta['corpus_name']}"
    sections = [Section("The base model with and without the document", "ceiling", [
        Paragraph(meta["reading"]), Table(header, table),
        Preformatted(json.dumps({k: v for k, v in meta.items() if k != "reading"}, indent=2), "command and corpus"),
    ])]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out.with_suffix(".md"), to_markdown(title, sections, out.parent / f"{out.name}-figures",
                                                   f"{out.name}-figures"))
    write_json(out.with_suffix(".json"), {**meta, "documents": rows})


def ceiling(args, work: Path) -> None:
    """The open-book ceiling per document: the base model closed-book and with the whole document in its
    prompt, on every document of the corpus (or the --documents chosen). It says which documents leave
    reading something to teach before any arm is trained on them; nothing is generated or trained."""
    s = setup(False, None, None)
    documents = chosen_documents(args.documents)
    corpus, source, count = corpus_file(work, args.corpus, 10**6, documents)
    config = load_config(None, overrides(work, corpus, s, []), preset="cpu-demo")
    Runner(config, reporter=console.print).execute(SHARED_STAGES[:-1], force=set())
    run = RunFolder(Path(config.run.dir))
    items = run.exam()
    closed_book = config.eval.model_copy(update={"methods": ["loglik"]})
    records, _ = evaluate_models([Candidate("base", config.train.model)], items, closed_book, config.engine,
                                 work / "eval", config.run.seed)
    records += open_book_records(config, items, work)
    interval = {"resamples": config.eval.bootstrap_resamples, "confidence": config.eval.confidence,
                "seed": config.run.seed}
    rows = ceiling_rows(records, items, run.documents(), interval)
    if documents is not None:  # rows by position in the chosen list back to the corpus's line numbers
        for row in rows:
            row["document"] = documents[row["document"]] if row["document"] != "all" else "all"
    out = args.out or RESULTS / f"ceiling-{args.corpus if args.corpus in CORPORA else corpus_name(args.corpus)}"
    meta = {
        "command": f"python bench/experiment.py --ceiling --corpus {args.corpus}"
        + (f" --documents {args.documents}" if args.documents else ""),
        "corpus": source, "corpus_name": corpus_name(args.corpus), "documents_in_run": count,
        "model": "SmolLM2-135M-Instruct (embedded)", "device": device_name(),
        "reading": ("Closed book: the base model answers each question alone; open book: the same with the "
                    "whole document before the question (the eval's open_book method), on the questions whose "
                    "document fits the model's context window. Their difference bounds what training on the "
                    "document can teach this model by reading it (context distillation's teacher is the open "
                    "book). Margin: mean log-likelihood of the correct options minus the others' (nats); "
                    "intervals are paired bootstraps over the document's questions."),
    }
    write_ceiling(rows, meta, out)
    console.print(f"results: {out.with_suffix('.md')}")
    print(json.dumps({"documents": [{k: r.get(k) for k in ("document", "open_book_scored", "closed_acc", "open_acc",
                                                          "margin_gain")} for r in rows]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one story, tiny budgets, a few steps")
    parser.add_argument("--corpus", default="quality",
                        help="L-Eval documents with their questions: quality (default), coursera, or a file's path")
    parser.add_argument("--stories", type=int, help="documents to use, the corpus's first (default 3; quick: 1)")
    parser.add_argument("--documents", help="comma-separated line numbers (from 0) of the documents to use, "
                        "instead of the first --stories")
    parser.add_argument("--ceiling", action="store_true", help="measure the open-book ceiling per document (the "
                        "base model with and without the document) on every document of the corpus, or the "
                        "--documents chosen, and stop (results: bench/results/ceiling-<corpus>.*)")
    parser.add_argument("--steps", type=int, help="optimizer steps per arm (default 10; quick: 3)")
    parser.add_argument("--synthetic-tokens", type=int,
                        help="generation budget of entigraph, wrap and active_reading each (default 1.2 x an "
                             "arm's training tokens; less is repeated, as the passes column shows)")
    parser.add_argument("--arms", help=f"comma-separated arms to train (default: all of {', '.join(ARMS)}); "
                        "base, RAG, open book and the control always run, and only the chosen arms' "
                        "generators generate")
    parser.add_argument("--work", type=Path, help="work folder (default runs/experiment[-quick])")
    parser.add_argument(
        "--out",
        type=Path,
        help="results file stem (default bench/results/experiment-quality; quick: inside the work folder)",
    )
    parser.add_argument("--dry-run", action="store_true", help="run the stages before generate, plan generate's "
                        "requests and build every arm's settings, then stop before generating (without --work, "
                        "in a temporary folder)")
    args = parser.parse_args()
    if args.ceiling:
        ceiling(args, args.work or ROOT / "runs" / f"ceiling-{corpus_name(args.corpus).lower()}")
    elif args.dry_run and args.work is None:
        # Not in runs/: the real run resumes from its work folder, and a test leaves nothing behind.
        with tempfile.TemporaryDirectory(prefix="synthcpt-experiment-dry-run-") as tmp:
            experiment(args, Path(tmp))
    else:
        experiment(args, args.work or ROOT / "runs" / ("experiment-quick" if args.quick else "experiment"))


def chosen_documents(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        chosen = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"error: --documents takes line numbers separated by commas, not {value!r}") from None
    if not chosen or min(chosen) < 0 or len(set(chosen)) != len(chosen):
        raise SystemExit(f"error: --documents {value!r}: distinct line numbers from 0")
    return chosen


def chosen_arms(value: str | None) -> list[str] | None:
    if value is None:
        return None
    chosen = [a.strip() for a in value.split(",") if a.strip()]
    unknown = sorted(set(chosen) - set(ARMS) - set(ROUND_ARMS))
    if unknown or not chosen:
        raise SystemExit(f"error: unknown arms {unknown or value!r}; known: {', '.join([*ARMS, *ROUND_ARMS])}")
    return chosen


def experiment(args, work: Path) -> None:
    s = setup(args.quick, args.stories, args.steps, args.synthetic_tokens)
    out = args.out or (work / "experiment-quality" if args.quick else RESULTS / "experiment-quality")
    documents = chosen_documents(args.documents)
    corpus, source, stories = corpus_file(work, args.corpus, s["stories"], documents)
    chosen = chosen_arms(args.arms)
    generators = needed_generators(arms(s, chosen))
    shared = overrides(work, corpus, s, generators)
    config = load_config(None, shared, preset="cpu-demo")
    arm_configs = {name: load_config(None, shared + settings, preset="cpu-demo")
                   for name, settings in arms(s, chosen).items()}
    # The control trains on the answers file through the raw-data path.
    arm_configs["control"] = load_config(None, shared + ["train.data=raw"], preset="cpu-demo")
    if args.dry_run:
        round_configs = {name: round_arm_config(work, corpus, s, name) for name in ROUND_ARMS}
        print(json.dumps(dry_run(config, arm_configs, work, s, source, stories, round_configs)))
        return
    # Arms that train on no generator's text (raw, distill) need no generation.
    Runner(config, reporter=console.print).execute(SHARED_STAGES if generators else SHARED_STAGES[:-1], force=set())

    stats, candidates, not_trained = {}, [Candidate("base", config.train.model)], {}
    for name in arms(s, chosen):
        try:
            stats[name] = train_arm(arm_configs[name], name, work / "arms" / name)
        except SynthcptError as error:  # e.g. a generator that wrote less than one block: a row saying so
            console.print(f"[bold]arm {name}[/bold]: not trained: {error}")
            not_trained[name] = str(error)
            continue
        candidates.append(Candidate(name, str(work / "arms" / name / "model")))
    round_arms = {}
    for name in [n for n in ROUND_ARMS if chosen and n in chosen]:
        stats[name], model, round_arms[name] = train_round_arm(round_arm_config(work, corpus, s, name), name)
        candidates.append(Candidate(name, model))
    items = RunFolder(config.run.dir).exam()
    stats["control"] = train_control(arm_configs["control"], items, work)
    candidates.append(Candidate("control", str(work / "arms" / "control" / "model")))

    started = time.perf_counter()
    closed_book = config.eval.model_copy(update={"methods": ["loglik"]})
    records, perplexity = evaluate_models(
        candidates, items, closed_book, config.engine, work / "eval", config.run.seed, heldout_texts(config)
    )
    records += rag_records(config, items, work) + open_book_records(config, items, work)
    interval = {
        "resamples": config.eval.bootstrap_resamples,
        "confidence": config.eval.confidence,
        "seed": config.run.seed,
    }
    rows = arm_rows(records, perplexity, stats, s["block_size"], interval)
    share_of_control(rows)
    sweep = sweep_rows(rows, s)
    run = RunFolder(Path(config.run.dir)).stored_manifest().stages
    generation = RunFolder(Path(config.run.dir)).generate_stats() if generators else None
    device = device_name()
    meta = {
        "command": "python bench/experiment.py"
        + (" --quick" if args.quick else "")
        + (f" --corpus {args.corpus}" if args.corpus != "quality" else "")
        + (f" --stories {args.stories}" if args.stories else "")
        + (f" --documents {args.documents}" if args.documents else "")
        + (f" --steps {args.steps}" if args.steps else "")
        + (f" --synthetic-tokens {args.synthetic_tokens}" if args.synthetic_tokens else "")
        + (f" --arms {','.join(chosen)}" if chosen else "")
        + (f" --out {os.path.relpath(out, ROOT)}" if args.out else ""),
        "corpus": source,
        "stories": stories,
        "documents": documents,
        "corpus_name": corpus_name(args.corpus),
        "questions": len(items),
        "chance": round(sum(1 / len(item.options) for item in items) / len(items), 4),
        "model": "SmolLM2-135M-Instruct (embedded), generator and learner",
        "device": device,
        "preset": "cpu-demo",
        "settings": s,
        "seed": config.run.seed,
        "not_trained": not_trained,
        "rounds": round_arms,
        "rounds2_minus_budget2x": rounds_comparison(records, interval),
        "usable_tokens_generated": {k: v.tokens for k, v in generation.generators.items()} if generation else {},
        "mix_tokens": {k: v.tokens for k, v in generation.mix.by_generator.items()} if generation else {},
        "seconds": {
            "stages_to_generate": round(sum(run[n].seconds for n in SHARED_STAGES if n in run)),
            "training": round(sum(a["seconds"] for a in stats.values())),
            "evaluation": round(time.perf_counter() - started),
        },
        "summary": summary_line(rows, s["train_tokens"]),
        "control": control_verdict(rows),
        "reading": (
            "Accuracy counts questions whose likeliest option is right; the margin (the correct option's "
            "log-likelihood minus the mean of the others, in nats) moves before answers flip, so its "
            "paired change is the finer signal. Intervals are paired bootstraps over questions "
            f"({config.eval.bootstrap_resamples:,} resamples); they ignore that questions cluster by "
            "story and are not corrected for comparing several arms. Passes: how often an arm's distinct "
            "text was repeated to reach the common token count (10% of sequences are general-text "
            "replay in every arm)."
        ),
        "scale": (
            f"Scale: a 135M-parameter model learns {stories} {corpus_name(args.corpus)} documents from {s['train_tokens']:,} "
            f"tokens per arm ({device}), with the same 135M model as the generator. The EntiGraph paper "
            "trains Llama 3 8B on 455M synthetic tokens from a far stronger generator, Synthetic Mixed "
            "Training on 700M from Llama 3.1 70B (where its 8B learner beats RAG); at this scale the "
            "differences are small next to the intervals, and the table shows the methods' plumbing and "
            "direction, not their published size."
        ),
    }
    write_results(rows, meta, out, sweep)
    console.print(f"results: {out.with_suffix('.md')}")
    figures = ("acc", "acc_norm", "margin", "margin_vs_base", "margin_vs_raw", "heldout_perplexity", "passes",
               "acc_vs_base_share_of_control", "margin_vs_base_share_of_control", "margin_vs_base_share_of_open_book")
    print(
        json.dumps(
            {
                "arms": {r["arm"]: {k: r[k] for k in figures} for r in rows},
                "questions": len(items),
                "sweep": [{k: p[k] for k in ("tokens_trained", "passes", "acc")} for p in sweep],
                "seconds": meta["seconds"],
            }
        )
    )


if __name__ == "__main__":
    main()
