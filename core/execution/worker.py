"""What a launcher runs: a worker, given as a callable or as the importable ``"module:function"`` name of one.

    worker(config, data_bytes, *, progress, should_stop) -> report dict

A name is what travels to another node (whose own checkout imports it); the engine's is ``core.engine.evaluate.WORKER``.
"""

from __future__ import annotations

import importlib
from typing import Callable, Union

from ..errors import QlabError

Worker = Union[str, Callable[..., dict]]   # "module:function", or the function itself


def resolve_worker(worker: Worker) -> Callable[..., dict]:
    """The worker callable: ``worker`` itself, or the function a ``"module:function"`` name points at."""
    if callable(worker):
        return worker
    module, _, name = str(worker).partition(":")
    if not module or not name:
        raise QlabError(f"A worker is a callable or a 'module:function' name, not {worker!r}.")
    return getattr(importlib.import_module(module), name)
