"""Where the lab lives on disk, and one way to write a file whole. The lowest module: it imports nothing from the lab.

* ``PROJECT_ROOT``   the checkout (the folder holding ``core/``), put on ``PYTHONPATH`` for child processes.
* ``default_store_root()``   the model store's folder: ``QLAB_CACHE_DIR``, else ``<project>/cache``.
* ``store_root(root)``   ``root`` when given, else the default: saved runs, exports and locks live under it.
* ``atomic_write_text(path, text)``   a temporary file beside ``path``, then a rename: a reader never sees half a file.
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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole: a temporary file in the same folder (unique per process and call), then a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
