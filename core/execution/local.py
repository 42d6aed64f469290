"""The local launcher: a fresh Python process on this machine that speaks the event protocol on stdout.

* Every process starts in its own session (its own process group), so a cancel, or the end of the job that
  started it, can end it and everything it started; psutil walks the tree for grandchildren that made
  sessions of their own.
* On Linux the child also asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a kill -9
  of the web server or of a job process cannot leave a measurement running on a machine the lock says is free.
* Events are read on a thread and handed over through a queue, so ``should_stop`` is checked every ``poll_s``
  seconds even while the child prints nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from ..paths import PROJECT_ROOT
from .wire import Cancelled, decode

KILL_AFTER_S = 8.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def project_env(extra: dict | None = None) -> dict:
    """This process's environment with the project importable, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(PROJECT_ROOT)])
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


class LocalProcess:
    """A handle on one launched process: its events, its end, its cancellation."""

    def __init__(self, argv: list[str], *, env: dict | None = None, log_path: str | os.PathLike | None = None, stdin=subprocess.DEVNULL):
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        preexec = die_with_parent if sys.platform.startswith("linux") else None
        self.proc = subprocess.Popen(argv, cwd=str(PROJECT_ROOT), env=env if env is not None else project_env(), stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, start_new_session=True,
                                     preexec_fn=preexec)
        self.pid = self.proc.pid
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True, name=f"qlab-events:{self.pid}").start()
        _LIVE.add(self)

    def _pump(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stdout:
                event = decode(line)
                if event is not None:
                    self._lines.put(event)
        self._lines.put(None)

    def next_event(self, timeout: float) -> dict | None | bool:
        """The next event; None once the output has ended; False when nothing came within ``timeout``."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return False

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self) -> int:
        code = self.proc.wait()
        self._close()
        return code

    def cancel(self, grace_s: float = KILL_AFTER_S) -> None:
        """SIGTERM the whole tree, then SIGKILL whatever is still alive after ``grace_s``."""
        kill_tree(self.pid, grace_s)
        self._close()

    def _close(self) -> None:
        _LIVE.discard(self)
        if self.log is not subprocess.DEVNULL:
            with contextlib.suppress(OSError):
                self.log.close()


def kill_tree(pid: int, grace_s: float = KILL_AFTER_S) -> None:
    """End ``pid`` and every process below it: SIGTERM to all, SIGKILL to the survivors after ``grace_s``."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root] + root.children(recursive=True)
    except psutil.Error:
        return
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=2.0)


def launch(module: str, *args: str, env: dict | None = None, log_path: str | os.PathLike | None = None) -> LocalProcess:
    """Start ``python -m module args...`` as a :class:`LocalProcess`."""
    return LocalProcess([sys.executable, "-m", module, *map(str, args)], env=env, log_path=log_path)


def run(module: str, *args: str, env: dict | None = None, log_path: str | os.PathLike | None = None,
        on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
        poll_s: float = 0.2, grace_s: float = KILL_AFTER_S, on_start: Callable[[LocalProcess], None] | None = None,
        handle: LocalProcess | None = None) -> int:
    """Run ``python -m module args...`` to its end, passing its events on; returns its exit code.

    ``handle``: a process already started (a pre-started worker of ``core.execution.pool`` that has its job) to
    follow instead of launching one.

    When ``should_stop()`` turns true the whole process tree is ended and :class:`Cancelled` is raised.
    """
    if handle is None:
        handle = launch(module, *args, env=env, log_path=log_path)
    if on_start:
        on_start(handle)
    try:
        while True:
            if should_stop and should_stop():
                handle.cancel(grace_s)
                raise Cancelled("cancelled")
            event = handle.next_event(poll_s)
            if event is None:
                break
            if event is not False and on_event:
                on_event(event)
        deadline = time.monotonic() + 30
        while handle.running() and time.monotonic() < deadline:   # output closed: the process is ending
            if should_stop and should_stop():
                handle.cancel(grace_s)
                raise Cancelled("cancelled")
            time.sleep(0.05)
        return handle.wait()
    finally:
        if handle.running():
            handle.cancel(grace_s=1.0)


_LIVE: set[LocalProcess] = set()


def end_all() -> None:
    """End every process this module started that is still running (shutdown, tests)."""
    for handle in list(_LIVE):
        with contextlib.suppress(Exception):
            handle.cancel(grace_s=1.0)


import atexit  # noqa: E402

atexit.register(end_all)
