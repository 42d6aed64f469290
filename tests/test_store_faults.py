"""Fault injection on the model store, with real builds of a tiny model (code paths; nothing here measures quality).

* kill -9 at each build phase (export, quantize, publish: after its rename, before its index write), then rerun: the
  store verifies clean, the variant rebuilds (or, killed after the rename, is verified and adopted), no process of the
  killed build is left (a kill before the rename leaves what export/quantize leave: a temp folder under a lease);
* corrupt or truncate each file of an artifact: the next load detects it, rebuilds, and the variant's notes (which
  become the report's notes) say so; one real evaluation shows the note reaching the report;
* two processes build one key 20 times concurrently: one build each time, nothing lost;
* the store filled past its limit while another process holds a lease on an entry: that entry survives.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from core.storage.store import ModelStore

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 1.0  # leases of killed processes go stale this fast here (180 s by default)


@pytest.fixture(scope="module")
def source(tiny_embedder_dir):
    from core.inputs.sources import resolve

    return resolve(str(tiny_embedder_dir), "embedding")


def run_variant(loaded, source) -> np.ndarray:
    from core.inputs.sources import load_tokenizer

    enc = load_tokenizer(source)(["a store that checks what it loads", "nothing lost"], padding=True, return_tensors="np")
    return np.asarray(loaded.variant(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)), dtype=np.float32)


def session_members(sid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid:
                out.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return out


# -- kill -9 at each build phase ------------------------------------------------------------------------
KILLED_BUILDER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import core.storage.store as store_mod
    from core.inputs.sources import resolve
    from core.storage.store import ModelStore
    from core.engine.variants import get_variant

    model_dir, store_dir, spec, phase = sys.argv[1:5]

    def die(where):
        tmp = [p for p in (store_mod.Path(store_dir) / "tmp").iterdir()]
        files = sum(1 for t in tmp for p in t.rglob("*") if p.is_file())
        print(f"killed {{where}} with {{files}} file(s) in tmp", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def progress(fraction, message):
        if phase == "export" and message.startswith("exporting"):
            die(phase)
        if phase == "quantize" and "quantization" in message:
            die(phase)

    real_rename = os.rename

    def rename(src, dst, *args, **kwargs):  # the publish step's rename into artifacts/
        publishing = os.sep + "artifacts" + os.sep in str(dst)
        if publishing and phase == "publish-before-rename":
            die(phase)
        real_rename(src, dst, *args, **kwargs)
        if publishing and phase == "publish-after-rename":
            die(phase)

    store_mod.os.rename = rename
    get_variant(resolve(model_dir, "embedding"), spec, store=ModelStore(store_dir), progress=progress)
    print("finished without being killed", flush=True)
    """
)


@pytest.mark.parametrize("phase, spec", [("export", "onnx-int8"), ("quantize", "onnx-int8"), ("publish-after-rename", "fp32")])
def test_kill_at_each_build_phase_then_rerun(tmp_path, source, tiny_embedder_dir, phase, spec):
    from core.engine.variants import get_variant

    script = tmp_path / "builder.py"
    script.write_text(KILLED_BUILDER.format(root=str(ROOT)))
    env = dict(os.environ, QLAB_STORE_LEASE_S=str(LEASE_S))
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_embedder_dir), str(tmp_path / "store"), spec, phase],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL and out.startswith(f"killed {phase}"), out
    if phase == "quantize":
        assert " 0 file(s)" not in out  # killed with the exported graph half way through the build
    assert session_members(proc.pid) == []  # nothing of the killed build keeps running

    store = ModelStore(tmp_path / "store", lease_s=LEASE_S)
    assert store.entries() == [] or phase == "publish-after-rename"
    if phase == "publish-after-rename":  # renamed into place, never indexed
        assert store.entries() == [] and len(list((tmp_path / "store" / "artifacts").iterdir())) == 1
        assert list(store.verify_all().values()) == [["not in the index (left by an interrupted publish; the next build of this key adopts or removes it)"]]
    else:
        assert not any((tmp_path / "store" / "artifacts").iterdir()) and store.verify_all() == {}  # clean: nothing half-published

    loaded = get_variant(source, spec, store=store)  # the rerun
    if phase == "publish-after-rename":
        assert loaded.entry.cache_hit and loaded.entry.meta.get("recovered")  # verified and adopted, not built twice
    else:
        assert not loaded.entry.cache_hit
    assert loaded.entry.damage == [] and not any("failed verification" in n for n in loaded.variant.notes)
    assert np.isfinite(run_variant(loaded, source)).all()
    assert store.verify_all() == {loaded.entry.key: []}
    del loaded
    time.sleep(LEASE_S + 0.3)  # the killed builder's lease is stale now: its temp folder goes
    store.sweep_tmp()
    assert not any((tmp_path / "store" / "tmp").iterdir()) and store.leases() == []


