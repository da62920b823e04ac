"""A local OpenAI-compatible vLLM server for a model setting, with the same CPU settings as the
in-process backend: what `synthcpt serve` runs, and what tests and benchmarks start on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from synthcpt.engine.backends.vllm import GIB, is_cpu_build, set_cpu_environment
from synthcpt.engine.settings import EngineSettings
from synthcpt.errors import SynthcptError

READY_TIMEOUT = 600.0


def server_command(settings: EngineSettings, host: str, port: int) -> list[str]:
    """`python -m vllm.entrypoints.openai.api_server ...` serving engine.model under that same name."""
    from synthcpt.models import resolve

    cpu = is_cpu_build()
    own = settings.vllm
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve(settings.model),
               "--served-model-name", settings.model, "--host", host, "--port", str(port),
               "--dtype", "float32" if cpu and own.dtype == "auto" else own.dtype,
               "--enable-prefix-caching", "--disable-uvicorn-access-log"]
    if cpu:
        command += ["--enforce-eager", "--kv-cache-memory-bytes", str(int(own.kv_cache_gb * GIB))]
    else:
        command += ["--gpu-memory-utilization", str(own.gpu_memory_utilization)]
    if settings.max_model_len:
        command += ["--max-model-len", str(settings.max_model_len)]
    if own.tensor_parallel_size > 1:
        command += ["--tensor-parallel-size", str(own.tensor_parallel_size)]
    if own.max_num_seqs:
        command += ["--max-num-seqs", str(own.max_num_seqs)]
    return command


def server_environment() -> dict[str, str]:
    if is_cpu_build():
        set_cpu_environment()
    return dict(os.environ)


def wait_until_ready(base_url: str, process: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SynthcptError(f"the vLLM server exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise SynthcptError(f"the vLLM server at {base_url} was not ready after {timeout:.0f} s")


@contextmanager
def local_server(settings: EngineSettings, port: int, host: str = "127.0.0.1", log=None) -> Iterator[str]:
    """Start the server, wait until it answers, yield its base_url; stop it (and its engine) on exit."""
    process = subprocess.Popen(server_command(settings, host, port), env=server_environment(),
                               stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://{host}:{port}/v1"
    try:
        wait_until_ready(base_url, process)
        yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the engine-core child goes too
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
