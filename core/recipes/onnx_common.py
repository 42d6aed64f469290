"""What the ONNX Runtime recipes share: the fp32 graph (exported from torch, fused by ONNX Runtime's transformer
optimizer), sessions, loading a stored graph, and the output fidelity the int8 recipes score against fp32.

``onnxrt.recipes`` (onnx-fp32, onnx-int8, onnx-int8-static, onnx-int4), ``onnxrt.mixed`` (onnx-int8-mixed) and
``genai`` (onnx-genai) build on this module; none imports another's private names.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import env
from ..storage.store import HASH_NAME, MANIFEST
from ..tasks import get_task
from .base import BuildContext, Variant, read_json
from .decoders import POSITIONS, OnnxCacheDecoder, graph_feeds, has_past, logits_name, present_name
from .export_graph import additive_encoder_wrapper, classic_attention_for, decoder_example, decoder_with_past
from .family import NoteCause
from .torch_common import conv1d_to_linear, example_inputs, make_wrapper

CAUSAL_ONNX_LAYOUT = "decoder-with-past"   # causal-LM ONNX graphs carry their KV cache as inputs/outputs (since the generation scenario)

GRAPH = "model.onnx"
# ONNX Runtime's MatMulNBits compute types (the onnxrt int4 recipes' and onnxruntime-genai's accuracy_level)
ACCURACY_LEVELS = {"0": "unset: the kernel's default", "1": "fp32 compute", "2": "fp16 compute", "3": "bf16 compute",
                   "4": "int8 compute: activations quantized per block on the fly"}
OPSET = 17
# slow-variant causes of graphs run here, each evidenced by the note written beside it (optimize below, make_session, and
# onnx-int4's algorithm=hqq note), in the order they are told
ONNX_RUNTIME_CAUSES = (
    NoteCause("cuda-fell-back", "a fallback: ", "fell back", quote=True),
    NoteCause("fusion-failed", "the graph runs unfused", "fusion failed"),
    NoteCause("no-fusion-pattern", "the graph runs unfused", "No transformer fusion"),
    NoteCause("hqq-float-zero-points", "HQQ's float zero points take ONNX Runtime's slow MatMulNBits path, not its int8-compute kernel",
              "float zero points are outside"),
)
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
    task = get_task(ctx.task)
    if task.generates:
        return _export_decoder(model, ids, path)
    encoder = fusion_type(ctx) == "bert"
    wrapper = additive_encoder_wrapper(model, ctx.task) if encoder else make_wrapper(model, ctx.task)
    out_axes = {0: "batch", 1: "sequence"} if task.per_position else {0: "batch"}
    attention = classic_attention_for(model) if encoder else contextlib.nullcontext()
    with torch.inference_mode(), quiet(), attention:
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
    with torch.inference_mode(), quiet():
        torch.onnx.export(
            decoder_with_past(model), args, str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["input_ids", "attention_mask", POSITIONS, *pasts], output_names=["output", *presents], dynamic_axes=axes,
        )


class quiet:
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
        with quiet():
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



FP32_SPEC = "onnx-fp32"   # the variant whose stored graph the quantized ONNX recipes start from


@dataclass
class Fp32Graph:
    """The fp32 graph a quantized ONNX recipe starts from, and where it came from."""

    path: Path                # its model.onnx
    notes: list[str]          # the fusion notes, then one line saying where the graph came from
    origin: dict              # recorded in the quantized entry's manifest (meta ``fp32_graph``)


@contextlib.contextmanager
def fp32_graph(ctx: BuildContext, work: Path, fuse_attention: bool = True):
    """``with fp32_graph(ctx, work) as g:`` the fp32 graph to quantize (``g.path``), valid inside the block.

    When the model store holds the ``onnx-fp32`` entry of this source (same fingerprint, library versions and layout,
    which the quantized entry's own key holds too) and it is the graph this recipe needs, that stored graph is used:
    verified first (a damaged copy is rebuilt in place), and leased while the block runs. It is the graph needed when
    attention fusion is wanted, or when the model type has no fusion pattern (the optimizer then changes nothing).
    Otherwise the fp32 model is exported and optimized into ``work`` as before. That export is not stored as an entry of
    its own: a quantized build publishes one entry (a killed one leaves none), as the store's fault tests require.
    """
    opener = ctx.stored_variant
    fused_differs = not fuse_attention and fusion_type(ctx) is not None
    if opener is None or fused_differs:
        yield _exported(ctx, work, fuse_attention, "the stored onnx-fp32 graph has its attention fused, which this quantization cannot use"
                        if opener is not None else "")
        return
    with opener(FP32_SPEC) as entry:
        if entry is None:
            yield _exported(ctx, work, fuse_attention, "the store holds no onnx-fp32 entry of this model to start from")
            return
        path = Path(entry.path) / GRAPH
        stored_notes = list(read_json(Path(entry.path) / "onnx.json").get("notes", []))
        short = entry.key[:12]
        if entry.damage:
            how = f"Quantized from the onnx-fp32 graph (entry {short}), rebuilt in the store first because its stored copy was damaged ({entry.damage[0]})."
        elif entry.cache_hit:
            how = f"Quantized from the stored onnx-fp32 graph (entry {short}); fp32 was not exported to ONNX again."
        else:
            how = f"Quantized from the onnx-fp32 graph (entry {short}), built in the store just now."
        origin = {"from": "stored onnx-fp32 entry", "key": entry.key, "graph_xxh3_128": _graph_digest(entry),
                  "rebuilt": bool(entry.damage or not entry.cache_hit)}
        yield Fp32Graph(path, stored_notes + [how], origin)


def _exported(ctx: BuildContext, work: Path, fuse_attention: bool, why: str) -> Fp32Graph:
    work.mkdir(parents=True, exist_ok=True)
    notes = build_fp32_graph(ctx, work, fuse_attention)
    notes.append("Exported fp32 to ONNX first" + (f" ({why})." if why else "."))
    return Fp32Graph(work / GRAPH, notes, {"from": "export", "fuse_attention": fuse_attention})


def _graph_digest(entry) -> str | None:
    """The stored graph's hash as its entry's manifest records it (the quantized entry names exactly what it was made from)."""
    try:
        return read_json(Path(entry.path) / MANIFEST)["files"][GRAPH][HASH_NAME]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def weight_type_for_cpu(choice: str) -> str:
    """S8 weights where the CPU has VNNI (no saturation) or is ARM; U8 on AVX2-only x86 (U8S8 may saturate)."""
    if choice != "auto":
        return choice
    if env.is_x86() and not env.has_vnni():
        return "uint8"
    return "int8"



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
    no_cache = "" if decoder or not get_task(ctx.task).generates else "this ONNX graph has no past key/values inputs, so it carries no KV cache"
    return Variant(name="", task=ctx.task, run=run, param_bytes=size, notes=notes, device=ctx.device, module=session, decoder=decoder, no_cache_reason=no_cache)



def cpu_only(device: str) -> str | None:
    return "ONNX Runtime int8 kernels are CPU kernels; choose device cpu." if device != "cpu" else None


def fidelity(task: str, out: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """Mean cosine to fp32: of mean-pooled embeddings for embedders, of each real position's output otherwise."""
    if get_task(task).pooled:
        m = mask[..., None].astype(np.float32)
        a, b = (out * m).sum(1) / m.sum(1), (ref * m).sum(1) / m.sum(1)
    else:
        keep = mask.astype(bool) if out.ndim == 3 else slice(None)
        a, b = out[keep].reshape(-1, out.shape[-1]), ref[keep].reshape(-1, ref.shape[-1])
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return float(cos.mean())
