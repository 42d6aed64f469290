"""OpenVINO recipes: the lab's fp32 ONNX graph converted to an OpenVINO IR, static int8 through NNCF (calibrated on the
run's texts), and NNCF's weight-only int8 / int4 compression for causal LMs.

Every recipe starts from the lab's plain fp32 ONNX export (``converted``: the stored ``onnx-fp32`` entry where that is
the plain export, else exported again without ONNX Runtime's fusions), so a causal LM's IR is the decoder with past
key/values and generates with the lab's KV-cache decoder. The store keeps ``model.xml`` / ``model.bin`` and
``openvino.json`` (notes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import env
from ...tasks import CAUSAL_LM
from ..base import BuildContext, Param, Recipe, write_json
from ..decoders import graph_feeds
from ..onednn_isa import isa_param
from ..onnx_common import GRAPH, export_onnx, fp32_graph, fusion_type, quiet
from ..openvino_quiet import nncf as quiet_nncf
from ..openvino_quiet import openvino
from .precision import precision_param, refuse_params
from .runtime import INFO, XML, Signature, cpu_only, load_openvino

PRESETS = ("mixed", "performance")   # NNCF: mixed = symmetric weights, asymmetric activations (its default for transformers)
INT4_MODES = ("asym", "sym")
NO_INT8_ISA_NOTE = "OpenVINO int8 on a CPU without VNNI or AMX"   # evidence of the family's slow-variant cause (see __init__)


@dataclass
class Converted:
    """The fp32 ONNX graph as an OpenVINO model, with the notes and origin of that graph."""

    model: object          # openvino.Model
    notes: list[str]
    origin: dict


@contextlib.contextmanager
def converted(ctx: BuildContext, work: Path):
    """``with converted(ctx, work) as c:`` the fp32 graph read by OpenVINO (``c.model``), valid inside the block.

    OpenVINO starts from the plain exported graph: it fuses attention, LayerNorm and GELU itself, and from ONNX
    Runtime's fused operators (com.microsoft Attention, SkipLayerNormalization, ...) it builds a graph that ran 12-20%
    slower in int8 at batch 32 (MiniLM, 2 threads). Where the model type has no ONNX Runtime fusion pattern (Llama, ...)
    the stored ``onnx-fp32`` graph *is* that plain export, so it is reused from the store (leased only while the block
    runs) as onnx-int8 reuses it; otherwise the fp32 model is exported again without ONNX Runtime's optimizer."""
    ov = openvino()

    if fusion_type(ctx) is None:
        with fp32_graph(ctx, work) as fp32:
            yield _read(ov, fp32.path, fp32.notes[-1:], fp32.origin, ctx)   # where the graph came from (its ONNX Runtime notes do not apply)
        return
    work.mkdir(parents=True, exist_ok=True)
    ctx.say(0.2, "exporting to ONNX (no ONNX Runtime fusions: OpenVINO fuses the graph itself)")
    export_onnx(ctx, work / GRAPH)
    notes = [f"Exported fp32 to ONNX without ONNX Runtime's {fusion_type(ctx)} fusions, which the stored onnx-fp32 graph has: "
             "OpenVINO fuses the plain graph itself."]
    yield _read(ov, work / GRAPH, notes, {"from": "export", "onnx_runtime_fusions": False}, ctx)


def _read(ov, path: Path, notes: list[str], origin: dict, ctx: BuildContext) -> Converted:
    ctx.say(0.55, "converting the ONNX graph to OpenVINO")
    model = ov.convert_model(str(path))
    graph_names(model)
    return Converted(model, notes, origin)


def graph_names(model) -> None:
    """Each input and output keeps the ONNX graph's own name only: where the exporter's graph passed an input straight on
    (``past.0.key`` into the first Concat), OpenVINO also gives the port the internal name (``/Concat_output_0``), and
    ``any_name`` may answer either."""
    for port in [*model.inputs, *model.outputs]:
        names = set(port.get_names())
        keep = {n for n in names if not n.startswith("/")}
        if keep and keep != names:
            port.get_tensor().set_names(keep)


def save_ir(model, out: Path, notes: list[str], **info) -> None:
    ov = openvino()

    graph_names(model)   # NNCF's model keeps them; checked again before saving
    ov.save_model(model, str(out / XML), compress_to_fp16=False)   # fp32 stays fp32: no silent fp16 weights
    write_json(out / INFO, {"notes": notes, **info})


def _nncf():
    nncf = quiet_nncf()   # its telemetry off (core/recipes/openvino_quiet.py)

    nncf.set_log_level(logging.ERROR)
    return nncf


