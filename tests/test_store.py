"""The model store: round trip, killed builds, one build under concurrency, LRU eviction, listing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.store import ModelStore, make_key

ROOT = Path(__file__).resolve().parent.parent


def write_blob(size: int):
    def build(tmp: Path) -> dict:
        (tmp / "blob.bin").write_bytes(b"x" * size)
        return {"note": "built"}

    return build


def test_round_trip_and_second_ask_is_a_hit(tmp_path):
    store = ModelStore(tmp_path)
    calls = []

    def build(tmp):
        calls.append(1)
        (tmp / "a.json").write_text(json.dumps({"v": 1}))
        return {"extra": 7}

    first = store.get_or_build("k1", build, {"recipe": "fp32"})
    again = ModelStore(tmp_path).get_or_build("k1", build)
    assert not first.cache_hit and again.cache_hit and len(calls) == 1
    assert json.loads((again.path / "a.json").read_text()) == {"v": 1}
    assert again.meta["recipe"] == "fp32" and again.meta["extra"] == 7 and again.size_bytes > 0


def test_index_holds_json_not_pickles(tmp_path):
    store = ModelStore(tmp_path)
    store.get_or_build("k1", write_blob(10), {"recipe": "fp32"})
    import sqlite3

    rows = sqlite3.connect(tmp_path / "index" / "cache.db").execute("select mode from Cache").fetchall()
    from diskcache.core import MODE_PICKLE

    assert rows and all(mode != MODE_PICKLE for (mode,) in rows)


def test_failed_build_leaves_nothing(tmp_path):
    store = ModelStore(tmp_path)

    def broken(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("k", broken)
    assert store.lookup("k") is None and not any((tmp_path / "tmp").iterdir()) and not store.artifact_dir("k").exists()


SLOW_BUILDER = textwrap.dedent(
    """
    import sys, time, pathlib
    sys.path.insert(0, {root!r})
    from core.store import ModelStore
    store = ModelStore(sys.argv[1])
    def build(tmp):
        with open(pathlib.Path(sys.argv[1]) / "builds.log", "a") as fh:
            fh.write("build\\n")
        (tmp / "part1.bin").write_bytes(b"x" * 1000)
        time.sleep(float(sys.argv[2]))
        (tmp / "part2.bin").write_bytes(b"y" * 1000)
    entry = store.get_or_build("shared", build, {{"recipe": "slow"}})
    print("hit" if entry.cache_hit else "built", flush=True)
    """
)


def _spawn(tmp_path, sleep_s):
    script = tmp_path / "builder.py"
    script.write_text(SLOW_BUILDER.format(root=str(ROOT)))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "store"), str(sleep_s)], stdout=subprocess.PIPE, text=True)


def test_build_killed_midway_leaves_nothing_that_loads(tmp_path):
    proc = _spawn(tmp_path, 30)
    log = tmp_path / "store" / "builds.log"
    deadline = time.time() + 60
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ModelStore(tmp_path / "store")  # a new process: sweeps the dead builder's folder
    assert store.lookup("shared") is None
    assert not store.artifact_dir("shared").exists()
    assert not any((tmp_path / "store" / "tmp").iterdir())
    entry = store.get_or_build("shared", write_blob(5))  # the lock died with the process: rebuild works
    assert not entry.cache_hit and (entry.path / "blob.bin").exists()


def test_two_processes_build_once(tmp_path):
    procs = [_spawn(tmp_path, 1.5) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs == ["built", "hit"]
    assert (tmp_path / "store" / "builds.log").read_text().count("build") == 1


def test_evicts_least_recently_used_past_limit(tmp_path):
    store = ModelStore(tmp_path, size_limit=2500)
    store.get_or_build("a", write_blob(1000))
    time.sleep(0.01)
    store.get_or_build("b", write_blob(1000))
    time.sleep(0.01)
    store.lookup("a")  # a is now more recent than b
    store.get_or_build("c", write_blob(1000))  # 3000 > 2500: evict the LRU, b
    assert "b" not in store and "a" in store and "c" in store
    assert store.total_bytes() <= 2500 + 1000  # manifests count too
    store.get_or_build("huge", write_blob(5000))  # bigger than the limit alone: kept, everything else goes
    assert "huge" in store and "a" not in store and "c" not in store


def test_list_delete_clear(tmp_path):
    store = ModelStore(tmp_path)
    for key in ("x", "y"):
        store.get_or_build(key, write_blob(10), {"recipe": key})
    assert {e["key"] for e in store.entries()} == {"x", "y"}
    assert store.delete("x") and "x" not in store and not store.artifact_dir("x").exists()
    assert store.clear() == 1 and store.entries() == []


def test_env_var_moves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert ModelStore().root == tmp_path / "elsewhere" and (tmp_path / "elsewhere" / "artifacts").is_dir()


def test_keys_differ_by_every_part():
    base = dict(fingerprint="f", recipe="r", params={"a": 1}, versions={"torch": "1"})
    keys = {make_key(**base)}
    for part, value in [("fingerprint", "g"), ("recipe", "s"), ("params", {"a": 2}), ("versions", {"torch": "2"})]:
        keys.add(make_key(**{**base, part: value}))
    assert len(keys) == 5
