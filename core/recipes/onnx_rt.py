"""ONNX Runtime recipes: the exported fp32 graph with transformer fusions, dynamic int8 (embedding tables too),
static QDQ int8, and block-wise 4-bit weights (``MatMulNBits``)."""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from pathlib import Path

import numpy as np

from .. import env
from ..errors import RecipeError
from ..tasks import CAUSAL_LM
from .base import BuildContext, Param, Recipe, Variant, read_json, write_json
from .decoders import POSITIONS, OnnxCacheDecoder, graph_feeds, has_past, logits_name, present_name
from .export_graph import additive_encoder_wrapper, classic_attention_for, decoder_example, decoder_with_past
from .torch_common import conv1d_to_linear, example_inputs, make_wrapper

GRAPH = "model.onnx"
OPSET = 17
FUSION_TYPES = {"bert": "bert", "gpt2": "gpt2", "roberta": "bert", "distilbert": "bert", "xlm-roberta": "bert", "mpnet": "bert"}


def export_onnx(ctx: BuildContext, path: Path) -> None:
    """Trace the eager-attention model to ONNX with dynamic batch and sequence axes."""
    import torch

    loaded = ctx.loaded()
    model = loaded.model
    if any(type(m).__name__ == "Conv1D" for m in model.modules()):  # GPT-2: addmm exports as Gemm, which int8 skips
        model = copy.deepcopy(model)
        conv1d_to_linear(model)
    ids, mask = example_inputs(loaded.tokenizer)
    if ctx.task == CAUSAL_LM:
        return _export_decoder(model, ids, path)
    encoder = fusion_type(ctx) == "bert"
    wrapper = additive_encoder_wrapper(model, ctx.task) if encoder else make_wrapper(model, ctx.task)
    out_axes = {0: "batch"} if ctx.task == "classification" else {0: "batch", 1: "sequence"}
    attention = classic_attention_for(model) if encoder else contextlib.nullcontext()
    with torch.inference_mode(), _quiet(), attention:
        torch.onnx.export(
            wrapper, (ids, mask), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["input_ids", "attention_mask"], output_names=["output"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "output": out_axes},
        )


def _export_decoder(model, ids, path: Path) -> None:
    """A causal LM as a decoder with past key/values (see export_graph.decoder_with_past): its KV cache works in ONNX Runtime."""
    import torch

    args, pasts = decoder_example(model, ids)
    presents = [present_name(n) for n in pasts]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"}, POSITIONS: {0: "batch", 1: "sequence"},
            "output": {0: "batch", 1: "sequence"}}
    axes.update({n: {0: "batch", 2: "past"} for n in pasts})
    axes.update({n: {0: "batch", 2: "total"} for n in presents})
    with torch.inference_mode(), _quiet():
        torch.onnx.export(
            decoder_with_past(model), args, str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["input_ids", "attention_mask", POSITIONS, *pasts], output_names=["output", *presents], dynamic_axes=axes,
        )


class _quiet:
    """Silence the exporter's and quantizer's chatter (warnings go to the log, not the user's terminal)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger().setLevel(self._level)
        self._w.__exit__(*exc)


def fusion_type(ctx: BuildContext) -> str | None:
    return FUSION_TYPES.get(getattr(ctx.config(), "model_type", ""), None)


def optimize_graph(ctx: BuildContext, raw: Path, out: Path, fuse_attention: bool = True) -> list[str]:
    """ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU fusion); falls back to the raw graph."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = fusion_type(ctx)
    config = ctx.config()
    if model_type is None:
        shutil.copy(raw, out)
        return [f"No transformer fusion pattern for model type '{config.model_type}': the graph runs with ONNX Runtime's generic optimizations only."]
    try:
        with _quiet():
            heads, hidden = getattr(config, "num_attention_heads", 0) or 0, getattr(config, "hidden_size", 0) or 0
            options = FusionOptions(model_type)
            options.enable_attention = fuse_attention
            opt = optimize_model(str(raw), model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=1, use_gpu=False, optimization_options=options)
            opt.save_model_to_file(str(out))
        fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        return [f"Fused operators: {', '.join(f'{k} x{v}' for k, v in sorted(fused.items()))}."] if fused else []
    except Exception as err:  # noqa: BLE001 - an unfusable graph still runs: say so
        shutil.copy(raw, out)
        return [f"Transformer fusion failed ({err.__class__.__name__}); running the unfused graph."]