# -- corrupt or truncate each file -------------------------------------------------------------------------
def damage_file(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one byte flipped in the middle, size unchanged
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("spec", ["fp32", "onnx-int8"])
def test_each_damaged_file_is_detected_rebuilt_and_noted(tmp_path, source, spec):
    from core.engine.variants import get_variant

    store = ModelStore(tmp_path / "store")
    first = get_variant(source, spec, store=store)
    expected = run_variant(first, source)
    entry_dir = first.entry.path
    files = sorted(p.relative_to(entry_dir).as_posix() for p in entry_dir.rglob("*") if p.is_file())
    assert "manifest.json" in files and len(files) >= 3
    del first
    weights = [rel for rel in files if rel.endswith((".onnx", ".safetensors"))]
    assert weights
    for n, rel in enumerate(files):  # every file damaged; weight files both ways, the others one way each (time)
        for how in (("truncate", "flip") if rel in weights else (("truncate", "flip")[n % 2],)):
            damage_file(entry_dir / rel, how)
            loaded = get_variant(source, spec, store=store)
            note = loaded.variant.notes[0]
            assert note.startswith(f"The stored artifact failed verification ({rel}") and "rebuilt before this measurement" in note, (rel, how, note)
            assert not loaded.entry.cache_hit and loaded.entry.damage and store.verify_entry(loaded.entry.key) == []
            np.testing.assert_allclose(run_variant(loaded, source), expected, rtol=1e-5, atol=1e-6)
            del loaded
    again = get_variant(source, spec, store=store)
    assert again.entry.cache_hit and not any("failed verification" in n for n in again.variant.notes)


def test_next_evaluation_rebuilds_a_damaged_artifact_and_notes_it(tmp_path, monkeypatch, source, tiny_embedder_dir):
    from core.engine.evaluate import EvalConfig, run_evaluation
    from core.engine.variants import get_variant

    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path / "store"))
    store = ModelStore()
    for spec in ("fp32", "dynamic-int8"):  # built here, in this process, as an earlier evaluation would have
        get_variant(source, spec, store=store)
    key = next(e["key"] for e in store.entries() if e.get("recipe") == "dynamic-int8")
    damage_file(store.artifact_dir(key) / "weights.safetensors", "flip")
    config = EvalConfig(task="embedding", model=str(tiny_embedder_dir), variants=["fp32", "dynamic-int8"], batch_sizes=[1], seq_lengths=[8],
                        threads=1, protocol={"warmup": 0, "min_iters": 2, "min_seconds": 0.0, "max_seconds": 0.5})
    report = run_evaluation(config)
    by_name = {r["variant"]: r for r in report["results"]}
    q = by_name["dynamic-int8"]
    assert not q.get("error") and not q["cache_hit"]
    assert q["notes"][0].startswith("The stored artifact failed verification (weights.safetensors: content differs from the manifest's hash")
    assert by_name["fp32"]["cache_hit"] and not any("failed verification" in n for n in by_name["fp32"]["notes"])
    assert store.verify_all() == {e["key"]: [] for e in store.entries()} and len(store.entries()) == 2


# -- two processes, one key, 20 rounds -------------------------------------------------------------------------
def _race_worker(index: int, root: str, rounds: int, barrier, results) -> None:
    store = ModelStore(root)

    def build(tmp: Path) -> dict:
        with open(Path(root) / "builds.log", "a") as fh:
            fh.write(f"{round_no} {index}\n")
        time.sleep(0.02)  # a build takes a while: the other process is waiting on the lock meanwhile
        (tmp / "weights.safetensors").write_bytes(f"{round_no}:{index}:".encode() * 50_000)
        (tmp / "config.json").write_text(json.dumps({"round": round_no, "builder": index}))
        return {"builder": index}

    for round_no in range(rounds):
        barrier.wait()
        entry = store.get_or_build("shared", build, {"kind": "variant"})
        content = (entry.path / "weights.safetensors").read_bytes()[:20].decode().split(":")[:2]
        results.put((round_no, index, entry.cache_hit, content, entry.meta["builder"], store.verify_entry("shared")))
        barrier.wait()
        if index == 0 and round_no < rounds - 1:
            store.delete("shared")  # the next round builds again
        barrier.wait()


