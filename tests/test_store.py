"""The model store: round trip, manifests and verification, killed builds, one build under concurrency, leases, LRU eviction,
listing, and `python -m core store`. The fault-injection suite on real builds is tests/test_store_faults.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.storage.store import DamagedEntry, ModelStore, make_key

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
    from core.storage.store import ModelStore
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


def test_build_killed_midway_leaves_nothing_that_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_STORE_LEASE_S", "1")  # the builder's lease goes stale 1 s after its last heartbeat
    proc = _spawn(tmp_path, 30)
    log = tmp_path / "store" / "builds.log"
    deadline = time.time() + 60
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ModelStore(tmp_path / "store", lease_s=1)
    assert store.lookup("shared") is None
    assert not store.artifact_dir("shared").exists()
    assert [p.name.split(".")[0] for p in (tmp_path / "store" / "tmp").iterdir()] == ["shared"]  # its lease is still fresh: kept
    time.sleep(1.3)
    assert store.sweep_tmp() == 1 and not any((tmp_path / "store" / "tmp").iterdir()) and not any((tmp_path / "store" / "leases").iterdir())
    entry = store.get_or_build("shared", write_blob(5))  # the lock died with the process: rebuild works
    assert not entry.cache_hit and (entry.path / "blob.bin").exists() and store.verify_entry("shared") == []


def test_two_processes_build_once(tmp_path):
    procs = [_spawn(tmp_path, 1.5) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs == ["built", "hit"]
    assert (tmp_path / "store" / "builds.log").read_text().count("build") == 1


def _limit_for(tmp_path, payload: int) -> int:
    """A limit of ``payload`` bytes above what an empty store (its index database) already takes."""
    return ModelStore(tmp_path).total_bytes() + payload


def test_evicts_least_recently_used_past_limit(tmp_path):
    mb = 1_000_000
    store = ModelStore(tmp_path, size_limit=_limit_for(tmp_path, int(2.5 * mb)))
    store.get_or_build("a", write_blob(mb))
    time.sleep(0.01)
    store.get_or_build("b", write_blob(mb))
    time.sleep(0.01)
    store.lookup("a")  # a is now more recent than b
    store.get_or_build("c", write_blob(mb))  # 3 > 2.5: evict the LRU, b
    assert "b" not in store and "a" in store and "c" in store
    assert store.total_bytes() <= store.size_limit
    store.get_or_build("huge", write_blob(5 * mb))  # bigger than the limit alone: kept, everything else goes
    assert "huge" in store and "a" not in store and "c" not in store


def test_size_limit_counts_everything_under_the_root(tmp_path):
    mb = 1_000_000
    store = ModelStore(tmp_path, size_limit=_limit_for(tmp_path, int(3.5 * mb)))  # three entries alone would fit
    store.get_or_build("a", write_blob(mb))
    store.get_or_build("b", write_blob(mb))
    assert "a" in store and "b" in store
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old-run.json").write_bytes(b"r" * mb)  # saved runs, uploads, temp builds: all count
    store.get_or_build("c", write_blob(mb))
    assert "a" not in store and "b" in store and "c" in store
    assert store.total_bytes() > store.entries_bytes() + mb


def test_bundled_and_pinned_entries_are_never_evicted(tmp_path):
    mb = 1_000_000
    store = ModelStore(tmp_path, size_limit=_limit_for(tmp_path, int(1.5 * mb)))
    store.get_or_build("source", write_blob(mb), {"kind": "bundled-model", "model": "minilm-classifier"})
    store.get_or_build("pinned", write_blob(mb), {"kind": "variant", "pinned": True})
    for key in ("x", "y"):
        store.get_or_build(key, write_blob(mb), {"kind": "variant"})
    assert "source" in store and "pinned" in store and "x" not in store and "y" in store  # y is the one just built


def test_leased_entry_survives_eviction_delete_and_clear(tmp_path):
    from core.storage.store import EntryInUse

    mb = 1_000_000
    store = ModelStore(tmp_path, size_limit=_limit_for(tmp_path, int(1.5 * mb)))
    store.get_or_build("a", write_blob(mb))
    with store.lease("a"):
        assert store.is_leased("a") and store.leased_keys() == {"a"}
        store.get_or_build("b", write_blob(mb))
        store.get_or_build("c", write_blob(mb))
        assert "a" in store and "b" not in store and "c" in store  # a is the least recently used but leased
        with pytest.raises(EntryInUse, match="in use"):
            store.delete("a")
        assert store.clear() == 1 and "a" in store
    assert not store.is_leased("a") and store.leases() == []
    assert store.delete("a") and "a" not in store


def test_lease_heartbeat_keeps_it_live_and_gc_releases_it(tmp_path):
    store = ModelStore(tmp_path, lease_s=0.5)
    store.get_or_build("a", write_blob(10))
    lease = store.lease("a")
    time.sleep(1.2)  # more than twice the lease time: only the heartbeat keeps it fresh
    assert store.is_leased("a") and store.leases()[0]["age_s"] < 0.5
    del lease  # garbage-collected: released
    import gc

    gc.collect()
    assert not store.is_leased("a") and not any((tmp_path / "leases").iterdir())


def test_stale_temp_builds_are_judged_by_lease_age_not_pid(tmp_path):
    """Two containers share a store: the other one's PIDs mean nothing here, its lease file's age does."""
    store = ModelStore(tmp_path, lease_s=60)
    (tmp_path / "tmp" / "k.abc123").mkdir()  # another container's live build: pid unknown here, lease fresh
    (tmp_path / "leases" / "k.abc123").write_text(json.dumps({"pid": 999_999_999, "host": "other-container"}))
    (tmp_path / "tmp" / "j.def456").mkdir()  # a build whose lease stopped beating two minutes ago
    (tmp_path / "leases" / "j.def456").write_text("{}")
    old = time.time() - 120
    os.utime(tmp_path / "leases" / "j.def456", (old, old))
    (tmp_path / "tmp" / f"m.{os.getpid()}.1234abcd").mkdir()  # the old naming: a live PID, but an old folder and no lease
    os.utime(tmp_path / "tmp" / f"m.{os.getpid()}.1234abcd", (old, old))
    assert store.sweep_tmp() == 2
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["k.abc123"]
    assert sorted(p.name for p in (tmp_path / "leases").iterdir()) == ["k.abc123"]
    assert store.leased_keys() == {"k"}


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


# -- manifests and verification ---------------------------------------------------------------------
def write_model_like(tmp: Path) -> dict:
    (tmp / "model").mkdir()
    (tmp / "model" / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (tmp / "model" / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (tmp / "model.onnx").write_bytes(b"\x08\x07" * 3000)
    return {"note": "built"}


def test_manifest_records_size_and_hash_of_every_file(tmp_path):
    import xxhash

    store = ModelStore(tmp_path)
    entry = store.get_or_build("k", write_model_like, {"recipe": "fp32"})
    manifest = json.loads((entry.path / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["hash"] == "xxh3_128" and manifest["meta"]["recipe"] == "fp32"
    assert sorted(manifest["files"]) == ["model.onnx", "model/config.json", "model/model.safetensors"]
    for rel, rec in manifest["files"].items():
        data = (entry.path / rel).read_bytes()
        assert rec == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
    assert store.verify_entry("k") == [] and store.verify_all() == {"k": []}
    assert not any(p.name.startswith(".") for p in entry.path.rglob("*"))


@pytest.mark.parametrize("damage, expected", [
    ("truncate", "model/model.safetensors: 5000 bytes, the manifest says 10240 (truncated or replaced)"),
    ("flip", "model/model.safetensors: content differs from the manifest's hash (corrupted)"),
    ("remove", "model/model.safetensors: missing"),
    ("extra", "model/extra.safetensors: weight file not listed in the manifest"),
    ("symlink", "model/model.safetensors: not a regular file"),
    ("manifest-garbled", "manifest.json cannot be read (JSONDecodeError)"),
    ("manifest-removed", "manifest.json is missing"),
    ("manifest-edited", "manifest.json: its content differs from its own hash (edited or corrupted)"),
])
def test_verify_names_each_kind_of_damage(tmp_path, damage, expected):
    store = ModelStore(tmp_path)
    entry = store.get_or_build("k", write_model_like)
    weights = entry.path / "model" / "model.safetensors"
    if damage == "truncate":
        os.truncate(weights, 5000)
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "remove":
        weights.unlink()
    elif damage == "extra":
        (entry.path / "model" / "extra.safetensors").write_bytes(b"x")
    elif damage == "symlink":
        (tmp_path / "elsewhere.bin").write_bytes(weights.read_bytes())
        weights.unlink()
        weights.symlink_to(tmp_path / "elsewhere.bin")
    elif damage == "manifest-garbled":
        (entry.path / "manifest.json").write_text("{not json")
    elif damage == "manifest-removed":
        (entry.path / "manifest.json").unlink()
    elif damage == "manifest-edited":
        manifest = json.loads((entry.path / "manifest.json").read_text())
        manifest["meta"]["recipe"] = "something-else"
        (entry.path / "manifest.json").write_text(json.dumps(manifest))
    problems = store.verify_entry("k")
    assert problems == [expected]
    if damage != "manifest-removed":  # (without a manifest, lookup already treats the entry as missing)
        with pytest.raises(DamagedEntry, match="failed verification") as info:
            store.lookup("k", verify=True)
        assert str(tmp_path) not in str(info.value)  # no server paths in the message
    else:  # a lookup treats it as missing; the builder, under the lock, finds out why
        rebuilt = store.get_or_build("k", write_model_like)
        assert rebuilt.damage == [expected]
    rebuilt = store.get_or_build("k", write_model_like)
    assert store.verify_entry("k") == [] and rebuilt.damage == []


def test_damaged_entry_is_rebuilt_and_says_why(tmp_path):
    store = ModelStore(tmp_path)
    calls = []

    def build(tmp):
        calls.append(1)
        return write_model_like(tmp)

    store.get_or_build("k", build, {"recipe": "fp32"})
    os.truncate(store.artifact_dir("k") / "model.onnx", 10)
    again = store.get_or_build("k", build, {"recipe": "fp32"})
    assert len(calls) == 2 and not again.cache_hit
    assert again.damage == ["model.onnx: 10 bytes, the manifest says 6000 (truncated or replaced)"]
    assert store.index.get("k")["rebuilt_after_damage"]["problems"] == again.damage
    third = store.get_or_build("k", build)
    assert third.cache_hit and third.damage == [] and third.verify_s is not None and len(calls) == 2


def test_manifest_without_hashes_is_unverifiable_and_rebuilt(tmp_path):
    """Entries written before this version have a manifest that is only the metadata: they are rebuilt once."""
    store = ModelStore(tmp_path)
    entry = store.get_or_build("k", write_model_like, {"recipe": "fp32"})
    (entry.path / "manifest.json").write_text(json.dumps({"recipe": "fp32", "build_s": 1.0}))  # the old format
    assert store.verify_entry("k") == ["manifest.json records no file sizes or hashes (written by an older version of the lab): cannot be verified"]
    rebuilt = store.get_or_build("k", write_model_like)
    assert not rebuilt.cache_hit and "older version" in rebuilt.damage[0] and store.verify_entry("k") == []


def test_publish_killed_after_rename_is_adopted_or_removed(tmp_path):
    store = ModelStore(tmp_path)
    store.get_or_build("k", write_model_like, {"recipe": "fp32"})
    store.index.pop("k")  # what a kill between the rename and the index write leaves
    assert "k" not in store and store.verify_all() == {"k": [
        "not in the index (left by an interrupted publish; the next build of this key adopts or removes it)"]}
    adopted = store.get_or_build("k", write_blob(1))
    assert adopted.cache_hit and adopted.meta["recovered"] and adopted.meta["recipe"] == "fp32" and store.verify_all() == {"k": []}
    store.index.pop("k")
    (store.artifact_dir("k") / "manifest.json").unlink()  # not a sealed folder: removed, then built
    rebuilt = store.get_or_build("k", write_blob(1))
    assert not rebuilt.cache_hit and sorted(p.name for p in rebuilt.path.iterdir()) == ["blob.bin", "manifest.json"]


def test_lock_files_are_never_unlinked(tmp_path):
    store = ModelStore(tmp_path)
    store.get_or_build("k", write_blob(1))
    lock = tmp_path / "locks" / "k.lock"
    inode = lock.stat().st_ino
    store.delete("k")
    store.get_or_build("k", write_blob(1))
    assert lock.stat().st_ino == inode  # the same inode all along: no two builders can hold "the" lock


def test_keys_are_plain_names(tmp_path):
    store = ModelStore(tmp_path)
    for bad in ("../x", "a/b", "a.b", ""):
        with pytest.raises(ValueError):
            store.get_or_build(bad, write_blob(1))


# -- python -m core store ------------------------------------------------------------------------------
def test_cli_store_list_verify_clear(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path))
    store = ModelStore(tmp_path)
    store.get_or_build("aaaa1111", write_model_like, {"recipe": "fp32", "model": "m"})
    store.get_or_build("bbbb2222", write_model_like, {"recipe": "onnx-int8", "model": "m"})
    ok = cli("store", "verify")
    assert ok.returncode == 0 and ok.stdout == "" and "verified 2 entries" in ok.stderr and "all intact" in ok.stderr
    os.truncate(store.artifact_dir("bbbb2222") / "model.onnx", 3)
    bad = cli("store", "verify")
    assert bad.returncode == 1 and bad.stdout.strip() == "bbbb2222  model.onnx: 3 bytes, the manifest says 6000 (truncated or replaced)"
    report = json.loads(cli("store", "verify", "--json").stdout)
    assert report["checked"] == 2 and list(report["damaged"]) == ["bbbb2222"] and report["removed"] == []
    repaired = cli("store", "verify", "--repair", "--json")
    assert repaired.returncode == 0 and json.loads(repaired.stdout)["removed"] == ["bbbb2222"] and "bbbb2222" not in store
    with store.lease("aaaa1111"):
        listing = cli("store", "list")
        assert listing.returncode == 0 and "aaaa1111" in listing.stdout and "in use" in listing.stdout
        listed = json.loads(cli("store", "list", "--json").stdout)
        assert listed["leased"] == ["aaaa1111"] and listed["total_bytes"] >= listed["entries_bytes"] > 0
        cleared = cli("store", "clear", "--json")
        assert json.loads(cleared.stdout) == {"root": str(tmp_path), "cleared": 0, "kept_in_use": ["aaaa1111"]}
    assert json.loads(cli("store", "clear", "--json").stdout)["cleared"] == 1 and store.entries() == []
    wrong = cli("store", "fix")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "invalid choice: 'fix'" in wrong.stderr


def test_cli_verify_repair_reindexes_an_orphan(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path))
    store = ModelStore(tmp_path)
    store.get_or_build("cccc3333", write_model_like, {"recipe": "fp32", "model": "m"})
    store.index.pop("cccc3333")  # a publish killed between its rename and its index write
    found = cli("store", "verify")
    assert found.returncode == 1 and "cccc3333  not in the index" in found.stdout
    fixed = cli("store", "verify", "--repair")
    assert fixed.returncode == 0 and "1 repaired" in fixed.stderr and "cccc3333" in store
    assert cli("store", "verify").returncode == 0 and store.verify_entry("nope/../x") == ["not a store key"]