def build_fp32_graph(ctx: BuildContext, out: Path, fuse_attention: bool = True) -> list[str]:
    raw = out / "raw.onnx"
    ctx.say(0.2, "exporting to ONNX")
    export_onnx(ctx, raw)
    ctx.say(0.5, "fusing attention / LayerNorm / GELU" if fuse_attention else "fusing LayerNorm / GELU")
    notes = optimize_graph(ctx, raw, out / GRAPH, fuse_attention)
    raw.unlink()
    return notes


def build_onnx_fp32(ctx: BuildContext, params: dict, out: Path) -> dict:
    notes = build_fp32_graph(ctx, out)
    write_json(out / "onnx.json", {"notes": notes})
    return {}


def weight_type_for_cpu(choice: str) -> str:
    """S8 weights where the CPU has VNNI (no saturation) or is ARM; U8 on AVX2-only x86 (U8S8 may saturate)."""
    if choice != "auto":
        return choice
    if env.is_x86() and not env.has_vnni():
        return "uint8"
    return "int8"


def embedding_nodes(graph: Path, gather_only: bool = False) -> list[str]:
    """Names of the nodes that read an embedding table: a Gather over a float 2-D initializer (word, position
    embeddings) or ONNX Runtime's fused EmbedLayerNormalization (which holds the tables as inputs)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    tables = {i.name for i in model.graph.initializer if len(i.dims) == 2 and i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    out = []
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input and node.input[0] in tables:
            out.append(node.name)
        elif node.op_type == "EmbedLayerNormalization" and not gather_only:
            out.append(node.name)
    return out


def table_bytes(graph: Path) -> int:
    """Bytes of the float embedding tables read by :func:`embedding_nodes` (what int8/int4 tables save)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    names = set()
    for node in model.graph.node:
        if node.op_type in ("Gather", "EmbedLayerNormalization"):
            names.update(n for n in node.input if n in inits and len(inits[n].dims) == 2)
    return sum(len(inits[n].raw_data) or 4 * len(inits[n].float_data) for n in names)


