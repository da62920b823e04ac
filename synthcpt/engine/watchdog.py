"""A watchdog on vLLM's engine-core processes, so that a dead engine stops a stage instead of hanging it.

vLLM V1 runs the EngineCore in child processes and `LLMEngine.step()` waits on a queue that a thread
fills from the engine's ZMQ socket. When the engine dies (OOM killer, crash, kill -9), vLLM's own
monitor notices and shuts the client down, but the thread that feeds the queue then exits without a
word, so `step()` waits forever. The watchdog waits on the same processes and, when one dies, puts
vLLM's `EngineDeadError` on that queue: the blocked `step()` raises it at once, and the backend turns
it into one clear error.
"""

from __future__ import annotations

import signal
import threading
from multiprocessing import connection
from typing import Any

# How often the watchdog checks whether it was stopped while the engine is alive.
CHECK_SECONDS = 1.0


def exit_description(name: str, pid: int | None, exitcode: int | None) -> str:
    """'EngineCore_DP0 pid 123 killed by SIGKILL' / '... exit code 1' / '... exited'."""
    who = f"{name} pid {pid}"
    if exitcode is None:
        return f"{who} exited"
    if exitcode < 0:
        try:
            return f"{who} killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"{who} killed by signal {-exitcode}"
    return f"{who} exit code {exitcode}"


class EngineWatchdog:
    """Watches the engine-core processes of one `vllm.LLM`; `death` says which died and how (None while
    they live). `stop()` before shutting the engine down on purpose, so that is not taken for a death."""

    def __init__(self, llm: Any):
        self.client = llm.llm_engine.engine_core
        manager = getattr(getattr(self.client, "resources", None), "engine_manager", None)
        # An in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0) has no process to die apart from ours.
        self.processes = list(getattr(manager, "processes", None) or [])
        self.death: str | None = None
        self._stopped = threading.Event()
        if self.processes:
            threading.Thread(target=self._watch, daemon=True, name="synthcpt-engine-watchdog").start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        by_sentinel = {process.sentinel: process for process in self.processes}
        while not self._stopped.is_set():
            ended = connection.wait(list(by_sentinel), timeout=CHECK_SECONDS)
            if ended and not self._stopped.is_set():
                process = by_sentinel[ended[0]]
                process.join(timeout=CHECK_SECONDS)  # reaps it, so that its exit code is known
                self.death = exit_description(process.name, process.pid, process.exitcode)
                self._wake_step()
                return

    def _wake_step(self) -> None:
        """Unblock a `step()` waiting for outputs that will never come."""
        from vllm.v1.engine.exceptions import EngineDeadError

        outputs = getattr(self.client, "outputs_queue", None)
        if outputs is not None:
            outputs.put_nowait(EngineDeadError())
