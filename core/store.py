"""The on-disk model store: built variants and bundled models, kept once and found again.

Layout under the store root (``cache/`` by default, ``QLAB_CACHE_DIR`` moves it):

    index/                 diskcache with JSON values only (key -> entry metadata); nothing is unpickled
    artifacts/<key>/       one folder per entry: safetensors / .onnx / JSON files and manifest.json
    locks/<key>.lock       fcntl locks, so two processes asking for one entry build it once
    tmp/                   folders being built; renamed into artifacts/ only when complete

A build writes into ``tmp/`` and is renamed into place in one step; the index entry is written
after the rename. A build killed halfway leaves at most a folder in ``tmp/`` (swept later), never
an entry that loads. Past the size limit the least recently used entries are evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import diskcache

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZE_LIMIT = 10 * 1024**3
MANIFEST = "manifest.json"


def default_root() -> Path:
    return Path(os.environ.get("QLAB_CACHE_DIR") or PROJECT_ROOT / "cache")


def default_size_limit() -> int:
    raw = os.environ.get("QLAB_CACHE_LIMIT_BYTES")
    return int(raw) if raw else DEFAULT_SIZE_LIMIT


def make_key(**parts) -> str:
    """A stable key from JSON-able parts (fingerprint, recipe, params, library versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@dataclass
class StoreEntry:
    key: str
    path: Path
    meta: dict
    cache_hit: bool

    @property
    def size_bytes(self) -> int:
        return int(self.meta.get("size_bytes", 0))


class ModelStore:
    def __init__(self, root: str | Path | None = None, size_limit: int | None = None):
        self.root = Path(root) if root else default_root()
        self.size_limit = size_limit if size_limit is not None else default_size_limit()
        for sub in ("artifacts", "locks", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.index = diskcache.Cache(str(self.root / "index"), disk=diskcache.JSONDisk)
        self.sweep_tmp()

    # -- paths -------------------------------------------------------------
    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    @contextlib.contextmanager
    def _locked(self, key: str):
        with open(self.root / "locks" / f"{key}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading -----------------------------------------------------------
    def lookup(self, key: str) -> StoreEntry | None:
        """The complete entry for ``key``, or None. Touches its last-use time."""
        meta = self.index.get(key)
        path = self.artifact_dir(key)
        if meta is None or not (path / MANIFEST).is_file():
            return None
        meta["last_used"] = time.time()
        self.index.set(key, meta)
        return StoreEntry(key, path, meta, cache_hit=True)

    def __contains__(self, key: str) -> bool:
        return self.index.get(key) is not None and (self.artifact_dir(key) / MANIFEST).is_file()

    def entries(self) -> list[dict]:
        """Every stored entry's metadata, most recently used first."""
        out = []
        for key in list(self.index.iterkeys()):
            meta = self.index.get(key)
            if meta is not None:
                out.append({"key": key, **meta})
        return sorted(out, key=lambda m: m.get("last_used", 0), reverse=True)

    def total_bytes(self) -> int:
        return sum(int(m.get("size_bytes", 0)) for m in self.entries())

    # -- writing -----------------------------------------------------------
    def get_or_build(self, key: str, build: Callable[[Path], dict | None], describe: dict | None = None) -> StoreEntry:
        """Return the stored entry for ``key``, building it with ``build(tmp_dir)`` if missing.

        ``build`` writes files into the folder it is given and may return extra metadata.
        Concurrent callers (threads or processes) wait on a lock; only the first builds.
        """
        found = self.lookup(key)
        if found:
            return found
        with self._locked(key):
            found = self.lookup(key)
            if found:
                return found
            tmp = self.root / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                started = time.perf_counter()
                extra = build(tmp) or {}
                build_s = time.perf_counter() - started
                meta = {**(describe or {}), **extra, "build_s": round(build_s, 3)}
                (tmp / MANIFEST).write_text(json.dumps(meta, indent=2, default=str))
                final = self.artifact_dir(key)
                if final.exists():  # left by a process killed between rename and index write
                    shutil.rmtree(final)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            now = time.time()
            meta.update(size_bytes=folder_size(final), created=now, last_used=now)
            self.index.set(key, meta)
        self.evict(keep=key)
        return StoreEntry(key, final, meta, cache_hit=False)

    def delete(self, key: str) -> bool:
        with self._locked(key):
            existed = self.index.pop(key, None) is not None
            shutil.rmtree(self.artifact_dir(key), ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / "locks" / f"{key}.lock").unlink()
        return existed

    def clear(self) -> int:
        keys = [e["key"] for e in self.entries()]
        for key in keys:
            self.delete(key)
        self.sweep_tmp()
        return len(keys)

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries until the store fits its size limit."""
        evicted = []
        entries = sorted(self.entries(), key=lambda m: m.get("last_used", 0))
        total = sum(int(m.get("size_bytes", 0)) for m in entries)
        for meta in entries:
            if total <= self.size_limit:
                break
            if meta["key"] == keep:
                continue
            self.delete(meta["key"])
            total -= int(meta.get("size_bytes", 0))
            evicted.append(meta["key"])
        return evicted

    def sweep_tmp(self) -> int:
        """Delete half-built folders whose building process is gone (a killed build)."""
        removed = 0
        for path in (self.root / "tmp").iterdir():
            pid = path.name.split(".")[1] if path.name.count(".") >= 2 else ""
            if not (pid.isdigit() and _pid_alive(int(pid))):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