def calibration_fidelity(ctx: BuildContext, fp32_graph: Path, graph: Path) -> float:
    """Output fidelity (mean cosine to fp32, as onnx-int8-mixed measures it) of ``graph`` on the calibration texts."""
    from .. import calibration
    from .mixed import fidelity

    texts = (ctx.calibration_texts or calibration.default_texts(ctx.task))[:32]
    enc = ctx.tokenizer()(texts, padding=True, truncation=True, max_length=ctx.max_length, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    outs = []
    for path in (fp32_graph, graph):
        session = make_session(path, threads=ctx.threads)
        outs.append(session.run(["output"], graph_feeds(session, ids, mask))[0])
    return fidelity(ctx.task, outs[1], outs[0], mask)


def _table_budget() -> float:
    from ..recommend import DEFAULT_BUDGETS

    return float(DEFAULT_BUDGETS["min_cosine"])


def build_onnx_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out / "fp32"
    tmp.mkdir()
    notes = build_fp32_graph(ctx, tmp)
    weight_type = weight_type_for_cpu(params["weight_type"])
    tables = embedding_nodes(tmp / GRAPH)
    table = params.get("embeddings", "fp32") if tables else "fp32"

    def quantize(with_tables: bool, dst: Path) -> None:
        ops = None if params["ops"] == "all" else ["MatMul", "Attention"] + (["Gather", "EmbedLayerNormalization"] if with_tables else [])
        with _quiet():
            quantize_dynamic(
                str(tmp / GRAPH), str(dst), op_types_to_quantize=ops, per_channel=params["per_channel"] == "true",
                reduce_range=params["reduce_range"] == "true", weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                nodes_to_exclude=None if with_tables else tables or None,
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )

    ctx.say(0.7, f"dynamic int8 quantization (weights {weight_type}, per_channel={params['per_channel']}, embedding tables {table})")
    quantize(table != "fp32", out / GRAPH)
    fp32_tables_mb = table_bytes(tmp / GRAPH) / 1e6
    if table == "auto":
        ctx.say(0.85, "checking the int8 embedding tables against the quality budget")
        budget, score = _table_budget(), calibration_fidelity(ctx, tmp / GRAPH, out / GRAPH)
        if score >= budget:
            notes.append(f"Embedding tables int8 ({fp32_tables_mb:.1f} MB in fp32): calibration fidelity {score:.4f} >= {budget:g}, "
                         "so they stay int8 (embeddings=fp32 keeps them fp32).")
        else:
            quantize(False, out / GRAPH)
            notes.append(f"Embedding tables kept fp32 ({fp32_tables_mb:.1f} MB): in int8 the calibration fidelity fell to {score:.4f} < {budget:g} "
                         "(embeddings=int8 forces them).")
    elif table == "int8":
        notes.append(f"Embedding tables int8 ({fp32_tables_mb:.1f} MB in fp32), asked for with embeddings=int8.")
    elif tables and params["ops"] != "all":
        notes.append(f"Embedding tables kept fp32 ({fp32_tables_mb:.1f} MB), asked for with embeddings=fp32.")
    shutil.rmtree(tmp)
    notes.append(f"Activations uint8 (dynamic), weights {weight_type}" + (" (this CPU has VNNI)." if env.has_vnni() else "."))
    write_json(out / "onnx.json", {"notes": notes, "weight_type": weight_type})
    return {}


def build_onnx_int4(ctx: BuildContext, params: dict, out: Path) -> dict:
    """Block-wise 4-bit weight-only quantization (ONNX Runtime's MatMulNBits; GatherBlockQuantized for the tables)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    tmp = out / "fp32"
    tmp.mkdir()
    # unfused attention: MatMulNBits replaces MatMul nodes, while a fused Attention op would keep its weights fp32
    notes = build_fp32_graph(ctx, tmp, fuse_attention=False)
    block, symmetric, level = int(params["block_size"]), params["symmetric"] == "true", int(params["accuracy_level"])
    algorithm = params["algorithm"]
    if algorithm == "hqq" and symmetric:
        raise RecipeError("onnx-int4: algorithm=hqq fits asymmetric blocks (a scale and a zero point each); "
                          "use symmetric=false, or algorithm=rtn for symmetric blocks.")
    tables = embedding_nodes(tmp / GRAPH, gather_only=True) if params["embeddings"] == "int4" else []
    how = "HQQ-fitted" if algorithm == "hqq" else "round-to-nearest"
    ctx.say(0.6, f"4-bit block quantization, {how} (block {block}, {'symmetric' if symmetric else 'asymmetric'}, accuracy level {level})")
    with _quiet():
        config = HQQWeightOnlyQuantConfig(block_size=block, bits=4, op_types_to_quantize=("MatMul",)) if algorithm == "hqq" else None
        quantizer = MatMulNBitsQuantizer(str(tmp / GRAPH), bits=4, block_size=block, is_symmetric=symmetric, accuracy_level=level,
                                         op_types_to_quantize=("MatMul",), algo_config=config)
        quantizer.process()
        if tables:   # embedding tables: round-to-nearest blocks (GatherBlockQuantized takes no HQQ zero points)
            ctx.say(0.85, "4-bit embedding tables")
            quantizer.model.save_model_to_file(str(tmp / "matmuls.onnx"), use_external_data_format=False)
            quantizer = MatMulNBitsQuantizer(str(tmp / "matmuls.onnx"), bits=4, block_size=block, is_symmetric=symmetric, accuracy_level=level,
                                             op_types_to_quantize=("MatMul",), nodes_to_include=tables)   # ("Gather",) would force opset 21
            quantizer.process()
        quantizer.model.save_model_to_file(str(out / GRAPH), use_external_data_format=False)
    fp32_tables_mb = table_bytes(tmp / GRAPH) / 1e6
    shutil.rmtree(tmp)
    make_session(out / GRAPH, threads=1)   # a graph ONNX Runtime refuses fails the build here, before it is stored
    ops = _op_counts(out / GRAPH)
    zero_points = "symmetric" if symmetric else ("asymmetric, with float zero points" if algorithm == "hqq" else "asymmetric, with 4-bit zero points")
    notes.append(f"4-bit weights in blocks of {block} ({how}; {zero_points}, float32 scales): "
                 f"MatMulNBits x{ops.get('MatMulNBits', 0)}"
                 + (f", GatherBlockQuantized x{ops['GatherBlockQuantized']}" if ops.get("GatherBlockQuantized") else "")
                 + f"; accuracy_level={level} ({ACCURACY_LEVELS[str(level)]}).")
    if algorithm == "hqq":
        notes.append("HQQ's float zero points are outside ONNX Runtime's fast CPU MatMulNBits path (it takes 4-bit zero points), "
                     "so this graph computes more slowly than algorithm=rtn; it is the accurate choice, not the fast one.")
    if not tables and params["embeddings"] == "fp32":
        notes.append(f"Embedding tables kept fp32 ({fp32_tables_mb:.1f} MB), asked for with embeddings=fp32.")
    write_json(out / "onnx.json", {"notes": notes, "ops": ops})
    return {}


ACCURACY_LEVELS = {"0": "unset: the kernel's default", "1": "fp32 compute", "2": "fp16 compute", "3": "bf16 compute",
                   "4": "int8 compute: activations quantized per block on the fly"}


def _op_counts(graph: Path) -> dict:
    import onnx

    counts: dict = {}
    for node in onnx.load(str(graph), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


class _Calibration:
    """Feeds tokenized calibration batches to ONNX Runtime's static quantizer."""

    def __init__(self, ctx: BuildContext, session, batch_size: int = 8):
        from .. import calibration

        texts = ctx.calibration_texts or calibration.default_texts(ctx.task)
        tok = ctx.tokenizer()
        self.batches = []
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=ctx.max_length, return_tensors="np")
            self.batches.append(graph_feeds(session, enc["input_ids"], enc["attention_mask"]))
        self._it = iter(self.batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self.batches)


