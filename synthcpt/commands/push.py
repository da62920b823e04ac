"""`synthcpt push RUN_DIR`: share what a run made, the trained model and the synthetic corpus, each with
its card, to the Hugging Face Hub (`--model REPO`, `--dataset REPO`; a LoRA run's adapters alone with
`--adapter REPO`) or into a folder (`--to PATH`, the same layout: PATH/model, PATH/dataset, PATH/adapter).

Everything is checked before anything is sent: the run's outputs, the repo names, the token. Each repo
then gets one commit holding all its files and its card, so a failed push leaves a repo as it was,
never half uploaded. The token comes from the environment (HF_TOKEN) or the hub's login and is handed
to the hub's client only: synthcpt writes it nowhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from synthcpt.errors import SynthcptError


@dataclass
class Part:
    """One repo's worth: its files (path in the repo → file in the run folder) and its card."""

    name: Literal["model", "dataset", "adapter"]  # also its folder's name under --to
    repo: str | None
    files: dict[str, Path]
    card: str

    @property
    def repo_type(self) -> str:
        return "dataset" if self.name == "dataset" else "model"


def register(app: typer.Typer) -> None:
    @app.command(name="push")
    def push(
        run_dir: Annotated[Path, typer.Argument(help="Run folder.")],
        model: Annotated[str | None, typer.Option(help="Hub repo for the trained model, e.g. my-org/my-model.")] = None,
        dataset: Annotated[str | None, typer.Option(help="Hub repo for the synthetic corpus.")] = None,
        adapter: Annotated[str | None, typer.Option(help="Hub repo for a LoRA run's adapters alone (the merged "
                                                    "model goes to --model).")] = None,
        private: Annotated[bool, typer.Option(help="Create the repos private.")] = False,
        to: Annotated[Path | None, typer.Option(help="Write PATH/model, PATH/dataset (and PATH/adapter) instead "
                                                "of pushing to the hub; repo names, if given, go into the cards.")] = None,
    ) -> None:
        """Share the trained model and the synthetic corpus, with their cards, on the hub or in a folder."""
        from synthcpt.progress import console

        parts = _parts(run_dir, model, dataset, adapter, everything=to is not None)
        if to is not None:
            for part in parts:  # every target checked before the first is written
                if (to / part.name).exists() and any((to / part.name).iterdir()):
                    raise SynthcptError(f"{to / part.name} exists and is not empty: push --to writes a new folder")
            for part in parts:
                _write_folder(part, to / part.name)
                console.print(f"push: {part.name} written to [bold]{to / part.name}[/bold] ({len(part.files) + 1} files)")
            return
        token = _token()
        for part in parts:
            url = _upload(part, token, private)
            console.print(f"push: {part.name} uploaded to [bold]{url}[/bold] ({len(part.files) + 1} files)")


def _parts(run_dir: Path, model: str | None, dataset: str | None, adapter: str | None,
           everything: bool) -> list[Part]:
    """What to share, checked whole before anything is written or sent. Pushing to the hub shares what
    has a repo name; writing a folder shares everything the run holds."""
    from synthcpt.cards import dataset_card, model_card
    from synthcpt.config import load_config
    from synthcpt.run_folder import RunFolder

    run = RunFolder(run_dir)
    if not run.manifest_path.is_file():
        raise SynthcptError(f"{run_dir} is not a run folder (no {run.manifest_path.name})")
    rounds = run.rounds()
    run = run.for_round(rounds)  # a run of several rounds shares its last round's model
    if not (model or dataset or adapter or everything):
        raise SynthcptError("nothing to push: name --model REPO and/or --dataset REPO, or write a folder with --to PATH")
    for option, repo in (("--model", model), ("--dataset", dataset), ("--adapter", adapter)):
        if repo is not None:
            _check_repo(option, repo)
    has_model = (run.trained_model / "config.json").is_file() and run.train_stats() is not None
    has_dataset = run.generate_stats() is not None and any(run.mix.glob("*.parquet"))
    if model and not has_model:
        raise SynthcptError(f"no trained model in {run_dir}: run `synthcpt train` first")
    if dataset and not has_dataset:
        raise SynthcptError(f"no synthetic corpus in {run_dir}: run `synthcpt generate` first")
    has_adapter = has_model and (run.adapter / "adapter_config.json").is_file()
    if adapter and not has_adapter:
        raise SynthcptError(f"no LoRA adapters in {run_dir}: only a run with train.lora.enabled has them")
    if not (has_model or has_dataset):
        raise SynthcptError(f"{run_dir} holds neither a trained model nor a synthetic corpus: nothing to push")
    config = load_config(run.config_path)
    parts = []
    if has_dataset and (dataset or everything):
        # Every round's mix: a later round's text covers only what the model had missed.
        files = {(f"round-{r}-" if rounds > 1 else "") + path.name: path for r in range(1, rounds + 1)
                 for path in sorted(run.for_round(r).mix.glob("*.parquet"))}
        parts.append(Part("dataset", dataset, files, str(dataset_card(run, config, model=model))))
    if has_model and (model or everything):
        files = {path.name: path for path in sorted(run.trained_model.iterdir())
                 if path.is_file() and path != run.model_card}
        if run.report_html.is_file():
            files[run.report_html.name] = run.report_html
        card = model_card(run, config, datasets=[dataset] if dataset else None,
                          report_link=run.report_html.name if run.report_html.is_file() else None)
        parts.append(Part("model", model, files, str(card)))
    if has_adapter and (adapter or everything):
        files = {path.name: path for path in sorted(run.adapter.iterdir()) if path.is_file()}
        card = model_card(run, config, datasets=[dataset] if dataset else None, adapter_of=model or "")
        parts.append(Part("adapter", adapter, files, str(card)))
    return parts


def _check_repo(option: str, repo: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise SynthcptError(f"{option} {repo}: not a repo name the hub accepts ({str(e).splitlines()[0]})") from None


def _write_folder(part: Part, target: Path) -> None:
    """The part's files (hard links where the file system allows: a model's weights are not copied) and
    its card, in a staging folder renamed into place when whole."""
    from synthcpt.atomic import write_text
    from synthcpt.run_folder import CARD_FILE

    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, source in part.files.items():
        try:
            os.link(source, staging / name)
        except OSError:
            shutil.copy2(source, staging / name)
    write_text(staging / CARD_FILE, part.card)
    if target.exists():
        target.rmdir()
    os.replace(staging, target)


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise SynthcptError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login` (or use --to PATH)")
    return token


def _upload(part: Part, token: str, private: bool) -> str:
    """One commit to the part's repo (created if missing): all its files and its card, or nothing."""
    import httpx
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from synthcpt.run_folder import CARD_FILE

    api = HfApi(token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in part.files.items()]
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=part.card.encode()))
    try:
        url = api.create_repo(part.repo, repo_type=part.repo_type, private=private, exist_ok=True)
        api.create_commit(part.repo, repo_type=part.repo_type, operations=operations,
                          commit_message=f"synthcpt push: the run's {part.name} and its card")
    except (HfHubHTTPError, httpx.HTTPError, OSError) as e:
        raise SynthcptError(f"push of the {part.name} to {part.repo} failed: {str(e).splitlines()[0]}") from None
    return str(url)
