"""A small pool of pre-started measuring workers (prototype, off unless ``QLAB_WORKER_POOL=N`` is set; issue 19 part 5).

A fresh process per measurement is kept: each pooled process is started with the measuring worker's environment
(``core.evaluate._worker_env``: OMP/MKL thread counts, ``OMP_WAIT_POLICY``) in place *before* torch or ONNX Runtime
is imported, imports torch, ONNX Runtime, transformers (and its modeling code) and the lab's worker modules, says it
is ready, then waits for exactly one job path on stdin, runs it as ``python -m core.runner JOB.json`` would
(``core.runner.main``), and exits. It is never reused.

What the pool saves is the import time, by importing in several processes at once before any of them measures:

* the first ``take`` for an environment starts ``N`` processes at once (imports in parallel on the machine's cores);
* a ``take`` hands a job only once every pooled process has finished importing, so no import runs while a
  worker measures (on a 2-core machine a background import would otherwise disturb the latency figures);
* when the pool is empty, the next ``take`` starts ``N`` again. A used worker is not replaced one by one in the
  background for the same reason.

The pool belongs to the process that measures (the job child, or the CLI); its processes die with it
(``PR_SET_PDEATHSIG`` and ``local.end_all`` at exit).

    python -m core.execution.pool      # the pooled process itself (started by WorkerPool, not by hand)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time

from . import local

READY = "pool-ready"


def size() -> int:
    """How many workers to pre-start (``QLAB_WORKER_POOL``); 0 = no pool (a plain fresh process per measurement)."""
    try:
        return max(0, int(os.environ.get("QLAB_WORKER_POOL") or 0))
    except ValueError:
        return 0


class WorkerPool:
    def __init__(self, n: int):
        self.n = n
        self._idle: dict[tuple, list[local.LocalProcess]] = {}
        self._lock = threading.Lock()
        self._log = os.path.join(tempfile.gettempdir(), f"qlab-pool-{os.getpid()}.log")

    def _start(self, env: dict) -> local.LocalProcess:
        return local.LocalProcess([sys.executable, "-m", "core.execution.pool"], env=env, log_path=self._log, stdin=subprocess.PIPE)

    @staticmethod
    def _wait_ready(handle: local.LocalProcess, timeout: float = 300.0) -> bool:
        if getattr(handle, "pool_ready", False):
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = handle.next_event(0.2)
            if event is None:
                return False   # it died while importing
            if event is not False and event.get("phase") == READY:
                handle.pool_ready = True
                return True
            if not handle.running():
                return False
        return False

    def take(self, env: dict, job_path: str, log_path: str) -> local.LocalProcess:
        """A running worker that has been given ``job_path`` (its stderr then goes to ``log_path``)."""
        key = tuple(sorted(env.items()))
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not idle:
                idle.extend(self._start(env) for _ in range(self.n))
            ready = [h for h in idle if self._wait_ready(h)]   # every pooled import done before anyone measures
            for h in idle:
                if h not in ready:
                    h.cancel(grace_s=1.0)
            idle[:] = ready
            handle = idle.pop(0) if idle else self._start(env)
        if not self._wait_ready(handle):
            raise RuntimeError("a pre-started worker died while importing")
        handle.proc.stdin.write(f"{job_path}\t{log_path}\n")
        handle.proc.stdin.close()
        return handle


_POOL: WorkerPool | None = None


def pool() -> WorkerPool | None:
    """This process's pool, or None when ``QLAB_WORKER_POOL`` is unset or 0."""
    global _POOL
    n = size()
    if not n:
        return None
    if _POOL is None or _POOL.n != n:
        _POOL = WorkerPool(n)
    return _POOL


def _preimport() -> None:
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import transformers.activations  # noqa: F401
    import transformers.modeling_utils  # noqa: F401

    from .. import bench, env, metrics, runner, sources, store, variants  # noqa: F401
    from ..recipes import BuildContext  # noqa: F401
    with contextlib.suppress(Exception):
        from transformers.models.bert import modeling_bert  # noqa: F401  (the bundled models' architecture)


def serve() -> int:
    """The pooled process: import, say ready, wait for one job, run it, exit without the interpreter's teardown."""
    from .wire import encode

    _preimport()
    sys.stdout.write(encode({"phase": READY}))
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line.strip():
        return 0   # the pool was closed before it had a job for us
    job_path, log_path = line.rstrip("\n").split("\t")
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    from ..runner import main

    code = main([job_path])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # the result is written and the last event sent: skip tearing torch down


if __name__ == "__main__":
    sys.exit(serve())
