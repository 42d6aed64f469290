"""Pre-started measuring workers, ``QLAB_WORKER_POOL=N`` (issue 19 part 5): the dashboard keeps 3 (app.py's default,
one per variant of its default comparison); the CLI, benchmarks and tests start a plain fresh process per measurement
unless the variable is set.

A fresh process per measurement is kept. A pooled process is started with the measuring worker's environment
(given by the engine, ``core.engine.evaluate.fill_pool``: OMP/MKL thread counts, ``OMP_WAIT_POLICY``) in place *before*
torch or ONNX Runtime is imported, imports torch, transformers (and its modeling code), ONNX Runtime and the worker's
entry point (the engine's ``core.engine.runner:main``, named by the engine: the pool imports no engine module itself), says
it is ready, then waits, without using any CPU, for exactly one job, runs it as ``python -m core.engine.runner JOB.json``
would, and exits. It is never reused.

The pool lives in a folder (``<store root>/pool``), so the long-lived process (the web server's job queue, or a
benchmark) keeps it filled while the machine is idle, and the short-lived job child (``python -m core.serving.jobs``) that
measures takes from it:

* ``fill(env, entry, root)`` (the job queue through ``core.engine.evaluate.fill_pool``, at start and after every job)
  starts workers until ``N`` are ready or starting, for the default thread settings; ``wait_ready(root)`` waits until none is still importing, so no import runs
  while a comparison measures (the queue calls it before a job starts);
* a pooled worker, once imported, makes a FIFO ``<key>-<pid>.fifo`` and marks itself ``<key>-<pid>.ready``, where
  ``key`` digests the thread settings it was started with; it blocks reading the FIFO;
* ``take(env, job_path, log_path)`` (``core.engine.evaluate.run_worker``) claims a ready worker of the same key by renaming
  its marker (atomic), writes it the job (paths, the events FIFO, the caller's environment, the caller's pid) and
  returns a handle with the ``LocalProcess`` interface; no ready worker means None, and a fresh process is
  started as before.

The worker then sends its stderr to the job's log and its events to the caller's FIFO, and ends itself if the
caller dies (it is not the caller's child, so ``PR_SET_PDEATHSIG`` is on the pool's owner instead).

    python -m core.execution.pool POOL_DIR MODULE:FUNCTION   # the pooled process itself (started by fill, not by hand)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import local
from .wire import decode

KEY_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
            "OMP_WAIT_POLICY", "KMP_AFFINITY", "OMP_PROC_BIND", "TOKENIZERS_PARALLELISM",
            "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")   # an ISA cap (core/recipes/onednn_isa.py) is read once, at first dispatch
SERVED = "served.jsonl"   # one line per job a pooled worker took
_STARTED: dict[str, list[subprocess.Popen]] = {}   # pool dir -> processes this process started (reaped here)
_FILL = threading.Lock()


DASHBOARD_SIZE = 3   # app.py's default: the default comparison's three variants each start without imports


def size() -> int:
    """How many workers to keep ready (``QLAB_WORKER_POOL``); 0 = no pool (a plain fresh process per measurement)."""
    try:
        return max(0, int(os.environ.get("QLAB_WORKER_POOL") or 0))
    except ValueError:
        return 0


def pool_dir(root: str | os.PathLike | None = None) -> Path:
    from ..paths import store_root

    return store_root(root) / "pool"


def env_key(env: dict) -> str:
    """What must be in place before torch/ONNX Runtime import: a worker serves only a job with the same settings."""
    return hashlib.sha256(json.dumps({k: env.get(k) for k in KEY_VARS}, sort_keys=True).encode()).hexdigest()[:12]


# -- the owner's side: keep the pool filled -----------------------------------------------------------------------
def _live(folder: Path) -> list[subprocess.Popen]:
    procs = [p for p in _STARTED.get(str(folder), []) if p.poll() is None]
    _STARTED[str(folder)] = procs
    return procs


def _pid_of(marker: Path) -> int | None:
    """The worker pid in a marker's name (``<key>-<pid>.ready``, ``.claimed``, ``.fifo``); None for another name."""
    try:
        return int(marker.name.split(".")[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _claimed_pids(folder: Path) -> set[int]:
    return {pid for marker in folder.glob("*.claimed") if (pid := _pid_of(marker)) is not None}


def fill(env: dict, entry: str, root: str | os.PathLike | None = None, n: int | None = None) -> int:
    """Start workers until ``n`` (``QLAB_WORKER_POOL``) are ready or starting; returns how many were started.

    ``env`` is a fresh worker's environment (its thread settings) and ``entry`` the ``"module:function"`` the worker
    runs with the job file's path as its one argument (the engine's, ``core.engine.runner:main``): the pool knows neither."""
    n = size() if n is None else n
    if not n:
        return 0
    with _FILL:
        return _fill(pool_dir(root), n, dict(env), entry)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: Path) -> None:
    """Remove the markers and FIFOs of workers that are gone (a server killed with its pool leaves them behind)."""
    for marker in [*folder.glob("*.ready"), *folder.glob("*.fifo")]:
        if not _alive(_pid_of(marker)):
            with contextlib.suppress(OSError):
                marker.unlink()


def _fill(folder: Path, n: int, env: dict, entry: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder)
    claimed = _claimed_pids(folder)
    for pid in claimed - {p.pid for p in _live(folder)}:   # a taker that died before cleaning up
        for marker in folder.glob(f"*-{pid}.claimed"):
            with contextlib.suppress(OSError):
                marker.unlink()
    waiting = [p for p in _live(folder) if p.pid not in claimed]
    env["QLAB_CACHE_DIR"] = str(folder.parent)
    started = 0
    log = open(folder / "pool.log", "ab")
    try:
        for _ in range(n - len(waiting)):
            proc = subprocess.Popen([sys.executable, "-m", "core.execution.pool", str(folder), entry], cwd=str(local.PROJECT_ROOT), env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                    preexec_fn=local.die_with_parent if sys.platform.startswith("linux") else None)
            _STARTED.setdefault(str(folder), []).append(proc)
            started += 1
    finally:
        log.close()
    return started


def ready_count(root: str | os.PathLike | None = None) -> int:
    """How many pooled workers are ready now (seen from any process: the markers in the pool folder)."""
    return sum(_alive(_pid_of(m)) for m in pool_dir(root).glob("*.ready"))


def served_count(root: str | os.PathLike | None = None) -> int:
    """How many jobs pooled workers have taken from this pool folder, ever."""
    path = pool_dir(root) / SERVED
    return sum(1 for _ in path.open(encoding="utf-8")) if path.is_file() else 0


def wait_ready(root: str | os.PathLike | None = None, timeout: float = 120.0) -> float:
    """Wait until every worker this process started has finished importing (or died); returns the seconds waited."""
    folder = pool_dir(root)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ready = {_pid_of(m) for m in folder.glob("*.ready")} | _claimed_pids(folder)
        if all(p.pid in ready for p in _live(folder)):
            break
        time.sleep(0.05)
    return time.monotonic() - t0


def close(root: str | os.PathLike | None = None) -> None:
    """End the workers this process started (their markers go with them)."""
    folder = pool_dir(root)
    for proc in _live(folder):
        local.kill_tree(proc.pid, grace_s=1.0)
    for marker in list(folder.glob("*.ready")) + list(folder.glob("*.fifo")):
        with contextlib.suppress(OSError):
            marker.unlink()


# -- the taker's side ---------------------------------------------------------------------------------------------
class PooledProcess:
    """A claimed pre-started worker, followed like a ``local.LocalProcess`` (it is not our child: no exit code)."""

    def __init__(self, pid: int, events_fifo: Path, claimed: Path):
        self.pid = pid
        self._fifo, self._claimed = events_fifo, claimed
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True, name=f"qlab-pool-events:{pid}").start()

    def _pump(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            with open(self._fifo, encoding="utf-8") as stream:   # blocks until the worker opens it
                for line in stream:
                    event = decode(line)
                    if event is not None:
                        self._lines.put(event)
        self._lines.put(None)

    def next_event(self, timeout: float):
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            if self.running():
                return False
        try:   # it has ended: what it wrote last may still be in the FIFO
            return self._lines.get(timeout=1.0)
        except queue.Empty:
            return None

    def running(self) -> bool:
        import psutil

        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def wait(self) -> int:
        while self.running():
            time.sleep(0.02)
        self._forget()
        return 0   # the result file says how it went

    def cancel(self, grace_s: float = local.KILL_AFTER_S) -> None:
        local.kill_tree(self.pid, grace_s)
        self._forget()

    def _forget(self) -> None:
        for path in (self._fifo, self._claimed):
            with contextlib.suppress(OSError):
                path.unlink()


def take(env: dict, job_path: str, log_path: str, root: str | os.PathLike | None = None) -> PooledProcess | None:
    """Hand ``job_path`` to a ready pooled worker started with the same thread settings as ``env``; None if there is none."""
    if not size():
        return None
    folder = pool_dir(root)
    key = env_key(env)
    for marker in sorted(folder.glob(f"{key}-*.ready")):
        pid = _pid_of(marker)
        if pid is None:
            continue
        claimed = marker.with_suffix(".claimed")
        try:
            os.rename(marker, claimed)   # atomic: one taker per worker
        except OSError:
            continue
        try:
            fd = os.open(folder / f"{key}-{pid}.fifo", os.O_WRONLY | os.O_NONBLOCK)   # ENXIO: the worker is gone
        except OSError:
            with contextlib.suppress(OSError):
                claimed.unlink()
            continue
        events = Path(str(job_path) + ".events")
        os.mkfifo(events)
        spec = {"job": str(job_path), "log": str(log_path), "events": str(events), "env": env, "owner": os.getpid()}
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(spec) + "\n")
        return PooledProcess(pid, events, claimed)
    return None


