"""The generation engine: one small interface, two backends (vLLM in-process, OpenAI-compatible HTTP).

    with open_engine(config.engine, run_dir) as engine:
        for result in engine.generate(requests, description="entities"):
            ...
        stats = engine.usage.as_dict()

`generate` takes an iterable of `Request`s (consumed lazily) and yields a `Result` for each as it
completes, in any order; cached results come back without calling the model.
"""

from synthcpt.engine.engine import Engine, open_engine
from synthcpt.engine.types import Request, Result, Sampling

__all__ = ["Engine", "Request", "Result", "Sampling", "open_engine"]