def build_openvino_fp32(ctx: BuildContext, params: dict, out: Path) -> dict:
    work = out / "onnx"
    with converted(ctx, work) as c:
        save_ir(c.model, out, c.notes + ["The fp32 ONNX graph converted by OpenVINO (openvino.convert_model), saved as IR with fp32 weights."])
    shutil.rmtree(work, ignore_errors=True)
    return {"fp32_graph": c.origin}


def calibration_items(ctx: BuildContext, signature, texts: list[str]) -> list[dict]:
    """One feed per text (unpadded, truncated at the run's max length), as the graph takes it: NNCF's calibration samples."""
    tok = ctx.tokenizer()
    items = []
    for text in texts:
        enc = tok([text], truncation=True, max_length=ctx.max_length, return_tensors="np")
        items.append(graph_feeds(signature, enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)))
    return items


def build_openvino_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    from ...inputs import calibration

    nncf = _nncf()
    texts = calibration.texts_for(ctx)
    subset = max(1, min(int(float(params["subset"])), len(texts)))
    work = out / "onnx"
    with converted(ctx, work) as c:
        items = calibration_items(ctx, Signature(c.model), texts[:subset])
        ctx.say(0.7, f"NNCF static int8 ({params['preset']} preset, transformer patterns), calibrating on {len(items)} texts")
        with quiet():
            model = nncf.quantize(c.model, nncf.Dataset(items), preset=getattr(nncf.QuantizationPreset, params["preset"].upper()),
                                  subset_size=len(items), model_type=nncf.ModelType.TRANSFORMER)
        source = calibration.source_words(ctx)
        notes = c.notes + [f"NNCF static int8: activation ranges from {len(items)} calibration texts ({source}), {params['preset']} preset "
                           f"({'symmetric weights, asymmetric activations' if params['preset'] == 'mixed' else 'symmetric weights and activations'}), "
                           "transformer patterns (attention softmax and LayerNorms stay float)."]
        save_ir(model, out, notes, fake_quantize=_count(model, "FakeQuantize"))
    shutil.rmtree(work, ignore_errors=True)
    return {"fp32_graph": c.origin}


def build_openvino_weight_only(ctx: BuildContext, params: dict, out: Path, bits: int) -> dict:
    nncf = _nncf()
    work = out / "onnx"
    with converted(ctx, work) as c:
        if bits == 8:
            mode, how, kwargs = nncf.CompressWeightsMode.INT8_ASYM, "int8 asymmetric, one scale and zero point per output channel", {}
        else:
            sym = params["mode"] == "sym"
            group, ratio = int(params["group_size"]), float(params["ratio"])
            mode = nncf.CompressWeightsMode.INT4_SYM if sym else nncf.CompressWeightsMode.INT4_ASYM
            how = (f"int4 {'symmetric' if sym else 'asymmetric'} in groups of {group}, {ratio:.0%} of the weight layers "
                   "(the embedding table and the output layer, and any layer beyond the ratio, int8 asymmetric)")
            kwargs = {"group_size": group, "ratio": ratio}
        ctx.say(0.7, f"NNCF weight compression: {how}")
        with quiet():
            model = nncf.compress_weights(c.model, mode=mode, **kwargs)
        notes = c.notes + [f"NNCF weight-only compression: {how}; activations stay float and the weights are dequantized inside the matmuls."]
        save_ir(model, out, notes)
    shutil.rmtree(work, ignore_errors=True)
    return {"fp32_graph": c.origin}


def build_openvino_int8_wo(ctx: BuildContext, params: dict, out: Path) -> dict:
    return build_openvino_weight_only(ctx, params, out, 8)


def build_openvino_int4(ctx: BuildContext, params: dict, out: Path) -> dict:
    return build_openvino_weight_only(ctx, params, out, 4)


def _count(model, op_type: str) -> int:
    return sum(1 for op in model.get_ops() if op.get_type_name() == op_type)


