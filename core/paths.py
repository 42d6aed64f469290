"""Where the lab lives on disk, and one way to write a file whole. The lowest module: it imports nothing from the lab.

* ``PROJECT_ROOT``   the checkout (the folder holding ``core/``), put on ``PYTHONPATH`` for child processes.
* ``default_store_root()``   the model store's folder: ``QLAB_CACHE_DIR``, else ``<project>/cache``.
* ``store_root(root)``   ``root`` when given, else the default: saved runs, exports and locks live under it.
* ``atomic_write_text(path, text)``   a temporary file beside ``path``, flushed to disk, then a rename and the folder
  flushed: a reader never sees half a file, and a crash leaves the old file or the new one (the one writer of the lab).
* ``fsync_path(path, directory)``   flush a file or a folder's entries to disk.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT_ROOT / "data" / "samples"   # the bundled sample data: the one place that names it


def default_store_root() -> Path:
    return Path(os.environ.get("QLAB_CACHE_DIR") or PROJECT_ROOT / "cache")


def store_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else default_store_root()


def fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush ``path`` (a file, or with ``directory`` a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole: a temporary file in the same folder (unique per process and call), flushed to
    disk, renamed over ``path``, and the folder flushed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, directory=True)
