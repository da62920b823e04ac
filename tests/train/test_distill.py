"""Context distillation (`train.objective: distill`) on the embedded model: the binned top-k KL, the
teacher pass against fresh forward passes with the context, a killed teacher pass and a killed
distillation run resuming exactly, the same run under FSDP and with LoRA, and a record without a source
refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthcpt.atomic import write_records
from synthcpt.errors import SynthcptError
from synthcpt.run_folder import CHUNK_SCHEMA, DOCUMENT_SCHEMA
from synthcpt.s6_train.loss import topk_kl_sum
from tests.fixtures.train import demo_texts, prepare_run
from tests.helpers import ROOT, synthcpt
from tests.train import teacher_probe

PROBE = [sys.executable, "-m", "tests.train.teacher_probe"]


def _binned_kl_by_autograd(hidden, weight, top):
    """The same loss written plainly, for autograd to differentiate."""
    from synthcpt.s6_train.loss import _log1mexp

    student = (hidden @ weight.T).log_softmax(-1).gather(1, top.indices)
    student_tail, teacher_tail = (_log1mexp(torch.logsumexp(x, -1)) for x in (student, top.values))
    return ((top.values.exp() * (top.values - student)).sum(-1) + teacher_tail.exp() * (teacher_tail - student_tail)).sum()


def test_binned_kl_is_the_full_kl_at_full_k_and_zero_with_zero_gradient_for_the_student_itself():
    torch.manual_seed(0)
    hidden, weight = torch.randn(6, 16, requires_grad=True), torch.randn(50, 16, requires_grad=True)
    teacher = (torch.randn(6, 16) @ weight.detach().T).log_softmax(-1)
    top = teacher.topk(50)
    full = F.kl_div((hidden @ weight.T).log_softmax(-1), teacher, log_target=True, reduction="sum")
    assert topk_kl_sum(hidden, weight, top.indices, top.values).item() == pytest.approx(full.item(), rel=1e-5)
    # The gradients computed in the forward pass are autograd's of the plain loss.
    top5 = teacher.topk(5)
    topk_kl_sum(hidden, weight, top5.indices, top5.values).backward()
    fused = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    _binned_kl_by_autograd(hidden, weight, top5).backward()
    assert torch.allclose(fused[0], hidden.grad, atol=1e-5) and torch.allclose(fused[1], weight.grad, atol=1e-5)
    hidden.grad = weight.grad = None
    # The teacher's top 5 of the student's own distribution: nothing to learn.
    own = (hidden @ weight.T).log_softmax(-1).detach().topk(5)
    loss = topk_kl_sum(hidden, weight, own.indices, own.values)
    loss.backward()
    assert abs(loss.item()) < 1e-6 and hidden.grad.abs().max().item() < 1e-6
    hidden.grad = None
    topk_kl_sum(hidden, weight, top.indices[:, :5], top.values[:, :5]).backward()
    assert hidden.grad.abs().max().item() > 1e-3  # another teacher's top 5: a gradient


def _distill_model(embedded_model):
    from synthcpt.s6_train.runtime import start_runtime
    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.trainer import load_model

    settings = TrainSettings(model=str(embedded_model), objective="distill")
    model, _, targets = load_model(str(embedded_model), settings, start_runtime(), torch.float32)
    return model, targets


def test_a_teacher_without_context_is_the_student_zero_loss_and_gradient(embedded_model, tokenizer, tmp_path):
    """The teacher pass's rows of a text without context, against the student reading the same text."""
    from synthcpt.s6_train.data import Example, PackedData, build_stream
    from synthcpt.s6_train.runtime import start_runtime
    from synthcpt.s6_train.settings import DistillSettings
    from synthcpt.s6_train.teacher import teacher_rows

    text = demo_texts(max_chars=600)[0]
    examples = [Example(text), Example(text, context=demo_texts(max_chars=600)[1])]
    stream = build_stream(tmp_path / "stream", examples, tokenizer, "k", "tokenising")
    rows = teacher_rows(str(embedded_model), tokenizer, stream, DistillSettings(top_k=16), tmp_path / "teacher",
                        start_runtime())
    # Block 0 is the first text from its start, as the teacher read it; the second text starts its own block.
    second = int(stream.doc_starts[1])
    data = PackedData(stream, None, second, False, rows)
    model, targets = _distill_model(embedded_model)
    norms = []
    for block in (0, 1):
        batch = {k: torch.from_numpy(v) for k, v in data.batch(np.array([block])).items()}
        targets.set(*(batch.pop(k) for k in ("teacher_ids", "teacher_logprobs", "teacher_mask", "replay")))
        n = int(targets.mask[:, 1:].sum())
        loss = model(**batch, num_items_in_batch=torch.tensor(n)).loss
        loss.backward()
        norms.append((loss.item(), torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9).item()))
        model.zero_grad()
    (own_loss, own_norm), (context_loss, context_norm) = norms
    assert abs(own_loss) < 1e-5 and context_loss > 0.05, norms
    assert own_norm < 1e-3 * context_norm, norms