# -- the pooled process -------------------------------------------------------------------------------------------
def _preimport(entry: str):
    """Import what a worker imports (the libraries first, then the entry point's module); returns the entry function."""
    import torch  # noqa: F401  (first, as in a fresh worker: the OpenMP runtime torch brings is the one loaded)
    import transformers
    import transformers.activations
    import transformers.modeling_utils  # noqa: F401

    from .worker import resolve_worker

    main = resolve_worker(entry)   # the engine's worker module and what it imports (bench, sources, store, variants, ...)
    with contextlib.suppress(Exception):
        from transformers.models.bert import modeling_bert  # noqa: F401  (the bundled models' architecture)
    import onnxruntime  # noqa: F401

    return main


def serve(folder: str, entry: str) -> int:
    """Import, mark ready, wait for one job on the FIFO, run it with the job's log and events, exit without teardown."""
    folder_path = Path(folder)
    main = _preimport(entry)
    key, pid = env_key(dict(os.environ)), os.getpid()
    fifo = folder_path / f"{key}-{pid}.fifo"
    os.mkfifo(fifo)
    marker = folder_path / f"{key}-{pid}.ready"
    marker.write_text("")
    try:
        with open(fifo, encoding="utf-8") as inbox:   # blocks (no CPU) until a taker opens it
            line = inbox.readline()
    finally:
        with contextlib.suppress(OSError):
            fifo.unlink()
    if not line.strip():
        return 0
    spec = json.loads(line)
    with open(folder_path / SERVED, "a", encoding="utf-8") as served:   # a record of hand-overs (benchmarks, load test)
        served.write(json.dumps({"pid": pid, "job": spec["job"], "t": time.time()}) + "\n")
    fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    out = os.open(spec["events"], os.O_WRONLY)
    os.dup2(out, 1)
    os.close(out)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    os.environ.update({k: v for k, v in spec["env"].items() if k not in KEY_VARS})
    owner = int(spec["owner"])

    def watchdog():   # the taker died (cancel kills us directly): nobody reads the result
        while True:
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(4)
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()
    code = main([spec["job"]])
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(code)   # the result is written and the last event sent: skip tearing torch down


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], sys.argv[2]))
