"""Quantized ONNX variants start from the stored onnx-fp32 graph when the store holds it (tiny random models: code paths only).

* onnx-int8 (and onnx-int8-mixed) after onnx-fp32: no second torch -> ONNX export, the notes say which entry the graph
  came from, the manifest records that entry's key and graph hash, and the result equals a fresh build's (same key);
* a damaged stored onnx-fp32 entry is rebuilt in place before it is used, never quantized as it is;
* onnx-int8-static / onnx-int4 need the unfused graph: on a model with a fusion pattern they export as before (and say
  why); on one without (Llama), the stored graph is the same graph and is reused;
* without the store (a bare build), the graph is exported as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.storage.store import ModelStore

TEXTS = ["a quantized graph from a stored one", "reuse, not re-export"]


@pytest.fixture(scope="module")
def embedder(tiny_embedder_dir):
    from core.inputs.sources import resolve

    return resolve(str(tiny_embedder_dir), "embedding")


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    from core.inputs.sources import resolve

    return resolve(str(tiny_llama_dir), "causal-lm")


@pytest.fixture
def exports(monkeypatch):
    """Every call of torch's ONNX exporter, counted (the exporter still runs)."""
    import torch

    calls = []
    real = torch.onnx.export

    def counting(*args, **kwargs):
        calls.append(kwargs.get("f", args[2] if len(args) > 2 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", counting)
    return calls


def run(loaded, source) -> np.ndarray:
    from core.inputs.sources import load_tokenizer

    enc = load_tokenizer(source)(TEXTS, padding=True, return_tensors="np")
    return np.asarray(loaded.variant(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)), dtype=np.float32)


def graph_hash(store: ModelStore, key: str) -> str:
    return store.read_manifest(key)["files"]["model.onnx"]["xxh3_128"]


def test_onnx_int8_after_onnx_fp32_is_quantized_from_the_stored_graph(tmp_path, embedder, exports):
    from core.engine.variants import get_variant

    fresh_store = ModelStore(tmp_path / "fresh")
    fresh = get_variant(embedder, "onnx-int8", store=fresh_store)
    assert len(exports) == 1
    assert "Exported fp32 to ONNX first (the store holds no onnx-fp32 entry of this model to start from)." in fresh.variant.notes
    assert fresh.entry.meta["fp32_graph"] == {"from": "export", "fuse_attention": True}
    assert [e["recipe"] for e in fresh_store.entries()] == ["onnx-int8"]   # the exported graph is not stored as an entry
    expected = run(fresh, embedder)

    store = ModelStore(tmp_path / "reuse")
    fp32 = get_variant(embedder, "onnx-fp32", store=store)
    assert len(exports) == 2
    int8 = get_variant(embedder, "onnx-int8", store=store)
    assert len(exports) == 2, "onnx-int8 exported fp32 again although onnx-fp32 was stored"

    short = fp32.entry.key[:12]
    assert f"Quantized from the stored onnx-fp32 graph (entry {short}); fp32 was not exported to ONNX again." in int8.variant.notes
    assert not any(n.startswith("Exported fp32") for n in int8.variant.notes)
    assert [n for n in fp32.variant.notes if n.startswith("Fused operators")] == [n for n in int8.variant.notes if n.startswith("Fused operators")] != []
    origin = int8.entry.meta["fp32_graph"]
    assert origin == {"from": "stored onnx-fp32 entry", "key": fp32.entry.key, "graph_xxh3_128": graph_hash(store, fp32.entry.key), "rebuilt": False}
    assert store.read_manifest(int8.entry.key)["meta"]["fp32_graph"] == origin   # the quantized entry names its source in its manifest

    assert int8.entry.key == fresh.entry.key
    np.testing.assert_allclose(run(int8, embedder), expected, rtol=1e-6, atol=1e-6)
    assert store.verify_entry(fp32.entry.key) == []   # the quantizer wrote nothing into the stored entry
    assert store.verify_entry(int8.entry.key) == []


def test_a_damaged_stored_onnx_fp32_is_rebuilt_not_reused(tmp_path, embedder, exports):
    from core.engine.variants import get_variant

    expected = run(get_variant(embedder, "onnx-int8", store=ModelStore(tmp_path / "fresh")), embedder)
    store = ModelStore(tmp_path / "store")
    fp32 = get_variant(embedder, "onnx-fp32", store=store)
    key, good = fp32.entry.key, graph_hash(store, fp32.entry.key)
    del fp32
    graph = store.artifact_dir(key) / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    before = len(exports)

    int8 = get_variant(embedder, "onnx-int8", store=store)
    assert len(exports) == before + 1   # the fp32 graph was exported again, into the onnx-fp32 entry
    note = next(n for n in int8.variant.notes if n.startswith("Quantized from the onnx-fp32 graph"))
    assert f"(entry {key[:12]}), rebuilt in the store first because its stored copy was damaged (model.onnx: content differs" in note
    assert store.verify_entry(key) == [] and graph_hash(store, key) == good
    assert int8.entry.meta["fp32_graph"]["rebuilt"] is True and int8.entry.meta["fp32_graph"]["key"] == key
    assert store.lookup(key).meta.get("rebuilt_after_damage")
    np.testing.assert_allclose(run(int8, embedder), expected, rtol=1e-6, atol=1e-6)


def test_mixed_reuses_the_fused_graph_static_exports_the_unfused_one(tmp_path, embedder, exports):
    from core.engine.variants import get_variant

    store = ModelStore(tmp_path / "store")
    fp32 = get_variant(embedder, "onnx-fp32", store=store)
    before = len(exports)
    mixed = get_variant(embedder, "onnx-int8-mixed", store=store)
    assert len(exports) == before
    assert f"Quantized from the stored onnx-fp32 graph (entry {fp32.entry.key[:12]}); fp32 was not exported to ONNX again." in mixed.variant.notes
    assert mixed.entry.meta["fp32_graph"]["key"] == fp32.entry.key and mixed.entry.meta["kept_fp32"] is not None

    static = get_variant(embedder, "onnx-int8-static", store=store)
    assert len(exports) == before + 1   # BERT fuses attention in onnx-fp32; static QDQ needs the MatMuls unfused
    assert ("Exported fp32 to ONNX first (the stored onnx-fp32 graph has its attention fused, which this quantization cannot use)."
            in static.variant.notes)
    assert static.entry.meta["fp32_graph"] == {"from": "export", "fuse_attention": False}
    assert np.isfinite(run(static, embedder)).all()
    assert sorted(e["recipe"] for e in store.entries()) == ["onnx-fp32", "onnx-int8-mixed", "onnx-int8-static"]


def test_int4_reuses_the_stored_graph_of_a_model_without_fusion_pattern(tmp_path, llama, exports):
    from core.engine.variants import get_variant

    fresh = get_variant(llama, "onnx-int4", store=ModelStore(tmp_path / "fresh"))
    store = ModelStore(tmp_path / "store")
    fp32 = get_variant(llama, "onnx-fp32", store=store)
    assert any("No transformer fusion pattern" in n for n in fp32.variant.notes)   # unfused either way: the same graph
    before = len(exports)
    int4 = get_variant(llama, "onnx-int4", store=store)
    assert len(exports) == before
    assert f"Quantized from the stored onnx-fp32 graph (entry {fp32.entry.key[:12]}); fp32 was not exported to ONNX again." in int4.variant.notes
    assert int4.entry.key == fresh.entry.key
    np.testing.assert_allclose(run(int4, llama), run(fresh, llama), rtol=1e-6, atol=1e-6)
    assert store.verify_entry(fp32.entry.key) == []


def test_a_build_outside_the_store_exports_as_before(tmp_path, embedder, exports):
    from core.recipes import BuildContext, resolve

    recipe, params, _ = resolve("onnx-int8")
    out = tmp_path / "out"
    out.mkdir()
    extra = recipe.build(BuildContext(source=embedder), params, out)
    assert len(exports) == 1 and extra == {"fp32_graph": {"from": "export", "fuse_attention": True}}
    notes = __import__("json").loads((out / "onnx.json").read_text())["notes"]
    assert "Exported fp32 to ONNX first." in notes
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "onnx.json"]