@pytest.fixture(scope="module")
def teacher_passes(tmp_path_factory, embedded_model):
    """The probe's teacher pass run whole, and run again killed after its first contexts then resumed."""
    whole, killed = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("killed")
    done = subprocess.run([*PROBE, str(embedded_model), str(whole)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen([*PROBE, str(embedded_model), str(killed)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    progress = killed / "teacher" / "progress-0.json"
    while proc.poll() is None and not (progress.is_file() and json.loads(progress.read_text())["groups_done"] >= 2):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the pass ended before it could be killed"
    groups_done = json.loads(progress.read_text())["groups_done"]
    assert not (killed / "teacher" / "meta.json").exists()
    resumed = subprocess.run([*PROBE, str(embedded_model), str(killed)], cwd=ROOT, capture_output=True, text=True,
                             timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return whole, killed, groups_done


def test_teacher_rows_are_a_forward_pass_with_the_context(teacher_passes, embedded_model):
    from transformers import AutoModelForCausalLM

    from synthcpt.s6_train.teacher import context_ids, open_rows, row_index, teacher_key

    whole, _, _ = teacher_passes
    tokenizer, stream = teacher_probe.build(str(embedded_model), whole)
    rows = open_rows(whole / "teacher", teacher_key(stream, str(embedded_model), teacher_probe.SETTINGS))
    assert rows is not None and rows.ids.shape == (int((row_index(stream) >= 0).sum()), teacher_probe.SETTINGS.top_k)
    contexts, index = stream.contexts()
    assert len(contexts) == teacher_probe.CONTEXTS and (index == -1).sum() == 2
    model = AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.float32).eval()
    starts = [*stream.doc_starts, stream.n_tokens]
    # Documents without context, after a context kept from its start and from its end, with a prompt.
    for doc in (0, 2, 3, 4, 5, len(starts) - 2):
        context = context_ids(tokenizer, contexts[index[doc]], teacher_probe.SETTINGS.context_tokens) \
            if index[doc] >= 0 else []
        tokens = np.asarray(stream.tokens[starts[doc]:starts[doc + 1]], dtype=np.int64)
        with torch.no_grad():
            fresh = model(torch.tensor([context + tokens.tolist()])).logits[0].log_softmax(-1)
        doc_rows = rows.row_of_token[starts[doc]:starts[doc + 1]]
        positions = np.nonzero(doc_rows >= 0)[0]
        assert len(positions) >= 3, doc
        for position, row in zip(positions, doc_rows[positions]):
            predicted = fresh[len(context) + position - 1]
            assert np.allclose(rows.logprobs[row], predicted.topk(teacher_probe.SETTINGS.top_k).values, atol=1e-4)
            assert np.allclose(rows.logprobs[row], predicted[torch.from_numpy(rows.ids[row].astype(np.int64))],
                               atol=1e-4)


def test_a_killed_teacher_pass_resumes_to_the_same_rows(teacher_passes):
    whole, killed, groups_done = teacher_passes
    assert 2 <= groups_done < teacher_probe.CONTEXTS + 1
    for name in ("ids.bin", "logprobs.bin", "row_of_token.npy"):
        assert (whole / "teacher" / name).read_bytes() == (killed / "teacher" / name).read_bytes(), name
    meta = json.loads((killed / "teacher" / "meta.json").read_text())
    assert meta == json.loads((whole / "teacher" / "meta.json").read_text())


DISTILL_RUN = {"objective": "distill", "block_size": 128, "batch_size": 2, "micro_batch_size": 2, "max_steps": 8,
               "lr": 2e-4, "warmup_share": 0.0, "schedule": "constant", "distill": {"top_k": 16}}


def _distill_run(run_dir: Path, train: dict, unknown_source: bool = False) -> Path:
    """A run folder whose corpus is two stories in two chunks each and whose mix holds QA records about
    the chunks, a rewrite of a document and a raw copy of the corpus."""
    texts = demo_texts(max_chars=500)[:2]
    config = prepare_run(run_dir, train, texts=["placeholder"])
    documents, chunks, mix = [], [], []
    for d, text in enumerate(texts):
        half = text.rfind(" ", 0, len(text) // 2)
        documents.append({"doc_id": f"d{d}", "title": f"Story {d}", "text": text, "source": "", "metadata": "{}",
                          "n_chars": len(text), "n_tokens": 40, "n_chunks": 2})
        for c, (start, end) in enumerate(((0, half), (half, len(text)))):
            chunk_id = f"d{d}-c{c}"
            chunks.append({"chunk_id": chunk_id, "doc_id": f"d{d}", "index": c, "text": text[start:end].strip(),
                           "n_tokens": 20, "char_start": start, "char_end": end})
            sentence = text[start:end].strip().split(". ")[0]
            for q in range(3):
                question = f"What is said in part {c + 1} of story {d} (question {q})?"
                mix.append({"id": f"qa-{d}-{c}-{q}", "generator": "qa", "doc_id": f"d{d}", "chunk_id": chunk_id,
                            "question": question, "text": f"Story {d}\nQuestion: {question}\nAnswer: {sentence}."})
        mix.append({"id": f"wrap-{d}", "generator": "wrap", "doc_id": "nowhere" if unknown_source else f"d{d}",
                    "chunk_id": "", "question": "", "text": f"Put simply: {text[:300]}"})
        mix.append({"id": f"raw-{d}", "generator": "raw", "doc_id": f"d{d}", "chunk_id": "", "question": "",
                    "text": text})
    for record in mix:
        record["n_tokens"] = 10  # what the plan adds up, with the corpus's 40 tokens a story, 20 a chunk
    write_records(run_dir / "ingest" / "documents.parquet", documents, DOCUMENT_SCHEMA)
    write_records(run_dir / "ingest" / "chunks.parquet", chunks, CHUNK_SCHEMA)
    write_records(run_dir / "generate" / "mix" / "part-00000.parquet", mix)
    return config


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_distillation_trains_toward_the_teacher_and_a_killed_run_resumes_exactly(tmp_path):
    straight = _distill_run(tmp_path / "straight", {**DISTILL_RUN, "checkpoint_every": 100})
    done = synthcpt("train", "-c", str(straight))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _log(tmp_path / "straight")
    stats = json.loads((tmp_path / "straight" / "train" / "stats.json").read_text())
    # At least two epochs over the same blocks: the student's KL from the teacher falls.
    assert stats["steps"] == DISTILL_RUN["max_steps"]
    assert 2 <= stats["main_blocks"] and 2 * stats["main_blocks"] <= stats["sequences"], stats
    per_epoch = stats["main_blocks"] // DISTILL_RUN["batch_size"]
    first, last = reference[:per_epoch], reference[-per_epoch:]
    assert sum(r["loss"] for r in last) < 0.7 * sum(r["loss"] for r in first), reference

    run_dir = tmp_path / "killed"
    config = _distill_run(run_dir, {**DISTILL_RUN, "checkpoint_every": 2})
    checkpoint = run_dir / "train" / "checkpoints" / "step-00000004"
    proc = subprocess.Popen([sys.executable, "-c", "from synthcpt.cli import main; main()", "train", "-c",
                             str(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not checkpoint.is_dir() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = synthcpt("train", "-c", str(config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [(r["loss"], r["grad_norm"]) for r in _log(run_dir)] == [(r["loss"], r["grad_norm"]) for r in reference]


def test_the_plan_counts_the_teacher_pass_and_a_record_without_a_source_is_refused(tmp_path):
    from synthcpt.config import load_config
    from synthcpt.run_folder import RunFolder
    from synthcpt.s6_train import teacher
    from synthcpt.s6_train.training import train_on_files

    settings = load_config(_distill_run(tmp_path / "run", DISTILL_RUN)).train
    rows = dict(teacher.plan_rows(settings, RunFolder(tmp_path / "run")))
    # 12 QA records after 4 chunks, 2 rewrites after their stories, the 2 raw copies as 4 chunks after
    # what precedes them in their story (4 contexts, 2 of them empty).
    assert rows["teacher pass"].startswith("18 texts (220 tokens) read after 10 contexts (200 tokens"), rows
    assert rows["teacher rows on disk"].endswith("GiB (top 16)")

    config = load_config(_distill_run(tmp_path / "bad", DISTILL_RUN, unknown_source=True))
    run = RunFolder(tmp_path / "bad")
    with pytest.raises(SynthcptError, match=r"mix record wrap-0 \(wrap\) names no chunk or document"):
        train_on_files(config.train, sorted(run.mix.glob("*.parquet")), tmp_path / "bad" / "train", 0,
                       teacher.Sources(run.documents(), run.chunks()))


@pytest.mark.slow
def test_distillation_under_fsdp_trains_like_one_process_and_with_lora_trains_only_the_adapters(tmp_path):
    # Two micro-batches of one sequence a step: alone they accumulate, under FSDP each process takes one.
    train = {**DISTILL_RUN, "micro_batch_size": 1, "max_steps": 4, "checkpoint_every": 100}
    alone = _distill_run(tmp_path / "alone", train)
    done = synthcpt("train", "-c", str(alone))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _log(tmp_path / "alone")

    sharded = _distill_run(tmp_path / "sharded", train)
    cli = Path(sys.executable).with_name("synthcpt")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(cli), "train", "-c", str(sharded)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((tmp_path / "sharded" / "train" / "stats.json").read_text())
    assert stats["processes"] == 2
    # One teacher pass, the same rows for both processes: the same KL, step by step, as one process.
    assert [r["loss"] for r in _log(tmp_path / "sharded")] == pytest.approx([r["loss"] for r in reference], rel=1e-4)

    adapters_only = {"enabled": True, "rank": 16, "alpha": 32.0, "train_embeddings": False}
    lora = _distill_run(tmp_path / "lora", {**train, "lora": adapters_only})
    done = synthcpt("train", "-c", str(lora))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((tmp_path / "lora" / "train" / "stats.json").read_text())
    assert 0 < stats["trained_parameters"] < stats["parameters"] / 10
    assert (tmp_path / "lora" / "train" / "adapter").is_dir()
    log = _log(tmp_path / "lora")
    # The adapters start at zero: the first step is the base model's KL from the teacher, as in full training.
    assert log[0]["loss"] == pytest.approx(reference[0]["loss"], rel=1e-5)
    assert log[-1]["loss"] != log[0]["loss"]
