"""The ray backend: the requests of the in-process engine spread over N vLLM replicas of a Ray cluster.

Each replica is a Ray actor holding a `VllmBackend` (so `engine.vllm` applies to every replica, tensor
parallelism included) inside a placement group of its own: `gpus_per_replica` GPU bundles packed on
one node (STRICT_PACK), or CPUs alone on a cluster without GPUs. The engine in this process stays the
one owner of the response cache: it sends only requests no response is stored for, under the same
keys as the in-process engine, and commits every response the replicas hand back. So a driver killed
at any moment resumes with nothing committed sent again.

Plain actors rather than Ray Data's `map_batches` over an actor pool: `map_batches` is a bulk
transform whose failed block is retried whole and whose input is a finished dataset, while the engine
feeds requests lazily and needs each one back on its own: a request vLLM rejects fails alone, and the
jobs of a replica that dies (and only those) are resent to its replacement. The driver keeps the jobs
of every batch it dispatched until their responses come back, which is what makes that possible.

Dispatch: jobs sharing a `prefix_key` (e.g. a document) go to one replica by rendezvous hashing over the
live replicas, so that replica's prefix cache serves them and a replica dropping out moves only its own
keys; jobs without a key go round-robin. Jobs travel in batches of `batch_size`; a replica is an async
actor, so batches sent while it generates join its running vLLM batch (continuous batching as in-process).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from synthcpt.atomic import write_json
from synthcpt.engine.backend import Backend, Done, Job
from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.section import Section

if TYPE_CHECKING:
    from synthcpt.engine.settings import EngineSettings

STATS_FILE = "ray-replicas.json"
STATS_INTERVAL = 10.0  # seconds between rewrites of the stats file during a run
CONNECT_TIMEOUT = 5.0
# A job in flight on this many replicas that failed is failed itself: a request that kills its replica
# every time must not take every replica down with it.
JOB_ATTEMPTS = 3


class RaySettings(Section):
    """ray backend: data-parallel vLLM replicas on a Ray cluster (each replica takes engine.vllm)."""

    address: str | None = Field(
        None, description="Ray cluster to join: head:6379 or ray://head:10001 (unset: $RAY_ADDRESS, else a cluster "
                          "started on this machine with `ray start`, else a local one started here).")
    replicas: int = Field(1, ge=1, description="vLLM replicas (data parallel), each one engine.vllm model.")
    gpus_per_replica: int | None = Field(
        None, ge=0, description="GPUs of one replica, on one node, used as its vLLM tensor_parallel_size (unset: "
                                "engine.vllm.tensor_parallel_size on a cluster with GPUs, 0 (CPU replicas) without).")
    cpus_per_replica: float = Field(
        1.0, gt=0, description="CPUs of one replica (on CPU replicas, the cores its vLLM threads are bound to).")
    batch_size: int = Field(16, ge=1, description="Requests per dispatch to a replica.")
    max_restarts: int = Field(
        3, ge=0, description="Times a replica that died is replaced (its unfinished requests are resent).")
    placement_timeout: float = Field(
        900.0, gt=0, description="Seconds to wait for the cluster to fit every replica before giving up.")


# ---------------------------------------------------------------- replica (runs in a Ray actor)


def bound_cores(slot: int, cpus: float) -> str:
    """The cores a CPU replica's vLLM threads use: its own share of this node's cores, by slot, so
    replicas on one machine do not fight over the same cores."""
    cores = sorted(os.sched_getaffinity(0))
    count = max(1, int(cpus))
    return ",".join(str(cores[(slot * count + i) % len(cores)]) for i in range(count))


class Replica:
    """One vLLM engine of the cluster. An async actor: a `run` call adds its jobs to the running
    vLLM batch and waits for their results while the one stepping task drives the engine."""

    def __init__(self, settings: dict[str, Any], slot: int, gpus: int, cpus: float):
        if not gpus:  # before vLLM reads it; the environment inherited from the driver binds other cores
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bound_cores(slot, cpus)
        from synthcpt.engine.backends.vllm import VllmBackend
        from synthcpt.engine.settings import engine_settings
        from synthcpt.models import resolve

        engine = engine_settings()(**settings)
        # Tensor parallelism inside a placement group: vLLM's Ray executor puts a worker on each GPU bundle.
        self.backend = VllmBackend(engine, resolve(engine.model), executor="ray" if gpus > 1 else None)
        self.waiting: dict[str, asyncio.Future] = {}
        self.stepping: asyncio.Task | None = None

    def ready(self) -> dict[str, Any]:
        import ray

        return {"queue_size": self.backend.queue_size, "node": ray.util.get_node_ip_address()}

    async def run(self, jobs: list[Job]) -> list[Done]:
        loop = asyncio.get_running_loop()
        futures = []
        for job in jobs:
            futures.append(self.waiting.setdefault(job.key, loop.create_future()))
            self.backend.submit(job)
        if self.stepping is None or self.stepping.done():
            self.stepping = asyncio.create_task(self._step())
        return list(await asyncio.gather(*futures))

    async def _step(self) -> None:
        try:
            while self.waiting:
                finished = self.backend.poll()
                if not finished and not self.backend.running:
                    raise RuntimeError(f"vLLM holds none of the {len(self.waiting)} requests waiting")
                for done in finished:
                    future = self.waiting.pop(done.job.key, None)
                    if future is not None and not future.done():
                        future.set_result(done)
                await asyncio.sleep(0)  # let batches that arrived meanwhile join
        except Exception as e:  # noqa: BLE001 - vLLM's engine died: every waiting run fails, the driver replaces us
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(e)
            self.waiting.clear()

    async def cancel(self) -> None:
        self.backend.cancel()
        for future in self.waiting.values():
            future.cancel()
        self.waiting.clear()


# ---------------------------------------------------------------- driver side


def cluster_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str) -> None:
    """A host:port Ray would otherwise retry for minutes is one line at once."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local": Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise SynthcptError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): start one with "
                            "`ray start --head`, or fix engine.ray.address / $RAY_ADDRESS") from None