def build_onnx_int8_static(ctx: BuildContext, params: dict, out: Path) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    tmp = out / "fp32"
    tmp.mkdir()
    notes = build_fp32_graph(ctx, tmp, fuse_attention=False)  # QDQ quantizes MatMuls, not the fused Attention op
    reader = _Calibration(ctx, ort.InferenceSession(str(tmp / GRAPH), providers=["CPUExecutionProvider"]))
    ctx.say(0.7, f"calibrating static int8 on {sum(len(b['input_ids']) for b in reader.batches)} texts")
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[params["calibration"]]
    with _quiet():
        quantize_static(
            str(tmp / GRAPH), str(out / GRAPH), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
            extra_options={"MatMulConstBOnly": True},
        )
    shutil.rmtree(tmp)
    notes.append(f"Static QDQ int8: activation ranges fixed from {len(reader.batches)} calibration batches ({params['calibration']}).")
    write_json(out / "onnx.json", {"notes": notes})
    return {}


def make_session(path: Path, device: str = "cpu", threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), so, providers=providers)


def load_onnx(ctx: BuildContext, params: dict, art: Path) -> Variant:
    session = make_session(art / GRAPH, ctx.device, ctx.threads)
    info = read_json(art / "onnx.json")
    notes = list(info.get("notes", []))
    if ctx.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        notes.append("CUDA execution provider unavailable: ONNX Runtime fell back to the CPU.")

    head_dim, output = info.get("head_dim"), logits_name(session)   # head_dim: for graphs whose cache axes are symbolic (onnx-genai)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([output], graph_feeds(session, input_ids, attention_mask, head_dim))[0], dtype=np.float32)

    size = sum(p.stat().st_size for p in art.glob("*.onnx*"))
    decoder = (lambda: OnnxCacheDecoder(session, head_dim)) if has_past(session) else None
    no_cache = "" if decoder or ctx.task != CAUSAL_LM else "this ONNX graph has no past key/values inputs, so it carries no KV cache"
    return Variant(name="", task=ctx.task, run=run, param_bytes=size, notes=notes, device=ctx.device, module=session, decoder=decoder, no_cache_reason=no_cache)


