"""ONNX Runtime recipes: the exported fp32 graph with transformer fusions, dynamic int8 (embedding tables too),
static QDQ int8, and block-wise 4-bit weights (``MatMulNBits``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ... import env
from ...errors import RecipeError
from ..base import BuildContext, Param, Recipe, write_json
from ..decoders import graph_feeds
from ..onnx_common import ACCURACY_LEVELS, GRAPH, build_fp32_graph, cpu_only, fidelity, fp32_graph, load_onnx, make_session, quiet, weight_type_for_cpu


def build_onnx_fp32(ctx: BuildContext, params: dict, out: Path) -> dict:
    notes = build_fp32_graph(ctx, out)
    write_json(out / "onnx.json", {"notes": notes})
    return {}


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
    from ...inputs import calibration

    texts = calibration.texts_for(ctx)[:32]
    enc = ctx.tokenizer()(texts, padding=True, truncation=True, max_length=ctx.max_length, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    outs = []
    for path in (fp32_graph, graph):
        session = make_session(path, threads=ctx.threads)
        outs.append(session.run(["output"], graph_feeds(session, ids, mask))[0])
    return fidelity(ctx.task, outs[1], outs[0], mask)


def _table_budget() -> float:
    from ...tasks import default_budgets

    return float(default_budgets()["min_cosine"])


def build_onnx_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out / "fp32"
    tmp.mkdir()
    with fp32_graph(ctx, tmp) as fp32:
        notes, origin = list(fp32.notes), fp32.origin
        weight_type = weight_type_for_cpu(params["weight_type"])
        tables = embedding_nodes(fp32.path)
        table = params.get("embeddings", "fp32") if tables else "fp32"

        def quantize(with_tables: bool, dst: Path) -> None:
            ops = None if params["ops"] == "all" else ["MatMul", "Attention"] + (["Gather", "EmbedLayerNormalization"] if with_tables else [])
            with quiet():
                quantize_dynamic(
                    str(fp32.path), str(dst), op_types_to_quantize=ops, per_channel=params["per_channel"] == "true",
                    reduce_range=params["reduce_range"] == "true", weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                    nodes_to_exclude=None if with_tables else tables or None,
                    extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
                )

        ctx.say(0.7, f"dynamic int8 quantization (weights {weight_type}, per_channel={params['per_channel']}, embedding tables {table})")
        quantize(table != "fp32", out / GRAPH)
        fp32_tables_mb = table_bytes(fp32.path) / 1e6
        if table == "auto":
            ctx.say(0.85, "checking the int8 embedding tables against the quality budget")
            budget, score = _table_budget(), calibration_fidelity(ctx, fp32.path, out / GRAPH)
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
    return {"fp32_graph": origin}


def build_onnx_int4(ctx: BuildContext, params: dict, out: Path) -> dict:
    """Block-wise 4-bit weight-only quantization (ONNX Runtime's MatMulNBits; GatherBlockQuantized for the tables)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    tmp = out / "fp32"
    tmp.mkdir()
    with fp32_graph(ctx, tmp, fuse_attention=False) as fp32:
        # unfused attention: MatMulNBits replaces MatMul nodes, while a fused Attention op would keep its weights fp32
        notes, origin = list(fp32.notes), fp32.origin
        block, symmetric, level = int(params["block_size"]), params["symmetric"] == "true", int(params["accuracy_level"])
        algorithm = params["algorithm"]
        if algorithm == "hqq" and symmetric:
            raise RecipeError("onnx-int4: algorithm=hqq fits asymmetric blocks (a scale and a zero point each); "
                              "use symmetric=false, or algorithm=rtn for symmetric blocks.")
        tables = embedding_nodes(fp32.path, gather_only=True) if params["embeddings"] == "int4" else []
        how = "HQQ-fitted" if algorithm == "hqq" else "round-to-nearest"
        ctx.say(0.6, f"4-bit block quantization, {how} (block {block}, {'symmetric' if symmetric else 'asymmetric'}, accuracy level {level})")
        with quiet():
            config = HQQWeightOnlyQuantConfig(block_size=block, bits=4, op_types_to_quantize=("MatMul",)) if algorithm == "hqq" else None
            quantizer = MatMulNBitsQuantizer(str(fp32.path), bits=4, block_size=block, is_symmetric=symmetric, accuracy_level=level,
                                             op_types_to_quantize=("MatMul",), algo_config=config)
            quantizer.process()
            if tables:   # embedding tables: round-to-nearest blocks (GatherBlockQuantized takes no HQQ zero points)
                ctx.say(0.85, "4-bit embedding tables")
                quantizer.model.save_model_to_file(str(tmp / "matmuls.onnx"), use_external_data_format=False)
                quantizer = MatMulNBitsQuantizer(str(tmp / "matmuls.onnx"), bits=4, block_size=block, is_symmetric=symmetric, accuracy_level=level,
                                                 op_types_to_quantize=("MatMul",), nodes_to_include=tables)   # ("Gather",) would force opset 21
                quantizer.process()
            quantizer.model.save_model_to_file(str(out / GRAPH), use_external_data_format=False)
        fp32_tables_mb = table_bytes(fp32.path) / 1e6
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
    return {"fp32_graph": origin}




def _op_counts(graph: Path) -> dict:
    import onnx

    counts: dict = {}
    for node in onnx.load(str(graph), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


class _Calibration:
    """Feeds tokenized calibration batches to ONNX Runtime's static quantizer."""

    def __init__(self, ctx: BuildContext, session, batch_size: int = 8):
        from ...inputs import calibration

        texts = calibration.texts_for(ctx)
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
    with fp32_graph(ctx, tmp, fuse_attention=False) as fp32:  # unfused: QDQ quantizes MatMuls, not the fused Attention op
        notes, origin = list(fp32.notes), fp32.origin
        reader = _Calibration(ctx, ort.InferenceSession(str(fp32.path), providers=["CPUExecutionProvider"]))
        ctx.say(0.7, f"calibrating static int8 on {sum(len(b['input_ids']) for b in reader.batches)} texts")
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[params["calibration"]]
        with quiet():
            quantize_static(
                str(fp32.path), str(out / GRAPH), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                extra_options={"MatMulConstBOnly": True},
            )
    shutil.rmtree(tmp)
    from ...inputs import calibration

    notes.append(f"Static QDQ int8: activation ranges fixed from {len(reader.batches)} calibration batches ({calibration.source_words(ctx)}, "
                 f"{params['calibration']}).")
    write_json(out / "onnx.json", {"notes": notes})
    return {"fp32_graph": origin}



def _ort_check(device: str) -> str | None:
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "ONNX Runtime here has no CUDA provider (install onnxruntime-gpu)."
    return None



RECIPES = [
    Recipe("onnx-fp32", "Exported graph in ONNX Runtime with transformer fusions (attention, LayerNorm, GELU)", build_onnx_fp32, load_onnx,
           check=_ort_check),
    Recipe(
        "onnx-int8", "ONNX Runtime dynamic int8 quantization of the fused graph, per-channel", build_onnx_int8, load_onnx,
        params=(
            Param("weight_type", "auto", ("auto", "int8", "uint8"), "auto: int8 with VNNI, uint8 on AVX2-only CPUs"),
            Param("per_channel", "true", ("true", "false"), "one scale per output channel"),
            Param("reduce_range", "false", ("true", "false"), "7-bit weights, avoids saturation on non-VNNI CPUs"),
            Param("ops", "matmul", ("matmul", "all"), "quantize MatMul/Attention only, or every supported operator (Gather too)"),
            Param("embeddings", "auto", ("auto", "int8", "fp32"),
                  "embedding tables: int8 when the output fidelity on calibration texts stays within the 0.99 budget (auto), always int8, or fp32"),
        ),
        check=cpu_only,
    ),
    Recipe(
        "onnx-int4", "ONNX Runtime block-wise 4-bit weight-only quantization (MatMulNBits), embedding tables too", build_onnx_int4, load_onnx,
        params=(
            Param("block_size", "32", ("32", "64", "128"), "weights per block sharing one scale (and zero point)"),
            Param("symmetric", "false", ("true", "false"), "symmetric blocks (no zero point) or asymmetric (4-bit zero point per block)"),
            Param("accuracy_level", "4", tuple(ACCURACY_LEVELS), "MatMulNBits compute type: 4 = int8 (fastest on CPU), 1 = fp32, 0 = unset"),
            Param("algorithm", "rtn", ("rtn", "hqq"),
                  "rtn: round to nearest (4-bit zero points, ONNX Runtime's fast int8-compute kernel); hqq: scales and float zero points fitted "
                  "to minimise the weight error (half-quadratic, no data): more accurate, but the CPU kernel has no fast path for float zero points"),
            Param("embeddings", "int4", ("int4", "fp32"), "embedding tables as 4-bit blocks (GatherBlockQuantized) or kept fp32"),
        ),
        check=cpu_only,
    ),
    Recipe(
        "onnx-int8-static", "ONNX Runtime static QDQ int8, activation ranges calibrated on sample texts", build_onnx_int8_static, load_onnx,
        params=(Param("calibration", "minmax", ("minmax", "entropy", "percentile"), "how activation ranges are chosen"),),
        check=cpu_only, calibrated=True,
    ),
]