def connect(address: str | None) -> bool:
    """Join (or start) the cluster unless this process already did; True when we did it here."""
    import ray

    address = cluster_address(address)
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False
    # A local cluster started here would run its workers at niceness 15 (to keep Ray's daemons
    # responsive); here the workers are the work, which would starve behind every other process.
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        # Replica logs stay on the cluster (dashboard, /tmp/ray/session_latest/logs): vLLM's would
        # bury the progress bar. Their errors come back with the failed requests.
        # A cluster started here serves this machine only: it listens on loopback, never another address.
        local = {} if address else {"_node_ip_address": "127.0.0.1"}
        ray.init(address=address, log_to_driver=False, **local)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SynthcptError(f"cannot join the Ray cluster {address or '(local)'}: {str(e).strip().splitlines()[0]}"
                            ) from None
    return True


def replica_gpus(settings: EngineSettings) -> int:
    import ray

    own, tensor_parallel = settings.ray.gpus_per_replica, settings.vllm.tensor_parallel_size
    if own is None:
        return tensor_parallel if ray.cluster_resources().get("GPU", 0) else 0
    if own and tensor_parallel > 1 and own != tensor_parallel:
        raise SynthcptError(f"engine.ray.gpus_per_replica ({own}) and engine.vllm.tensor_parallel_size "
                            f"({tensor_parallel}) disagree: set one of them")
    return own


def replica_settings(settings: EngineSettings, gpus: int) -> dict[str, Any]:
    """What a replica rebuilds its engine settings from: a plain dict (the settings class is made at
    run time and does not pickle), as an in-process vllm engine with the replica's tensor parallelism."""
    from synthcpt.engine.settings import BACKENDS

    data = settings.model_dump(exclude=set(BACKENDS.names()) - {"vllm"})
    data["backend"] = "vllm"
    if gpus:
        data["vllm"]["tensor_parallel_size"] = gpus
    return data