def _ort_check(device: str) -> str | None:
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "ONNX Runtime here has no CUDA provider (install onnxruntime-gpu)."
    return None


def _cpu_only(device: str) -> str | None:
    return "ONNX Runtime int8 kernels are CPU kernels; choose device cpu." if device != "cpu" else None


RECIPES = [
    Recipe("onnx-fp32", "onnx", "Exported graph in ONNX Runtime with transformer fusions (attention, LayerNorm, GELU)", build_onnx_fp32, load_onnx,
           check=_ort_check),
    Recipe(
        "onnx-int8", "onnx", "ONNX Runtime dynamic int8 quantization of the fused graph, per-channel", build_onnx_int8, load_onnx,
        params=(
            Param("weight_type", "auto", ("auto", "int8", "uint8"), "auto: int8 with VNNI, uint8 on AVX2-only CPUs"),
            Param("per_channel", "true", ("true", "false"), "one scale per output channel"),
            Param("reduce_range", "false", ("true", "false"), "7-bit weights, avoids saturation on non-VNNI CPUs"),
            Param("ops", "matmul", ("matmul", "all"), "quantize MatMul/Attention only, or every supported operator (Gather too)"),
            Param("embeddings", "auto", ("auto", "int8", "fp32"),
                  "embedding tables: int8 when the output fidelity on calibration texts stays within the 0.99 budget (auto), always int8, or fp32"),
        ),
        check=_cpu_only,
    ),
    Recipe(
        "onnx-int4", "onnx", "ONNX Runtime block-wise 4-bit weight-only quantization (MatMulNBits), embedding tables too", build_onnx_int4, load_onnx,
        params=(
            Param("block_size", "32", ("32", "64", "128"), "weights per block sharing one scale (and zero point)"),
            Param("symmetric", "false", ("true", "false"), "symmetric blocks (no zero point) or asymmetric (4-bit zero point per block)"),
            Param("accuracy_level", "4", tuple(ACCURACY_LEVELS), "MatMulNBits compute type: 4 = int8 (fastest on CPU), 1 = fp32, 0 = unset"),
            Param("algorithm", "rtn", ("rtn", "hqq"),
                  "rtn: round to nearest (4-bit zero points, ONNX Runtime's fast int8-compute kernel); hqq: scales and float zero points fitted "
                  "to minimise the weight error (half-quadratic, no data): more accurate, but the CPU kernel has no fast path for float zero points"),
            Param("embeddings", "int4", ("int4", "fp32"), "embedding tables as 4-bit blocks (GatherBlockQuantized) or kept fp32"),
        ),
        check=_cpu_only,
    ),
    Recipe(
        "onnx-int8-static", "onnx", "ONNX Runtime static QDQ int8, activation ranges calibrated on sample texts", build_onnx_int8_static, load_onnx,
        params=(Param("calibration", "minmax", ("minmax", "entropy", "percentile"), "how activation ranges are chosen"),),
        check=_cpu_only,
    ),
]
