"""Scratch folders that outlive nobody: uploads, job folders and run folders are claimed by the process that made
them, and swept when that process is gone (a kill -9 of the server or of a job leaves no uploaded text behind).

A folder's claim is ``.owner.json``: host, pid and the process's start time (a reused pid is not its owner). A
folder whose owner runs on another host (a store shared by two containers) is left alone until it is older than
``STALE_AFTER_S``; an unclaimed folder is swept once it is that old.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

OWNER_FILE = ".owner.json"
STALE_AFTER_S = 24 * 3600.0


def _me() -> dict:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def claim(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (if needed) and mark this process as its owner."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER_FILE).write_text(json.dumps(_me()), encoding="utf-8")
    return folder


def _owner_alive(owner: dict) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(owner["pid"]))
        return abs(proc.create_time() - float(owner["started"])) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def abandoned(folder: Path, now: float | None = None) -> bool:
    """True when nobody alive owns ``folder`` (see the module docstring)."""
    now = now or time.time()
    try:
        age = now - folder.stat().st_mtime
    except OSError:
        return False
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):   # unclaimed (or a claim cut short): only age tells
        return age > STALE_AFTER_S
    if owner.get("host") != socket.gethostname():
        return age > STALE_AFTER_S
    return not _owner_alive(owner)


def sweep(parent: str | os.PathLike, prefix: str = "") -> list[str]:
    """Remove the abandoned folders directly under ``parent`` whose names start with ``prefix``; returns their names."""
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for folder in parent.iterdir():
        if folder.is_dir() and folder.name.startswith(prefix) and abandoned(folder):
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)
                removed.append(folder.name)
    return removed
