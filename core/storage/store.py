"""The on-disk model store: built variants and bundled models, kept once, checked, and found again.

Layout under the store root (``cache/`` by default, ``QLAB_CACHE_DIR`` moves it):

    index/                 diskcache with JSON values only (key -> entry metadata); nothing is unpickled
    artifacts/<key>/       one folder per entry: safetensors / .onnx / JSON files and manifest.json
    locks/<key>.lock       filelock locks (never unlinked), so two processes asking for one entry build it once
    leases/<key>.<token>   leases: files a live holder touches every few seconds (see ``Lease``)
    tmp/<key>.<token>/     folders being built, each under the lease of the same name
    trash/                 entries being removed (renamed here first, then deleted)

Integrity. ``manifest.json`` records every file of an entry with its size and xxh3-128 hash. ``verify_entry``
checks them (and that no unlisted weight file sits beside them); loading paths verify before use
(``get_or_build(verify=True)``, ``lookup(verify=True)``). A damaged entry is dropped and rebuilt, and the new
``StoreEntry.damage`` says what was wrong so the report can say so. Manifests written before hashes existed
cannot be verified: they count as damaged and the entry is rebuilt once.

Publishing is atomic and durable: the builder writes into ``tmp/``; every file is hashed and fsynced, the
manifest written and fsynced, the folder fsynced, renamed into ``artifacts/`` (parent fsynced), and only then
indexed. A process killed before the rename leaves a temp folder (swept when its lease goes stale); killed after
it leaves an unindexed folder that the next builder of that key verifies and adopts (or removes).

Leases. Entries in use are leased (``with store.lease(key): ...``) and never evicted; bundled models
(``kind == "bundled-model"``, or ``pinned`` in their metadata) are never evicted. A lease is live while its file
was touched within ``lease_s`` seconds (``QLAB_STORE_LEASE_S``, default 180): a per-process heartbeat thread
touches held leases. Liveness is judged by age, never by PID, so stores shared between containers work.

Size. The limit (``QLAB_CACHE_LIMIT_BYTES``, default 10 GB) counts everything under the root (index, runs,
uploads, temp builds), and least recently used entries are evicted until the root fits or only protected
entries remain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import diskcache
import filelock
import xxhash

from ..errors import QlabError
from ..paths import atomic_write_text, default_store_root, fsync_path

DEFAULT_SIZE_LIMIT = 10 * 1024**3
DEFAULT_LEASE_S = 180.0
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2
HASH_NAME = "xxh3_128"
PINNED_KINDS = frozenset({"bundled-model"})          # sources other entries are built from: never evicted
WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".data", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".h5", ".msgpack", ".gguf", ".pb")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_CHUNK = 1 << 20


class DamagedEntry(QlabError):
    """A stored entry failed verification and could not be rebuilt where it was asked for (it has been removed)."""


class EntryInUse(QlabError):
    """An entry cannot be deleted because a live lease holds it."""


def default_root() -> Path:
    return default_store_root()


def default_size_limit() -> int:
    raw = os.environ.get("QLAB_CACHE_LIMIT_BYTES")
    return int(raw) if raw else DEFAULT_SIZE_LIMIT


def default_lease_s() -> float:
    raw = os.environ.get("QLAB_STORE_LEASE_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_LEASE_S
    except ValueError:
        value = DEFAULT_LEASE_S
    return value if value > 0 else DEFAULT_LEASE_S


def make_key(**parts) -> str:
    """A stable key from JSON-able parts (fingerprint, recipe, params, library versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def folder_size(path: Path) -> int:
    """Bytes of every regular file under ``path`` (apparent sizes; symlinks are not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                total += st.st_size
    return total


def file_digest(path: Path) -> str:
    """xxh3-128 of a file's bytes, read in 1 MiB chunks (no mmap: a file truncated meanwhile must not SIGBUS us)."""
    digest = xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def _manifest_digest(manifest: dict) -> str:
    """xxh3-128 of the manifest's own content (canonical JSON, without this field): a manifest edited by hand fails."""
    body = {k: v for k, v in manifest.items() if k != "self_" + HASH_NAME}
    return xxhash.xxh3_128(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def write_json_atomic(path: Path, data) -> None:
    """``data`` as JSON at ``path``, written whole and flushed to disk (core.paths.atomic_write_text)."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(posix relative path, absolute path) of every non-directory under ``root``, symlinks included, not followed."""
    for dirpath, dirs, files in os.walk(root):
        base = Path(dirpath)
        for name in files + [d for d in dirs if (base / d).is_symlink()]:
            full = base / name
            yield full.relative_to(root).as_posix(), full


# -- leases -----------------------------------------------------------------------------------------
class _Heartbeat:
    """One daemon thread per process that touches every lease file this process holds."""

    def __init__(self):
        self._paths: dict[str, float] = {}      # lease file -> heartbeat interval
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, path: str, interval: float) -> None:
        with self._lock:
            self._paths[path] = interval
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="qlab-store-leases", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, path: str) -> None:
        with self._lock:
            self._paths.pop(path, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                items = list(self._paths.items())
            interval = min((i for _, i in items), default=30.0)
            self._wake.wait(interval)
            self._wake.clear()
            for path, _ in items:
                with self._lock:
                    if path not in self._paths:
                        continue
                try:
                    os.utime(path)
                except FileNotFoundError:  # swept as stale while this process stalled: claim it again
                    with contextlib.suppress(OSError), open(path, "a"):
                        pass
                except OSError:
                    pass

    def reset_after_fork(self) -> None:  # a forked child holds none of its parent's leases
        self._paths, self._lock, self._wake, self._thread = {}, threading.Lock(), threading.Event(), None


_HEARTBEAT = _Heartbeat()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HEARTBEAT.reset_after_fork)