def bundles(gpus: int, cpus: float) -> list[dict[str, float]]:
    if not gpus:
        return [{"CPU": cpus}]
    return [{"GPU": 1, "CPU": cpus}] + [{"GPU": 1}] * (gpus - 1)


def rendezvous(key: str, slots: list[int]) -> int:
    """The slot a prefix key belongs to: the highest hash of (slot, key), stable across processes."""
    return max(slots, key=lambda slot: hashlib.blake2b(f"{slot}\0{key}".encode(), digest_size=8).digest())


def lost_replica_errors() -> tuple[type[BaseException], ...]:
    """What `ray.get` raises for a call whose replica is gone: it died, Ray's memory monitor killed it,
    or its node was lost."""
    from ray import exceptions

    return exceptions.RayActorError, exceptions.OutOfMemoryError, exceptions.WorkerCrashedError, exceptions.NodeDiedError


def failure_line(error: BaseException) -> str:
    """One line of a Ray error: the replica's own exception (the last line of the traceback Ray wraps
    it in), or Ray's reason for a replica it lost (its first line; advice follows)."""
    import ray

    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    raised = isinstance(error, ray.exceptions.RayTaskError) or getattr(error, "actor_init_failed", False)
    return lines[-1] if raised else lines[0]


@dataclass
class Slot:
    """One replica's place: its placement group, its current actor and its counts."""

    index: int
    group: Any
    actor: Any = None
    node: str | None = None
    queue_size: int = 0
    alive: bool = True
    restarts: int = 0
    counts: Counter = field(default_factory=Counter)

    def stats(self) -> dict[str, Any]:
        return {"slot": self.index, "alive": self.alive, "node": self.node, "restarts": self.restarts,
                **{k: self.counts[k] for k in ("sent", "answered", "failed", "resent", "prompt_tokens",
                                               "completion_tokens")}}


@dataclass
class Batch:
    slot: Slot
    actor: Any  # the actor it went to: a replaced replica's batches are told apart by it
    jobs: list[Job]


