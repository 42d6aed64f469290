"""ONNX Runtime recipes: the exported fp32 graph with transformer fusions, dynamic int8, static QDQ int8."""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from pathlib import Path

import numpy as np

from .. import env
from .base import BuildContext, Param, Recipe, Variant, read_json, write_json
from .export_graph import additive_encoder_wrapper, classic_attention_for
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
    encoder = fusion_type(ctx) == "bert" and ctx.task != "causal-lm"
    wrapper = additive_encoder_wrapper(model, ctx.task) if encoder else make_wrapper(model, ctx.task)
    ids, mask = example_inputs(loaded.tokenizer)
    out_axes = {0: "batch"} if ctx.task == "classification" else {0: "batch", 1: "sequence"}
    attention = classic_attention_for(model) if encoder else contextlib.nullcontext()
    with torch.inference_mode(), _quiet(), attention:
        torch.onnx.export(
            wrapper, (ids, mask), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["input_ids", "attention_mask"], output_names=["output"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "output": out_axes},
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
    except Exception as err:  # an unfusable graph still runs: say so
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


def build_onnx_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out / "fp32"
    tmp.mkdir()
    notes = build_fp32_graph(ctx, tmp)
    weight_type = weight_type_for_cpu(params["weight_type"])
    ops = ["MatMul", "Attention"] if params["ops"] == "matmul" else None
    ctx.say(0.7, f"dynamic int8 quantization (weights {weight_type}, per_channel={params['per_channel']})")
    with _quiet():
        quantize_dynamic(
            str(tmp / GRAPH), str(out / GRAPH), op_types_to_quantize=ops, per_channel=params["per_channel"] == "true",
            reduce_range=params["reduce_range"] == "true", weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    shutil.rmtree(tmp)
    notes.append(f"Activations uint8 (dynamic), weights {weight_type}" + (" (this CPU has VNNI)." if env.has_vnni() else "."))
    write_json(out / "onnx.json", {"notes": notes, "weight_type": weight_type})
    return {}


class _Calibration:
    """Feeds tokenized calibration batches to ONNX Runtime's static quantizer."""

    def __init__(self, ctx: BuildContext, input_names: list[str], batch_size: int = 8):
        from .. import calibration

        texts = ctx.calibration_texts or calibration.default_texts(ctx.task)
        tok = ctx.tokenizer()
        self.batches = []
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=ctx.max_length, return_tensors="np")
            self.batches.append({k: enc[k].astype(np.int64) for k in input_names})
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
    names = [i.name for i in ort.InferenceSession(str(tmp / GRAPH), providers=["CPUExecutionProvider"]).get_inputs()]
    reader = _Calibration(ctx, names)
    ctx.say(0.7, f"calibrating static int8 on {sum(len(b[names[0]]) for b in reader.batches)} texts")
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
    names = [i.name for i in session.get_inputs()]
    notes = list(read_json(art / "onnx.json").get("notes", []))
    if ctx.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        notes.append("CUDA execution provider unavailable: ONNX Runtime fell back to the CPU.")

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int64), "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        return np.asarray(session.run(["output"], {k: feeds[k] for k in names})[0], dtype=np.float32)

    size = sum(p.stat().st_size for p in art.glob("*.onnx*"))
    return Variant(name="", task=ctx.task, run=run, param_bytes=size, notes=notes, device=ctx.device, module=session)


def _ort_check(device: str) -> str | None:
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "ONNX Runtime here has no CUDA provider (install onnxruntime-gpu)."
    return None


def _cpu_only(device: str) -> str | None:
    return "ONNX Runtime int8 kernels are CPU kernels; choose device cpu." if device != "cpu" else None


RECIPES = [
    Recipe("onnx-fp32", "onnx", "Exported graph in ONNX Runtime with transformer fusions (attention, LayerNorm, GELU)", build_onnx_fp32, load_onnx, check=_ort_check),
    Recipe(
        "onnx-int8", "onnx", "ONNX Runtime dynamic int8 quantization of the fused graph, per-channel", build_onnx_int8, load_onnx,
        params=(
            Param("weight_type", "auto", ("auto", "int8", "uint8"), "auto: int8 with VNNI, uint8 on AVX2-only CPUs"),
            Param("per_channel", "true", ("true", "false"), "one scale per output channel"),
            Param("reduce_range", "false", ("true", "false"), "7-bit weights, avoids saturation on non-VNNI CPUs"),
            Param("ops", "matmul", ("matmul", "all"), "quantize MatMul/Attention only, or every supported operator (Gather too)"),
        ),
        check=_cpu_only,
    ),
    Recipe(
        "onnx-int8-static", "onnx", "ONNX Runtime static QDQ int8, activation ranges calibrated on sample texts", build_onnx_int8_static, load_onnx,
        params=(Param("calibration", "minmax", ("minmax", "entropy", "percentile"), "how activation ranges are chosen"),),
        check=_cpu_only,
    ),
]