def _drop_lease_file(path: str, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked child exiting must not drop its parent's leases
        return
    _HEARTBEAT.remove(path)
    with contextlib.suppress(OSError):
        os.unlink(path)


class Lease:
    """A live claim on a store key: while held, the entry is never evicted (nor its temp build swept).

    Use as a context manager or call ``release()``; a lease that is garbage-collected, or whose process exits,
    is released too, and one whose process is killed goes stale ``lease_s`` seconds after its last heartbeat.
    """

    def __init__(self, path: Path, key: str, lease_s: float):
        self.path, self.key, self.token = Path(path), key, Path(path).name.split(".", 1)[1]
        path_s = str(self.path)
        with open(path_s, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        _HEARTBEAT.add(path_s, max(0.05, lease_s / 6.0))
        self._finalizer = weakref.finalize(self, _drop_lease_file, path_s, os.getpid())

    @property
    def released(self) -> bool:
        return not self._finalizer.alive

    def release(self) -> None:
        self._finalizer()

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# -- entries ----------------------------------------------------------------------------------------
@dataclass
class StoreEntry:
    key: str
    path: Path
    meta: dict
    cache_hit: bool
    damage: list[str] = field(default_factory=list)   # problems of the copy this one replaced (empty: none)
    verify_s: float | None = None                     # seconds spent verifying it here (None: not verified)

    @property
    def size_bytes(self) -> int:
        return int(self.meta.get("size_bytes", 0))

    def describe(self) -> str:
        label = self.meta.get("label") or self.meta.get("recipe") or self.meta.get("kind") or "entry"
        model = str(self.meta.get("model") or "")
        if model.startswith(("/", "~", ".")):  # a local folder: its name, not a server path
            model = Path(model).name or "a local model"
        return f"{label} of {model}" if model else f"{label} ({self.key[:12]})"


def _describe_meta(key: str, meta: dict | None) -> str:
    return StoreEntry(key, Path("."), meta or {}, False).describe()


def damage_note(damage: list[str]) -> str:
    """One line for a report: the stored copy was damaged and rebuilt."""
    more = f" and {len(damage) - 1} more problem{'s' if len(damage) > 2 else ''}" if len(damage) > 1 else ""
    return f"The stored artifact failed verification ({damage[0]}{more}); it was removed and rebuilt before this measurement."


class ModelStore:
    def __init__(self, root: str | Path | None = None, size_limit: int | None = None, lease_s: float | None = None):
        self.root = Path(root) if root else default_root()
        self.size_limit = size_limit if size_limit is not None else default_size_limit()
        self.lease_s = float(lease_s) if lease_s else default_lease_s()
        for sub in ("artifacts", "locks", "leases", "tmp", "trash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.index = diskcache.Cache(str(self.root / "index"), disk=diskcache.JSONDisk)
        self.sweep_tmp()

    # -- paths and locks -------------------------------------------------------------------------------
    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"store keys are 1-128 letters, digits, '-' or '_': {key!r}")
        return key

    def _lock(self, key: str) -> filelock.FileLock:
        # filelock (flock underneath) never unlinks the file: no two-inode race between builders
        return filelock.FileLock(str(self.root / "locks" / f"{self._check_key(key)}.lock"), thread_local=False)

    @contextlib.contextmanager
    def _locked(self, key: str):
        with self._lock(key):
            yield

    @contextlib.contextmanager
    def _try_locked(self, key: str):
        """Yields True holding the key's lock, or False at once if someone else holds it."""
        lock = self._lock(key)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    # -- leases --------------------------------------------------------------------------------------
    def lease(self, key: str) -> Lease:
        """Lease ``key`` (``with store.lease(key): load and use it``). Taken under the key's lock, so an
        eviction either saw the lease or finished removing the entry before it was taken."""
        with self._locked(key):
            return self._new_lease(key)

    def _new_lease(self, key: str) -> Lease:
        return Lease(self.root / "leases" / f"{self._check_key(key)}.{uuid.uuid4().hex[:12]}", key, self.lease_s)

    def _lease_age(self, path: Path, now: float | None = None) -> float | None:
        try:
            return (now or time.time()) - path.stat().st_mtime
        except OSError:
            return None

    def leases(self) -> list[dict]:
        """Every live lease: key, token, age in seconds (since the last heartbeat) and the holder's pid/host."""
        out, now = [], time.time()
        for path in (self.root / "leases").iterdir():
            age = self._lease_age(path, now)
            if age is None or age > self.lease_s or "." not in path.name:
                continue
            key, token = path.name.split(".", 1)
            info = {}
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(path.read_text(encoding="utf-8") or "{}")
            out.append({"key": key, "token": token, "age_s": round(age, 3), "pid": info.get("pid"), "host": info.get("host"), "since": info.get("since")})
        return out

    def leased_keys(self) -> set[str]:
        return {lease["key"] for lease in self.leases()}

    def is_leased(self, key: str) -> bool:
        now = time.time()
        for path in (self.root / "leases").glob(f"{self._check_key(key)}.*"):
            age = self._lease_age(path, now)
            if age is not None and age <= self.lease_s:
                return True
        return False

    # -- reading -------------------------------------------------------------------------------------
    def lookup(self, key: str, *, verify: bool = False) -> StoreEntry | None:
        """The complete entry for ``key``, or None. Touches its last-use time.

        With ``verify``, the entry's files are checked against its manifest first; a damaged entry is removed and
        ``DamagedEntry`` raised (this path cannot rebuild it: ``get_or_build`` does).
        """
        meta = self.index.get(self._check_key(key))
        path = self.artifact_dir(key)
        if meta is None or not (path / MANIFEST).is_file():
            return None
        verify_s = None
        if verify:
            started = time.perf_counter()
            problems = self.verify_entry(key)
            verify_s = time.perf_counter() - started
            if problems and self.drop_if_damaged(key):  # re-checked under the lock: a rebuild may have just replaced it
                raise DamagedEntry(f"The stored {_describe_meta(key, meta)} failed verification ({problems[0]}) and was removed; "
                                   "build it again (run a comparison with it).")
        meta["last_used"] = time.time()
        self.index.set(key, meta)
        return StoreEntry(key, path, meta, cache_hit=True, verify_s=verify_s)

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

    def entries_bytes(self) -> int:
        """Bytes of the indexed entries only."""
        return sum(int(m.get("size_bytes", 0)) for m in self.entries())

    def total_bytes(self) -> int:
        """Bytes of everything under the root (entries, index, temp builds, runs, uploads): what the limit counts."""
        return folder_size(self.root)

    # -- verification ----------------------------------------------------------------------------------
    def read_manifest(self, key: str) -> dict:
        return json.loads((self.artifact_dir(key) / MANIFEST).read_text(encoding="utf-8"))

    def verify_entry(self, key: str) -> list[str]:
        """One line per problem of ``key`` (empty: intact). Intact means: every file listed in the manifest exists as a
        regular file with the recorded size and hash, and no weight file lies there unlisted."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            return ["not a store key"]
        path = self.artifact_dir(key)
        if not path.is_dir():
            return ["not in the store" if self.index.get(key) is None else "artifact folder is missing"]
        try:
            manifest = self.read_manifest(key)
        except FileNotFoundError:
            return [f"{MANIFEST} is missing"]
        except (OSError, ValueError) as err:
            return [f"{MANIFEST} cannot be read ({err.__class__.__name__})"]
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict):
            return [f"{MANIFEST} records no file sizes or hashes (written by an older version of the lab): cannot be verified"]
        if manifest.get("hash") != HASH_NAME:
            return [f"{MANIFEST} uses an unknown hash '{manifest.get('hash')}'"]
        problems = []
        if manifest.get("self_" + HASH_NAME) != _manifest_digest(manifest):
            problems.append(f"{MANIFEST}: its content differs from its own hash (edited or corrupted)")
        for rel, rec in sorted(files.items()):
            full = path / rel
            if rel.startswith("/") or ".." in Path(rel).parts or not isinstance(rec, dict):
                problems.append(f"{rel}: not a valid manifest record")
                continue
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                problems.append(f"{rel}: missing")
                continue
            if not os.path.isfile(full) or os.path.islink(full):
                problems.append(f"{rel}: not a regular file")
                continue
            if st.st_size != rec.get("size"):
                problems.append(f"{rel}: {st.st_size} bytes, the manifest says {rec.get('size')} (truncated or replaced)")
                continue
            try:
                if file_digest(full) != rec.get(HASH_NAME):
                    problems.append(f"{rel}: content differs from the manifest's hash (corrupted)")
            except OSError as err:
                problems.append(f"{rel}: cannot be read ({err.__class__.__name__})")
        for rel, _full in _walk_files(path):
            if rel != MANIFEST and rel not in files and rel.lower().endswith(WEIGHT_SUFFIXES):
                problems.append(f"{rel}: weight file not listed in the manifest")
        return problems

    def drop_if_damaged(self, key: str) -> list[str]:
        """Under the key's lock: verify ``key`` and remove it if damaged (even if leased: nothing good can be read from it).
        Returns the problems found (empty: intact, kept)."""
        with self._locked(key):
            problems = self.verify_entry(key)
            if problems and problems != ["not in the store"]:
                self._drop(key)
        return problems

    def repair(self, key: str) -> bool:
        """Under the key's lock: remove ``key`` if damaged, or index an unindexed folder again if it verifies (else
        remove it). True if anything was changed; removed entries are rebuilt on their next use."""
        with self._locked(key):
            if self.index.get(key) is None and self._adopt_orphan(key) is not None:
                if not self.verify_entry(key):
                    return True
            problems = self.verify_entry(key)
            if problems and problems != ["not in the store"]:
                self._drop(key)
                return True
        return False

    def verify_all(self) -> dict[str, list[str]]:
        """``verify_entry`` for every indexed entry, plus unindexed folders in ``artifacts/`` (left by a publish killed
        between its rename and its index write) that no builder is working on."""
        out = {key: self.verify_entry(key) for key in sorted(self.index.iterkeys())}
        for path in sorted((self.root / "artifacts").iterdir()):
            if path.name in out or not _KEY_RE.match(path.name):
                continue
            with self._try_locked(path.name) as mine:
                if mine and path.exists() and self.index.get(path.name) is None:
                    out[path.name] = ["not in the index (left by an interrupted publish; the next build of this key adopts or removes it)"]
        return out

    # -- writing -------------------------------------------------------------------------------------
    def get_or_build(self, key: str, build: Callable[[Path], dict | None], describe: dict | None = None, *, verify: bool = True) -> StoreEntry:
        """Return the stored entry for ``key``, building it with ``build(tmp_dir)`` if missing or damaged.

        ``build`` writes files into the folder it is given and may return extra metadata. Concurrent callers
        (threads or processes) wait on the key's lock; only the first builds. With ``verify`` (the default) a stored
        entry is checked against its manifest first; a damaged one is dropped and rebuilt, and the returned entry's
        ``damage`` lists what was wrong.
        """
        damage: list[str] = []
        found = self.lookup(key)
        if found is not None:
            if not verify:
                return found
            started = time.perf_counter()
            damage = self.verify_entry(key)
            if not damage:
                found.verify_s = time.perf_counter() - started
                return found
        with self._locked(key):
            found = self.lookup(key) or self._adopt_orphan(key)
            if found is None and self.index.get(key) is not None and self.artifact_dir(key).exists():
                damage = self.verify_entry(key)  # indexed, but its manifest is gone
                self._drop(key)
            if found is not None:
                started = time.perf_counter()
                problems = self.verify_entry(key) if verify else []
                if not problems:  # built, repaired or adopted meanwhile
                    found.verify_s = time.perf_counter() - started if verify else None
                    return found
                damage = problems
                self._drop(key)
            entry = self._build_and_publish(key, build, describe, damage)
        self.evict(keep=key)
        return entry

    def _build_and_publish(self, key: str, build, describe: dict | None, damage: list[str]) -> StoreEntry:
        """Build into a leased temp folder, seal it (hashes + fsync), rename it into place, index it. Caller holds the lock."""
        lease = self._new_lease(key)
        tmp = self.root / "tmp" / lease.path.name
        try:
            tmp.mkdir(parents=True)
            started = time.perf_counter()
            extra = build(tmp) or {}
            build_s = time.perf_counter() - started
            meta = {**(describe or {}), **extra, "build_s": round(build_s, 3)}
            if damage:
                meta["rebuilt_after_damage"] = {"at": time.time(), "problems": damage[:10]}
            self._seal(tmp, key, meta)
            final = self.artifact_dir(key)
            if final.exists():  # an unadoptable leftover: out of the way first
                self._to_trash(final)
            os.rename(tmp, final)
            fsync_path(final.parent, directory=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            lease.release()
            raise
        now = time.time()
        meta.update(size_bytes=folder_size(final), created=now, last_used=now)
        self.index.set(key, meta)
        lease.release()
        return StoreEntry(key, final, meta, cache_hit=False, damage=list(damage))

    def _seal(self, folder: Path, key: str, meta: dict) -> None:
        """Hash and fsync every file in ``folder``, write the manifest (fsynced), fsync every folder in it."""
        files = {}
        dirs = {folder}
        for rel, full in _walk_files(folder):
            if rel == MANIFEST:
                continue
            if full.is_symlink() or not full.is_file():
                raise QlabError(f"The build of {_describe_meta(key, meta)} wrote '{rel}', which is not a regular file; the store keeps regular files only.")
            with open(full, "rb") as fh:
                os.fsync(fh.fileno())
            files[rel] = {"size": full.stat().st_size, HASH_NAME: file_digest(full)}
            dirs.add(full.parent)
        manifest = {"format": MANIFEST_FORMAT, "key": key, "hash": HASH_NAME, "created": time.time(), "files": files, "meta": meta}
        manifest = json.loads(json.dumps(manifest, default=str))  # exactly what is written and read back
        manifest["self_" + HASH_NAME] = _manifest_digest(manifest)
        with open(folder / MANIFEST, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=2, default=str))
            fh.flush()
            os.fsync(fh.fileno())
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_path(d, directory=True)

    def _adopt_orphan(self, key: str) -> StoreEntry | None:
        """An artifacts/<key> folder with no index entry (a publish killed after its rename): index it again from its
        manifest if it is a sealed one (the caller verifies it), else remove it. Caller holds the lock."""
        path = self.artifact_dir(key)
        if self.index.get(key) is not None or not path.is_dir():
            return None
        try:
            manifest = self.read_manifest(key)
        except (OSError, ValueError):
            manifest = None
        if not (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) and isinstance(manifest.get("meta"), dict)):
            self._to_trash(path)
            return None
        now = time.time()
        meta = {**manifest["meta"], "size_bytes": folder_size(path), "created": manifest.get("created", now), "last_used": now, "recovered": True}
        self.index.set(key, meta)
        return StoreEntry(key, path, meta, cache_hit=True)

    def _to_trash(self, path: Path) -> None:
        dest = self.root / "trash" / f"{path.name}.{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, dest)
            shutil.rmtree(dest, ignore_errors=True)

    def _drop(self, key: str) -> None:
        """Remove an entry: folder out of artifacts/ in one rename, then the index entry. Caller holds the lock (or
        is removing a damaged entry, where holding it does not matter: nothing good can be read from it)."""
        self._to_trash(self.artifact_dir(key))
        self.index.pop(key, None)

    def delete(self, key: str, *, force: bool = False) -> bool:
        """Remove ``key``; raises EntryInUse if it is leased (unless ``force``). True if it existed."""
        with self._locked(key):
            if not force and self.is_leased(key):
                raise EntryInUse(f"The stored {_describe_meta(key, self.index.get(key))} is in use by a running job; try again when it finishes.")
            existed = self.index.get(key) is not None or self.artifact_dir(key).exists()
            self._drop(key)
        return existed

    def clear(self) -> int:
        """Delete every entry that is not leased; returns how many were deleted."""
        n = 0
        for entry in self.entries():
            with contextlib.suppress(EntryInUse):
                n += bool(self.delete(entry["key"]))
        self.sweep_tmp()
        return n

    def protected(self, meta: dict) -> bool:
        """Entries eviction never removes: bundled source models, or anything marked pinned."""
        return meta.get("kind") in PINNED_KINDS or bool(meta.get("pinned"))

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries until everything under the root fits the size limit.

        Never removes ``keep``, leased entries (checked under each key's lock), entries being built, or protected ones.
        """
        total = self.total_bytes()
        if total <= self.size_limit:
            return []
        self.sweep_tmp()
        total = self.total_bytes()
        evicted = []
        leased = self.leased_keys()
        for meta in sorted(self.entries(), key=lambda m: m.get("last_used", 0)):
            if total <= self.size_limit:
                break
            key = meta["key"]
            if key == keep or key in leased or self.protected(meta):
                continue
            with self._try_locked(key) as mine:
                if not mine or self.is_leased(key):
                    continue
                size = folder_size(self.artifact_dir(key))
                self._drop(key)
            total -= size
            evicted.append(key)
        return evicted

    def sweep_tmp(self) -> int:
        """Delete temp builds whose lease went stale (no heartbeat for ``lease_s`` seconds), stale lease files, and
        anything left in trash/. By lease age, never by PID: processes in other containers share this store."""
        removed, now = 0, time.time()
        leases = self.root / "leases"
        for path in (self.root / "tmp").iterdir():
            age = self._lease_age(leases / path.name, now)
            if age is None:  # no lease file (older versions, or its lease was swept): the folder's own age
                age = self._lease_age(path, now) or 0.0
            if age > self.lease_s:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()
                removed += 1
        for path in leases.iterdir():
            age = self._lease_age(path, now)
            if age is not None and age > self.lease_s:
                with contextlib.suppress(OSError):
                    path.unlink()
        for path in (self.root / "trash").iterdir():
            shutil.rmtree(path, ignore_errors=True)
        return removed