def test_two_processes_build_one_key_20_times(tmp_path):
    rounds = 20
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(i, str(tmp_path), rounds, barrier, results)) for i in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(2 * rounds)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    builds = (tmp_path / "builds.log").read_text().split("\n")[:-1]
    assert sorted(int(line.split()[0]) for line in builds) == list(range(rounds))  # exactly one build per round
    for round_no in range(rounds):
        pair = [g for g in got if g[0] == round_no]
        assert sorted(hit for _, _, hit, _, _, _ in pair) == [False, True]
        builder = next(int(line.split()[1]) for line in builds if int(line.split()[0]) == round_no)
        for _, _, _, content, meta_builder, problems in pair:  # both read the one published build, intact
            assert content == [str(round_no), str(builder)] and meta_builder == builder and problems == []
    store = ModelStore(tmp_path)
    assert [e["key"] for e in store.entries()] == ["shared"] and store.verify_all() == {"shared": []}
    assert not any((tmp_path / "tmp").iterdir())


# -- an entry in use survives a full store ----------------------------------------------------------------
LEASE_HOLDER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from core.storage.store import ModelStore
    store = ModelStore(sys.argv[1])
    lease = store.lease(sys.argv[2])
    print("leased", flush=True)
    sys.stdin.readline()   # hold it until told
    """
)


def test_entry_in_use_survives_filling_the_store(tmp_path):
    mb = 1_000_000
    root = tmp_path / "store"
    base = ModelStore(root).total_bytes()
    store = ModelStore(root, size_limit=base + int(2.5 * mb), lease_s=LEASE_S)

    def blob(tmp):
        (tmp / "weights.safetensors").write_bytes(b"w" * mb)

    store.get_or_build("in-use", blob, {"kind": "variant"})
    script = tmp_path / "holder.py"
    script.write_text(LEASE_HOLDER.format(root=str(ROOT)))
    env = dict(os.environ, QLAB_STORE_LEASE_S=str(LEASE_S))
    holder = subprocess.Popen([sys.executable, str(script), str(root), "in-use"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "leased"
        for key in ("b", "c", "d", "e"):
            time.sleep(0.01)
            store.get_or_build(key, blob, {"kind": "variant"})
            assert "in-use" in store  # the least recently used entry, but leased: never evicted
        assert "b" not in store and "c" not in store and "e" in store
        assert store.verify_entry("in-use") == [] and store.total_bytes() > store.size_limit - mb
        time.sleep(2 * LEASE_S)  # held longer than the lease time: the heartbeat keeps it live
        store.get_or_build("f", blob, {"kind": "variant"})
        assert "in-use" in store
        holder.send_signal(signal.SIGKILL)  # killed while holding it: the lease goes stale by age
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert store.is_leased("in-use")
    time.sleep(LEASE_S + 0.3)
    assert not store.is_leased("in-use")
    store.get_or_build("g", blob, {"kind": "variant"})
    assert "in-use" not in store and "g" in store


def test_playground_never_loads_or_builds_a_damaged_variant(tmp_path, monkeypatch, source):
    """The Playground loads stored variants only (no build in a page's script run): a damaged one is refused in one line."""
    from core.engine.variants import get_variant
    from core.errors import QlabError
    from core.serving.playground import load_stored
    from core.storage.store import DamagedEntry

    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path / "store"))
    key = get_variant(source, "fp32", store=ModelStore()).entry.key
    assert load_stored(source, "fp32").variant is not None
    os.truncate(ModelStore().artifact_dir(key) / "model" / "model.safetensors", 100)
    with pytest.raises(DamagedEntry) as info:
        load_stored(source, "fp32")
    message = str(info.value)
    assert message.startswith("The stored fp32 of ") and "model/model.safetensors: 100 bytes" in message and "build it again" in message
    assert "\n" not in message and os.sep + "tmp" not in message and message.startswith(f"The stored fp32 of {Path(source.name).name} failed")
    with pytest.raises(QlabError, match="not built yet"):  # removed: the page now offers to build it in the background
        load_stored(source, "fp32")
    assert ModelStore().entries() == [] and ModelStore().leases() == []
