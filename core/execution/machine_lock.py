"""One measurement at a time per machine: an ``fcntl`` lock on ``<store root>/locks/evaluation.lock``.

The dashboard's queue, the CLI and a Ray node's runner all take it before measuring, so two processes (two
Streamlit servers, a CLI run beside the server, two Ray nodes started on one host that share a store) never time
variants on the same cores at once. The holder writes who it is beside the lock, so a waiter can say what it
waits for. The lock file itself is never unlinked (unlinking a flock file lets two holders in at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable

from .wire import Cancelled


def lock_paths(root: str | os.PathLike) -> tuple[Path, Path]:
    folder = Path(root) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "evaluation.lock", folder / "evaluation.holder.json"


def read_holder(root: str | os.PathLike) -> dict | None:
    """Who holds the lock right now ({"pid", "job", "model", "since", "by"}), or None (free, or left by a dead process)."""
    try:
        holder = json.loads(lock_paths(root)[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return holder


def describe_holder(holder: dict | None) -> str | None:
    if not holder:
        return None
    where = "this server" if holder.get("pid") == os.getpid() else f"another process (pid {holder.get('pid')}"
    what = holder.get("by") or "evaluation"
    return f"another {what} in {where}, {holder.get('model')})" if where != "this server" else f"another {what} in this server ({holder.get('model')})"


@contextlib.contextmanager
def machine_lock(root: str | os.PathLike, holder: dict, *, should_stop: Callable[[], bool] | None = None,
                 on_wait: Callable[[str], None] | None = None, poll_s: float = 0.2):
    """Hold the machine's measurement lock; wait (cancellably, telling ``on_wait`` for whom) while another holds it."""
    lock_path, holder_path = lock_paths(root)
    fh = open(lock_path, "a+")
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if should_stop and should_stop():
                    raise Cancelled("cancelled while waiting for the machine") from None
                if on_wait:
                    on_wait("waiting for " + (describe_holder(read_holder(root)) or "another evaluation on this machine") + " to finish")
                time.sleep(poll_s)
        tmp = holder_path.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"pid": os.getpid(), "since": time.time(), **holder}), encoding="utf-8")
            os.replace(tmp, holder_path)
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