def int8_isa_note(flags: list[str], x86: bool) -> str | None:
    """The note a static int8 IR gets at load on a CPU whose int8 dot products OpenVINO cannot speed up."""
    if not x86 or {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return None
    return (f"{NO_INT8_ISA_NOTE} ({', '.join(flags) or 'no notable instruction sets'}): its int8 matmuls run on AVX2/AVX-512 "
            "without int8 dot-product instructions, so they gain little over fp32.")


def default_precision(recipe: str) -> str:
    """The precision ``recipe`` is compiled in unless its spec says otherwise (the one it is, for openvino-bf16)."""
    if recipe in FIXED_PRECISION:
        return FIXED_PRECISION[recipe]
    return next(p.default for r in RECIPES if r.name == recipe for p in r.params if p.name == "precision")


def compile_precision(recipe: str, params: dict) -> str:
    """The inference precision a variant of ``recipe`` with ``params`` is compiled in (the export's snippet sets it too)."""
    return FIXED_PRECISION.get(recipe) or params.get("precision") or default_precision(recipe)


def load_precision(ctx: BuildContext, params: dict, art: Path, recipe: str):
    """The stored IR compiled in the precision of ``recipe`` with ``params`` (see :func:`compile_precision`)."""
    return load_openvino(ctx, params, art, compile_precision(recipe, params), recipe=recipe, default=default_precision(recipe),
                         fixed=recipe in FIXED_PRECISION)


def load_openvino_fp32(ctx: BuildContext, params: dict, art: Path):
    return load_precision(ctx, params, art, "openvino-fp32")   # f32 by default: fp32 means fp32, also where OpenVINO would pick bf16 (AMX)


def load_openvino_bf16(ctx: BuildContext, params: dict, art: Path):
    return load_precision(ctx, params, art, "openvino-bf16")   # openvino-fp32's IR in bf16: native on avx512_bf16 / AMX, emulated elsewhere


def load_openvino_int8(ctx: BuildContext, params: dict, art: Path):
    variant = load_precision(ctx, params, art, "openvino-int8")
    note = int8_isa_note(env.cpu_info()["flags"], env.is_x86())
    if note:
        variant.notes.append(note)
    return variant


def load_openvino_int8_wo(ctx: BuildContext, params: dict, art: Path):
    return load_precision(ctx, params, art, "openvino-int8-wo")


def load_openvino_int4(ctx: BuildContext, params: dict, art: Path):
    return load_precision(ctx, params, art, "openvino-int4")


def _nncf_check(device: str) -> str | None:
    if importlib.util.find_spec("nncf") is None:
        return "nncf is not installed here (pip install -r requirements.txt)."
    return cpu_only(device)


# Every recipe but openvino-bf16 takes the float precision it is compiled in as its ``precision`` parameter (applied at
# load: precision.py), f32 by default. openvino-int8 is f32, not OpenVINO's default: bf16 on AMX broke MiniLM's int8
# graph at exactly 32 tokens (cosine 0.836 to fp32; f32 0.9945, no slower); the weight-only LMs too (int8 weights
# decoded 9.5 ms/token in f32 against 15.2 in bf16 on an AMX Xeon).
FIXED_PRECISION = {"openvino-bf16": "bf16"}   # recipes that are one precision, without the parameter

RECIPES = [
    Recipe("openvino-fp32", "The exported fp32 graph as an OpenVINO IR, run by OpenVINO's CPU plugin (f32 unless its precision says otherwise)",
           build_openvino_fp32, load_openvino_fp32, params=(precision_param("f32"), isa_param()), check=cpu_only, refuse=refuse_params),
    Recipe("openvino-bf16", "openvino-fp32's IR (the same stored entry) compiled by OpenVINO's CPU plugin in bf16 inference precision",
           build_openvino_fp32, load_openvino_bf16, params=(isa_param(),), check=cpu_only, stores_as="openvino-fp32"),
    Recipe(
        "openvino-int8", "OpenVINO static int8 through NNCF (transformer patterns), activation ranges calibrated on sample texts",
        build_openvino_int8, load_openvino_int8,
        params=(
            Param("preset", "mixed", PRESETS, "mixed: symmetric weights, asymmetric activations (NNCF's default for transformers); "
                  "performance: symmetric both"),
            Param("subset", "64", help="how many calibration texts NNCF collects activation ranges on (at most the texts given)", number=(1, 10000)),
            precision_param("f32"), isa_param(),
        ),
        check=_nncf_check, refuse=refuse_params, calibrated=True,
    ),
    Recipe("openvino-int8-wo", "OpenVINO with NNCF weight-only int8 (per-channel asymmetric), activations float",
           build_openvino_int8_wo, load_openvino_int8_wo, params=(precision_param("f32"), isa_param()), tasks=(CAUSAL_LM,), check=_nncf_check,
           refuse=refuse_params),
    Recipe(
        "openvino-int4", "OpenVINO with NNCF weight-only int4 in groups (embeddings and output layer int8), activations float",
        build_openvino_int4, load_openvino_int4,
        params=(
            Param("mode", "asym", INT4_MODES, "asymmetric groups (a scale and a zero point each) or symmetric (a scale each)"),
            Param("group_size", "64", ("32", "64", "128"), "weights per group sharing a scale; it must divide the layers' input size"),
            Param("ratio", "1.0", help="share of the weight layers in int4 (the rest int8)", number=(0.0, 1.0)),
            precision_param("f32"), isa_param(),
        ),
        tasks=(CAUSAL_LM,), check=_nncf_check, refuse=refuse_params,
    ),
]
