"""Scale-out: the same code path under `torchrun` with FSDP (two CPU processes, gloo) trains like one
process, writes a loadable model and resumes from its checkpoint; two "nodes" that meet through the
c10d rendezvous and share the run folder do the same."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT

SCRIPT = Path(__file__).with_name("fsdp_train.py")


def _train(command: list[str], out: Path) -> dict:
    """Runs the script and returns its stats, checking that every process reported the same run."""
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == reports[0]["processes"]
    # Timings are each process's own; what was trained is the run's.
    run = ("steps", "resumed_from_step", "tokens", "first_loss", "final_loss", "parameters")
    assert all({k: report[k] for k in run} == {k: reports[0][k] for k in run} for report in reports)
    return reports[0]


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_llama, tiny_data) -> Path:
    """The reference: one process, no launcher."""
    out = tmp_path_factory.mktemp("single") / "one"
    stats = _train([sys.executable, str(SCRIPT), str(tiny_llama), str(tiny_data), str(out)], out)
    assert stats["processes"] == 1
    return out


def test_two_fsdp_processes_train_like_one_and_resume(tmp_path, tiny_llama, tiny_data, single):
    from safetensors.torch import load_file

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                str(tiny_llama), str(tiny_data), str(tmp_path / "two")]
    sharded = _train(torchrun, tmp_path)
    assert sharded["processes"] == 2
    # Same batches, same math: only the order of floating-point sums differs.
    assert _losses(tmp_path / "two") == pytest.approx(_losses(single), rel=1e-4)
    one = load_file(single / "model" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    # Adam turns tiny gradient differences into updates of up to lr (1e-3) where gradients are near
    # zero; a wrongly gathered shard would differ by the scale of the weights (0.02).
    assert all(torch.allclose(one[k], two[k], atol=3e-3) for k in one)
    config = json.loads((tmp_path / "two" / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]

    resumed = _train(torchrun, tmp_path)
    assert resumed["resumed_from_step"] == 3
    assert _losses(tmp_path / "two") == pytest.approx(_losses(single), rel=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_meeting_through_the_rendezvous_train_like_one_process(tmp_path, tiny_llama, tiny_data, single):
    from safetensors.torch import load_file

    # As on two machines: one process per "node", the c10d rendezvous on the first node's address,
    # one run folder on a shared filesystem (here the same local folder).
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                               "--rdzv-id", "synthcpt-test", str(SCRIPT), str(tiny_llama), str(tiny_data),
                               str(tmp_path / "shared")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-3000:]
    stats = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert [s["processes"] for s in stats] == [2, 2]
    assert _losses(tmp_path / "shared") == pytest.approx(_losses(single), rel=1e-4)
    one = load_file(single / "model" / "model.safetensors")
    two = load_file(tmp_path / "shared" / "model" / "model.safetensors")
    assert all(torch.allclose(one[k], two[k], atol=3e-3) for k in one)