class RayBackend(Backend[RaySettings]):
    name: ClassVar[str] = "ray"
    summary: ClassVar[str] = "vLLM replicas on a Ray cluster, data parallel (engine.ray; each takes engine.vllm)"
    # Replicas start at the first request the cache cannot answer, so a finished run resumes with no cluster.
    open_eagerly: ClassVar[bool] = False
    local_model: ClassVar[bool] = True

    def __init__(self, settings: EngineSettings, model_path: str | None, run_dir: Path | None = None):
        from synthcpt.engine.engine import cache_dir

        super().__init__(settings, model_path, run_dir)
        self.stats_path = cache_dir(run_dir) / STATS_FILE if run_dir is not None else None
        self.started_ray = connect(self.settings.address)
        self.slots: list[Slot] = []
        try:
            self.gpus = replica_gpus(settings)
            self.replica_data = replica_settings(settings, self.gpus)
            self._place()
            self._load(settings.model)
        except BaseException:
            self.close()
            raise
        self.batches: dict[Any, Batch] = {}  # ObjectRef -> the batch it answers
        self.buffers: dict[int, list[Job]] = {slot.index: [] for slot in self.slots}
        self.pending = 0  # jobs buffered or dispatched, not yet handed back
        self.attempts: Counter = Counter()
        self.next_slot = 0
        self.stats_written = time.monotonic()

    # -- start-up

    def _place(self) -> None:
        import ray
        from ray.util import placement_group

        self.slots = [Slot(i, placement_group(bundles(self.gpus, self.settings.cpus_per_replica), strategy="STRICT_PACK"))
                      for i in range(self.settings.replicas)]
        pending = [slot.group.ready() for slot in self.slots]
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=min(5.0, self.settings.placement_timeout))
        if len(ready) < len(pending):
            console.print(f"[dim]waiting for the Ray cluster to place {len(pending)} replicas of "
                          f"{bundles(self.gpus, self.settings.cpus_per_replica)}[/dim]")
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=self.settings.placement_timeout)
        if len(ready) < len(pending):
            raise SynthcptError(
                f"the Ray cluster cannot place {len(pending)} replicas of "
                f"{bundles(self.gpus, self.settings.cpus_per_replica)} within {self.settings.placement_timeout:g} s (it has "
                f"{ray.cluster_resources()}): lower engine.ray.replicas / gpus_per_replica / cpus_per_replica")

    def _load(self, model: str) -> None:
        """Start every replica and wait until each has loaded the model. A replica whose start-up raised
        (no such model, too little memory for vLLM) stops the run; one killed while loading (Ray's memory
        monitor, a lost node) is restarted like any replica that died."""
        import ray

        for slot in self.slots:
            slot.actor = self._actor(slot)
        loading = {slot.actor.ready.remote(): slot for slot in self.slots}
        while loading:
            [ref], _ = ray.wait(list(loading), num_returns=1)
            slot = loading.pop(ref)
            try:
                info = ray.get(ref)
            except lost_replica_errors() as e:
                if getattr(e, "actor_init_failed", False) or slot.restarts >= self.settings.max_restarts:
                    raise SynthcptError(f"a Ray replica cannot load {model}: {failure_line(e)}") from None
                slot.restarts += 1
                console.print(f"[yellow]ray replica {slot.index} died while loading ({failure_line(e)}): "
                              f"restarted ({slot.restarts}/{self.settings.max_restarts})[/yellow]")
                slot.actor = self._actor(slot)
                loading[slot.actor.ready.remote()] = slot
                continue
            slot.queue_size, slot.node = info["queue_size"], info["node"]

    def _actor(self, slot: Slot) -> Any:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(slot.group, placement_group_bundle_index=0,
                                                    placement_group_capture_child_tasks=True)
        # One GPU: the actor holds it. More: vLLM's Ray workers take one bundle's GPU each.
        options = {"num_cpus": self.settings.cpus_per_replica, "num_gpus": 1 if self.gpus == 1 else 0,
                   "scheduling_strategy": strategy, "max_restarts": 0}
        return ray.remote(Replica).options(**options).remote(self.replica_data, slot.index, self.gpus,
                                                               self.settings.cpus_per_replica)

    # -- the Backend protocol

    def capacity(self) -> int:
        return sum(slot.queue_size for slot in self.slots if slot.alive) - self.pending

    def submit(self, job: Job) -> None:
        self.pending += 1
        self._route(job)

    def poll(self) -> list[Done]:
        import ray

        for slot in self._live():
            self._flush(slot)
        if not self.batches:
            return []
        refs = list(self.batches)
        ray.wait(refs, num_returns=1)  # block until one is back, then take every one that is
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        finished: list[Done] = []
        for ref in ready:
            batch = self.batches.pop(ref, None)
            if batch is None:  # a batch of a replica already found dead in this loop
                continue
            try:
                dones = ray.get(ref)
            except (*lost_replica_errors(), ray.exceptions.RayTaskError) as e:
                finished += self._replica_failed(batch, e)
                continue
            finished += dones
            self._count(batch.slot, dones)
        self.pending -= len(finished)
        self._write_stats_now_and_then()
        return finished

    def cancel(self) -> None:
        import ray

        live = [slot for slot in self._live() if slot.actor is not None]
        try:
            ray.get([slot.actor.cancel.remote() for slot in live])
        except ray.exceptions.RayError:
            pass  # a replica that died holds nothing to drop; the next batch sent to it finds out
        self.batches.clear()
        self.buffers = {slot.index: [] for slot in self.slots}
        self.pending = 0
        self.attempts.clear()

    def close(self) -> None:
        import ray

        if hasattr(self, "batches"):  # it opened: drop what is in flight, keep the counts
            self.cancel()
            self.write_stats()
        for slot in self._live():  # a dropped replica's actor and group are gone already
            if slot.actor is not None:
                ray.kill(slot.actor)
            ray.util.remove_placement_group(slot.group)
        self.slots = []
        if self.started_ray:
            ray.shutdown()

    # -- stats

    def replica_stats(self) -> dict[str, Any]:
        """Per-replica counts since the backend opened: requests sent (resent ones included), answered,
        failed, resent after a replica died, tokens, restarts; and their totals."""
        replicas = [slot.stats() for slot in self.slots]
        totals = {key: sum(r[key] for r in replicas) for key in ("sent", "answered", "failed", "resent", "restarts")}
        return {"replicas": replicas, **totals}

    def write_stats(self) -> None:
        if self.stats_path is not None and self.slots:
            write_json(self.stats_path, self.replica_stats())
        self.stats_written = time.monotonic()

    def _write_stats_now_and_then(self) -> None:
        if time.monotonic() - self.stats_written > STATS_INTERVAL:
            self.write_stats()

    # -- dispatch and faults

    def _live(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.alive]

    def _route(self, job: Job) -> None:
        live = self._live()
        if job.request.prefix_key is not None:
            slot = self.slots[rendezvous(job.request.prefix_key, [s.index for s in live])]
        else:
            slot = live[self.next_slot % len(live)]
            self.next_slot += 1
        self.buffers[slot.index].append(job)
        if len(self.buffers[slot.index]) >= self.settings.batch_size:
            self._flush(slot)

    def _flush(self, slot: Slot) -> None:
        jobs, self.buffers[slot.index] = self.buffers[slot.index], []
        if jobs:
            self.batches[slot.actor.run.remote(jobs)] = Batch(slot, slot.actor, jobs)
            slot.counts["sent"] += len(jobs)

    def _count(self, slot: Slot, dones: list[Done]) -> None:
        for done in dones:
            if done.response is None:
                slot.counts["failed"] += 1
            else:
                slot.counts["answered"] += 1
                slot.counts["prompt_tokens"] += done.response.prompt_tokens
                slot.counts["completion_tokens"] += done.response.completion_tokens

    def _replica_failed(self, batch: Batch, error: BaseException) -> list[Done]:
        """Replace the replica (or drop it when out of restarts) and resend everything it held; jobs that
        were on too many failed replicas fail instead. Returns those failures."""
        import ray

        slot, reason = batch.slot, failure_line(error)
        lost = batch.jobs + self._take_batches(batch.actor) + self.buffers[slot.index]
        self.buffers[slot.index] = []
        ray.kill(batch.actor)  # dead already, or alive with a dead vLLM engine inside
        if slot.restarts < self.settings.max_restarts:
            slot.restarts += 1
            slot.actor = self._actor(slot)
            what = f"replaced ({slot.restarts}/{self.settings.max_restarts})"
        else:
            slot.alive = False
            ray.util.remove_placement_group(slot.group)
            what = "out of restarts, dropped"
        if not self._live():
            raise SynthcptError(f"every Ray replica failed, the last with: {reason}")
        failed = []
        for job in lost:
            self.attempts[job.key] += 1
            if self.attempts[job.key] >= JOB_ATTEMPTS:
                failed.append(Done(job, error=f"{JOB_ATTEMPTS} replicas failed while running it, the last: {reason}"))
                continue
            slot.counts["resent"] += 1
            self._route(job)
        console.print(f"[yellow]ray replica {slot.index} failed ({reason}): {what}; "
                      f"{len(lost) - len(failed)} requests resent[/yellow]")
        return failed

    def _take_batches(self, actor: Any) -> list[Job]:
        refs = [ref for ref, batch in self.batches.items() if batch.actor is actor]
        return [job for ref in refs for job in self.batches.pop(ref).jobs]


PLUGIN = RayBackend
