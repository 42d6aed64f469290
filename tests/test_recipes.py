"""Every recipe builds and runs on the real MiniLM and on tiny random GPT-2 / BERT-classifier models."""

from __future__ import annotations

import numpy as np
import pytest

from core import env
from core.engine.variants import get_variant
from core.errors import RecipeError
from core.inputs.sources import resolve as resolve_source
from core.recipes import RECIPES, BuildContext, available, expand, parse_spec, resolve
from core.storage.store import ModelStore
from tiny_models import make_tiny_bert_classifier, make_tiny_gpt2

TEXTS = ["Quantization maps floats onto a few integer levels.", "The quick brown fox jumps over the lazy dog near the river bank today.", "Short."]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ModelStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "minilm": resolve_source("minilm"),
        "gpt2": resolve_source(str(make_tiny_gpt2(root / "gpt2"))),
        "bert-cls": resolve_source(str(make_tiny_bert_classifier(root / "bert"))),
    }


@pytest.fixture(scope="module")
def outputs(models, store):
    """Every available recipe on every model: {(model, recipe): (LoadedVariant, output, mask)}."""
    result = {}
    for key, source in models.items():
        ctx = BuildContext(source=source)
        enc = ctx.tokenizer()(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
        for name in available(source.task):
            if name == "onnx-int8-mixed" and key == "minilm":
                continue  # its sensitivity search takes a minute on MiniLM; covered on the tiny models and in benchmarks
            if name == "onnx-genai":
                continue  # Llama-family models only: tests/test_generation.py builds it on a tiny grouped-query Llama
            if name == "gguf":
                continue  # a Llama's GGUF (shipped, or written by the gguf package): tests/test_llamacpp.py builds it on a tiny Llama
            lv = get_variant(source, name, store=store, context=ctx)
            result[(key, name)] = (lv, lv.variant(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"])
    return result


def _pooled(out, mask):
    m = mask[..., None].astype(np.float32)
    emb = (out * m).sum(1) / m.sum(1)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _valid(out, mask):
    """Only positions that are real tokens (padding positions are undefined for every variant)."""
    return out[mask.astype(bool)] if out.ndim == 3 else out


CPU_RECIPES = ["fp32", "bf16", "dynamic-int8", "torchscript", "absmax-int8", "zeropoint-int8", "absmax-int4", "zeropoint-int4", "onnx-fp32", "onnx-int8",
               "onnx-int8-static", "onnx-int4", "openvino-fp32", "openvino-int8"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm", "gpt2", "bert-cls"])
def test_every_cpu_recipe_builds_and_runs(outputs, models, model):
    task = models[model].task
    built = {name for (m, name) in outputs if m == model}
    assert set(CPU_RECIPES) <= built, f"missing on {model}: {set(CPU_RECIPES) - built}"
    for name in built:
        lv, out, mask = outputs[(model, name)]
        ref = outputs[(model, "fp32")][1]
        assert out.dtype == np.float32 and out.shape == ref.shape, name
        assert np.isfinite(_valid(out, mask)).all(), name
        assert lv.variant.name == name and lv.variant.task == task
        assert lv.entry.size_bytes > 0 and lv.variant.param_bytes > 0


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm", "gpt2", "bert-cls"])
@pytest.mark.parametrize("name,atol", [("onnx-fp32", 1e-4), ("torchscript", 1e-4)])
def test_fp32_equivalent_recipes_match_fp32(outputs, model, name, atol):
    _, ref, mask = outputs[(model, "fp32")]
    _, out, _ = outputs[(model, name)]
    np.testing.assert_allclose(_valid(out, mask), _valid(ref, mask), atol=atol, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["minilm", "gpt2", "bert-cls"])
def test_bf16_within_tolerance(outputs, model):
    _, ref, mask = outputs[(model, "fp32")]
    _, out, _ = outputs[(model, "bf16")]
    a, b = _valid(out, mask).reshape(len(_valid(ref, mask)), -1), _valid(ref, mask).reshape(len(_valid(ref, mask)), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99


@pytest.mark.slow
def test_minilm_int8_quality_is_close_but_not_identical(outputs):
    _, ref, mask = outputs[("minilm", "fp32")]
    for name, floor in [("dynamic-int8", 0.9), ("absmax-int8", 0.98), ("zeropoint-int8", 0.98), ("onnx-int8", 0.97), ("onnx-int8-static", 0.9)]:
        _, out, _ = outputs[("minilm", name)]
        cos = (_pooled(out, mask) * _pooled(ref, mask)).sum(1)
        assert cos.min() > floor, (name, cos)
        assert not np.allclose(out, ref), f"{name} returned fp32 outputs unchanged"


@pytest.mark.slow
@pytest.mark.parametrize("model,ratio", [("minilm", 0.70), ("gpt2", 0.60)])
def test_int8_recipes_shrink_the_artifact(outputs, model, ratio):
    fp32 = outputs[(model, "fp32")][0].entry.size_bytes
    for name in ["dynamic-int8", "absmax-int8", "zeropoint-int8", "onnx-int8", "onnx-int8-static"]:
        size = outputs[(model, name)][0].entry.size_bytes
        assert size < ratio * fp32, f"{name} on {model}: {size} vs fp32 {fp32}"
    assert outputs[(model, "bf16")][0].entry.size_bytes < 0.55 * fp32


@pytest.mark.slow
def test_weight_only_artifact_holds_real_int8(outputs):
    from safetensors import safe_open

    lv = outputs[("minilm", "absmax-int8")][0]
    with safe_open(str(lv.entry.path / "weights.safetensors"), "pt") as fh:
        q = [k for k in fh.keys() if k.endswith(".q")]
        assert len(q) == 37  # 6 layers x (q, k, v, out, intermediate, output) + the pooler
        t = fh.get_tensor(q[0])
        assert str(t.dtype) == "torch.int8" and t.abs().max() == 127


def test_absmax_and_zeropoint_formulas():
    import torch

    from core.recipes.weight_codec import dequantize_tensor, quantize_tensor

    w = torch.tensor([[-1.0, 0.5, 2.0], [0.1, -0.2, 0.05]])
    q, scale, zp = quantize_tensor(w, "absmax", "tensor")
    assert zp is None and scale.item() == pytest.approx(127 / 2.0)
    assert q.tolist() == torch.round(w * 127 / 2.0).to(torch.int8).tolist()
    q, scale, zp = quantize_tensor(w, "absmax", "channel")
    assert scale.tolist() == pytest.approx([127 / 2.0, 127 / 0.2])
    np.testing.assert_allclose(dequantize_tensor(q, scale).numpy(), w.numpy(), atol=0.5 / scale.min().item())
    q, scale, zp = quantize_tensor(w, "zeropoint", "tensor")
    s = 255 / 3.0
    assert scale.item() == pytest.approx(s) and zp.item() == round(-s * -1.0) - 128
    assert q.min().item() == -128 and q.max().item() == 127
    np.testing.assert_allclose(dequantize_tensor(q, scale, zp).numpy(), w.numpy(), atol=1 / s)


@pytest.mark.slow
def test_gpt2_conv1d_layers_are_quantized_and_tied_head_left_alone(outputs, models):
    import json

    lv = outputs[("gpt2", "dynamic-int8")][0]
    meta = json.loads((lv.entry.path / "quantized.json").read_text())
    assert meta["conv1d_converted"] == 8  # 2 layers x (c_attn, c_proj, c_fc, mlp c_proj)
    assert "lm_head" not in meta["modules"] and len(meta["modules"]) == 8
    weights = json.loads((outputs[("gpt2", "absmax-int8")][0].entry.path / "quantized.json").read_text())["weights"]
    assert all(info["transposed"] for info in weights.values()) and len(weights) == 8


def test_qnnpack_on_x86_is_explained(models, store):
    if not env.is_x86():
        pytest.skip("qnnpack is the right engine on this non-x86 CPU")
    lv = get_variant(models["gpt2"], "dynamic-int8:engine=qnnpack", store=store)
    assert lv.variant.name == "dynamic-int8:engine=qnnpack"
    assert any("qnnpack" in n and "slower" in n for n in lv.variant.notes)


def test_weight_only_scope_all_rounds_layernorm_too(models, store):
    lv = get_variant(models["gpt2"], "absmax-int8:scope=all:granularity=tensor", store=store)
    import json

    weights = json.loads((lv.entry.path / "quantized.json").read_text())["weights"]
    assert any("ln_" in name for name in weights) and any("wte" in name for name in weights)


def test_fp16_unavailable_on_cpu_with_reason():
    reason = RECIPES["fp16"].unavailable_reason("cpu")
    if env.cuda_available():
        pytest.skip("this machine has CUDA: fp16 on cpu is refused for device, tested below")
    assert reason and "CUDA" in reason
    assert "fp16" not in available("embedding", "cpu")
    with pytest.raises(RecipeError, match="fp16"):
        expand("fp32,fp16", "embedding")


@pytest.mark.skipif(not env.cuda_available(), reason="no CUDA GPU on this machine; fp16/bf16 CUDA paths run where one exists")
def test_fp16_and_onnx_on_cuda(models, store):  # pragma: no cover - needs a GPU
    source = models["minilm"]
    ctx = BuildContext(source=source)
    enc = ctx.tokenizer()(TEXTS, padding=True, return_tensors="np")
    ref = get_variant(source, "fp32", store=store, context=ctx).variant(enc["input_ids"], enc["attention_mask"])
    for name in ("fp16", "bf16", "onnx-fp32"):
        out = get_variant(source, name, store=store, device="cuda", context=ctx).variant(enc["input_ids"], enc["attention_mask"])
        cos = (_pooled(out, enc["attention_mask"]) * _pooled(ref, enc["attention_mask"])).sum(1)
        assert cos.min() > 0.99


def test_spec_parsing_and_errors():
    assert parse_spec("dynamic-int8:engine=qnnpack").as_dict() == {"engine": "qnnpack"}
    recipe, params, label = resolve("absmax-int8:granularity=channel")
    assert label == "absmax-int8" and params["granularity"] == "channel"
    assert resolve("absmax-int8:granularity=tensor")[2] == "absmax-int8:granularity=tensor"
    with pytest.raises(RecipeError, match="Unknown variant 'int4'"):
        resolve("int4")
    with pytest.raises(RecipeError, match="no parameter 'bits'"):
        resolve("absmax-int8:bits=4")
    with pytest.raises(RecipeError, match="not allowed"):
        resolve("dynamic-int8:engine=cuda")
    with pytest.raises(RecipeError, match="must be a number from 0 to 1"):
        resolve("onnx-int8-mixed:target=abc")
    with pytest.raises(RecipeError, match="key=value"):
        resolve("dynamic-int8:x86")
    assert "onnx-int8" in expand("all", "embedding") and "fp16" not in expand("all", "embedding")


def test_every_recipe_describes_itself():
    for recipe in RECIPES.values():
        d = recipe.describe("cpu")
        assert d["name"] == recipe.name and isinstance(d["available"], bool)
        assert d["available"] or d["reason"]


@pytest.mark.slow
def test_minilm_attention_is_fused_for_onnx_runtime(outputs):
    notes = " ".join(outputs[("minilm", "onnx-fp32")][0].variant.notes)
    assert "Attention x6" in notes and "EmbedLayerNormalization" in notes


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt2", "bert-cls"])
def test_mixed_precision_search_keeps_most_sensitive_nodes(outputs, model):
    import json

    lv = outputs[(model, "onnx-int8-mixed")][0]
    table = json.loads((lv.entry.path / "sensitivity.json").read_text())
    losses = [row["loss"] for row in table["nodes"]]
    assert len(losses) >= 8 and losses == sorted(losses, reverse=True)
    kept = table["kept_fp32"]
    assert kept == [row["node"] for row in table["nodes"][: len(kept)]] and len(kept) <= 4
    trail = [step["fidelity"] for step in table["trail"]]
    assert trail[0] <= table["final_fidelity"] + 1e-6 and len(trail) == len(kept) + 1
    assert table["final_fidelity"] >= table["target"] or len(kept) == 4


# -- 4-bit weights -------------------------------------------------------------------------------------
def test_int4_packing_round_trips_exactly():
    import torch

    from core.recipes.weight_codec import pack_int4, unpack_int4

    every = torch.arange(-8, 8, dtype=torch.int8)
    assert pack_int4(every).tolist() == [(a & 0xF) | ((b & 0xF) << 4) for a, b in zip(range(-8, 8, 2), range(-7, 8, 2))]
    for shape in [(16,), (7, 13), (3, 5, 9), (1,)]:   # odd element counts get one pad nibble
        values = torch.randint(-8, 8, shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.int8)
        packed = pack_int4(values)
        assert packed.dtype == torch.uint8 and packed.numel() == (values.numel() + 1) // 2
        assert torch.equal(unpack_int4(packed, shape), values)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([8], dtype=torch.int8))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["absmax-int4", "zeropoint-int4"])
def test_int4_artifact_is_packed_and_loads_back_exactly(outputs, name):
    """The stored nibbles, scales and zero points are exactly what quantizing MiniLM gives, and load dequantizes exactly those."""
    import json

    import torch
    from safetensors import safe_open

    from core.recipes.weight_codec import dequantize_tensor, quantize_tensor, unpack_int4

    lv = outputs[("minilm", name)][0]
    fp32 = dict(outputs[("minilm", "fp32")][0].variant.module.named_parameters())
    loaded = dict(lv.variant.module.named_parameters())
    meta = json.loads((lv.entry.path / "quantized.json").read_text())
    assert meta["bits"] == 4 and meta["granularity"] == "group" and meta["group_size"] == 32 and len(meta["weights"]) == 37
    packed_bytes = 0
    with safe_open(str(lv.entry.path / "weights.safetensors"), "pt") as fh:
        assert not [k for k in fh.keys() if k.endswith(".q")]       # no unpacked int8 copy anywhere
        for wname, info in meta["weights"].items():
            q4 = fh.get_tensor(f"{wname}.q4")
            assert q4.dtype == torch.uint8 and q4.numel() == (fp32[wname].numel() + 1) // 2
            packed_bytes += q4.numel()
            q, scale, zp = quantize_tensor(fp32[wname], name.split("-")[0], "group", 4, 32)
            assert torch.equal(unpack_int4(q4, info["shape"]), q)
            assert torch.equal(fh.get_tensor(f"{wname}.scale"), scale)
            if zp is not None:
                assert torch.equal(unpack_int4(fh.get_tensor(f"{wname}.zp4"), scale.shape), zp)
            assert torch.equal(loaded[wname], dequantize_tensor(q, scale, zp, 32))
    linear = sum(fp32[w].numel() for w in meta["weights"])
    assert packed_bytes == linear // 2                               # 4 bits a weight, on disk
    int8 = outputs[("minilm", name.replace("int4", "int8"))][0].entry.size_bytes
    assert lv.entry.size_bytes < int8 - 0.3 * linear                 # ~half a byte saved per weight (less the group scales)


@pytest.mark.slow
def test_int4_groups_beat_one_scale_per_tensor_on_minilm(outputs):
    from core.serving.playground import layer_errors, relative_error, round_trip

    model = outputs[("minilm", "fp32")][0].variant.module
    for scheme in ("absmax", "zeropoint"):
        rows = layer_errors(model, scheme, bits=4, group_size=32)
        assert len(rows) == 37
        assert all(r["group"] < r["channel"] < r["tensor"] for r in rows), scheme
        for row in rows[:6]:   # 16 levels instead of 256
            assert row["group"] > 8 * relative_error(*round_trip(model, row["layer"], scheme, "group", 8, 32))


@pytest.mark.slow
def test_int4_quality_on_minilm(outputs):
    _, ref, mask = outputs[("minilm", "fp32")]
    for name, floor in [("absmax-int4", 0.9), ("zeropoint-int4", 0.9), ("onnx-int4", 0.9)]:
        _, out, _ = outputs[("minilm", name)]
        cos = (_pooled(out, mask) * _pooled(ref, mask)).sum(1)
        assert cos.min() > floor, (name, cos)
        assert not np.allclose(out, ref), name


@pytest.mark.slow
# bert-cls: its pooler and classifier export as Gemm, which MatMulNBits leaves fp32
@pytest.mark.parametrize("model,nodes,tables", [("minilm", 36, 3), ("gpt2", 9, 2), ("bert-cls", 12, 3)])
def test_onnx_int4_uses_matmulnbits_and_shrinks_by_the_expected_factor(outputs, model, nodes, tables):
    import onnx

    lv = outputs[(model, "onnx-int4")][0]
    graph = onnx.load(str(lv.entry.path / "model.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("MatMulNBits") == nodes and ops.count("GatherBlockQuantized") == tables and "MatMul" not in [
        n.op_type for n in graph.graph.node if any(i.name in n.input for i in graph.graph.initializer)]
    assert any(a.name == "block_size" and a.i == 32 for n in graph.graph.node if n.op_type == "MatMulNBits" for a in n.attribute)
    assert "MatMulNBits x" in " ".join(lv.variant.notes)
    fp32 = outputs[(model, "onnx-fp32")][0].entry.size_bytes
    if model == "minilm":   # almost every byte is a weight: 4 bits + a float32 scale and a 4-bit zero point per 32 -> 5.125 / 32
        assert 0.14 * fp32 < lv.entry.size_bytes < 0.19 * fp32, (lv.entry.size_bytes, fp32)
    else:
        assert lv.entry.size_bytes < 0.35 * fp32


def test_onnx_int4_parameters(models, store):
    import onnx

    lv = get_variant(models["gpt2"], "onnx-int4:block_size=64:symmetric=true:accuracy_level=1:embeddings=fp32", store=store)
    graph = onnx.load(str(lv.entry.path / "model.onnx"))
    mnb = [n for n in graph.graph.node if n.op_type == "MatMulNBits"]
    attrs = {a.name: a.i for a in mnb[0].attribute}
    assert attrs["block_size"] == 64 and attrs["accuracy_level"] == 1
    assert all(len(n.input) == 3 for n in mnb)                 # symmetric: A, B, scales (no zero points)
    assert not [n for n in graph.graph.node if n.op_type == "GatherBlockQuantized"]
    ids = np.array([[1, 2, 3, 4]], dtype=np.int64)
    assert np.isfinite(lv.variant(ids, np.ones_like(ids))).all()


# -- int8 embedding tables ---------------------------------------------------------------------------
@pytest.mark.slow
def test_onnx_int8_quantizes_minilm_embedding_table_within_budget(outputs, models):
    """MiniLM's onnx-int8 holds its embedding tables in int8 (QEmbedLayerNormalization): about a quarter of fp32 on disk,
    and the mean cosine to fp32 over the embedding sample stays within the 0.99 budget."""
    import onnx

    from core.inputs import calibration

    lv = outputs[("minilm", "onnx-int8")][0]
    ops = [n.op_type for n in onnx.load(str(lv.entry.path / "model.onnx")).graph.node]
    assert "QEmbedLayerNormalization" in ops and "EmbedLayerNormalization" not in ops
    assert any("Embedding tables int8" in n and ">= 0.99" in n for n in lv.variant.notes), lv.variant.notes
    fp32 = outputs[("minilm", "fp32")][0]
    assert lv.entry.size_bytes < 0.27 * fp32.entry.size_bytes
    tok = BuildContext(source=models["minilm"]).tokenizer()
    enc = tok(calibration.default_texts("embedding"), padding=True, truncation=True, max_length=128, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    cos = (_pooled(lv.variant(ids, mask), mask) * _pooled(fp32.variant(ids, mask), mask)).sum(1)
    assert cos.mean() >= 0.99, cos.mean()


@pytest.mark.slow
def test_onnx_int8_embeddings_fp32_keeps_the_table(outputs, models, store):
    import onnx

    with_table = outputs[("gpt2", "onnx-int8")][0]
    without = get_variant(models["gpt2"], "onnx-int8:embeddings=fp32", store=store)
    assert without.variant.name == "onnx-int8:embeddings=fp32"
    inits = {i.name: i.data_type for i in onnx.load(str(without.entry.path / "model.onnx")).graph.initializer}
    assert inits["model.transformer.wte.weight"] == onnx.TensorProto.FLOAT
    quantized = {i.name: i.data_type for i in onnx.load(str(with_table.entry.path / "model.onnx")).graph.initializer}
    assert "model.transformer.wte.weight" not in quantized and any(n.startswith("model.transformer.wte.weight") for n in quantized)
    table = 300 * 64 * 4
    assert without.entry.size_bytes - with_table.entry.size_bytes > 0.7 * table   # wte and wpe: 4 bytes -> 1 byte a value


# -- torchao int4 ---------------------------------------------------------------------------------------
def test_torchao_int4_is_offered_only_where_it_runs(models, store):
    """The availability check must tell the truth: where it says torchao has no int4 kernel, really trying fails; where it
    says it runs, the recipe builds and runs."""
    from core.recipes.pytorch.recipes import torchao_int4_cpu_probe

    if RECIPES["torchao-int8"].unavailable_reason("cpu"):
        pytest.skip("torchao is not installed here")
    reason = RECIPES["torchao-int4"].unavailable_reason("cpu")
    probe = torchao_int4_cpu_probe()
    if reason:
        assert probe is not None and "mslk" in reason and "CUDA" in reason, (reason, probe)
        assert "torchao-int4" not in available("causal-lm")
        with pytest.raises(RecipeError, match="no int4 weight-only kernel for this CPU"):
            expand("fp32,torchao-int4", "causal-lm")
    else:  # pragma: no cover - a torchao with CPU int4 kernels
        assert probe is None
        lv = get_variant(models["gpt2"], "torchao-int4:group_size=32", store=store)
        ids = np.array([[1, 2, 3]], dtype=np.int64)
        assert np.isfinite(lv.variant(ids, np.ones_like(ids))).all()
