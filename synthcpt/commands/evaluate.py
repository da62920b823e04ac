"""`synthcpt evaluate`: closed-book QA of any models on any question files, outside a run.

`synthcpt eval` is the pipeline stage (the run's questions, its base and trained model); `evaluate`
takes the models and questions on the command line, e.g. to compare checkpoints or other models. With no
corpus here, `rag` retrieves from the questions' own documents, cut into ~1024-character passages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        model: Annotated[list[str], typer.Option("--model", "-m", help="Model to evaluate: HF folder, hub id or "
                                                 "'default'; repeat to compare, the first is the baseline.")],
        qa: Annotated[list[Path], typer.Option("--qa", help="Question file (L-Eval, original QuALITY or simple "
                                               "JSONL); repeat for several.")],
        out: Annotated[Path, typer.Option(help="Folder for results.json, questions.parquet and caches.")] = Path(
            "runs/evaluate"),
        text: Annotated[Path | None, typer.Option(help="General text (.jsonl/.parquet/.txt or a folder) to "
                                                     "measure each model's perplexity on.")] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (its eval and "
                                                       "engine sections are used).")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override: section.key=value, "
                                                          "e.g. eval.generative.shots=3.")] = None,
    ) -> None:
        """Evaluate models on question files (closed book), outside a run; the first model is the baseline."""
        from rich.console import Console

        from synthcpt.config import load_config
        from synthcpt.questions import load_qa_file
        from synthcpt.replay import read_texts
        from synthcpt.s7_eval.evaluation import evaluate_candidates, results_tables

        cfg = load_config(config, set_ or [])
        items = [item for path in qa for item in load_qa_file(path)]
        results = evaluate_candidates(_named(model), items, cfg, out, read_texts(text) if text else [],
                                      _passages(cfg.eval.methods, items))
        for table in results_tables(results):
            Console(width=160).print(table)


def _passages(methods: list[str], items: list) -> list:
    """What retrieval methods (`rag`) retrieve from outside a run, where there is no corpus: the questions'
    own documents cut into ~1024-character passages; an error when the files hold no documents."""
    from synthcpt.errors import SynthcptError
    from synthcpt.plugins import EVAL_METHODS
    from synthcpt.s7_eval.methods.rag import document_passages

    retrieving = [method for method in methods if EVAL_METHODS.get(method).uses_passages]
    if not retrieving:
        return []
    passages = document_passages(items)
    if not passages:
        raise SynthcptError(f"eval method {retrieving[0]} retrieves from the questions' documents, but the question "
                            f"files hold none (give each question its 'document', or leave {retrieving[0]} out "
                            f"of eval.methods)")
    return passages


def _named(models: list[str]) -> list:
    """A short unique name per model: its folder name (numbered when two share one)."""
    from synthcpt.errors import SynthcptError
    from synthcpt.s7_eval.records import Candidate

    if not models:
        raise SynthcptError("name at least one --model")
    names: list[str] = []
    for setting in models:
        name = Path(setting.rstrip("/")).name or setting
        name = name if name not in names else f"{name}-{len(names) + 1}"
        names.append(name)
    return [Candidate(n, m) for n, m in zip(names, models)]
